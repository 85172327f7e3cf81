"""The embedded offline dataset: real photographs that ship with scikit-image and scikit-learn,
cut into 32x32 crops, against fakes re-synthesised from other crops by generator-like pipelines.

It needs no network and builds in seconds, so training, tests and CI run anywhere. It is written
in the CIFAKE layout, so the code that reads real data reads it too::

    <root>/train/{REAL,FAKE}/*.png
    <root>/test/{REAL,FAKE}/*.png
    <root>/test_per_generator/<generator>/{0_real,1_fake}/*.png
    <root>/manifest.json

Reals are named ``REAL/<photo>_<index>.png`` and fakes ``FAKE/<generator>_<index>.png``. Train
and test crops come from different photographs (``TRAIN_PHOTOS`` / ``TEST_PHOTOS``), so a test
score never rewards memorising a photograph. It is a stand-in for generator traces, not a
benchmark of real generative models: see ``DESCRIPTION``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pixelproof.data.fake_generators import GENERATORS, SIZE

log = logging.getLogger(__name__)

# Bump whenever a change to this file or to fake_generators.py changes the bytes written, so an
# existing dataset built by older code is recognised as different instead of silently reused.
VERSION = 1

EMBEDDED_GENERATORS: tuple[str, ...] = tuple(GENERATORS)

# Photographs only: the synthetic images skimage also ships (logo, colorwheel, checkerboard,
# binary_blobs, shepp_logan_phantom, page, text, horse) are not photographs and are left out.
COLOUR_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
    "china",
    "flower",
)
GREY_PHOTOS = ("camera", "coins", "clock", "moon", "brick", "grass", "gravel")

# The split is by photograph: no test crop shares a photograph with a train crop. The test set
# has colour and grey, objects, a landscape, a person and a texture. rocket and flower (large
# noise-free dark sky and bokeh) are in train on purpose: a detector that never saw smooth real
# crops learns "smooth means fake" and, tested on them, calls most of them fake.
TEST_PHOTOS: tuple[str, ...] = ("coffee", "china", "camera", "gravel")
TRAIN_PHOTOS: tuple[str, ...] = tuple(
    p for p in COLOUR_PHOTOS + GREY_PHOTOS if p not in TEST_PHOTOS
)

# Crops flatter than this (standard deviation in grey levels) are drawn again: the black borders
# of retina and hubble_deep_field would otherwise give identical all-black images in both classes.
_MIN_CROP_STD = 2.0

DESCRIPTION = (
    "Synthetic stand-in for an AI-generated-image detection dataset. Real images are random-scale "
    "crops of photographs shipped with scikit-image and scikit-learn, area-averaged to 32x32. "
    "Fakes are other crops of the same split's photographs, re-synthesised by small pipelines that "
    "imitate the traces real generators leave (transposed-convolution checkerboards, "
    "interpolation blur and aliasing, denoiser over-smoothing, periodic spectral fingerprints). "
    "Train and test come from different photographs. It is NOT a benchmark of real generative "
    "models and scores on it say nothing about detecting them; it is for smoke tests, CI and "
    "teaching the pipeline offline."
)


def describe() -> str:
    """One paragraph saying what the embedded dataset is and is not."""
    return DESCRIPTION


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """Load one source photograph as a read-only uint8 HxWx3 RGB array (cached: loaded once)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    elif name in COLOUR_PHOTOS or name in GREY_PHOTOS:
        from skimage import data

        img = getattr(data, name)()
    else:
        raise KeyError(f"unknown embedded photograph {name!r}")
    img = np.asarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3])
    img.flags.writeable = False
    return img


def random_crop(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop of random side in [32, min(H, W) / 2] at a random place, area-averaged to 32x32.

    Area averaging (PIL BOX) is what a real photograph shrunk to 32x32 looks like; the random side
    spreads the crops over scales, from pixel-level texture to a whole object.
    """
    h, w, _ = photo.shape
    for _ in range(20):
        side = int(rng.integers(SIZE, max(SIZE, min(h, w) // 2) + 1))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        out = np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.BOX))
        if out.std() >= _MIN_CROP_STD:
            break
    return out


def _split_plan(n: int, generators: Sequence[str]) -> list[tuple[str, str, int]]:
    """(class, generator or "", index) for each image of a split: half real, fakes round robin."""
    n_real = n // 2
    plan = [("REAL", "", i) for i in range(n_real)]
    plan += [("FAKE", generators[i % len(generators)], i) for i in range(n - n_real)]
    return plan


def _params(n_train: int, n_test: int, seed: int, generators: Sequence[str]) -> dict:
    return {
        "version": VERSION,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "generators": list(generators),
    }


def _link(src: Path, dst: Path) -> None:
    """Hard-link (no duplicated bytes), copying where the filesystem cannot link."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_split(
    out: Path,
    split: str,
    split_id: int,
    n: int,
    seed: int,
    generators: Sequence[str],
    bar: tqdm,
) -> dict:
    """Write one split's PNGs; return its counts and the photographs each image came from."""
    photos = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
    for cls in ("REAL", "FAKE"):
        (out / split / cls).mkdir(parents=True)
    counts: Counter[str] = Counter()
    used: dict[str, Counter[str]] = {"REAL": Counter(), "FAKE": Counter()}
    files: dict[str, list[str]] = {"REAL": [], **{g: [] for g in generators}}
    for cls, gen, i in _split_plan(n, generators):
        # One independent stream per image, keyed by (seed, split, class, index): the bytes of an
        # image do not depend on the order images are made in, nor on the other images.
        rng = np.random.default_rng([seed, split_id, int(cls == "FAKE"), i])
        photo = photos[int(rng.integers(len(photos)))]
        used[cls][photo] += 1
        crop = random_crop(load_photo(photo), rng)
        if cls == "REAL":
            name = f"{photo}_{i:05d}.png"
            files["REAL"].append(name)
        else:
            crop = GENERATORS[gen](crop, rng)
            name = f"{gen}_{i:05d}.png"
            files[gen].append(name)
            counts[gen] += 1
        Image.fromarray(crop).save(out / split / cls / name)
        counts[cls] += 1
        bar.update()
    return {
        "counts": {"REAL": counts["REAL"], "FAKE": counts["FAKE"]},
        "fake_per_generator": {g: counts[g] for g in generators},
        "images_per_photo": {c: dict(sorted(used[c].items())) for c in used},
        "_files": files,
    }


