"""Image files to 8-bit RGB pixels of the model's size: the one decoder every entry point uses.

Training datasets, ``pixelproof.predict``, ``pixelproof.explain``, the browser demo and the
runner that ``pixelproof.export`` writes all read images through this module, so a picture gets
the same pixels wherever it is scored. It needs only numpy and Pillow: ``export`` copies this
very file beside the exported model (as ``decoding.py``), and a test checks the copy is equal.

- :data:`IMAGE_EXTENSIONS`: the one list of file extensions read as images.
- :func:`load_rgb`: any pixel mode to 8-bit RGB; bad files raise :class:`BadImageError`
  (:func:`to_rgb`: the same conversion for an image already in memory).
- :func:`fit`: the resize policy (``resize``, ``center_crop`` or ``none``).
- :func:`image_files`: the images of a folder, in natural order (:func:`natural_key`: ``2.png``
  before ``10.png``), whatever their names.
- :func:`index_by_name` / :func:`indexed_images`: the competition's rule, images named
  ``<N>.<ext>`` by index N. **Duplicate indices** (``7.png`` and ``007.png``, or ``7.png`` and
  ``7.jpg``): the file whose stem is exactly ``N`` wins, ties go to the first name in sorted
  order; every other file is reported as skipped, never dropped silently and never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
RESIZE_MODES = ("resize", "center_crop", "none")


class BadImageError(RuntimeError):
    """An image file is empty, truncated, corrupt or not an image at all."""

    def __init__(self, message: str, path: Path | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason if reason is not None else message


# ---------------------------------------------------------------------------------- decoding


def load_rgb(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode ``path`` as an 8-bit RGB image; with ``max_pixels``, refuse (from
    its header, before decoding) an image of more pixels than that.

    Mode conversions:

    * L, 1, CMYK, YCbCr, LAB, HSV, RGBX, ...: PIL's own conversion to RGB;
    * P: via its palette; a palette with transparency is treated like RGBA;
    * RGBA, LA, PA, RGBa, La: alpha is composited onto black (transparent pixels become black,
      so whatever colour a transparent pixel happened to store cannot leak into the label);
    * I;16 / I;16B / I;16L / I;16N, and I with values in 0..65535: 16-bit, scaled to 0..255
      (``round(v * 255 / 65535)``), never clipped; other I images are min-max stretched;
    * F: values in [0, 1] are scaled by 255, values in [0, 255] kept, anything else min-max
      stretched; NaN becomes 0.

    EXIF orientation is not applied: detectors should see the pixel grid as it was stored.

    Raises:
        BadImageError: for a missing, zero-byte, truncated, corrupt or non-image file, or one of
            more than ``max_pixels`` pixels.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise _bad(path, f"cannot read the file ({err.strerror or err})") from err
    if size == 0:
        raise _bad(path, "the file is empty (0 bytes)")
    try:
        # The file is opened here, not by Pillow: closing it leaves the decoded pixels, so an RGB
        # image is returned as decoded, not copied (Pillow's own close frees its pixels).
        with path.open("rb") as file:
            im = Image.open(file)
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise _bad(
                    path,
                    f"{width}x{height} pixels ({width * height / 1e6:.1f} MP), more than the "
                    f"{max_pixels / 1e6:.1f} MP allowed (max_pixels); downscale it first",
                )
            im.load()
            return to_rgb(im)
    except BadImageError:
        raise
    except Exception as err:  # decoders raise many exception types for corrupt data
        raise _bad(path, _describe(err)) from err


def _bad(path: Path, reason: str) -> BadImageError:
    return BadImageError(f"{path}: {reason}", path=path, reason=reason)


def _describe(err: Exception) -> str:
    """Short reason for a decoding failure, without PIL's internal details."""
    text = str(err).strip()
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image file (PIL cannot identify its format)"
    if isinstance(err, Image.DecompressionBombError):  # Image.MAX_IMAGE_PIXELS, twice over
        return f"too many pixels to decode ({text}); downscale it first"
    if "truncated" in text.lower():
        return "the image data is truncated"
    return f"cannot decode the image ({type(err).__name__}: {text})" if text else type(err).__name__


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as 8-bit RGB by the conversions :func:`load_rgb` documents (``im`` itself when it
    is RGB already)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        # A palette with a transparent index carries alpha; treat it like RGBA.
        return _over_black(im.convert("RGBA")) if "transparency" in im.info else im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _over_black(im.convert("RGBA"))
    if mode.startswith("I;16") or mode == "I":
        return _gray_to_rgb(_scale_integer(np.asarray(im)))
    if mode == "F":
        return _gray_to_rgb(_scale_float(np.asarray(im, dtype=np.float64)))
    if mode == "L" and "transparency" in im.info:
        return _over_black(im.convert("RGBA"))
    return im.convert("RGB")


