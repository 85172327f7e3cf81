"""Robust image loading: pixel modes, bad files, and the dataset's construction-time scan."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.image_factory import make_cifake_tree, make_image, png_bytes, write_image
from PIL import Image
from torch.utils.data import DataLoader

from pixelproof.data.decoding import BadImageError, load_rgb
from pixelproof.data.image_dataset import ImageFileDataset
from pixelproof.data.layouts import Sample, cifake_samples

# ------------------------------------------------------------------------------------ load_rgb


@pytest.mark.parametrize(
    ("mode", "name"),
    [
        ("RGB", "rgb.png"),
        ("RGB", "rgb.jpg"),
        ("RGB", "rgb.bmp"),
        ("RGB", "rgb.webp"),
        ("L", "gray.png"),
        ("LA", "gray_alpha.png"),
        ("1", "bilevel.png"),
        ("P", "palette.png"),
        ("RGBA", "rgba.png"),
        ("CMYK", "cmyk.jpg"),
        ("CMYK", "cmyk.tif"),
        ("I;16", "sixteen.png"),
        ("F", "float.tif"),
    ],
)
def test_any_mode_becomes_rgb_float_tensor(tmp_path: Path, mode: str, name: str) -> None:
    path = write_image(tmp_path / name, mode=mode)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (32, 32)
    tensor, _ = ImageFileDataset([Sample(path, 0, "all")])[0]
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() <= tensor.max() <= 1.0


def test_palette_with_transparency_composited_onto_black(tmp_path: Path) -> None:
    image = Image.new("P", (32, 32), 1)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)  # index 0 red, index 1 green
    image.paste(0, (0, 0, 16, 32))
    path = write_image(tmp_path / "p.png", image=image, transparency=0)
    assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
    pixels = np.asarray(load_rgb(path))
    assert (pixels[:, :16] == 0).all()  # transparent red -> black
    assert (pixels[:, 16:] == [0, 255, 0]).all()


def test_rgba_alpha_composited_onto_black(tmp_path: Path) -> None:
    rgba = np.full((32, 32, 4), 200, dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:, :8, 3] = 0
    rgba[:, 8:16, 3] = 128
    path = write_image(tmp_path / "a.png", image=Image.fromarray(rgba, "RGBA"))
    pixels = np.asarray(load_rgb(path)).astype(int)
    assert (pixels[:, :8] == 0).all()
    assert np.allclose(pixels[:, 8:16], 200 * 128 / 255, atol=1)
    assert (pixels[:, 16:] == 200).all()


@pytest.mark.parametrize(("mode", "name"), [("I;16", "g.png"), ("I;16B", "g.tif"), ("I", "g.tif")])
def test_sixteen_bit_gradient_scaled_not_clipped(tmp_path: Path, mode: str, name: str) -> None:
    ramp = np.linspace(0, 65535, 32 * 32).round().reshape(32, 32)
    if mode == "I":
        image = Image.fromarray(ramp.astype(np.int32))
    else:
        image = Image.frombytes(mode, (32, 32), ramp.astype(">u2" if "B" in mode else "<u2"))
    path = write_image(tmp_path / name, image=image)
    assert Image.open(path).mode == mode
    gray = np.asarray(load_rgb(path))[..., 0].astype(int).ravel()
    assert gray.min() == 0 and gray.max() == 255
    assert np.all(np.diff(gray) >= 0)  # monotone ramp
    assert len(np.unique(gray)) == 256  # the full range is used, not clipped at 255
    assert abs(gray[len(gray) // 2] - 128) <= 1


def test_float_image_in_unit_range_scaled(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    path = write_image(tmp_path / "f.tif", image=Image.fromarray(values))
    gray = np.asarray(load_rgb(path))[..., 0]
    assert gray.min() == 0 and gray.max() == 255


def test_int_image_outside_16_bits_stretched(tmp_path: Path) -> None:
    values = np.linspace(-1000, 100_000, 32 * 32).reshape(32, 32).astype(np.int32)
    path = write_image(tmp_path / "i.tif", image=Image.fromarray(values))
    gray = np.asarray(load_rgb(path))[..., 0]
    assert gray.min() == 0 and gray.max() == 255


def _bad_files(folder: Path) -> dict[str, Path]:
    """One file of each broken kind, keyed by what is wrong with it."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "empty": folder / "empty.png",
        "corrupt": folder / "corrupt.png",
        "truncated": folder / "truncated.png",
        "text_as_jpg": folder / "text.jpg",
    }
    files["empty"].write_bytes(b"")
    files["corrupt"].write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 500, np.uint8)))
    whole = png_bytes(size=(32, 32))
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    files["text_as_jpg"].write_text("<html>definitely not a JPEG</html>")
    return files


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "empty"),
        ("corrupt", "not an image"),
        ("truncated", "truncated"),
        ("text_as_jpg", "not an image"),
    ],
)
def test_load_rgb_rejects_bad_files(tmp_path: Path, kind: str, reason: str) -> None:
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(BadImageError) as err:
        load_rgb(path)
    assert str(err.value).startswith(f"{path}: ")
    assert reason in str(err.value)
    assert err.value.path == path


