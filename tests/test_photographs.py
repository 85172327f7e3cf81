"""The vendored photographs: files and provenance agree, images load as promised, splits are
sound, random_crop is the embedded dataset's, and misuse fails with a clear message."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from pixelproof import photographs
from pixelproof.photographs import (
    PHOTO_DIR,
    load_photo,
    photo_names,
    provenance,
    random_crop,
)
from pixelproof.photographs.vendor import CSV_FIELDS, SELECTION

SCENES = {
    "landscape",
    "city",
    "people",
    "animal",
    "plant",
    "object",
    "interior",
    "texture",
    "water",
    "sky",
    "food",
}


def _is_colour(img: np.ndarray) -> bool:
    """Not grey: the channels differ by more than a grey level on average."""
    a = img.astype(np.int16)
    return float(np.abs(a[..., 0] - a[..., 1]).mean() + np.abs(a[..., 1] - a[..., 2]).mean()) > 1


def test_every_row_has_a_file_and_every_file_a_row():
    rows = provenance()
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)), "duplicate names in provenance.csv"
    files = {p.stem for p in PHOTO_DIR.glob("*.jpg")}
    assert set(names) == files
    assert all(p.suffix == ".jpg" for p in PHOTO_DIR.iterdir() if p.stem in files)
    header = (PHOTO_DIR / "provenance.csv").read_text(encoding="utf-8").splitlines()[0]
    assert tuple(header.split(",")) == CSV_FIELDS
    for r in rows:
        assert re.fullmatch(r"[a-z0-9_]+", r["name"]), r["name"]
        assert r["scene"] in SCENES, r
        assert all(r[f] for f in CSV_FIELDS), f"empty field in {r}"
        assert re.fullmatch(r"\d+x\d+", r["original_size"]), r


def test_provenance_is_what_the_vendor_script_writes():
    """provenance.csv and vendor.SELECTION (the table it is written from) agree row for row."""
    rows = {r["name"]: r for r in provenance()}
    assert set(rows) == {p.name for p in SELECTION}
    for p in SELECTION:
        r = rows[p.name]
        got = (r["split"], r["scene"], r["package"], r["package_version"], r["original_file"])
        assert got == (p.split, p.scene, p.package, p.version, p.original_file), p.name
        assert (r["licence"], r["author"]) == (p.licence, p.author), p.name


def test_every_photograph_loads_as_uint8_rgb_within_512():
    for name in photo_names():
        img = load_photo(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert max(img.shape[:2]) <= 512 and min(img.shape[:2]) >= 64, (name, img.shape)
        assert not img.flags.writeable, name
        assert load_photo(name) is img, "load_photo is cached"


def test_jpeg_encoding_and_folder_size():
    total = 0
    for name in photo_names():
        path = PHOTO_DIR / f"{name}.jpg"
        total += path.stat().st_size
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.mode == "RGB", name
            assert JpegImagePlugin.get_sampling(im) == 0, f"{name} is not 4:4:4"
    assert total < 8 * 2**20


def test_enough_photographs_mostly_colour():
    names = photo_names()
    assert len(names) >= 40
    colour = [n for n in names if _is_colour(load_photo(n))]
    assert len(colour) >= 0.8 * len(names), sorted(set(names) - set(colour))


def test_splits_are_disjoint_complete_and_varied():
    splits = {s: set(photo_names(s)) for s in ("train", "val", "test")}
    assert all(splits.values()), {s: len(v) for s, v in splits.items()}
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"])
    assert not splits["val"] & splits["test"]
    assert set().union(*splits.values()) == set(photo_names())
    assert list(photo_names("val")) == sorted(splits["val"])
    assert len(splits["train"]) > len(splits["val"]) + len(splits["test"])
    scene = {r["name"]: r["scene"] for r in provenance()}
    for split in ("val", "test"):
        have = Counter(scene[n] for n in splits[split])
        assert have["landscape"], (split, have)
        assert have["people"] + have["animal"], (split, have)
        assert have["city"] + have["interior"] + have["object"], (split, have)
        assert have["texture"], (split, have)
        assert sum(_is_colour(load_photo(n)) for n in splits[split]) >= 0.7 * len(splits[split])


def test_random_crop_shape_dtype_and_determinism():
    photo = load_photo("coffee")
    a = random_crop(photo, np.random.default_rng(7))
    b = random_crop(photo, np.random.default_rng(7))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    c = random_crop(photo, np.random.default_rng(8))
    assert not np.array_equal(a, c)
    assert random_crop(photo, np.random.default_rng(7), size=16).shape == (16, 16, 3)


def test_random_crop_redraws_flat_crops():
    flat = np.full((200, 300, 3), 90, np.uint8)
    flat[:, 250:] = 200  # only a strip has any structure
    rng = np.random.default_rng(0)
    crops = [random_crop(flat, rng) for _ in range(20)]
    assert sum(c.std() >= 2.0 for c in crops) > 10
    small = np.zeros((40, 40, 3), np.uint8)  # never textured: the last draw comes back
    assert random_crop(small, np.random.default_rng(0)).shape == (32, 32, 3)


def test_random_crop_draws_as_the_embedded_dataset_does():
    embedded = pytest.importorskip("pixelproof.data.embedded")
    if not hasattr(embedded, "random_crop"):
        pytest.skip("pixelproof.data.embedded no longer has random_crop")
    for name in ("coffee", "mossy_bark", "sheep"):
        photo = load_photo(name)
        for seed in range(5):
            mine = random_crop(photo, np.random.default_rng(seed))
            theirs = embedded.random_crop(photo, np.random.default_rng(seed))
            np.testing.assert_array_equal(mine, theirs)


def test_unknown_split_and_name_are_clear():
    with pytest.raises(ValueError, match=r"unknown split 'dev'.*train, val, test"):
        photo_names("dev")
    with pytest.raises(KeyError, match=r"unknown photograph 'nope'.*photo_names\(\)"):
        load_photo("nope")


@pytest.fixture
def fake_photo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """PHOTO_DIR pointed at a copy of provenance.csv in tmp_path, caches cleared around it."""
    shutil.copy(PHOTO_DIR / "provenance.csv", tmp_path / "provenance.csv")
    monkeypatch.setattr(photographs, "PHOTO_DIR", tmp_path)
    photographs._rows.cache_clear()
    load_photo.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    photographs._rows.cache_clear()
    load_photo.cache_clear()


def test_missing_or_corrupt_file_names_the_file(fake_photo_dir: Path):
    with pytest.raises(OSError, match=r"cannot read photograph 'coffee' from .*coffee\.jpg") as e:
        load_photo("coffee")
    assert "\n" not in str(e.value)
    (fake_photo_dir / "chelsea.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(OSError, match=r"cannot read photograph 'chelsea' from .*chelsea\.jpg") as e:
        load_photo("chelsea")
    assert "\n" not in str(e.value)