def _write_per_generator(out: Path, files: dict[str, list[str]], generators: Sequence[str]) -> dict:
    """test_per_generator/<gen>/{0_real,1_fake}: each generator's test fakes against as many
    test reals, the same first reals for every generator (the CNNDetection/RINE protocol)."""
    counts = {}
    for gen in generators:
        fakes = files[gen]
        reals = files["REAL"][: len(fakes)]
        for sub, cls, names in (("0_real", "REAL", reals), ("1_fake", "FAKE", fakes)):
            folder = out / "test_per_generator" / gen / sub
            folder.mkdir(parents=True)
            for name in names:
                _link(out / "test" / cls / name, folder / name)
        counts[gen] = {"0_real": len(reals), "1_fake": len(fakes)}
    return counts


def _check_existing(root: Path, params: dict, force: bool) -> bool:
    """True if ``root`` already holds this very dataset; raise if it holds anything else."""
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text()).get("parameters")
        except (OSError, ValueError):
            recorded = None
        if recorded == params:
            return True
        if not force:
            raise ValueError(
                f"{root} already holds an embedded dataset built with different parameters "
                f"({recorded} != {params}). Pass a different root, or force=True "
                f"(config: data.embedded.force=true) to rebuild it in place."
            )
        return False
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and is not an embedded dataset (no manifest.json); refusing to write "
            f"into someone else's folder. Pass an empty or non-existent root."
        )
    return False


def build_embedded_dataset(
    root: str | Path,
    n_train: int = 6000,
    n_test: int = 2000,
    seed: int = 0,
    generators: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Build the embedded dataset under ``root`` (if not already there) and return ``root``.

    ``n_train`` / ``n_test`` are images per split, half real and half fake, the fakes spread
    round robin over ``generators`` (default: all of ``EMBEDDED_GENERATORS``). The same seed gives
    byte-identical PNGs. A root already holding the same build is returned untouched; one holding
    a different build raises unless ``force=True``; a non-empty root without a manifest always
    raises. The build goes to a temporary sibling renamed into place at the end, so an interrupted
    build never leaves a half dataset that looks complete.
    """
    root = Path(root).expanduser().resolve()
    generators = list(EMBEDDED_GENERATORS if generators is None else generators)
    unknown = [g for g in generators if g not in GENERATORS]
    if unknown or not generators or len(set(generators)) != len(generators):
        raise ValueError(
            f"generators must be distinct names from {list(GENERATORS)}, got {generators}"
        )
    for split, n in (("n_train", n_train), ("n_test", n_test)):
        if n - n // 2 < len(generators):
            raise ValueError(
                f"{split}={n} leaves fewer fakes than generators ({len(generators)}); "
                f"every generator needs at least one fake image per split"
            )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    params = _params(n_train, n_test, seed, generators)
    if _check_existing(root, params, force):
        log.debug("embedded dataset already built at %s", root)
        return root

    start = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        bar = tqdm(total=n_train + n_test, desc="embedded dataset", unit="img", disable=None)
        with bar:
            train = _write_split(tmp, "train", 0, n_train, seed, generators, bar)
            test = _write_split(tmp, "test", 1, n_test, seed, generators, bar)
        per_generator = _write_per_generator(tmp, test.pop("_files"), generators)
        train.pop("_files")
        manifest = {
            "name": "pixelproof-embedded",
            "description": DESCRIPTION,
            "parameters": params,
            "layout": "CIFAKE: <split>/{REAL,FAKE}/*.png; test_per_generator/<gen>/{0_real,1_fake}",
            "photos": {"train": list(TRAIN_PHOTOS), "test": list(TEST_PHOTOS)},
            "sources": "skimage.data and sklearn.datasets.load_sample_images",
            "image_size": [SIZE, SIZE, 3],
            "splits": {"train": train, "test": test},
            "test_per_generator": per_generator,
        }
        # The manifest is written last: its presence marks a complete build.
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into_place(tmp, root, params)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "built embedded dataset (%d train + %d test images, generators %s, seed %d) at %s in %.1fs",
        n_train,
        n_test,
        ", ".join(generators),
        seed,
        root,
        time.perf_counter() - start,
    )
    return root


def _move_into_place(tmp: Path, root: Path, params: dict) -> None:
    """Rename the finished build onto ``root``. An old build (force=True) is moved aside first
    and deleted only once the new one is in place; if the rename fails it is put back."""
    old = None
    if root.exists():
        if (root / "manifest.json").is_file():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent)) / "data"
            os.replace(root, old)
        else:
            root.rmdir()  # _check_existing made sure it is an empty directory
    try:
        os.rename(tmp, root)
    except OSError:
        if old is not None and not root.exists():
            os.replace(old, root)
            shutil.rmtree(old.parent, ignore_errors=True)
            raise
        # Another process (e.g. a second DDP rank) finished the same build first: keep theirs.
        if _check_existing(root, params, force=False):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