def _over_black(rgba: Image.Image) -> Image.Image:
    """Composite an RGBA image onto black: rgb * alpha / 255."""
    out = Image.new("RGB", rgba.size, (0, 0, 0))
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _scale_integer(values: np.ndarray) -> np.ndarray:
    """16-bit (or wider) integer pixels to 0..255 floats, scaling rather than clipping."""
    values = values.astype(np.float64)
    if values.size and values.min() >= 0 and values.max() <= 65535:
        return values * (255.0 / 65535.0)
    return _stretch(values)


def _scale_float(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if values.size == 0 or (values.min() >= 0.0 and values.max() <= 1.0):
        return values * 255.0
    if values.min() >= 0.0 and values.max() <= 255.0:
        return values
    return _stretch(values)


def _stretch(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1))


# ------------------------------------------------------------------------------ resize policy


def fit(image: Image.Image, size: int, mode: str) -> Image.Image:
    """Bring ``image`` to ``size`` x ``size``; an image already that size is returned as is.

    * ``resize``: the whole image (aspect ratio not kept), Pillow's bilinear filter, which
      widens with the scale factor when shrinking, so it averages like an area filter;
    * ``center_crop``: the shorter side to ``size`` (same filter), then the central square;
    * ``none``: no resampling; an image of any other size raises ``ValueError``.
    """
    if image.size == (size, size):
        return image
    if mode == "none":
        width, height = image.size
        raise ValueError(
            f"image is {width}x{height} (WxH) but the model takes {size}x{size} and "
            "resize_mode=none; use resize_mode=resize or center_crop, or resize the data"
        )
    if mode == "resize":
        return image.resize((size, size), Image.Resampling.BILINEAR)
    if mode != "center_crop":
        raise ValueError(f"resize_mode={mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    image = image.resize(new, Image.Resampling.BILINEAR)
    left, top = round((new[0] - size) / 2.0), round((new[1] - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


# ------------------------------------------------------------------------------------ folders


def natural_key(path: str | Path) -> tuple[list, str]:
    """Sort key of natural order: runs of digits compare as numbers (``2.png`` before
    ``10.png``, unlike text order), the rest as case-folded text; ties by the exact text."""
    text = str(path)
    parts = re.split(r"(\d+)", text)  # text at even positions, digit runs at odd ones
    return [int(part) if i % 2 else part.casefold() for i, part in enumerate(parts)], text


def image_files(folder: str | Path, recursive: bool = False) -> tuple[list[Path], list[tuple]]:
    """``([image paths, in natural order], [(path, why left out)])`` for the files in ``folder``.

    Hidden files are ignored; a file whose extension is not in :data:`IMAGE_EXTENSIONS` is left
    out with its reason. With ``recursive``, sub-folders are searched too.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of images")
    images, skipped = [], []
    for path in sorted(folder.glob("**/*" if recursive else "*"), key=natural_key):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(path)
        else:
            skipped.append((path, f"not an image extension ({', '.join(IMAGE_EXTENSIONS)})"))
    return images, skipped


def index_by_name(paths: Sequence[str | Path]) -> tuple[dict[int, int], dict[int, str]]:
    """``({N: position in paths}, {position: why it has no index})``: the competition's rule,
    index N for a file named ``<N>.<ext>``. Duplicate indices: see the module doc."""
    candidates: dict[int, list[int]] = {}
    reasons: dict[int, str] = {}
    for position, path in enumerate(paths):
        stem = Path(path).stem
        if stem.isdigit():
            candidates.setdefault(int(stem), []).append(position)
        else:
            reasons[position] = "not named <N>.<ext>, so it has no index"
    found: dict[int, int] = {}
    for index, positions in candidates.items():
        names = {p: Path(paths[p]) for p in positions}
        positions.sort(key=lambda p: (names[p].stem != str(index), names[p].name))
        found[index] = positions[0]
        for p in positions[1:]:
            reasons[p] = f"index {index} already taken by {names[positions[0]].name}"
    return found, reasons


def indexed_images(
    folder: str | Path, recursive: bool = False, option: str = "input_dir"
) -> tuple[list[tuple[int, Path]], list[tuple[Path, str]]]:
    """``([(N, path)] sorted by N, [(path, why left out)])`` for the images named ``<N>.<ext>``
    in ``folder`` (the Task-2 input layout, and Task-1's by default). Duplicate indices: see the
    module doc. ``option`` names the setting that holds ``folder`` in the errors: a missing
    folder, or one with no indexed image at all."""
    if not Path(folder).expanduser().is_dir():
        raise FileNotFoundError(
            f"{option}={folder} is not a folder; pass a folder of images named <N>.<ext>"
        )
    images, skipped = image_files(folder, recursive)
    found, reasons = index_by_name(images)
    if not found:
        raise FileNotFoundError(
            f"{option}={folder} holds no images named <N>.<ext> ({', '.join(IMAGE_EXTENSIONS)})"
        )
    skipped += [(images[position], why) for position, why in reasons.items()]
    return sorted((index, images[position]) for index, position in found.items()), skipped
