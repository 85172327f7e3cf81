"""``pixelproof.Detector`` on the known detector (p(fake) = the mean pixel value): every kind of
input, folders of any names in natural order, bad files, the checkpoint's settings."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import known_detector
from PIL import Image

from pixelproof import Detector
from pixelproof.data.decoding import image_files, natural_key
from pixelproof.models.inference import DEFAULTS

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture
def ckpt(tmp_path):
    return known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.5)


def pixels(height: int = 40, width: int = 48, low: int = 0, high: int = 160) -> np.ndarray:
    return np.random.default_rng(0).integers(low, high, (height, width, 3), dtype=np.uint8)


def test_every_kind_of_input_gives_the_same_p_fake_for_the_same_pixels(tmp_path, ckpt):
    image = pixels()  # 40x48: every input is resized by the checkpoint's rule
    Image.fromarray(image).save(tmp_path / "a.png")
    chw = torch.from_numpy(image).permute(2, 0, 1)
    inputs = [
        tmp_path / "a.png",
        str(tmp_path / "a.png"),
        Image.fromarray(image),
        Image.fromarray(image).convert("RGBA"),  # opaque alpha: the same pixels
        image,
        image / 255.0,
        image.astype(np.float32) / 255,
        chw,
        chw.float() / 255,
        (chw.double() / 255)[None],  # a batch of one
    ]
    results = Detector.load(ckpt, device="cpu", batch_size=3)(inputs)
    # Pillow's bilinear resize to 32x32, then the mean: computed here, not by pixelproof
    expected = np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR)).mean() / 255
    assert [r.position for r in results] == list(range(len(inputs)))
    assert [r.path for r in results[:2]] == [tmp_path / "a.png"] * 2 and results[2].path is None
    for result in results:
        assert result.scored and result.p_fake == pytest.approx(expected, abs=1e-6), result


def test_a_folder_is_scored_whatever_the_names_in_natural_order(tmp_path, ckpt):
    names = ["10.png", "2.png", "1.jpg", "b.png", "a10.png", "a2.png", "cat.webp", "007.png"]
    for value, name in enumerate(names):
        known_detector.write_grey(tmp_path / "images" / name, 20 * value + 10)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    results = Detector.load(ckpt, device="cpu", batch_size=2)(tmp_path / "images")
    order = ["1.jpg", "2.png", "007.png", "10.png", "a2.png", "a10.png", "b.png", "cat.webp"]
    assert [r.path.name for r in results] == order
    for result in results:  # every one scored, misnamed or not
        value = 20 * names.index(result.path.name) + 10
        assert result.p_fake == pytest.approx(value / 255, abs=2e-3), result.path.name
    assert sorted(["x10", "X2", "x1"], key=natural_key) == ["x1", "X2", "x10"]
    assert [p.name for p in image_files(tmp_path / "images")[0]] == order


def test_an_unreadable_file_is_reported_not_fatal(tmp_path, ckpt):
    good = known_detector.write_grey(tmp_path / "good.png", 204)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "empty.png").write_bytes(b"")
    inputs = [tmp_path / "bad.png", good, tmp_path / "empty.png", tmp_path / "missing.png"]
    results = Detector.load(ckpt, device="cpu")(inputs)
    assert [r.scored for r in results] == [False, True, False, False]
    assert results[1].p_fake == pytest.approx(0.8, abs=1e-5) and results[1].verdict == "fake"
    assert "truncated" in results[0].skipped and "empty" in results[2].skipped
    assert "cannot read" in results[3].skipped and results[3].p_fake is None


def test_images_are_scored_under_inference_mode(ckpt):
    detector = Detector.load(ckpt, device="cpu")
    seen = []
    detector.model.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
    detector([pixels(), pixels(32, 32)])
    assert seen == [True]  # one batch


def test_threshold_size_and_resize_mode_come_from_the_checkpoint_unless_overridden(tmp_path):
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.7)
    grey = np.full((32, 32, 3), 153, dtype=np.uint8)  # p(fake) 0.6
    detector = Detector.load(ckpt, device="cpu")
    assert detector.threshold == pytest.approx(0.7) and detector([grey])[0].verdict == "real"
    detector = Detector.load(ckpt, device="cpu", threshold=0.6)
    assert detector([grey])[0].verdict == "fake"  # p(fake) >= threshold: fake
    # a checkpoint trained at 16x16 with center_crop: the central square of a 32x64 image
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["datamodule_hyper_parameters"] = {"image_size": 16, "resize_mode": "center_crop"}
    torch.save(checkpoint, tmp_path / "small.ckpt")
    image = np.zeros((32, 64, 3), dtype=np.uint8)
    image[:, 40:] = 255  # ... holds 8 of its 24 white columns: p(fake) 0.25 (resized whole: 0.375)
    detector = Detector.load(tmp_path / "small.ckpt", device="cpu")
    assert (detector.image_size, detector.resize_mode) == (16, "center_crop")
    assert detector([image])[0].p_fake == pytest.approx(0.25, abs=0.02)
    refused = Detector.load(tmp_path / "small.ckpt", device="cpu", resize_mode="none")([image])
    assert not refused[0].scored and "resize_mode=none" in refused[0].skipped


def test_bad_settings_and_inputs_raise_at_once(tmp_path, ckpt):
    with pytest.raises(TypeError, match="unknown inference setting.*treshold"):
        Detector.load(ckpt, treshold=0.5)
    detector = Detector.load(ckpt, device="cpu")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        detector(np.full((8, 8, 3), 2.0))
    with pytest.raises(ValueError, match="3xHxW"):
        detector(torch.zeros(8, 8, 3))  # an HxWxC tensor: torch images are CxHxW
    with pytest.raises(TypeError, match="cannot score a dict"):
        detector({"image": 1})


def test_defaults_are_conf_inference_and_import_pixelproof_stays_light(tmp_path):
    assert yaml.safe_load((CONF / "inference" / "default.yaml").read_text()) == DEFAULTS
    code = "import sys, pixelproof; print('torch' in sys.modules, pixelproof.Detector.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["False", "Detector"], out.stderr
