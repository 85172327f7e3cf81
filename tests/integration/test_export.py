"""pixelproof.export: ONNX and TorchScript files that score like the PyTorch model, int8 variants
that mostly agree with it, and a runner that predicts from a folder without pixelproof."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import hydra
import numpy as np
import onnx
import pytest
import torch
from helpers.configs import compose_config
from omegaconf import OmegaConf
from PIL import Image

from pixelproof.data import decoding
from pixelproof.deploy.exporter import ExportError, example_images, export_checkpoint
from pixelproof.deploy.run_detector import Detector
from pixelproof.models.loading import load_detector

THRESHOLD = 0.3  # not 0.5, to see that the checkpoint's threshold reaches preprocess.json
TINY_WAVEFREQ = [
    "model=wavefreq_resnet50",
    "model.net.backbone=resnet26",
    "model.net.freq_width=16",
    "model.net.freq_channels=32",
]


def save_checkpoint(path, *model_overrides: str):
    """A checkpoint as pixelproof.train writes it (weights, ``model_config``), untrained."""
    cfg = compose_config("train", *model_overrides)
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model)
    model.decision_threshold.fill_(THRESHOLD)
    if hasattr(model.net, "head") and hasattr(model.net.head, "classifier"):
        spread_rine_scores(model.net.head)
    config = OmegaConf.to_container(cfg.model, resolve=True)
    checkpoint = {"state_dict": model.state_dict(), "model_config": config}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def spread_rine_scores(head: torch.nn.Module) -> None:
    """A random tower's CLS tokens barely differ between images, and RINE's default init keeps
    the logits within ~1e-4 of each other: a 1e-4 parity test would then prove nothing. Weights
    that keep the variance through each ReLU layer, and a large last layer, spread them."""
    with torch.no_grad():
        for layer in head.modules():
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(layer.weight)
        head.classifier[-1].weight.mul_(30)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_clip_dir):
    root = tmp_path_factory.mktemp("ckpt")
    return {
        "wavefreq": save_checkpoint(root / "wavefreq.ckpt", *TINY_WAVEFREQ),
        # the real load-by-path code: the checkpoint holds the head, the tower comes from disk
        "rine": save_checkpoint(
            root / "rine.ckpt",
            "model=rine_tinyclip",
            f"model.backbone.name_or_path={tiny_clip_dir}",
            "model.proj_dim=16",
        ),
    }


def export(checkpoint, out, *overrides):
    cfg = compose_config(
        "export",
        f"ckpt_path={checkpoint}",
        f"output_dir={out}",
        f"paths.root_dir={out}",
        *overrides,
    )
    return export_checkpoint(cfg)


@pytest.mark.parametrize(
    ("detector", "fmt"),
    [
        pytest.param("wavefreq", "onnx", marks=pytest.mark.slow),  # ~15-40 s: torch.export
        ("rine", "onnx"),
        ("rine", "torchscript"),
    ],
)
def test_exported_model_scores_like_the_pytorch_model(tmp_path, checkpoints, detector, fmt):
    config = export(checkpoints[detector], tmp_path, f"format={fmt}")
    model_file = tmp_path / {"onnx": "model.onnx", "torchscript": "model.pt"}[fmt]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        [model_file.name, "preprocess.json", "run_detector.py", "decoding.py"]
    )  # one self-contained model file: no external ONNX weights beside it
    # the runner reads images with an exact copy of pixelproof's one decoder
    assert (tmp_path / "decoding.py").read_bytes() == Path(decoding.__file__).read_bytes()
    saved = json.loads((tmp_path / "preprocess.json").read_text())
    assert saved == config
    assert saved["threshold"] == pytest.approx(THRESHOLD) and saved["image_size"] == 32
    assert saved["check"]["max_abs_logit_diff"] <= 1e-4

    # independently of the export's own check: another batch size (the batch axis is dynamic)
    net = load_detector(checkpoints[detector]).net
    images = example_images(5, 32, seed=7)
    with torch.inference_mode():
        expected = net(images).numpy()
    got = Detector(tmp_path).logits(images.numpy())
    assert got.shape == (5,)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.ptp(expected) > 0.05  # the images get different scores, far beyond 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_int8_rine_mostly_agrees_and_really_is_int8(tmp_path, checkpoints, fmt):
    config = export(checkpoints["rine"], tmp_path, f"format={fmt}", "quantize=true")
    assert config["quantized"] is True and config["check"]["max_abs_logit_diff"] > 0
    if fmt == "onnx":
        ops = {node.op_type for node in onnx.load(tmp_path / "model.onnx").graph.node}
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops and "ConvInteger" not in ops
    else:
        graph = str(torch.jit.load(tmp_path / "model.pt").inlined_graph)
        assert "quantized::linear_dynamic" in graph

    images = example_images(64, 32, seed=3)
    with torch.inference_mode():
        expected = load_detector(checkpoints["rine"]).net(images).numpy()
    got = Detector(tmp_path).logits(images.numpy())
    # int8 weights move each logit a little, far less than the logits differ between images,
    # so the real/fake call at a threshold inside their range mostly stays the same
    assert np.abs(got - expected).max() < 0.1 * np.ptp(expected)
    cut = np.median(expected)
    assert np.mean((got >= cut) == (expected >= cut)) >= 0.9


def test_runner_predicts_a_folder_like_pixelproof_predict_without_importing_it(
    tmp_path, checkpoints
):
    model_dir = tmp_path / "model"
    export(checkpoints["rine"], model_dir, "format=onnx")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index, size in enumerate([32, 32, 40, 24]):  # other sizes are resized as in training
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{index}.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), "RGBA").save(
        images / "4.png"
    )
    (images / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    # a float image outside [0, 255]: pixelproof stretches it (the runner once clipped it)
    floats = rng.uniform(-300, 900, (32, 32)).astype(np.float32)
    Image.fromarray(floats, mode="F").save(images / "6.tif")

    heavy = ["pixelproof", "lightning", "hydra", "omegaconf", "transformers", "timm", "torch"]
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['run_detector.py', {str(images)!r}, '--output', 'scores.csv']\n"
        "runpy.run_path('run_detector.py', run_name='__main__')\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))\n"
        "print('LOADED', loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=model_dir, capture_output=True, text=True, check=True
    )
    assert "LOADED []" in result.stdout
    assert "skipped" in result.stderr and "5.png" in result.stderr
    rows = list(csv.DictReader((model_dir / "scores.csv").open()))
    names = [r["path"].rsplit("/", 1)[1] for r in rows]
    assert names == [f"{i}.png" for i in range(5)] + ["6.tif"]

    from pixelproof.predict import predict

    predict(
        compose_config(
            "predict",
            f"ckpt_path={checkpoints['rine']}",
            f"input_dir={images}",
            f"output={tmp_path / 'task1.json'}",
            f"paths.root_dir={tmp_path}",
            "inference.device=cpu",
        )
    )
    reference = list(csv.DictReader((tmp_path / "task1.csv").open()))
    assert len(reference) == 6
    for ours, theirs in zip(rows, reference):
        assert ours["path"] == theirs["path"] and ours["prediction"] == theirs["prediction"]
        assert float(ours["p_fake"]) == pytest.approx(float(theirs["p_fake"]), abs=2e-6)


def test_wavefreq_to_torchscript_is_refused_with_the_reason(tmp_path, checkpoints):
    # pytorch_wavelets' DWT is a Python autograd.Function: traced, but not savable
    with pytest.raises(
        ExportError,
        match=r"WaveFreqResNet cannot be exported to TorchScript.*AFB2D.*use format=onnx",
    ):
        export(checkpoints["wavefreq"], tmp_path, "format=torchscript")
    assert not (tmp_path / "model.pt").exists()


def test_bad_format_and_a_mismatching_export_are_refused(tmp_path, checkpoints, monkeypatch):
    with pytest.raises(ValueError, match="format='tflite': choose one of onnx, torchscript"):
        export(checkpoints["rine"], tmp_path, "format=tflite")
    # an exported model that drifted from the PyTorch one must not pass silently
    monkeypatch.setattr(Detector, "logits", lambda self, batch: np.zeros(len(batch), np.float32))
    with pytest.raises(ExportError, match="do not deploy it"):
        export(checkpoints["rine"], tmp_path / "drift", "format=torchscript")


def test_runner_lists_a_folder_in_natural_order(tmp_path):
    """2.png before 10.png (text order puts 10 first), as pixelproof.predict lists them."""
    from pixelproof.deploy.run_detector import score_folder

    for name in ["10.png", "2.png", "1.png", "cat.png", "100.jpg"]:
        Image.new("RGB", (32, 32)).save(tmp_path / name)

    class ZeroLogits:  # a model that scores every image 0.5: only the order is under test
        config = {"image_size": 32, "resize_mode": "resize"}

        def logits(self, batch):
            return np.zeros(len(batch), np.float32)

    scores, skipped = score_folder(ZeroLogits(), tmp_path, batch_size=2)
    assert [p.name for p, _ in scores] == ["1.png", "2.png", "10.png", "100.jpg", "cat.png"]
    assert skipped == [] and {p for _, p in scores} == {0.5}