def test_load_rgb_rejects_garbled_png(tmp_path: Path) -> None:
    data = bytearray(png_bytes())
    data[200:220] = bytes(20)  # valid signature and header, broken compressed data
    path = tmp_path / "garbled.png"
    path.write_bytes(bytes(data))
    with pytest.raises(BadImageError, match="cannot decode"):
        load_rgb(path)


def test_load_rgb_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadImageError, match="cannot read"):
        load_rgb(tmp_path / "missing.png")


def test_load_rgb_detached_from_file(tmp_path: Path) -> None:
    path = write_image(tmp_path / "x.png")
    image = load_rgb(path)
    path.unlink()
    assert image.getpixel((0, 0)) == make_image().getpixel((0, 0))


# ------------------------------------------------------------------------------------- dataset


@pytest.fixture
def tree_with_bad_files(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    root = make_cifake_tree(tmp_path / "cifake", n_per_class=4, splits=["train"])
    bad = _bad_files(root / "train" / "FAKE")
    (root / "train" / "REAL" / "notes.txt").write_text("ignored by the layout")
    return root, bad


@pytest.mark.parametrize("cache", [True, False])
def test_dataset_items(tmp_path: Path, cache: bool) -> None:
    root = make_cifake_tree(tmp_path, n_per_class=3, splits=["train"])
    samples = cifake_samples(root, "train")
    dataset = ImageFileDataset(samples, cache=cache)
    assert len(dataset) == 6 and dataset.skipped == []
    assert dataset.labels == [0, 0, 0, 1, 1, 1]
    assert dataset.samples == samples
    image, label = dataset[4]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label.dtype == torch.float32 and label.shape == () and label.item() == 1.0
    expected = np.asarray(make_image(seed=101), dtype=np.float32) / 255  # FAKE/img_001.png
    assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1))


def test_dataset_error_mode_lists_bad_files(tree_with_bad_files) -> None:
    root, bad = tree_with_bad_files
    samples = cifake_samples(root, "train")
    assert len(samples) == 12  # the .txt file is ignored by the layout, the bad images are not
    with pytest.raises(BadImageError) as err:
        ImageFileDataset(samples)
    msg = str(err.value)
    assert "4 of 12" in msg and "data.on_bad_file=skip" in msg
    for path in bad.values():
        assert str(path) in msg


def test_dataset_skip_mode(tree_with_bad_files, caplog: pytest.LogCaptureFixture) -> None:
    root, bad = tree_with_bad_files
    with caplog.at_level(logging.WARNING, logger="pixelproof.data"):
        dataset = ImageFileDataset(cifake_samples(root, "train"), on_bad_file="skip")
    assert len(dataset) == 8 and dataset.labels == [0] * 4 + [1] * 4
    assert sorted(p for p, _ in dataset.skipped) == sorted(bad.values())
    assert all(isinstance(why, str) and why for _, why in dataset.skipped)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Skipped 4 of 12" in warnings[0].getMessage()

    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=3, num_workers=workers)
        batches = list(loader)
        images = torch.cat([x for x, _ in batches])
        labels = torch.cat([y for _, y in batches])
        assert images.shape == (8, 3, 32, 32) and type(images) is torch.Tensor
        assert labels.tolist() == [0.0] * 4 + [1.0] * 4


