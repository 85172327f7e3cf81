"""Load image files robustly: any pixel mode becomes 8-bit RGB, and bad files are caught early.

:class:`ImageFileDataset` decodes every file once when it is built, so an unreadable file is
reported (or skipped) up front instead of crashing a dataloader worker halfway through an epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pixelproof.data.layouts import Sample

log = logging.getLogger("pixelproof.data")

# Above this many files the construction-time scan shows a progress bar.
_PROGRESS_THRESHOLD = 2000
# How many bad files an error or warning quotes before summarising with a count.
_MAX_LISTED = 5


class BadImageError(RuntimeError):
    """An image file is empty, truncated, corrupt or not an image at all."""

    def __init__(self, message: str, path: Path | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason if reason is not None else message


# ---------------------------------------------------------------------------------- decoding


def load_rgb(path: Path) -> Image.Image:
    """Open and fully decode ``path`` as an 8-bit RGB image.

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
        BadImageError: for a zero-byte, truncated, corrupt or non-image file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise _bad(path, f"cannot read the file ({err.strerror or err})") from err
    if size == 0:
        raise _bad(path, "the file is empty (0 bytes)")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = _to_rgb(im)
            # Detach from the file object that the context manager closes.
            return rgb.copy() if rgb is im else rgb
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
    if "truncated" in text.lower():
        return "the image data is truncated"
    return f"cannot decode the image ({type(err).__name__}: {text})" if text else type(err).__name__


def _to_rgb(im: Image.Image) -> Image.Image:
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


# ----------------------------------------------------------------------------------- dataset


class ImageFileDataset(Dataset):
    """Labelled image files, checked once at construction and decoded on access.

    Args:
        samples: files to use, e.g. from :mod:`pixelproof.data.layouts`.
        transform: PIL RGB image -> float tensor [3, H, W] in [0, 1]
            (see :func:`pixelproof.data.transforms.build_transform`).
        on_bad_file: ``"error"`` raises :class:`BadImageError` if any file cannot be decoded;
            ``"skip"`` drops those files (listed in ``self.skipped``) with one warning.
        cache: keep the images decoded during the scan in memory and reuse them in
            ``__getitem__`` (a 32x32 RGB image is ~3 KB, so 100k images take ~300 MB per
            process; dataloader workers each get a copy).

    Items are ``(image, label)`` with ``label`` a float32 scalar tensor (1 = fake).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], torch.Tensor],
        on_bad_file: Literal["error", "skip"] = "error",
        cache: bool = False,
    ) -> None:
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}.")
        if len(samples) == 0:
            raise ValueError("ImageFileDataset needs at least one sample, got none.")
        self.transform = transform
        self.on_bad_file = on_bad_file
        self.samples: list[Sample] = []
        self.skipped: list[tuple[Path, str]] = []
        self._cache: list[Image.Image] | None = [] if cache else None

        for sample in tqdm(
            samples,
            desc="Checking images",
            unit="img",
            disable=len(samples) <= _PROGRESS_THRESHOLD,
            leave=False,
        ):
            try:
                image = load_rgb(sample.path)
            except BadImageError as err:
                self.skipped.append((sample.path, err.reason))
                continue
            self.samples.append(sample)
            if self._cache is not None:
                self._cache.append(image)

        self._report_bad(samples)
        self.labels: list[int] = [s.label for s in self.samples]
        self.generators: list[str] = [s.generator for s in self.samples]

    def _report_bad(self, samples: Sequence[Sample]) -> None:
        if not self.skipped:
            return
        listed = "; ".join(f"{p}: {why}" for p, why in self.skipped[:_MAX_LISTED])
        more = len(self.skipped) - _MAX_LISTED
        listed += f"; and {more} more" if more > 0 else ""
        if not self.samples:
            where = _common_folder([s.path for s in samples])
            raise BadImageError(
                f"None of the {len(samples)} image files under {where} could be read: {listed}."
            )
        if self.on_bad_file == "error":
            raise BadImageError(
                f"{len(self.skipped)} of {len(samples)} image files could not be read: {listed}. "
                f"Fix or remove them, or set data.on_bad_file=skip to skip them."
            )
        log.warning(
            "Skipped %d of %d image files that could not be read: %s.",
            len(self.skipped),
            len(samples),
            listed,
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        image = self._cache[index] if self._cache is not None else load_rgb(sample.path)
        try:
            tensor = self.transform(image)
        except ValueError as err:
            # Transforms only see pixels; say which file broke the rule.
            raise ValueError(f"{sample.path}: {err}") from err
        return tensor, torch.tensor(sample.label, dtype=torch.float32)


def _common_folder(paths: Sequence[Path]) -> Path:
    try:
        return Path(os.path.commonpath([str(p.parent) for p in paths]))
    except ValueError:  # paths on different drives, or mixed absolute and relative
        return paths[0].parent
