"""Files from outside are data, never code: crafted checkpoints build nothing but detectors,
damaged weights, sample caches and datasets stop a run in one line, and no output replaces an
input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import known_detector
from helpers.configs import compose_config
from helpers.embedded import share_samples

from pixelproof.data import embedded
from pixelproof.generators import zoo
from pixelproof.models.loading import CheckpointError, load_trained
from pixelproof.utils.digests import DigestMismatch
from pixelproof.validation import ConfigError, validate

SIMPLE_CNN = {
    "_target_": "pixelproof.models.detector_module.DetectorModule",
    "net": {"_target_": "pixelproof.models.components.simple_cnn.SimpleCNN", "widths": [4, 8]},
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3},
    "scheduler": {
        "_target_": "torch.optim.lr_scheduler.OneCycleLR",
        "_partial_": True,
        "max_lr": 1e-3,
    },
    "scheduler_interval": "step",
}


def save(path: Path, config: dict) -> Path:
    """A checkpoint as pixelproof.train writes it (weights of a real simple_cnn), with
    ``config`` as its model config."""
    from pixelproof.models.registry import build_detector

    state = build_detector(SIMPLE_CNN, "test").state_dict()
    torch.save({"state_dict": state, "model_config": config}, path)
    return path


def crafted(marker: Path, where: str) -> dict:
    """A simple_cnn config that copies a file onto ``marker`` when built, from ``where``."""
    payload = {"_target_": "shutil.copyfile", "src": __file__, "dst": str(marker)}
    config = json.loads(json.dumps(SIMPLE_CNN))
    if where == "top":
        return payload
    if where == "nested list":
        config["net"]["widths"] = [4, payload]
    if where == "optimizer":
        config["optimizer"] = payload
    if where == "lookalike":  # a torch.optim name that is not an optimizer class
        config["optimizer"] = {"_target_": "torch.optim.lr_scheduler.warnings.warn"}
    return config


@pytest.mark.parametrize("where", ["top", "nested list", "optimizer", "lookalike"])
def test_a_checkpoint_naming_other_code_is_refused_before_anything_runs(tmp_path, where):
    marker = tmp_path / "written_by_the_checkpoint"
    ckpt = save(tmp_path / "crafted.ckpt", crafted(marker, where))
    with pytest.raises(CheckpointError, match="detector|not a class pixelproof builds"):
        load_trained(ckpt)
    assert not marker.exists()


def test_an_interpolation_in_a_checkpoint_is_refused(tmp_path, monkeypatch):
    config = json.loads(json.dumps(SIMPLE_CNN))
    config["net"]["widths"] = [4, "${oc.env:PIXELPROOF_WIDTH}"]
    monkeypatch.setenv("PIXELPROOF_WIDTH", "8")  # resolves: the old loader built the model
    with pytest.raises(CheckpointError, match="interpolation"):
        load_trained(save(tmp_path / "interp.ckpt", config))


def test_a_real_detector_checkpoint_still_loads(tmp_path):
    trained = load_trained(save(tmp_path / "ok.ckpt", SIMPLE_CNN))
    assert type(trained.model.net).__name__ == "SimpleCNN"


def test_predict_on_a_crafted_checkpoint_is_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "written_by_the_checkpoint"
    ckpt = save(tmp_path / "crafted.ckpt", crafted(marker, "nested list"))
    known_detector.write_grey(tmp_path / "images" / "0.png", 100)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelproof.predict",
            f"ckpt_path={ckpt}",
            f"input_dir={tmp_path / 'images'}",
            f"output={tmp_path / 'out.json'}",
            f"paths.root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "shutil.copyfile" in line and "not a class pixelproof builds" in line
    assert not marker.exists() and not (tmp_path / "out.json").exists()


# ------------------------------------------------------------------ digests of what is read


@pytest.fixture
def weights_copy(tmp_path) -> Path:
    folder = tmp_path / "weights"
    shutil.copytree(zoo.WEIGHTS_DIR, folder)
    return folder


def test_shipped_cards_carry_the_digest_of_their_weights():
    for name in zoo.GENERATOR_NAMES:
        assert zoo.weights_digest(name) == zoo.read_card(name)["weights_sha256"]


def test_a_same_size_corruption_of_shipped_weights_stops_the_load(weights_copy):
    path = weights_copy / zoo.entry("vae").weights
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeroed floats: the file still parses
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.GeneratorWeightsError, match="vae.safetensors is damaged"):
        zoo.load_generator("vae", weights_copy)


def test_a_card_without_a_digest_stops_the_load(weights_copy):
    card_path = weights_copy / zoo.entry("dcgan").card
    card = json.loads(card_path.read_text())
    del card["weights_sha256"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(zoo.GeneratorWeightsError, match="records no weights_sha256"):
        zoo.load_generator("dcgan", weights_copy)


def test_a_card_cannot_smuggle_a_nested_config(weights_copy):
    card_path = weights_copy / zoo.entry("dcgan").card
    card = json.loads(card_path.read_text())
    key = next(k for k, v in card["generator"].items() if k != "_target_")
    card["generator"][key] = {"_target_": "shutil.copyfile"}
    card_path.write_text(json.dumps(card))
    with pytest.raises(zoo.GeneratorWeightsError, match="not a plain value"):
        zoo.load_generator("dcgan", weights_copy)


def test_a_zeroed_sample_cache_stops_the_build(tmp_path):
    cache = tmp_path / "generator_samples"
    fresh = embedded.generator_samples("dcgan", 6, seed=3, cache_dir=cache)
    (path,) = cache.glob("dcgan-*.npy")
    with open(path, "rb") as handle:  # keep the .npy header, zero the pixels
        np.lib.format.read_magic(handle)
        np.lib.format.read_array_header_1_0(handle)
        header = handle.tell()
    data = path.read_bytes()
    path.write_bytes(data[:header] + bytes(len(data) - header))
    embedded._CACHE_VERIFIED.clear()  # as in a new run
    with pytest.raises(DigestMismatch, match=f"{path.name} is damaged"):
        embedded.generator_samples("dcgan", 6, seed=3, cache_dir=cache)
    path.with_name(path.name + ".sha256").unlink()  # a cache without a digest: sampled again
    again = embedded.generator_samples("dcgan", 6, seed=3, cache_dir=cache)
    np.testing.assert_array_equal(again, fresh)


SMALL = {"n_train": 24, "n_val": 16, "n_test": 16}


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedded_root) -> Path:
    # the session build's samples: nothing is sampled again (the damage is to the built files)
    parent = share_samples(embedded_root, tmp_path_factory.mktemp("ds"))
    return embedded.build_embedded_dataset(parent / "embedded", **SMALL)


def damaged_copy(built: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "embedded"
    shutil.copytree(built, copy)
    damage(copy)
    return copy


def _delete_ddpm(root: Path) -> None:
    for png in root.rglob("ddpm_*.png"):
        png.unlink()


def _flip_a_png(root: Path) -> None:
    png = sorted((root / "train" / "REAL").glob("*.png"))[0]
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF
    png.write_bytes(bytes(data))


def _add_a_png(root: Path) -> None:
    shutil.copy(
        sorted((root / "train" / "REAL").glob("*.png"))[0], root / "train" / "FAKE" / "x.png"
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        (_delete_ddpm, "are missing"),
        (_flip_a_png, "is damaged"),
        (_add_a_png, "not in its manifest"),
    ],
)
def test_a_damaged_built_dataset_is_found_not_trained_around(built, tmp_path, damage, message):
    copy = damaged_copy(built, tmp_path, damage)
    with pytest.raises(DigestMismatch, match=message):
        embedded.build_embedded_dataset(copy, **SMALL)


def test_an_intact_built_dataset_is_reused(built, tmp_path):
    copy = damaged_copy(built, tmp_path, lambda root: None)
    before = (copy / "manifest.json").stat().st_mtime_ns
    assert embedded.build_embedded_dataset(copy, **SMALL) == copy.resolve()
    assert (copy / "manifest.json").stat().st_mtime_ns == before


# ------------------------------------------------------------------ outputs never replace inputs


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt")
    image = known_detector.write_grey(tmp_path / "images" / "0.png", 100)
    return {"ckpt": ckpt, "image": image, "images": image.parent}


def predict_cfg(tmp_path, inputs, output, *extra):
    return compose_config(
        "predict",
        f"ckpt_path={inputs['ckpt']}",
        f"input_dir={inputs['images']}",
        f"output={output}",
        f"paths.root_dir={tmp_path}",
        "overwrite=true",
        *extra,
    )


@pytest.mark.parametrize(
    "target, message",
    [
        ("ckpt", "is ckpt_path="),
        ("image", "inside input_dir="),
        ("images/new.json", "inside input_dir="),
    ],
)
def test_predict_refuses_an_output_that_is_an_input_whatever_overwrite_says(
    tmp_path, inputs, target, message
):
    output = inputs.get(target) or tmp_path / target
    before = {p: p.read_bytes() for p in (inputs["ckpt"], inputs["image"])}
    with pytest.raises(ConfigError, match=message):
        validate(predict_cfg(tmp_path, inputs, output), "predict")
    assert {p: p.read_bytes() for p in before} == before


def test_predict_refuses_a_link_to_its_checkpoint(tmp_path, inputs):
    link = tmp_path / "link.json"
    link.symlink_to(inputs["ckpt"])
    with pytest.raises(ConfigError, match="is ckpt_path="):
        validate(predict_cfg(tmp_path, inputs, link), "predict")


def test_the_command_line_refuses_it_before_any_work(tmp_path, inputs):
    before = inputs["ckpt"].read_bytes()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelproof.predict",
            f"ckpt_path={inputs['ckpt']}",
            f"input_dir={inputs['images']}",
            f"output={inputs['ckpt']}",
            f"paths.root_dir={tmp_path}",
            "overwrite=true",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "an output never replaces an input" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert inputs["ckpt"].read_bytes() == before


def test_explain_refuses_to_write_over_its_images(tmp_path, inputs):
    cfg = compose_config(
        "explain",
        f"input_dir={inputs['images']}",
        f"output={inputs['image']}",
        f"paths.root_dir={tmp_path}",
    )
    with pytest.raises(ConfigError, match="inside input_dir="):
        validate(cfg, "explain")


def test_export_refuses_to_write_over_its_checkpoint(tmp_path):
    from pixelproof.deploy.exporter import refuse_overwriting_the_checkpoint

    ckpt = known_detector.save_checkpoint(tmp_path / "export" / "model.pt")
    with pytest.raises(ValueError, match="is ckpt_path="):
        refuse_overwriting_the_checkpoint(ckpt.parent, str(ckpt))
    refuse_overwriting_the_checkpoint(tmp_path / "elsewhere", str(ckpt))  # fine


def test_eval_refuses_a_run_directory_inside_the_data_it_reads(tmp_path, inputs):
    cfg = compose_config(
        "eval",
        f"ckpt_path={inputs['ckpt']}",
        f"data.root={tmp_path / 'data'}",
        f"paths.output_dir={tmp_path / 'data' / 'run'}",
        f"paths.root_dir={tmp_path}",
    )
    with pytest.raises(ConfigError, match="inside data.root="):
        validate(cfg, "eval")


@pytest.mark.parametrize(
    "change",
    [{"model_file": "../known.ckpt"}, {"format": "pickle"}, {"image_size": "32; rm"}, {}],
)
def test_the_exported_runner_reads_preprocess_json_as_data(tmp_path, change):
    from pixelproof.deploy.run_detector import read_preprocess

    settings = {"format": "onnx", "model_file": "model.onnx", "image_size": 32}
    settings |= {"resize_mode": "resize", "threshold": 0.5, **change}
    path = tmp_path / "preprocess.json"
    path.write_text(json.dumps(settings))
    if not change:
        assert read_preprocess(path) == settings
        return
    with pytest.raises(SystemExit, match="does not accept"):
        read_preprocess(path)
