"""Build small image files and dataset folder trees for tests.

Import it as ``from helpers.image_factory import ...`` (pytest puts tests/ on sys.path:
``pythonpath`` in pyproject.toml). Everything is generated on the fly from a seed, so tests need
no data files.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

# Formats chosen from the extension; PNG cannot store CMYK, TIFF stores F (float32) images.
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def make_image(mode: str = "RGB", size: tuple[int, int] = (32, 32), seed: int = 0) -> Image.Image:
    """A random-noise PIL image of ``mode`` and ``size`` (width, height)."""
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32))
    if mode == "1":
        return make_image("L", size, seed).convert("1")
    if mode == "P":
        return make_image("RGB", size, seed).convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "CMYK":
        return Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "CMYK")
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def write_image(
    path: str | Path,
    mode: str = "RGB",
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    image: Image.Image | None = None,
    **save_kwargs,
) -> Path:
    """Write a random image (or ``image``) to ``path``; the format follows the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = image if image is not None else make_image(mode, size, seed)
    image.save(path, format=_FORMATS[path.suffix.lower()], **save_kwargs)
    return path


def png_bytes(mode: str = "RGB", size: tuple[int, int] = (32, 32), seed: int = 0) -> bytes:
    """The bytes of a random PNG image."""
    buffer = io.BytesIO()
    make_image(mode, size, seed).save(buffer, format="PNG")
    return buffer.getvalue()


def write_class_folder(folder: Path, n: int, seed: int = 0, ext: str = ".png") -> list[Path]:
    """``n`` images named ``img_000.png``, ... in ``folder``."""
    return [write_image(folder / f"img_{i:03d}{ext}", seed=seed + i) for i in range(n)]


def make_cifake_tree(
    root: str | Path,
    n_per_class: int,
    splits: Iterable[str] = ("train", "test"),
    class_names: tuple[str, str] = ("REAL", "FAKE"),
) -> Path:
    """``<root>/<split>/REAL|FAKE`` with ``n_per_class`` images in each class folder."""
    root = Path(root)
    for s, split in enumerate(splits):
        for c, name in enumerate(class_names):
            write_class_folder(root / split / name, n_per_class, seed=1000 * s + 100 * c)
    return root


def make_per_generator_tree(
    root: str | Path,
    generators: Iterable[str],
    n: int,
    with_classes: bool = False,
    classes: Iterable[str] = ("cat", "dog"),
) -> Path:
    """``<root>/<gen>/0_real|1_fake`` (or ``<root>/<gen>/<class>/0_real|1_fake``), ``n`` each."""
    root = Path(root)
    for g, gen in enumerate(generators):
        parents = [root / gen / c for c in classes] if with_classes else [root / gen]
        for p, parent in enumerate(parents):
            for label, name in enumerate(("0_real", "1_fake")):
                write_class_folder(parent / name, n, seed=1000 * g + 100 * p + 10 * label)
    return root
