"""The vendored photographs: provenance.csv is a list the vendoring tool can rebuild them from,
files and rows agree, images load as promised, splits are sound (the unseen sources stay apart
and untrainable), random_crop is the embedded dataset's, and misuse fails with a clear message."""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from pixelproof import photographs
from pixelproof.photographs import (
    EVAL_ONLY_SPLITS,
    PHOTO_DIR,
    SPLITS,
    load_photo,
    photo_names,
    provenance,
    random_crop,
)

TOOL = Path(__file__).resolve().parents[2] / "tools" / "vendor_photographs.py"
_spec = importlib.util.spec_from_file_location("vendor_photographs", TOOL)
vendor_tool = importlib.util.module_from_spec(_spec)
sys.modules["vendor_photographs"] = vendor_tool
_spec.loader.exec_module(vendor_tool)

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


def _reserved_packages() -> re.Pattern:
    """The packages held back for an independent evaluation, as the photographs' README names
    them (`name` or `prefix*` in its "Never add photographs from ..." sentence): no photograph
    may come from them. Read from there so the names stand in one place, the README."""
    text = (PHOTO_DIR / "README.md").read_text()
    sentence = re.search(r"Never add photographs from (.+?):", text, re.S).group(1)
    names = re.findall(r"`([^`]+)`", sentence)
    assert names, sentence
    return re.compile("|".join(re.escape(n).replace(r"\*", ".*") for n in names))


RESERVED_PACKAGES = _reserved_packages()
LICENCES = re.compile(r"(GPL|LGPL|GFDL|CC-BY|CC0|public-domain|MIT|Apache-2\.0|BSD)\b")
TRAINABLE = [s for s in SPLITS if s not in EVAL_ONLY_SPLITS]


def _is_colour(img: np.ndarray) -> bool:
    """Not grey: the channels differ by more than a grey level on average."""
    a = img.astype(np.int16)
    return float(np.abs(a[..., 0] - a[..., 1]).mean() + np.abs(a[..., 1] - a[..., 2]).mean()) > 1


def _shipped() -> list:
    return vendor_tool.read_provenance(PHOTO_DIR / "provenance.csv")


def _good_row(**change: str) -> dict[str, str]:
    row = {
        "name": "cat",
        "split": "train",
        "scene": "animal",
        "source": "deb",
        "package": "some-data",
        "package_version": "1:2.0-1",
        "original_file": "usr/share/some/cat.jpg",
        "box": "",
        "licence": "CC0-1.0",
        "author": "A. Person",
        "original_size": "640x480",
    }
    row.update(change)
    return row


# --- provenance.csv as the vendoring tool reads it --------------------------------------------


def test_every_row_has_a_file_and_every_file_a_row():
    photos = _shipped()  # the tool's own parser: header, names, splits, sources, boxes, no gaps
    names = [p.name for p in photos]
    assert names == sorted(names) and names == list(photo_names())
    assert set(names) == {p.stem for p in PHOTO_DIR.glob("*.jpg")}
    for p in photos:
        assert p.scene in SCENES, p
        assert re.fullmatch(r"\d+x\d+", p.original_size), f"{p.name}: the tool never ran on it"
        if p.box is not None:
            w, h = (int(v) for v in p.original_size.split("x"))
            assert p.box[2] <= w and p.box[3] <= h, p


def test_the_csv_is_what_the_tool_writes(tmp_path: Path):
    """Written back from its parsed rows, the CSV is byte for byte the shipped one: sorted, in the
    tool's column order and box format, so a rerun of the tool leaves no diff."""
    vendor_tool.write_provenance(tmp_path / "provenance.csv", reversed(_shipped()))
    assert (tmp_path / "provenance.csv").read_bytes() == (PHOTO_DIR / "provenance.csv").read_bytes()


def test_licences_and_authors_are_stated_and_no_package_is_reserved():
    for p in _shipped():
        assert LICENCES.match(p.licence), f"{p.name}: licence {p.licence!r} names no licence"
        assert len(p.author) >= 3, p
        assert not RESERVED_PACKAGES.fullmatch(p.package), f"{p.name} comes from {p.package}"
        if p.source == "wheel":
            assert re.fullmatch(r"\d+(\.\d+)+", p.version), p
        else:
            assert p.original_file.startswith("usr/"), p


def test_parse_box():
    assert vendor_tool.parse_box("0 28 640 452") == (0, 28, 640, 452)
    assert vendor_tool.parse_box("") is None and vendor_tool.parse_box("  ") is None
    assert vendor_tool.format_box((1, 1, 512, 512)) == "1 1 512 512"
    assert vendor_tool.format_box(None) == ""
    mossy = {p.name: p for p in _shipped()}["mossy_bark"]
    assert mossy.box == (0, 28, 640, 452)  # cuts the black bars of the original


def test_parse_row_takes_a_good_row():
    photo = vendor_tool.parse_row(_good_row(box="1 2 30 40", original_size=""))
    assert photo.box == (1, 2, 30, 40) and photo.version == "1:2.0-1"
    assert photo.original_size == ""  # left for the tool to fill in


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Cat"}, r"bad name 'Cat'"),
        (
            {"split": "holdout"},
            r"cat: split 'holdout' is not one of train, val, test, unseen_val, unseen_test",
        ),
        ({"source": "conda"}, r"cat: source 'conda' is not one of deb, wheel"),
        ({"licence": " "}, r"cat: empty licence"),
        ({"author": "", "package": ""}, r"cat: empty package, author"),
        ({"original_file": "/usr/share/cat.jpg"}, r"cat: original_file is a path inside"),
        ({"box": "0 0 10"}, r"cat: box '0 0 10' is not four whole numbers"),
        ({"box": "0 0 -1 5"}, r"cat: box '0 0 -1 5' is not four whole numbers"),
        ({"box": "5 0 5 9"}, r"cat: box '5 0 5 9' is empty"),
        ({"original_size": "640*480"}, r"cat: original_size '640\*480' is not WxH"),
    ],
)
def test_parse_row_names_what_is_wrong(change: dict, message: str):
    with pytest.raises(ValueError, match=message):
        vendor_tool.parse_row(_good_row(**change))


