"""``Detector.save_pretrained`` / ``from_pretrained``: a shared folder (safetensors, card,
README) loads back bit-identically, offline, and a bad source fails in one line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import known_detector
from helpers.configs import compose_config
from omegaconf import OmegaConf
from safetensors.torch import load_file

from pixelproof import Detector
from pixelproof.models.sharing import PretrainedError

RUN_METRICS = {  # a held-out run with the journey, as pixelproof.train writes metrics.json
    "test/ap": 0.9,
    "test/acc_calibrated": 0.85,
    "test/real_acc_calibrated": 0.95,
    "test/fake_acc_calibrated": 0.75,
    "test/dcgan/ap": 0.9991,
    "test/dcgan/acc_calibrated": 0.978,
    "test/dcgan/real_acc_calibrated": 0.964,
    "test/dcgan/fake_acc_calibrated": 0.992,
    "test/vae/ap": 0.6913,
    "test/vae/acc_calibrated": 0.496,
    "test/vae/real_acc_calibrated": 0.964,
    "test/vae/fake_acc_calibrated": 0.028,
    "journey/mean_ap": 0.8992,
    "journey/worst_ap": 0.4521,
    "journey/max_fpr": 0.088,
}


def simple_cnn_checkpoint(path: Path, threshold: float = 0.3) -> Path:
    """An untrained simple_cnn (random weights, seeded) saved as pixelproof.train would."""
    cfg = compose_config("train", "model=simple_cnn")
    config = OmegaConf.to_container(cfg.model, resolve=True)
    torch.manual_seed(0)
    import hydra

    model = hydra.utils.instantiate(config)
    model.decision_threshold.fill_(threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"image_size": 32, "resize_mode": "center_crop"}
    checkpoint = {"state_dict": model.state_dict(), "model_config": config}
    torch.save({**checkpoint, "datamodule_hyper_parameters": data}, path)
    return path


def images(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (40, 36, 3), dtype=np.uint8) for _ in range(n)]


def write_run_dir(run: Path) -> None:
    """The files of a training run's directory the card reads."""
    (run / ".hydra").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(RUN_METRICS))
    overrides = ["held_out=vae", "data/augment=journey", "robustness=journey"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {
        "seed": 42,
        "held_out": "vae",
        "trainer": {"max_epochs": 16},
        "data": {
            "root": "${paths.data_dir}/embedded",  # an interpolation: not a value for the card
            "layout": "cifake_per_generator",
            "image_size": 32,
            "embedded": {"generators": ["dcgan", "vae"], "n_train": 6000},
        },
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    choices = {"model": "simple_cnn", "data/augment": "journey"}
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    write_run_dir(run)
    return simple_cnn_checkpoint(run / "checkpoints" / "epoch_003.ckpt")


def test_a_saved_folder_loads_back_bit_identically(tmp_path, ckpt):
    detector = Detector.load(ckpt, device="cpu", batch_size=4)
    detector.save_pretrained(tmp_path / "shared")
    names = sorted(p.name for p in (tmp_path / "shared").iterdir())
    assert names == ["README.md", "config.json", "model.safetensors"]

    loaded = Detector.from_pretrained(tmp_path / "shared", device="cpu", batch_size=4)
    before, after = detector(images()), loaded(images())
    assert [r.p_fake for r in after] == [r.p_fake for r in before]  # exactly, not approx
    assert [r.verdict for r in after] == [r.verdict for r in before]
    assert all(r.scored for r in after)
    expected = detector.model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert (loaded.threshold, loaded.image_size, loaded.resize_mode) == (
        pytest.approx(0.3),
        32,
        "center_crop",
    )
    assert loaded.trained.config == detector.trained.config
    # a folder saved again from a loaded one keeps its card (command, metrics) and its scores
    loaded.save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    first = json.loads((tmp_path / "shared" / "config.json").read_text())
    assert {k: v for k, v in again.items() if k not in ("name", "date")} == {
        k: v for k, v in first.items() if k not in ("name", "date")
    }
    third = Detector.from_pretrained(str(tmp_path / "again"), device="cpu")
    assert [r.p_fake for r in third(images())] == [r.p_fake for r in before]


def test_the_folder_keeps_the_settings_it_is_run_with(tmp_path, ckpt):
    detector = Detector.load(ckpt, device="cpu", threshold=0.45, ten_crop=True, crop_size=24)
    detector.save_pretrained(tmp_path / "shared")
    loaded = Detector.from_pretrained(tmp_path / "shared", device="cpu")
    assert loaded.threshold == pytest.approx(0.45) and loaded.settings.crop_size == 24
    assert [r.p_fake for r in loaded(images())] == [r.p_fake for r in detector(images())]
    state = load_file(tmp_path / "shared" / "model.safetensors")
    assert state["decision_threshold"].item() == pytest.approx(0.45)
    # an override at load time still wins over the folder's setting
    assert Detector.from_pretrained(tmp_path / "shared", threshold=0.9).threshold == 0.9
    with pytest.raises(TypeError, match="unknown inference setting.*treshold"):
        Detector.from_pretrained(tmp_path / "shared", treshold=0.5)


def test_the_card_reports_the_run(tmp_path, ckpt):
    Detector.load(ckpt, device="cpu").save_pretrained(tmp_path / "shared")
    card = json.loads((tmp_path / "shared" / "config.json").read_text())
    assert card["format"] == "pixelproof-detector/1"
    assert card["detector"]["net"]["_target_"].endswith("SimpleCNN")
    assert card["inference"] == {
        "image_size": 32,
        "resize_mode": "center_crop",
        "threshold": pytest.approx(0.3),
        "ten_crop": False,
        "crop_size": None,
    }
    # the generator zoo's card entries, from the same helper
    assert card["weights_file"] == "model.safetensors" and len(card["weights_sha256"]) == 64
    assert {"torch", "lightning", "python", "date", "weights_bytes"} <= set(card)
    assert card["metrics"] == RUN_METRICS
    assert card["training"]["held_out_generators"] == ["vae"]
    assert card["training"]["augment"] == "journey"
    assert "root" not in card["training"] and card["training"]["generators"] == ["dcgan", "vae"]
    readme = (tmp_path / "shared" / "README.md").read_text()
    assert readme.startswith("---\n") and "library_name: pixelproof" in readme
    assert "| `dcgan` | 99.9 | 97.8 | 96.4 | 99.2 |" in readme
    assert "| `vae` (held out) | 69.1 | 49.6 | 96.4 | 2.8 |" in readme
    assert "| **mean** | 90.0 | 85.0 | 95.0 | 75.0 |" in readme
    assert (
        "python -m pixelproof.train held_out=vae data/augment=journey robustness=journey" in readme
    )
    assert "mean AP 89.9 %, worst (processing, generator) AP 45.2 %" in readme
    assert "## Intended use and limitations" in readme and "push_to_hub" in readme


def test_a_checkpoint_path_is_accepted_too(ckpt):
    detector = Detector.from_pretrained(ckpt, device="cpu")
    assert detector.trained.path == ckpt and detector.threshold == pytest.approx(0.3)


def test_bad_sources_fail_in_one_line_naming_what_to_pass(tmp_path, ckpt):
    def fails(source, error=Exception, match="save_pretrained"):
        with pytest.raises(error, match=match) as info:
            Detector.from_pretrained(source)
        assert "\n" not in str(info.value), str(info.value)
        return str(info.value)

    fails(tmp_path / "nowhere", FileNotFoundError, "no such file or folder")
    fails("./nowhere", FileNotFoundError, "no such file or folder")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", FileNotFoundError, "holds no config.json or model.safetensors")
    fails("not a repo id!", ValueError, "neither a local folder nor a Hub repo id")
    # a well-formed repo id, offline (conftest sets HF_HUB_OFFLINE): no download, no random model
    fails("someone/some-detector", OSError, "cannot load the Hub repo 'someone/some-detector'")

    Detector.load(ckpt, device="cpu").save_pretrained(tmp_path / "shared")
    (tmp_path / "shared" / "model.safetensors").unlink()
    fails(tmp_path / "shared", FileNotFoundError, "holds no model.safetensors")


def damaged(tmp_path, ckpt, edit) -> Path:
    folder = tmp_path / "shared"
    Detector.load(ckpt, device="cpu").save_pretrained(folder)
    card = json.loads((folder / "config.json").read_text())
    edit(folder, card)
    (folder / "config.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize(
    "edit, match",
    [
        # files from disk are data: a config naming any other callable is refused unbuilt
        (lambda f, c: c["detector"]["net"].update(_target_="os.system"), "not a class pixelproof"),
        (lambda f, c: c.update(detector={"_target_": "builtins.eval"}), "not a real/fake detect"),
        (lambda f, c: c["detector"]["net"].update(widths="${oc.env:HOME}"), "interpolation"),
        (lambda f, c: c.update(format="other/1"), "not a pixelproof detector card"),
        (lambda f, c: c["inference"].update(resize_mode="stretch"), "resize_mode must be one of"),
        (lambda f, c: c["inference"].update(threshold=1.5), "must be a probability"),
        (lambda f, c: c["inference"].pop("image_size"), "inference.image_size is missing"),
        (lambda f, c: c.update(weights_file="../k.ckpt"), "names no weights file in its folder"),
        (lambda f, c: c.pop("weights_sha256"), "records no weights_sha256"),
        # the weights replaced by others: the digest stops them before they are read
        (
            lambda f, c: (f / "model.safetensors").write_bytes(
                (f / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0"
            ),
            "damaged or was replaced",
        ),
    ],
)
def test_a_damaged_or_crafted_folder_is_refused(tmp_path, ckpt, edit, match):
    folder = damaged(tmp_path, ckpt, edit)
    with pytest.raises(PretrainedError, match=match) as info:
        Detector.from_pretrained(folder)
    assert "\n" not in str(info.value)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, ckpt):
    folder = damaged(tmp_path, ckpt, lambda f, c: c["detector"]["net"].update(widths=[8, 8, 8]))
    with pytest.raises(PretrainedError, match="the weights do not fit"):
        Detector.from_pretrained(folder)


def test_the_known_detector_round_trips(tmp_path):
    """A registered part of one's own (``register_part``) shares like the project's nets."""
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.5)
    Detector.load(ckpt).save_pretrained(tmp_path / "known")
    grey = known_detector.write_grey(tmp_path / "grey.png", 153)
    (result,) = Detector.from_pretrained(tmp_path / "known", device="cpu")([grey])
    assert result.p_fake == pytest.approx(0.6, abs=1e-6) and result.verdict == "fake"


def test_train_writes_the_folder_when_asked(tmp_path, train_overrides):
    from pixelproof.train import train

    run = tmp_path / "run"
    overrides = [*train_overrides, "+trainer.limit_train_batches=2", "save_pretrained=true"]
    metrics = train(compose_config("train", *overrides))
    best = next((run / "checkpoints").glob("epoch_*.ckpt"))
    shared = Detector.from_pretrained(run / "detector", device="cpu")
    expected = Detector.load(best, device="cpu")(images())
    assert [r.p_fake for r in shared(images())] == [r.p_fake for r in expected]
    card = json.loads((run / "detector" / "config.json").read_text())
    assert card["metrics"]["test/ap"] == pytest.approx(metrics["test/ap"])
    # (called as a function there is no .hydra/ to take the command from; a real run has one)
