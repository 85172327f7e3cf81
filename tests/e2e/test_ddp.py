"""Distributed data parallel through ``train(cfg)``: two CPU processes talking over gloo."""

import json

import pytest
import torch
from helpers.configs import compose_config

from pixelproof.train import train


@pytest.mark.serial  # forks this process: not from a threaded xdist worker (make test: after)
def test_ddp_with_two_cpu_processes_trains_tests_and_writes_one_run(rine_overrides, tmp_path):
    # trainer=ddp as users pick it, on CPU. Its `ddp` strategy re-launches the command line in a
    # child process, which inside pytest would be pytest: fork the two workers here instead.
    cfg = compose_config(
        "train",
        *rine_overrides,
        "trainer=ddp",
        "trainer.strategy=ddp_fork",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
    )
    assert cfg.trainer.sync_batchnorm is True and cfg.trainer.num_nodes == 1
    metrics = train(cfg)

    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert {"val/acc", "test/acc", "test/ap"} <= set(metrics)
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"epoch_000.ckpt", "last.ckpt"}
    # 96 training images split over 2 processes: 48 each, 3 batches of 16 per epoch (one
    # process alone takes 6 steps)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    # fit and test ran in different worker processes; metrics.csv holds both stages' columns
    header = (run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/acc", "test/acc"} <= set(header)