def test_read_provenance_names_the_line(tmp_path: Path):
    path = tmp_path / "provenance.csv"
    fields = vendor_tool.CSV_FIELDS
    rows = [_good_row(), _good_row(name="dog"), _good_row(name="cat")]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match=r"provenance\.csv line 4: cat appears twice"):
        vendor_tool.read_provenance(path)
    path.write_text("name,split\ncat,train\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"the header is \['name', 'split'\]"):
        vendor_tool.read_provenance(path)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_convert_crops_then_downscales_and_refuses_transparency():
    rgba = Image.new("RGBA", (1200, 800), (200, 100, 50, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 127))  # a half-transparent corner, as chicky_512.png has
    with pytest.raises(ValueError, match="transparent pixels"):
        vendor_tool.convert(_png(rgba))
    img, size = vendor_tool.convert(_png(rgba), (1, 1, 1200, 800))
    assert size == "1200x800" and img.mode == "RGB"
    assert img.size == (512, 341)  # 1199x799, long side to 512
    assert img.getpixel((10, 10)) == (200, 100, 50)
    small, _ = vendor_tool.convert(_png(Image.new("RGB", (300, 200), "red")))
    assert small.size == (300, 200)  # never upscaled
    with pytest.raises(ValueError, match=r"box 0 0 301 200 reaches outside the 300x200"):
        vendor_tool.convert(_png(Image.new("RGB", (300, 200))), (0, 0, 301, 200))


def test_vendor_refuses_a_name_without_a_row(tmp_path: Path):
    with pytest.raises(ValueError, match=r"has no row for \['nope'\]"):
        vendor_tool.vendor(tmp_path, PHOTO_DIR / "provenance.csv", only=["nope"])
    assert not list(tmp_path.iterdir())  # nothing downloaded, nothing written


def test_the_tool_is_not_shipped_in_the_package():
    assert {p.name for p in PHOTO_DIR.glob("*.py")} == {"__init__.py"}


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
    splits = {s: set(photo_names(s)) for s in SPLITS}
    assert all(splits.values()), {s: len(v) for s, v in splits.items()}
    assert sum(len(v) for v in splits.values()) == len(photo_names()), "a photograph in two splits"
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


def test_unseen_photographs_come_from_packages_no_other_split_uses():
    """The unseen splits hold reals from sources a detector never saw: at least 12 colour
    photographs of varied scenes from at least 3 packages that no trainable split draws from,
    and the calibration half (unseen_val) shares no package with the measured half."""
    rows = provenance()
    unseen = [r for r in rows if r["split"] in EVAL_ONLY_SPLITS]
    assert len(unseen) >= 12
    assert len(unseen) == sum(len(photo_names(s)) for s in EVAL_ONLY_SPLITS)
    packages = Counter(r["package"] for r in unseen)
    assert len(packages) >= 3, packages
    assert max(packages.values()) <= 0.6 * len(unseen), f"one package dominates: {packages}"
    seen = {r["package"] for r in rows if r["split"] in TRAINABLE}
    assert not set(packages) & seen, sorted(set(packages) & seen)
    by_split = {s: {r["package"] for r in unseen if r["split"] == s} for s in EVAL_ONLY_SPLITS}
    assert all(by_split.values()) and not by_split["unseen_val"] & by_split["unseen_test"]
    scenes = Counter(r["scene"] for r in unseen)
    assert len(scenes) >= 5 and scenes["people"] and scenes["city"], scenes
    grey = [r["name"] for r in unseen if not _is_colour(load_photo(r["name"]))]
    assert not grey, grey


def test_eval_only_splits_are_splits_and_generators_refuse_them():
    assert EVAL_ONLY_SPLITS == ("unseen_val", "unseen_test") and set(EVAL_ONLY_SPLITS) < set(SPLITS)
    crops = pytest.importorskip("pixelproof.generators.crops")
    for split in EVAL_ONLY_SPLITS:
        with pytest.raises(ValueError, match=rf"the '{split}' photographs are for evaluation"):
            crops.photo_source(split)
        with pytest.raises(ValueError, match="evaluation only"):
            crops.PhotoCrops(split=split).setup("fit")
    assert crops.photo_source("train").names == photo_names("train")


def test_the_embedded_dataset_never_samples_unseen_photographs():
    embedded = pytest.importorskip("pixelproof.data.embedded")
    if not hasattr(embedded, "SPLITS"):
        pytest.skip("pixelproof.data.embedded no longer names its SPLITS")
    assert set(embedded.SPLITS) <= set(TRAINABLE), embedded.SPLITS


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


def test_random_crop_is_the_one_the_embedded_dataset_draws_with():
    from pixelproof.data import embedded

    assert embedded.random_crop is random_crop  # one crop rule, not a copy to keep in step


def test_unknown_split_and_name_are_clear():
    with pytest.raises(ValueError, match=r"unknown split 'dev'.*train, val, test, unseen"):
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
