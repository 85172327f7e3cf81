"""The datamodule over each layout: splits, loaders, per-generator test sets, bad files."""

import pytest
from image_factory import make_cifake_tree, write_class_folder

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
