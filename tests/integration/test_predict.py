"""pixelproof.predict: every image scored whatever its name, in natural order; the Task-1 JSON,
exact and sorted, by either index rule; bad files listed."""

import csv
import json
import subprocess
import sys

import pytest
from helpers import known_detector
from helpers.configs import compose_config, subprocess_env

from pixelproof.data.decoding import indexed_images
from pixelproof.predict import predict


@pytest.fixture
def mixed_folder(tmp_path):
    """Good images 0, 2, 10 (grey 51 -> p 0.2, 153 -> p 0.6, 230 -> p 0.9) and trouble."""
    folder = tmp_path / "images"
    known_detector.write_grey(folder / "10.png", 230)
    known_detector.write_grey(folder / "2.png", 153)
    known_detector.write_grey(folder / "0.jpg", 51, size=40)  # another size and format
    (folder / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # corrupt
    (folder / "4.png").write_bytes(b"")  # empty
    known_detector.write_grey(folder / "cat.png", 10)  # no index in the name
    known_detector.write_grey(folder / "002.png", 10)  # index 2 again
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    return folder


def predict_config(tmp_path, folder, *extra):
    return compose_config(
        "predict",
        f"ckpt_path={tmp_path / 'known.ckpt'}",
        f"input_dir={folder}",
        f"output={tmp_path / 'out' / 'task1.json'}",
        f"paths.root_dir={tmp_path}",
        "inference.device=cpu",
        "inference.batch_size=2",
        *extra,
    )


def test_every_image_is_scored_and_the_task1_json_is_exact_and_sorted(tmp_path, mixed_folder):
    known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.5)
    summary = predict(predict_config(tmp_path, mixed_folder))
    out = tmp_path / "out"
    assert json.loads((out / "task1.json").read_text()) == [
        {"index": 0, "prediction": "real"},
        {"index": 2, "prediction": "fake"},
        {"index": 10, "prediction": "fake"},
    ]
    rows = list(csv.DictReader((out / "task1.csv").open()))
    # every readable image, misnamed or not, in natural order; the index where it has one
    names = [r["path"].rsplit("/", 1)[1] for r in rows]
    assert names == ["0.jpg", "002.png", "2.png", "10.png", "cat.png"]
    assert [r["index"] for r in rows] == ["0", "", "2", "10", ""]
    assert [float(r["p_fake"]) for r in rows] == pytest.approx(
        [51 / 255, 10 / 255, 0.6, 230 / 255, 10 / 255],
        abs=2e-3,  # 0.jpg: JPEG, and resized
    )
    assert [r["prediction"] for r in rows] == ["real", "real", "fake", "fake", "real"]
    reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"3.png", "4.png", "notes.txt"}
    assert "empty" in reasons["4.png"] and "truncated" in reasons["3.png"]
    unindexed = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in summary["task1_skipped"]}
    assert set(unindexed) == {"cat.png", "002.png"}
    assert "no index" in unindexed["cat.png"]
    assert "index 2 already taken" in unindexed["002.png"]
    assert summary["predicted"] == 5 and summary["fake"] == 2 and summary["real"] == 3
    assert summary["task1_index"] == "name" and summary["task1_entries"] == 3
    assert json.loads((out / "task1.summary.json").read_text()) == summary


def test_task1_index_by_position(tmp_path, mixed_folder):
    known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.5)
    summary = predict(predict_config(tmp_path, mixed_folder, "task1_index=position"))
    task1 = json.loads((tmp_path / "out" / "task1.json").read_text())
    # the images in natural order: 0.jpg 002.png 2.png 3.png 4.png 10.png cat.png; 3 and 4 bad
    assert task1 == [
        {"index": 0, "prediction": "real"},
        {"index": 1, "prediction": "real"},
        {"index": 2, "prediction": "fake"},
        {"index": 5, "prediction": "fake"},
        {"index": 6, "prediction": "real"},
    ]
    assert summary["task1_skipped"] == [] and summary["task1_entries"] == 5


def test_threshold_comes_from_the_checkpoint_unless_overridden(tmp_path, mixed_folder):
    known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.7)
    summary = predict(predict_config(tmp_path, mixed_folder))
    labels = [r["prediction"] for r in json.loads((tmp_path / "out" / "task1.json").read_text())]
    assert summary["threshold"] == pytest.approx(0.7) and labels == ["real", "real", "fake"]
    predict(predict_config(tmp_path, mixed_folder, "inference.threshold=0.1", "overwrite=true"))
    labels = [r["prediction"] for r in json.loads((tmp_path / "out" / "task1.json").read_text())]
    assert labels == ["fake", "fake", "fake"]


def test_existing_output_is_not_overwritten(tmp_path, mixed_folder):
    known_detector.save_checkpoint(tmp_path / "known.ckpt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "task1.json").write_text("precious")
    with pytest.raises(FileExistsError, match="pass overwrite=true"):
        predict(predict_config(tmp_path, mixed_folder))
    assert (tmp_path / "out" / "task1.json").read_text() == "precious"


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        indexed_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match="holds no images named <N>.<ext>"):
        indexed_images(tmp_path / "empty")
    known_detector.save_checkpoint(tmp_path / "known.ckpt")
    with pytest.raises(FileNotFoundError, match=r"holds no images \(\.png"):
        predict(predict_config(tmp_path, tmp_path / "empty"))


def test_recursive_search(tmp_path):
    known_detector.write_grey(tmp_path / "a" / "1.png", 200)
    known_detector.write_grey(tmp_path / "a" / "b" / "7.png", 200)
    assert [n for n, _ in indexed_images(tmp_path / "a")[0]] == [1]
    assert [n for n, _ in indexed_images(tmp_path / "a", recursive=True)[0]] == [1, 7]


def test_command_line(tmp_path, mixed_folder):
    known_detector.save_checkpoint(tmp_path / "known.ckpt")
    output = tmp_path / "cli.json"
    result = subprocess.run(
        [
            sys.executable,
            "-c",  # as `python -m pixelproof.predict`, with the known net registered first
            "import helpers.known_detector, runpy; runpy.run_module('pixelproof.predict', "
            "run_name='__main__', alter_sys=True)",
            f"ckpt_path={tmp_path / 'known.ckpt'}",
            f"input_dir={mixed_folder}",
            f"output={output}",
            f"paths.root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Predicted 5 images: 2 fake, 3 real" in result.stdout
    assert "Task-1 JSON: 3 images, indexed by their <N>.<ext> names" in result.stdout
    assert "Not in the Task-1 JSON: 2 files" in result.stdout
    assert "Left out 3 files" in result.stdout
    assert [r["index"] for r in json.loads(output.read_text())] == [0, 2, 10]
