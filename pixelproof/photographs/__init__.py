"""Real colour photographs vendored into the package, with their provenance.

Each ``<name>.jpg`` here is a photograph taken from a Debian package or a PyPI wheel, downscaled
so its long side is at most 512 px; ``provenance.csv``, the only list of them, names for every one
its split, its scene, where it came from (source, package, version, original file, crop box), the
licence and the author. ``tools/vendor_photographs.py`` (outside the package) rebuilds the folder
from that list (see README.md).

Splits: ``train``/``val``/``test`` are assigned by photograph and share packages;
``unseen_val`` and ``unseen_test`` hold photographs from packages that no other split (nor each
other) draws from: reals from sources a detector never saw, to calibrate its threshold against
(``unseen_val``, beside the validation reals) and to measure its false-positive rate on
(``unseen_test``). Nothing may train on them (``EVAL_ONLY_SPLITS``).

    >>> from pixelproof import photographs
    >>> photographs.photo_names("test")[:3]
    ('camera', 'china', 'cliff')
    >>> img = photographs.load_photo("coffee")  # uint8 HxWx3 RGB, read-only
    >>> crop = photographs.random_crop(img, np.random.default_rng(0))  # 32x32x3
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
from PIL import Image

PHOTO_DIR: Path = Path(__file__).resolve().parent
SPLITS: tuple[str, ...] = ("train", "val", "test", "unseen_val", "unseen_test")
# Splits that generators and detectors must never train on: their photographs' packages appear in
# no other split, so they stay a fair measure of reals from sources never seen.
EVAL_ONLY_SPLITS: tuple[str, ...] = ("unseen_val", "unseen_test")

# Crops flatter than this (standard deviation in grey levels) are drawn again (as in embedded.py).
_MIN_CROP_STD = 2.0
_CROP_TRIES = 20


@functools.cache
def _rows() -> tuple[dict, ...]:
    path = PHOTO_DIR / "provenance.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return tuple(csv.DictReader(fh))
    except OSError as err:
        raise FileNotFoundError(f"cannot read the photographs' provenance {path}: {err}") from None


def provenance() -> list[dict]:
    """The rows of provenance.csv, one dict per photograph (sorted by name)."""
    return [dict(row) for row in _rows()]


def photo_names(split: str | None = None) -> tuple[str, ...]:
    """The sorted names of all photographs, or of one split (one of ``SPLITS``)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)} (or None)")
    return tuple(sorted(r["name"] for r in _rows() if split is None or r["split"] == split))


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """One photograph as a read-only uint8 HxWx3 RGB array (cached: read once)."""
    if name not in photo_names():
        raise KeyError(
            f"unknown photograph {name!r}: photo_names() lists the {len(photo_names())} there are"
        )
    path = PHOTO_DIR / f"{name}.jpg"
    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:
        raise OSError(f"cannot read photograph {name!r} from {path}: {err}") from None
    img = np.ascontiguousarray(img)
    img.flags.writeable = False
    return img


def random_crop(photo: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A crop of random side in [size, max(size, min(H, W) // 2)] at a random place, area-averaged
    (PIL BOX) to size x size; drawn again, up to 20 times in all, while its std is under 2 grey
    levels. The embedded dataset (:mod:`pixelproof.data.embedded`) draws its real crops with it.
    """
    h, w, _ = photo.shape
    for _ in range(_CROP_TRIES):
        side = int(rng.integers(size, max(size, min(h, w) // 2) + 1))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        out = np.asarray(crop.resize((size, size), Image.Resampling.BOX))
        if out.std() >= _MIN_CROP_STD:
            break
    return out
