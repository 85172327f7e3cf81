"""End-to-end runs of the training entry point on tiny data."""

import json
import subprocess
import sys

import pytest
import torch
from helpers.configs import TINY_EMBEDDED, compose_config
from helpers.embedded import share_samples
from helpers.image_factory import make_per_generator_tree
from lightning import Callback

from pixelproof.train import train


def test_fast_dev_run(train_overrides):
    metrics = train(compose_config("train", *train_overrides, "++trainer.fast_dev_run=true"))
    assert {"train/loss", "val/acc", "test/acc", "test/ap", "test/auroc"} <= set(metrics)


def test_one_epoch_writes_checkpoints_and_metrics(train_overrides, tmp_path):
    metrics = train(compose_config("train", *train_overrides))
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text()) == pytest.approx(metrics)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert metrics["train/images_per_sec"] > 0
    assert (run / "csv" / "metrics.csv").read_text().startswith(("epoch", "test", "train", "val"))
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert ckpts == {"last.ckpt", "epoch_000.ckpt"}
    # plain data only: loads with torch's safe loader and records how to rebuild the model
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["model_config"]["net"]["widths"] == [8, 16]


def test_per_generator_layout_reports_each_generator_and_their_mean(train_overrides, tmp_path):
    root = tmp_path / "bench"
    make_per_generator_tree(root / "train", ["pooled"], n=12)
    make_per_generator_tree(root / "test", ["biggan", "sd14"], n=6, with_classes=True)
    metrics = train(
        compose_config(
            "train",
            *train_overrides,
            "data=per_generator",
            f"data.root={root}",
            "++trainer.fast_dev_run=true",
        )
    )
    for key in ["acc", "ap"]:
        per_gen = [metrics[f"test/{g}/{key}"] for g in ["biggan", "sd14"]]
        assert metrics[f"test/{key}"] == pytest.approx(sum(per_gen) / 2)


class CrashAt(Callback):
    """Simulate a crash (node failure, OOM, Ctrl-C) in the middle of an epoch."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_resume_a_run_interrupted_mid_epoch(train_overrides, tmp_path):
    overrides = [*train_overrides, "trainer.max_epochs=2", "test=false"]
    cfg = compose_config(
        "train",
        *overrides,
        "+callbacks.crash._target_=test_train.CrashAt",
        "+callbacks.crash.step=7",
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    steps_per_epoch = 96 // 16  # 96 training files (validation has its own), batch 16
    assert state["global_step"] == 7 and state["epoch"] == 7 // steps_per_epoch  # mid-epoch 1

    resumed = compose_config(
        "train", *overrides, f"ckpt_path={last}", f"paths.output_dir={tmp_path / 'resumed'}"
    )
    metrics = train(resumed)
    final = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 2 * steps_per_epoch and final["epoch"] == 1
    assert "val/acc" in metrics


def test_runs_without_a_model_checkpoint(train_overrides):
    # the interrupt checkpoint is then the only Checkpoint callback: testing uses current weights
    short = ["++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1"]
    overrides = [*train_overrides, *short, "callbacks.model_checkpoint=null"]
    assert "test/acc" in train(compose_config("train", *overrides))


def test_missing_checkpoint_is_a_clear_error(train_overrides):
    cfg = compose_config("train", *train_overrides, "ckpt_path=/nowhere/last.ckpt")
    with pytest.raises(FileNotFoundError, match="ckpt_path=/nowhere/last.ckpt does not exist"):
        train(cfg)


@pytest.mark.slow
def test_cli_builds_the_embedded_data_trains_and_reports(tmp_path, embedded_root):
    """The real command a user runs, in a fresh directory (builds its own embedded data, from
    the samples the session's build of the same dataset left in the cache)."""
    share_samples(embedded_root, tmp_path / "data")
    cmd = [
        sys.executable,
        "-m",
        "pixelproof.train",
        *TINY_EMBEDDED,
        "data.batch_size=16",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "data" / "embedded" / "manifest.json").is_file()
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert f"Run directory: {run}" in done.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test/acc", "test/ap", "val/acc"} <= set(metrics)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / ".hydra" / "config.yaml").is_file()
    assert (run / "train.log").is_file()


def test_wandb_logger_runs_offline_without_an_account(train_overrides, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login either
    short = ["++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1", "test=false"]
    metrics = train(compose_config("train", *train_overrides, *short, "logger=wandb"))
    assert "val/acc" in metrics
    (offline_run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert list(offline_run.glob("*.wandb"))  # the run's data, ready for `wandb sync`


def test_weight_averaging_is_left_out_for_a_model_with_frozen_weights(caplog):
    """callbacks=ema (the default) would average, drift and store a frozen backbone: a model with
    frozen weights trains without it, and the log says so; any other model keeps it."""
    from lightning.pytorch.callbacks import EMAWeightAveraging
    from torch import nn

    from pixelproof.train import _without_averaging_of_frozen_weights

    ema, other = EMAWeightAveraging(), object()
    trainable = nn.Linear(2, 1)
    assert _without_averaging_of_frozen_weights([ema, other], trainable) == [ema, other]
    frozen = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    frozen[0].requires_grad_(False)
    with caplog.at_level("INFO", logger="pixelproof.train"):
        assert _without_averaging_of_frozen_weights([ema, other], frozen) == [other]
    assert "callbacks.ema: not used for a model with frozen weights (0.weight" in caplog.text