def test_dataset_nothing_readable(tmp_path: Path) -> None:
    bad = _bad_files(tmp_path / "junk")
    samples = [Sample(p, 1, "all") for p in bad.values()]
    with pytest.raises(BadImageError) as err:
        ImageFileDataset(samples, on_bad_file="skip")
    assert "None of the 4" in str(err.value) and str(tmp_path / "junk") in str(err.value)


def test_dataset_many_bad_files_summarised(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png")
    samples = [Sample(good, 0, "all")]
    for i in range(9):
        (tmp_path / f"bad_{i}.png").write_bytes(b"")
        samples.append(Sample(tmp_path / f"bad_{i}.png", 1, "all"))
    with pytest.raises(BadImageError) as err:
        ImageFileDataset(samples)
    assert "9 of 10" in str(err.value) and "and 4 more" in str(err.value)


def test_dataset_decodes_once_into_one_uint8_tensor(tmp_path: Path) -> None:
    root = make_cifake_tree(tmp_path, n_per_class=2, splits=["train"])
    samples = cifake_samples(root, "train")
    lazy = ImageFileDataset(samples, cache=False)
    cached = ImageFileDataset(samples)  # cache=True is the default
    assert lazy.images is None
    assert cached.images.dtype == torch.uint8 and cached.images.shape == (4, 3, 32, 32)
    expected = [lazy[i][0] for i in range(len(lazy))]
    for path in root.rglob("*.png"):
        path.unlink()  # the cache no longer needs the files
    for i in range(len(cached)):
        assert torch.equal(cached[i][0], expected[i])
        assert torch.equal(cached[i][0], cached.images[i].float() / 255)
    with pytest.raises(BadImageError):
        lazy[0]


def test_dataset_cache_holds_only_the_readable_files(tree_with_bad_files) -> None:
    root, _ = tree_with_bad_files
    dataset = ImageFileDataset(cifake_samples(root, "train"), on_bad_file="skip")
    assert dataset.images.shape == (8, 3, 32, 32)
    for i, sample in enumerate(dataset.samples):
        assert torch.equal(
            dataset.images[i], torch.from_numpy(np.array(load_rgb(sample.path))).permute(2, 0, 1)
        )


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("resize_mode", ["resize", "center_crop"])
def test_dataset_other_sizes_brought_to_image_size(
    tmp_path: Path, resize_mode: str, cache: bool
) -> None:
    samples = [
        Sample(write_image(tmp_path / "big.png", size=(100, 60)), 0, "all"),
        Sample(write_image(tmp_path / "small.png", size=(20, 20)), 1, "all"),
        Sample(write_image(tmp_path / "fit.png", size=(24, 24)), 1, "all"),
    ]
    dataset = ImageFileDataset(samples, image_size=24, resize_mode=resize_mode, cache=cache)
    assert all(dataset[i][0].shape == (3, 24, 24) for i in range(3))
    exact = np.asarray(make_image(size=(24, 24)), dtype=np.float32) / 255
    assert torch.equal(dataset[2][0], torch.from_numpy(exact).permute(2, 0, 1))


@pytest.mark.parametrize("cache", [True, False])
def test_dataset_wrong_size_with_resize_none_names_file(tmp_path: Path, cache: bool) -> None:
    good = write_image(tmp_path / "good.png")
    path = write_image(tmp_path / "big.png", size=(100, 60))
    samples = [Sample(good, 0, "all"), Sample(path, 0, "all")]
    with pytest.raises(ValueError) as err:  # at construction, before any training
        ImageFileDataset(samples, resize_mode="none", cache=cache)
    assert str(path) in str(err.value) and "100x60" in str(err.value)


def test_dataset_bad_arguments(tmp_path: Path) -> None:
    samples = [Sample(write_image(tmp_path / "x.png"), 0, "all")]
    with pytest.raises(ValueError, match="on_bad_file"):
        ImageFileDataset(samples, on_bad_file="ignore")
    with pytest.raises(ValueError, match="at least one sample"):
        ImageFileDataset([])
    with pytest.raises(ValueError, match="image_size"):
        ImageFileDataset(samples, image_size=0)
    with pytest.raises(ValueError, match="resize_mode"):
        ImageFileDataset(samples, resize_mode="stretch")
