"""Dataset discovery: CIFAKE folders, per-generator folders and CSV file lists."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from helpers.image_factory import (
    make_cifake_tree,
    make_per_generator_tree,
    write_class_folder,
    write_image,
)

from pixelproof.data.layouts import (
    DatasetLayoutError,
    Sample,
    cifake_samples,
    csv_samples,
    per_generator_samples,
)

# ------------------------------------------------------------------------------------- CIFAKE


def test_cifake_counts_labels_and_order(tmp_path: Path) -> None:
    root = make_cifake_tree(tmp_path / "cifake", n_per_class=3)
    samples = cifake_samples(root, "train", generator="sd14")
    assert len(samples) == 6
    assert [s.label for s in samples] == [0, 0, 0, 1, 1, 1]  # fake = 1
    assert {s.generator for s in samples} == {"sd14"}
    assert [s.path.parent.name for s in samples] == ["REAL"] * 3 + ["FAKE"] * 3
    names = [s.path.name for s in samples[:3]]
    assert names == sorted(names)
    assert samples == cifake_samples(str(root), "train", generator="sd14")  # deterministic
    assert all(isinstance(s, Sample) and s.path.is_file() for s in samples)
    assert cifake_samples(root, "test")[0].generator == "all"


def test_cifake_class_folders_case_insensitive(tmp_path: Path) -> None:
    root = make_cifake_tree(tmp_path, 2, splits=["train"], class_names=("real", "Fake"))
    samples = cifake_samples(root, "train")
    assert [s.label for s in samples] == [0, 0, 1, 1]


def test_cifake_ignores_hidden_subfolders_and_non_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_cifake_tree(tmp_path, 2, splits=["train"])
    real = root / "train" / "REAL"
    (real / "notes.txt").write_text("not an image")
    (real / "labels.json").write_text("{}")
    (real / ".DS_Store").write_bytes(b"\0")
    write_image(real / ".hidden.png")
    write_image(real / "nested" / "deep.png")  # not searched: files only directly in the class
    write_image(real / "UPPER.PNG")  # extensions are matched case-insensitively
    with caplog.at_level(logging.INFO, logger="pixelproof.data"):
        samples = cifake_samples(root, "train")
    assert sorted(s.path.name for s in samples if s.label == 0) == [
        "UPPER.PNG",
        "img_000.png",
        "img_001.png",
    ]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1  # logged once per call, not once per file
    assert "2 non-image file" in infos[0].getMessage()


def test_cifake_root_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as err:
        cifake_samples(tmp_path / "nope", "train")
    msg = str(err.value)
    assert str(tmp_path / "nope") in msg
    assert "does not exist" in msg and "data.root=" in msg and "REAL|FAKE" in msg


def test_cifake_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetLayoutError, match="is not a folder"):
        cifake_samples(tmp_path / "file", "train")


def test_cifake_split_missing(tmp_path: Path) -> None:
    root = make_cifake_tree(tmp_path, 1, splits=["train"])
    with pytest.raises(DatasetLayoutError) as err:
        cifake_samples(root, "test")
    msg = str(err.value)
    assert str(root / "test") in msg and "'train/'" in msg


def test_cifake_class_folder_missing_lists_contents(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_class_folder(root / "train" / "REAL", 1)
    write_class_folder(root / "train" / "fakes", 1)
    with pytest.raises(DatasetLayoutError) as err:
        cifake_samples(root, "train")
    msg = str(err.value)
    assert str(root / "train" / "FAKE") in msg
    assert "'REAL/'" in msg and "'fakes/'" in msg


def test_cifake_empty_class_folder(tmp_path: Path) -> None:
    root = make_cifake_tree(tmp_path, 1, splits=["train"])
    fake = root / "train" / "FAKE"
    for p in fake.iterdir():
        p.unlink()
    (fake / "readme.txt").write_text("x")
    with pytest.raises(DatasetLayoutError) as err:
        cifake_samples(root, "train")
    msg = str(err.value)
    assert str(fake) in msg and "no image files" in msg and "'readme.txt'" in msg


def test_cifake_images_only_in_subfolders_hints_no_recursion(tmp_path: Path) -> None:
    root = make_cifake_tree(tmp_path, 1, splits=["train"])
    fake = root / "train" / "FAKE"
    for p in fake.iterdir():
        p.unlink()
    write_class_folder(fake / "batch1", 2)
    with pytest.raises(DatasetLayoutError, match="not searched"):
        cifake_samples(root, "train")


def test_cifake_ambiguous_case_duplicates(tmp_path: Path) -> None:
    root = make_cifake_tree(tmp_path, 1, splits=["train"])
    write_class_folder(root / "train" / "real", 1)
    if len(list((root / "train").iterdir())) < 3:
        pytest.skip("case-insensitive file system")
    with pytest.raises(DatasetLayoutError, match="keep only one"):
        cifake_samples(root, "train")


# ------------------------------------------------------------------------------ per generator


def test_per_generator_flat(tmp_path: Path) -> None:
    root = make_per_generator_tree(tmp_path / "test", ["stylegan", "biggan", "crn"], n=2)
    result = per_generator_samples(root)
    assert list(result) == ["biggan", "crn", "stylegan"]  # sorted by name
    for gen, samples in result.items():
        assert [s.label for s in samples] == [0, 0, 1, 1]
        assert {s.generator for s in samples} == {gen}
        assert [s.path.parent.name for s in samples] == ["0_real"] * 2 + ["1_fake"] * 2
    assert result == per_generator_samples(str(root))


def test_per_generator_with_classes_pooled(tmp_path: Path) -> None:
    root = make_per_generator_tree(
        tmp_path, ["progan", "cyclegan"], n=2, with_classes=True, classes=("horse", "apple")
    )
    result = per_generator_samples(root)
    assert list(result) == ["cyclegan", "progan"]
    samples = result["progan"]
    assert len(samples) == 8  # 2 classes x 2 labels x 2 images
    # Classes in name order, each with its real then its fake images.
    assert [s.path.parent.parent.name for s in samples] == ["apple"] * 4 + ["horse"] * 4
    assert [s.label for s in samples] == [0, 0, 1, 1] * 2
    assert {s.generator for s in samples} == {"progan"}


def test_per_generator_root_is_one_generator(tmp_path: Path) -> None:
    root = make_per_generator_tree(tmp_path, ["deepfake"], n=3) / "deepfake"
    result = per_generator_samples(root)
    assert list(result) == ["deepfake"]
    assert len(result["deepfake"]) == 6
    # A relative "." is named after the folder it points at.
    cwd = os.getcwd()
    try:
        os.chdir(root)
        assert list(per_generator_samples(".")) == ["deepfake"]
    finally:
        os.chdir(cwd)


def test_per_generator_root_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as err:
        per_generator_samples(tmp_path / "missing")
    msg = str(err.value)
    assert str(tmp_path / "missing") in msg and "data.root=" in msg and "0_real|1_fake" in msg


def test_per_generator_no_generator_folders(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(DatasetLayoutError) as err:
        per_generator_samples(tmp_path)
    msg = str(err.value)
    assert "no generator folders" in msg and str(tmp_path) in msg and "'readme.md'" in msg


def test_per_generator_bad_generator_folder(tmp_path: Path) -> None:
    root = make_per_generator_tree(tmp_path, ["gan"], n=1)
    write_image(root / "junk" / "x.png")
    with pytest.raises(DatasetLayoutError) as err:
        per_generator_samples(root)
    assert str(root / "junk") in str(err.value) and "0_real|1_fake" in str(err.value)


def test_per_generator_bad_class_folder(tmp_path: Path) -> None:
    root = make_per_generator_tree(tmp_path, ["gan"], n=1, with_classes=True)
    write_class_folder(root / "gan" / "bird" / "images", 1)
    with pytest.raises(DatasetLayoutError) as err:
        per_generator_samples(root)
    assert str(root / "gan" / "bird") in str(err.value)


def test_per_generator_needs_both_classes(tmp_path: Path) -> None:
    root = make_per_generator_tree(tmp_path, ["a", "b"], n=1)
    for p in (root / "b" / "0_real").iterdir():
        p.unlink()
    (root / "b" / "0_real").rmdir()
    with pytest.raises(DatasetLayoutError) as err:
        per_generator_samples(root)
    assert "'b'" in str(err.value) and "0_real" in str(err.value)
    assert [s.label for s in per_generator_samples(root, require_both_classes=False)["b"]] == [1]


def test_per_generator_empty_class_folder(tmp_path: Path) -> None:
    root = make_per_generator_tree(tmp_path, ["a"], n=1)
    empty = root / "a" / "1_fake"
    for p in empty.iterdir():
        p.unlink()
    with pytest.raises(DatasetLayoutError) as err:
        per_generator_samples(root)
    assert str(empty) in str(err.value) and "no image files" in str(err.value)


# ------------------------------------------------------------------------------------------ CSV


def _write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_csv_relative_paths_and_text_labels(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "a.png")
    write_image(tmp_path / "imgs" / "b.png")
    absolute = write_image(tmp_path / "elsewhere" / "c.png")
    csv_path = _write_csv(
        tmp_path / "list.csv",
        f"path,label\nimgs/a.png,REAL\n\nimgs/b.png, Fake \n{absolute},1\n",
    )
    samples = csv_samples(csv_path)
    assert samples == [
        Sample(tmp_path / "imgs" / "a.png", 0, "all"),
        Sample(tmp_path / "imgs" / "b.png", 1, "all"),
        Sample(absolute, 1, "all"),
    ]


def test_csv_generator_column_and_base_dir(tmp_path: Path) -> None:
    write_image(tmp_path / "data" / "a.png")
    write_image(tmp_path / "data" / "b.png")
    csv_path = _write_csv(
        tmp_path / "lists" / "test.csv", "\ufeffPath,Label,Generator\na.png,0,\nb.png,fake,sdxl\n"
    )
    samples = csv_samples(csv_path, base_dir=tmp_path / "data")
    assert [(s.path.name, s.label, s.generator) for s in samples] == [
        ("a.png", 0, "all"),
        ("b.png", 1, "sdxl"),
    ]


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as err:
        csv_samples(tmp_path / "none.csv")
    assert str(tmp_path / "none.csv") in str(err.value) and "does not exist" in str(err.value)


@pytest.mark.parametrize(
    "text", ["", "img.png,1\n", "file,label\nx.png,1\n", "path,label,extra\nx.png,1,2\n"]
)
def test_csv_bad_header(tmp_path: Path, text: str) -> None:
    csv_path = _write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DatasetLayoutError) as err:
        csv_samples(csv_path)
    assert str(csv_path) in str(err.value) and "path,label" in str(err.value)


def test_csv_bad_label_names_line(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    csv_path = _write_csv(tmp_path / "l.csv", "path,label\na.png,0\na.png,maybe\n")
    with pytest.raises(DatasetLayoutError) as err:
        csv_samples(csv_path)
    msg = str(err.value)
    assert "line 3" in msg and "'maybe'" in msg and "real/fake" in msg and str(csv_path) in msg


def test_csv_wrong_field_count(tmp_path: Path) -> None:
    csv_path = _write_csv(tmp_path / "l.csv", "path,label\na.png\n")
    with pytest.raises(DatasetLayoutError, match="line 2"):
        csv_samples(csv_path)


def test_csv_header_only(tmp_path: Path) -> None:
    csv_path = _write_csv(tmp_path / "l.csv", "path,label\n")
    with pytest.raises(DatasetLayoutError, match="no samples"):
        csv_samples(csv_path)


def test_csv_missing_image_names_line(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    csv_path = _write_csv(tmp_path / "l.csv", "path,label\na.png,0\ngone.png,1\n")
    with pytest.raises(DatasetLayoutError) as err:
        csv_samples(csv_path)
    msg = str(err.value)
    assert (
        "line 3" in msg
        and str(tmp_path / "gone.png") in msg
        and "data.root" in msg
        and "base_dir" not in msg
    )


def test_csv_many_missing_images_summarised(tmp_path: Path) -> None:
    rows = "".join(f"gone_{i}.png,1\n" for i in range(12))
    csv_path = _write_csv(tmp_path / "l.csv", "path,label\n" + rows)
    with pytest.raises(DatasetLayoutError) as err:
        csv_samples(csv_path)
    msg = str(err.value)
    assert "12 file(s)" in msg and "gone_0.png" in msg and "and 7 more" in msg
    assert "gone_11.png" not in msg
