"""A quiet console: a training run prints every line once, no warning and no advert, and the
project's per-generator table instead of Lightning's dump of every test metric; honest bars."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.configs import CONF_DIR, compose_config, tiny_data_overrides
from omegaconf import DictConfig, OmegaConf

# what a normal fresh run printed before: Lightning's own handler ("INFO: ..." beside Hydra's
# copy), its resume-from-"last" warnings, a torch deprecation inside Lightning, its adverts and
# its Rich test table
NOISE = [
    "INFO: ",
    "ckpt_path=None",
    'ckpt_path="last"',
    "LeafSpec",
    "Tip:",
    "Test metric",
    "DataLoader 0",
    "Trainer already configured",
]
PY_WARNING = re.compile(r"\.py:\d+: ")  # how Lightning and Python print a warning


def run(args, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def assert_quiet(console: str) -> list[str]:
    lines = [line.rstrip() for line in console.splitlines() if line.strip()]
    for noise in NOISE:
        assert noise not in console, [line for line in lines if noise in line]
    assert not [line for line in lines if PY_WARNING.search(line)]
    logged = [line for line in lines if line.startswith("[")]  # Hydra's log format
    assert logged, console
    # each message once (the timestamps differ between copies: compare what follows them)
    messages = [line.split("] - ", 1)[-1] for line in logged]
    assert len(messages) == len(set(messages)), messages
    return lines


@pytest.mark.slow  # ~30 s on 2 busy cores
def test_a_training_run_prints_each_line_once_and_no_warning(tmp_path, embedded_root):
    console = run(
        [
            "pixelproof.train",
            *tiny_data_overrides(tmp_path, embedded_root),
            "trainer.max_epochs=1",
            "trainer.log_every_n_steps=1",
        ],
        tmp_path,
    )
    lines = assert_quiet(console)
    assert any("GPU available" in line for line in lines)  # Lightning's lines still come, once
    assert any("| net " in line for line in lines)  # the model summary, once (above)
    assert "Test set(s), best checkpoint:" in console  # the project's table
    assert sum(line.startswith("| **mean**") for line in lines) == 1


def test_train_generator_shows_its_step_budget_not_a_negative_epoch(tmp_path):
    console = run(
        [
            "pixelproof.train_generator",
            "generator=dcgan",
            "trainer.max_steps=8",
            "trainer.log_every_n_steps=1",
            "data.crops_per_epoch=64",
            "data.batch_size=16",
            "time_sampling=0",
            "threads=1",
            f"paths.root_dir={tmp_path}",
        ],
        tmp_path,
    )
    assert_quiet(console)
    assert "/-" not in console
    assert re.search(r"Epoch \d+, step \d+/8", console), console


def test_the_dataset_bar_shows_no_eta(tmp_path, capsys):
    from pixelproof.data.embedded import build_embedded_dataset

    build_embedded_dataset(tmp_path / "embedded", 8, 4, 4, generators=["dcgan"], n_unseen=2)
    bars = [
        part
        for part in re.split(r"[\r\n]", capsys.readouterr().err)
        if part.startswith("embedded dataset")
    ]
    assert bars and all(re.search(r"\[\d\d:\d\d\]$", bar.rstrip()) for bar in bars), bars


def test_bench_prints_its_header_and_times_the_default_detector(tmp_path, capsys):
    from pixelproof.benchmarks.latency import bench

    cfg = compose_config(
        "bench",
        f"paths.root_dir={tmp_path}",
        f"output={tmp_path / 'bench.md'}",
        "only=[simple_cnn]",
        "variants=[inference_mode]",
        "train_variants=[]",
        "isolate=false",
        "warmup=0",
        "iters=1",
        "throughput_batch=2",
        "matmul_size=64",
    )
    defaults = OmegaConf.load(Path(CONF_DIR) / "train.yaml").defaults
    default_model = next(d["model"] for d in defaults if isinstance(d, DictConfig) and "model" in d)
    assert default_model in cfg.detectors  # make bench times what make train trains
    bench(cfg)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert printed[0].startswith("| detector | variant")
    assert printed[2].startswith("| simple_cnn | inference_mode")
