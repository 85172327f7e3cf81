"""The datamodule over each layout: splits, loaders, per-generator test sets, bad files."""

import re

import pytest
import torch
from helpers.image_factory import make_cifake_tree, write_class_folder, write_image

from pixelproof.data.datamodule import ImageDataModule
from pixelproof.data.decoding import BadImageError


def test_seeded_stratified_validation_split(tmp_path):
    make_cifake_tree(tmp_path, n_per_class=20)
    split = lambda seed: ImageDataModule(tmp_path, val_fraction=0.25, split_seed=seed)  # noqa: E731
    a, b, c = split(0), split(0), split(1)
    for dm in (a, b, c):
        dm.setup("fit")
    val_paths = lambda dm: {s.path for s in dm.val_set.samples}  # noqa: E731
    assert val_paths(a) == val_paths(b) != val_paths(c)
    assert len(a.val_set) == 10 and sum(a.val_set.labels) == 5  # stratified: 5 real, 5 fake
    assert not val_paths(a) & {s.path for s in a.train_set.samples}
    x, y = next(iter(a.train_dataloader()))
    assert x.shape == (30, 3, 32, 32)  # 30 < batch_size 64: one batch, not dropped
    assert x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    assert set(y.tolist()) <= {0.0, 1.0}


def test_csv_layout_groups_test_rows_by_generator(tmp_path):
    real = write_class_folder(tmp_path / "img" / "real", 6)
    fake = write_class_folder(tmp_path / "img" / "fake", 6, seed=50)
    rows = ["path,label"] + [f"img/real/{p.name},real" for p in real]
    rows += [f"img/fake/{p.name},fake" for p in fake]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    test = ["path,label,generator"]
    test += [f"img/real/{p.name},0,{g}" for p, g in zip(real, ["sd", "gan"] * 3)]
    test += [f"img/fake/{p.name},1,{g}" for p, g in zip(fake, ["sd", "gan"] * 3)]
    (tmp_path / "test.csv").write_text("\n".join(test) + "\n")
    dm = ImageDataModule(
        None,
        layout="csv",
        train_split=str(tmp_path / "train.csv"),
        test_split=str(tmp_path / "test.csv"),
        val_fraction=0.5,
        batch_size=4,
    )
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 12
    assert dm.test_names == ["gan", "sd"]
    assert [len(loader.dataset) for loader in dm.test_dataloader()] == [6, 6]


def test_a_corrupt_file_stops_the_run_or_is_skipped(tmp_path):
    make_cifake_tree(tmp_path, n_per_class=6)
    (tmp_path / "train" / "FAKE" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BadImageError, match="broken.png.*on_bad_file=skip"):
        ImageDataModule(tmp_path).setup("fit")
    dm = ImageDataModule(tmp_path, on_bad_file="skip")
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 12


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="data.layout='folders'"):
        ImageDataModule("x", layout="folders")
    with pytest.raises(ValueError, match="data.val_fraction=1.5"):
        ImageDataModule("x", val_fraction=1.5)


@pytest.mark.parametrize("cache_images", [True, False])
@pytest.mark.parametrize("resize_mode", ["resize", "center_crop"])
def test_images_reach_image_size_every_split(tmp_path, resize_mode, cache_images):
    make_cifake_tree(tmp_path, n_per_class=4)
    write_image(tmp_path / "train" / "REAL" / "wide.png", size=(100, 60))
    write_image(tmp_path / "test" / "FAKE" / "small.png", size=(16, 16))
    dm = ImageDataModule(
        tmp_path,
        image_size=24,
        resize_mode=resize_mode,
        cache_images=cache_images,
        val_fraction=0.2,
    )
    dm.setup()
    assert (dm.train_set.images is None) == (not cache_images)
    for loader in [dm.train_dataloader(), dm.val_dataloader(), *dm.test_dataloader()]:
        for x, _ in loader:
            assert x.shape[1:] == (3, 24, 24)


def test_resize_none_names_a_file_of_another_size(tmp_path):
    make_cifake_tree(tmp_path, n_per_class=4)
    wide = write_image(tmp_path / "train" / "REAL" / "wide.png", size=(100, 60))
    with pytest.raises(ValueError, match=f"{re.escape(str(wide))}: .*100x60"):
        ImageDataModule(tmp_path, resize_mode="none", val_fraction=0.5).setup("fit")


def test_augmentation_from_the_config(tmp_path):
    dm = ImageDataModule(tmp_path, augment={"jpeg_prob": 0.5, "jpeg_quality": [40, 90]})
    assert dm.augmentation.jpeg_prob == 0.5 and dm.augmentation.jpeg_quality == (40, 90)
    assert ImageDataModule(tmp_path).augmentation.hflip_prob == 0.0  # nothing by default


def test_bad_augment_settings_are_named():
    with pytest.raises(ValueError, match=r"data\.augment\.blur_prob"):
        ImageDataModule("x", augment={"blur_prob": 2})
    with pytest.raises(ValueError, match=r"data\.augment\.flip_prob .*hflip_prob"):
        ImageDataModule("x", augment={"flip_prob": 0.5})
