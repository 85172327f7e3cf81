"""Fault injection: `python -m pixelproof.train` runs killed, signalled, starved of disk, started
together, swept with a failing job, and given bad settings; `train_generator`, the demo and
`export` given the same; and the checkpoint, output, dataset and settings guards underneath.

The runs are subprocesses on a tiny CIFAKE folder of random PNGs and a two-stage SimpleCNN (5
steps an epoch, 3 epochs). Faults come from the callbacks of ``helpers/faults.py``, which the
subprocesses load as ``+callbacks.<name>._target_=helpers.faults.<Class>`` (tests/ is on their
PYTHONPATH), so a fault lands at a chosen training step, through the real signal handlers and the
real file system.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import random
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import weakref
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from helpers.configs import CONF_DIR, compose_config, subprocess_env
from helpers.image_factory import make_cifake_tree
from PIL import Image

STEPS_PER_EPOCH, EPOCHS = 5, 3  # 43 training images (48 less a stratified 10 %), batches of 8
TIMING = {"train/images_per_sec", "train/seconds"}  # wall-clock measurements, never equal


# ---------------------------------------------------------------- running the entry points


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_cifake_tree(tmp_path_factory.mktemp("faults") / "cifake", n_per_class=24)


def train_overrides(data_root: Path, root: Path) -> list[str]:
    return [
        f"paths.root_dir={root}",
        "data=cifake",
        f"data.root={data_root}",
        "data.embedded=null",
        "data.batch_size=8",
        "data.eval_batch_size=2",  # validation in 3 batches: a signal can land inside it
        "data.augment.noise_prob=0.5",  # augmentations draw from the global RNG
        "data.augment.jpeg_prob=0.3",
        "model=simple_cnn",
        "model.net.widths=[8,16]",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.accelerator=cpu",
        "callbacks.model_summary=null",
        # last.ckpt every 2 steps, so kills land between checkpoints and mid-epoch
        "callbacks.periodic_checkpoint.train_time_interval=null",
        "callbacks.periodic_checkpoint.every_n_train_steps=2",
    ]


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python <args>`` with tests/ importable, as a user runs it (no HYDRA_FULL_ERROR)."""
    env = {k: v for k, v in subprocess_env().items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def train(overrides: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run(["-m", "pixelproof.train", *overrides], cwd)


def run_dirs(root: Path) -> list[Path]:
    """The run directories under ``root``, oldest first (their names start with the time)."""
    runs = root / "logs" / "train" / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


def resume_command(stderr: str) -> list[str]:
    """The command the stop message says resumes the run, ready for subprocess."""
    lines = stderr.strip().splitlines()
    assert "Resume with:" in lines[-2], stderr[-3000:]
    command = shlex.split(lines[-1])
    assert command[:3] == ["python", "-m", "pixelproof.train"], lines[-1]
    return command[1:]


def final_state(run_dir: Path) -> tuple[dict, dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return metrics, last


def assert_same_run(resumed: Path, reference: tuple[dict, dict], why: str) -> None:
    """The resumed run ends as the uninterrupted one: every metric both logged (timings aside;
    all of val/* and test/*), the final step, and the final weights, bit for bit."""
    metrics, last = final_state(resumed)
    ref_metrics, ref_last = reference
    assert {k for k in ref_metrics if k.startswith(("val/", "test/"))} <= set(metrics), why
    differ = {
        k: (ref_metrics[k], metrics[k])
        for k in set(ref_metrics) & set(metrics) - TIMING
        if ref_metrics[k] != metrics[k]
    }
    assert not differ, f"{why}: {differ}"
    assert last["global_step"] == ref_last["global_step"] == EPOCHS * STEPS_PER_EPOCH
    for name, tensor in ref_last["state_dict"].items():
        assert torch.equal(tensor, last["state_dict"][name]), f"{why}: {name} differs"


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory) -> tuple[dict, dict]:
    """The uninterrupted run every fault is compared with (one data-loading process)."""
    root = tmp_path_factory.mktemp("reference")
    done = train(train_overrides(data_root, root), root)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = run_dirs(root)
    return final_state(run_dir)


# ---------------------------------------------------------------- kill -9, SIGINT, SIGTERM


@pytest.mark.slow
def test_kill_9_at_a_random_step_then_resume_ends_as_the_uninterrupted_run(
    data_root, reference, tmp_path
):
    step = random.randint(3, EPOCHS * STEPS_PER_EPOCH - 1)  # after the first checkpoint (2)
    why = f"kill -9 at step {step}"
    # with 2 worker processes: the batches, their order and augmentations do not depend on it
    overrides = [*train_overrides(data_root, tmp_path), "data.num_workers=2"]
    kill = ["+callbacks.kill._target_=helpers.faults.SignalAt", f"+callbacks.kill.step={step}"]
    killed = train([*overrides, *kill], tmp_path)
    assert killed.returncode == -signal.SIGKILL, f"{why}: {killed.stderr[-2000:]}"
    (run_dir,) = run_dirs(tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] < step  # the kill lost steps
    assert not list(run_dir.rglob("*.tmp"))  # killed between writes: no temporary files

    resumed = train([*overrides, f"ckpt_path={last}"], tmp_path)
    assert resumed.returncode == 0, f"{why}: {resumed.stderr[-3000:]}"
    assert_same_run(run_dirs(tmp_path)[-1], reference, why)


@pytest.fixture(scope="module")
def signal_chain(data_root, tmp_path_factory):
    """One run stopped by SIGINT at step ``a``; resumed with the command it printed and stopped
    by SIGTERM at step ``b``; resumed so again and stopped by SIGTERM inside the last epoch's
    validation; resumed so again, to the end."""
    root = tmp_path_factory.mktemp("signals")
    a = random.randint(1, STEPS_PER_EPOCH - 1)
    # not an epoch's last batch: a signal there lands in the validation that follows it
    b = random.choice([s for s in range(a + 2, 2 * STEPS_PER_EPOCH) if s % STEPS_PER_EPOCH])
    stops = [
        "+callbacks.int._target_=helpers.faults.SignalAt",
        f"+callbacks.int.step={a}",
        "+callbacks.int.signal=SIGINT",
        "+callbacks.term._target_=helpers.faults.SignalAt",
        f"+callbacks.term.step={b}",
        "+callbacks.term.signal=SIGTERM",
        "+callbacks.val._target_=helpers.faults.SignalInValidation",
        f"+callbacks.val.epoch={EPOCHS - 1}",
        f"+callbacks.val.once={root / 'signalled-in-validation'}",
    ]
    results = [train([*train_overrides(data_root, root), *stops], root)]
    for _ in range(3):
        results.append(run(resume_command(results[-1].stderr), root))
    return {
        "why": f"SIGINT at step {a}, SIGTERM at step {b}, SIGTERM in the last validation",
        "steps": (a, b),
        "runs": run_dirs(root),
        "results": results,
    }


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_signal_saves_exits_non_zero_and_prints_the_resume_command(signal_chain, stop):
    index = ["SIGINT", "SIGTERM"].index(stop)
    done, step = signal_chain["results"][index], signal_chain["steps"][index]
    why = signal_chain["why"]
    assert done.returncode == 128 + getattr(signal, stop), f"{why}: {done.stderr[-3000:]}"
    run_dir = signal_chain["runs"][index]
    last = run_dir / "checkpoints" / "last.ckpt"
    message = f"pixelproof.train: stopped by {stop} at epoch {step // STEPS_PER_EPOCH}, step {step}"
    assert f"{message}; its state is in {last}. Resume with:" in done.stderr, done.stderr[-3000:]
    assert resume_command(done.stderr)[-1] == f"ckpt_path={last}"
    assert torch.load(last, weights_only=True)["global_step"] == step  # the batch it was in
    assert not (run_dir / "metrics.json").exists()  # the run did not finish


@pytest.mark.slow
def test_a_signal_during_validation_keeps_the_checkpoint_before_it(signal_chain):
    done, run_dir = signal_chain["results"][2], signal_chain["runs"][2]
    assert done.returncode == 143, f"{signal_chain['why']}: {done.stderr[-3000:]}"
    last = run_dir / "checkpoints" / "last.ckpt"
    total = EPOCHS * STEPS_PER_EPOCH
    message = f"stopped by SIGTERM at epoch {EPOCHS - 1}, step {total}; the newest state saved "
    assert f"{message}before it is {last}. Resume with:" in done.stderr, done.stderr[-3000:]
    # the last periodic save: the epoch's last batch is left to the save after validation
    assert torch.load(last, weights_only=True)["global_step"] == total - 1


@pytest.mark.slow
def test_resuming_with_the_printed_commands_ends_as_the_uninterrupted_run(signal_chain, reference):
    finished = signal_chain["results"][-1]
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert len(signal_chain["runs"]) == 4, signal_chain["runs"]  # a directory for each resume
    assert_same_run(signal_chain["runs"][-1], reference, signal_chain["why"])


# ---------------------------------------------------------------- a full disk


@pytest.mark.slow
def test_a_failed_checkpoint_write_keeps_the_previous_last_ckpt(data_root, tmp_path):
    full = ["+callbacks.full._target_=helpers.faults.DiskFullAt", "+callbacks.full.epoch=1"]
    done = train([*train_overrides(data_root, tmp_path), *full], tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "pixelproof.train: OSError: [Errno 27] File too large"
    )
    assert "Traceback" not in done.stderr
    (run_dir,) = run_dirs(tmp_path)
    assert "Traceback" in (run_dir / "train.log").read_text()  # the details, for later
    checkpoints = run_dir / "checkpoints"
    # the state of epoch 0's end, whole: every later save failed without touching it
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 5
    assert torch.load(checkpoints / "epoch_000.ckpt", weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]


# ---------------------------------------------------------------- two runs at once


@pytest.mark.slow
def test_two_runs_started_in_the_same_second_get_two_directories(data_root, tmp_path):
    overrides = [*train_overrides(data_root, tmp_path), "train=false", "test=false"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    command = [sys.executable, "-m", "pixelproof.train", *overrides]
    time.sleep(1 - time.time() % 1)  # both start right after a second begins: one name before
    procs = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 2, dirs
    for run_dir in dirs:
        assert (run_dir / ".hydra" / "config.yaml").is_file()
        assert json.loads((run_dir / "metrics.json").read_text()) == {}


# ---------------------------------------------------------------- bad settings


BAD_TRAIN_SETTINGS = {
    "data.batch_size=abc": "data.batch_size=abc: must be a whole number >= 1",
    "data.batch_size=-1": "data.batch_size=-1: must be a whole number >= 1",
    "model.optimizer.lr=-1": "model.optimizer.lr=-1: must be a number > 0",
    "trainer.max_epochs=0": "trainer.max_epochs=0: must be a whole number >= 1 (or -1",
    "hydra.run.dir=/proc/pixelproof": "the run directory /proc/pixelproof cannot be created",
    "attack.eps=lots": "attack.eps=lots: must be a number >= 0",
}


@pytest.mark.slow
def test_bad_settings_stop_with_one_line_before_anything_is_written(data_root, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint\n")
    ckpt_like = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt_like)
    cases = []  # (entry point, overrides, expected message)
    for i, (bad, message) in enumerate(BAD_TRAIN_SETTINGS.items()):
        base = train_overrides(data_root, tmp_path / f"train{i}")
        extra = ["attack=fgsm"] if bad.startswith("attack.") else []
        cases.append(("train", [*base, *extra, bad], message))
    cases.append(
        (
            "train",
            [*train_overrides(data_root, tmp_path / "text"), f"ckpt_path={notes}"],
            f"ckpt_path={notes} is not a checkpoint: not a file torch.save wrote",
        )
    )
    predict = [f"ckpt_path={ckpt_like}", f"input_dir={data_root / 'test' / 'REAL'}"]
    cases.append(
        (
            "predict",
            [f"paths.root_dir={tmp_path / 'p1'}", *predict, "output=o.json"]
            + ["inference.threshold=1.5"],
            "inference.threshold=1.5: must be a number in [0, 1], or null",
        )
    )
    cases.append(
        (
            "predict",
            [f"paths.root_dir={tmp_path / 'p2'}", *predict, f"output={tmp_path / 'o.csv'}"],
            f"output={tmp_path / 'o.csv'}: the Task-1 JSON and its CSV companion would both be "
            f"written to {tmp_path / 'o.csv'}",
        )
    )

    def attempt(case):
        entry, overrides, _ = case
        return run(["-m", f"pixelproof.{entry}", *overrides], tmp_path, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(attempt, cases))
    for (entry, overrides, message), done in zip(cases, results):
        assert done.returncode == 2, (overrides[-1], done.stderr[-2000:])
        assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr[-2000:]
        assert done.stderr.startswith(f"pixelproof.{entry}: {message}"), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt", "notes.txt"]
    assert not Path("/proc/pixelproof").exists()


def test_hydra_full_error_still_shows_the_traceback(data_root, tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    args = [*train_overrides(data_root, tmp_path), "data.batch_size=abc"]
    done = subprocess.run(
        [sys.executable, "-m", "pixelproof.train", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ConfigError: data.batch_size=abc" in done.stderr


@pytest.mark.slow
def test_resuming_a_checkpoint_of_another_model_is_one_line(data_root, reference, tmp_path):
    from pixelproof.models.loading import CheckpointError
    from pixelproof.train import train as train_in_process

    ckpt = tmp_path / "simple_cnn_8_16.ckpt"
    torch.save(reference[1], ckpt)
    overrides = [*train_overrides(data_root, tmp_path), f"paths.output_dir={tmp_path / 'run'}"]
    cfg = compose_config("train", *overrides, "model.net.widths=[4,8]", f"ckpt_path={ckpt}")
    with pytest.raises(CheckpointError) as raised:
        train_in_process(cfg)
    assert str(raised.value) == (
        f"ckpt_path={ckpt} holds a SimpleCNN model (model.net.widths=[8, 16]), but this run asks "
        "for a SimpleCNN model (model.net.widths=[4, 8]): resume with the model settings of the "
        "run that wrote it"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_entry_point_error_is_one_line_and_a_non_zero_exit(capsys):
    from hydra.errors import InstantiationException

    from pixelproof.utils.cli import run_entry_point

    def fails(cfg):
        try:
            raise ValueError("data.layout='x': choose one of cifake, csv")
        except ValueError as err:  # what hydra.utils.instantiate wraps a constructor's error in
            raise InstantiationException("Error in call to target 'ImageDataModule':\n...") from err

    def crashes(cfg):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    for function, code, line in [
        (fails, 1, "pixelproof.train: data.layout='x': choose one of cifake, csv"),
        (crashes, 1, "pixelproof.train: RuntimeError: CUDA out of memory."),
    ]:
        with pytest.raises(SystemExit) as exited:
            run_entry_point(function, None, "train")
        assert exited.value.code == code
        assert capsys.readouterr().err == line + "\n"


# ---------------------------------------------------------------- the guards underneath


def test_atomic_writes_respect_the_umask_and_survive_a_failed_write(tmp_path, monkeypatch):
    from pixelproof.utils.atomic import atomic_open, write_atomic

    target = tmp_path / "out.json"
    previous = os.umask(0o027)
    try:
        write_atomic(target, "first\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0o666 less the umask, not 0o600
    with pytest.raises(OSError, match="No space left"), atomic_open(target) as handle:
        handle.write("half of the sec")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # the temp file is gone


def test_checkpoint_io_writes_beside_the_target_and_leaves_the_old_file_on_failure(tmp_path):
    from pixelproof.utils.checkpoint_io import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"global_step": 2, "bad": Unpicklable()}, path)
    assert io.load_checkpoint(path, weights_only=True) == {"global_step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_run_directories_are_unique_per_process_and_call():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from pixelproof.utils.resolvers import run_id

    first, second = run_id(), run_id()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}-\d+", first)
    assert first.endswith(f"-{os.getpid()}") and first != second
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        a, b = (compose("train", return_hydra_config=True) for _ in range(2))
    # one config resolves one name wherever it is used; another config, another name
    assert a.hydra.run.dir == a.hydra.run.dir != b.hydra.run.dir
    assert Path(a.hydra.sweep.dir).name == Path(a.hydra.run.dir).name
    assert Path(a.hydra.run.dir).parent.name == "runs"


def test_predict_refuses_outputs_that_would_overwrite_each_other(tmp_path):
    from pixelproof.validation import ConfigError, validate

    ckpt, images = tmp_path / "model.ckpt", tmp_path / "images"
    torch.save({"state_dict": {}}, ckpt)
    images.mkdir()  # outputs beside the input folder, not inside it
    overrides = [f"ckpt_path={ckpt}", f"input_dir={images}"]
    cfg = compose_config("predict", *overrides, f"output={tmp_path / 'o.csv'}")
    with pytest.raises(ConfigError, match="the Task-1 JSON and its CSV companion would both"):
        validate(cfg)
    validate(compose_config("predict", *overrides, f"output={tmp_path / 'o.json'}"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["data.eval_batch_size=0"],
            "data.eval_batch_size=0: must be a whole number >= 1, or null",
        ),
        (["data.val_fraction=1"], "data.val_fraction=1: must be a number in [0, 1)"),
        (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5: must be a whole number >= 1"),
        (["attack=pgd", "attack.eps=-8/255"], "attack.eps=-8/255: must be a number >= 0"),
        (["seed=abc"], "seed=abc: must be a whole number, or null"),
    ],
)
def test_each_bad_setting_names_its_key_and_what_it_allows(overrides, message, tmp_path):
    from pixelproof.validation import ConfigError, validate

    cfg = compose_config("train", f"paths.output_dir={tmp_path}", *overrides)
    with pytest.raises(ConfigError) as raised:
        validate(cfg)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    validate(compose_config("train", f"paths.output_dir={tmp_path}"))  # the defaults pass


# ---------------------------------------------------------------- a failing job in a sweep


@pytest.mark.slow
def test_a_sweep_runs_every_job_then_lists_the_failed_ones_and_exits_non_zero(data_root, tmp_path):
    sweep = tmp_path / "sweep"
    overrides = [*train_overrides(data_root, tmp_path), "train=false", "test=false"]
    method = "callbacks.threshold_calibration.method"
    sweep_args = [f"hydra.sweep.dir={sweep}", f"{method}=best_acc,bogus,eer"]
    done = train(["-m", *overrides, *sweep_args], tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    # the job after the failed one ran too
    assert [(sweep / str(i) / "metrics.json").is_file() for i in range(3)] == [True, False, True]
    lines = done.stderr.strip().splitlines()
    assert lines[-2] == "pixelproof.train: 1 of 3 jobs failed:", done.stderr[-3000:]
    assert lines[-1].startswith(f"  job 1 ({method}=bogus): {method}='bogus': choose "), lines[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_optuna_trial_that_fails_is_a_failed_trial_and_the_search_goes_on(data_root, tmp_path):
    sweep = tmp_path / "sweep"
    overrides = [*train_overrides(data_root, tmp_path), "trainer.max_epochs=2", "test=false"]
    optuna = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=2"]
    method = "callbacks.threshold_calibration.method"
    sweep_args = [f"hydra.sweep.dir={sweep}", *optuna, f"{method}=best_acc,bogus"]
    done = train(["-m", *overrides, *sweep_args], tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    # both trials ran (in the grid's random order): the good one wrote its metrics. (Whether the
    # plugin writes optimization_results.yaml depends on that order: not asserted.)
    finished = [job for job in sweep.iterdir() if (job / "metrics.json").is_file()]
    jobs = [job for job in sweep.iterdir() if job.is_dir()]
    assert len(finished) == 1 and len(jobs) == 2, done.stderr[-3000:]
    # the failed job says what was wrong in one line as it fails, whatever the order
    bad_job = "): callbacks.threshold_calibration.method='bogus': choose fixed, best_acc"
    assert bad_job in done.stderr, done.stderr[-3000:]
    if "`Study.stop` is supposed to be invoked" in done.stderr:
        # the grid ran the failing trial last: the Optuna plugin (hydra-optuna-sweeper 1.2 with
        # optuna 2.10) then crashes in GridSampler.after_trial before the sweep's end, so the
        # closing summary cannot be printed; the job's own line above is what the user gets
        return
    assert "pixelproof.train: 1 of 2 jobs failed:" in done.stderr, done.stderr[-3000:]
    # the summary is one line per failed job (the Optuna plugin logs its trial's traceback
    # as a warning of its own, depending on its version)
    ours = done.stderr[done.stderr.index("pixelproof.train: 1 of 2 jobs failed:") :]
    assert "Traceback" not in ours, ours


# ---------------------------------------------------------------- train_generator

GENERATOR_RUN = [
    "generator=vae",
    "trainer.max_steps=6",
    "data.crops_per_epoch=64",  # 4 batches an epoch
    "data.batch_size=16",
    "time_sampling=0",
    "threads=1",
    "trainer.enable_progress_bar=false",
]


def test_train_generator_writes_into_its_run_directory_not_into_the_package(tmp_path, monkeypatch):
    from pixelproof.generators import zoo
    from pixelproof.train_generator import train_generator

    package = tmp_path / "package"  # stands in for pixelproof/generators/weights
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", package)
    run_dir = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        card = train_generator(
            compose_config("train_generator", *GENERATOR_RUN, f"paths.output_dir={run_dir}")
        )
    finally:
        torch.set_num_threads(threads)
    assert sorted(p.name for p in (run_dir / "weights").iterdir()) == [
        "vae.json",
        "vae.safetensors",
    ]
    assert not package.exists()
    assert card["optimizer_steps"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_train_generator_with_a_checkpoint_it_resumes_from(stop, tmp_path):
    signal_at = [
        "+callbacks.stop._target_=helpers.faults.SignalAt",
        "+callbacks.stop.step=3",
        f"+callbacks.stop.signal={stop}",
    ]
    args = ["-m", "pixelproof.train_generator", *GENERATOR_RUN, f"paths.root_dir={tmp_path}"]
    done = run([*args, *signal_at], tmp_path)
    assert done.returncode == 128 + getattr(signal, stop), done.stderr[-3000:]
    runs = tmp_path / "logs" / "train_generator" / "runs"
    (run_dir,) = runs.iterdir()
    last = run_dir / "checkpoints" / "last.ckpt"
    message = f"pixelproof.train_generator: stopped by {stop} at epoch 0, step 3; its state is in"
    assert f"{message} {last}. Resume with:" in done.stderr, done.stderr[-3000:]
    assert torch.load(last, weights_only=True)["global_step"] == 3
    assert not (run_dir / "weights").exists()
    command = shlex.split(done.stderr.strip().splitlines()[-1])
    assert command[:3] == ["python", "-m", "pixelproof.train_generator"], command
    assert command[-1] == f"ckpt_path={last}"
    if stop == "SIGTERM":
        resumed = run(command[1:], tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        card = json.loads((sorted(runs.iterdir())[-1] / "weights" / "vae.json").read_text())
        assert card["optimizer_steps"] == 6


# ---------------------------------------------------------------- one line from every entry point


class Payload:
    """Pickles as a call of ``function`` (what a crafted checkpoint holds)."""

    def __init__(self, function) -> None:
        self.function = function

    def __reduce__(self):
        return (self.function, ("true",))


def simple_cnn_checkpoint(path: Path) -> Path:
    """An untrained SimpleCNN saved as ``pixelproof.train`` saves one (weights, model config)."""
    import hydra
    from omegaconf import OmegaConf

    cfg = compose_config("train", "model=simple_cnn", "model.net.widths=[8,16]")
    config = OmegaConf.to_container(cfg.model, resolve=True)
    state = hydra.utils.instantiate(config).state_dict()
    torch.save({"state_dict": state, "model_config": config}, path)
    return path


@pytest.mark.slow
def test_every_entry_point_fails_with_one_line(tmp_path):
    a_zip = tmp_path / "notes.zip"
    with zipfile.ZipFile(a_zip, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "payload": Payload(os.system)}, pickled)
    ckpt = simple_cnn_checkpoint(tmp_path / "simple_cnn.ckpt")
    without_onnx = (
        "import runpy, sys; sys.modules.update(dict.fromkeys(['onnx', 'onnxscript', "
        "'onnxruntime'])); runpy.run_module('pixelproof.export', run_name='__main__', "
        "alter_sys=True)"
    )
    cases = [  # (arguments, exit status, the line)
        (
            ["-m", "pixelproof.train_generator", "threads=abc"],
            2,
            "pixelproof.train_generator: threads=abc: must be a whole number >= 1",
        ),
        (
            ["-m", "pixelproof.train_generator", "trainer.max_steps=-5"],
            2,
            "pixelproof.train_generator: trainer.max_steps=-5: must be a whole number >= 1 "
            "(or -1: no limit)",
        ),
        (
            ["-m", "pixelproof.app", f"ckpt_path={a_zip}"],
            1,
            f"pixelproof.app: {a_zip} is not a readable checkpoint",
        ),
        (
            ["-m", "pixelproof.export", f"ckpt_path={pickled}"],
            1,
            f"pixelproof.export: {pickled} is not a readable checkpoint",
        ),
        (
            ["-c", without_onnx, f"ckpt_path={ckpt}"],
            1,
            "pixelproof.export: format=onnx needs onnx, onnxscript, onnxruntime: "
            "pip install 'pixelproof[export]' (or format=torchscript)",
        ),
    ]

    def attempt(case):
        args, _, _ = case
        root = tmp_path / f"run{cases.index(case)}"
        return run([*args, f"paths.root_dir={root}"], tmp_path, timeout=180)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, cases))
    for (args, status, line), done in zip(cases, results):
        assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr[-3000:]
        assert done.stderr.startswith(line), (args, done.stderr)
        assert done.returncode == status, (args, done.stderr)
        assert "weights_only" not in done.stderr


# ---------------------------------------------------------------- schedules, disks, checkpoints


def test_one_cycle_over_exactly_five_steps_does_not_divide_by_zero():
    """OneCycleLR's warm-up of pct_start=0.2 x 5 steps ends at step 0, where it started."""
    from types import SimpleNamespace

    import hydra

    model = hydra.utils.instantiate(compose_config("train", "model=simple_cnn").model)
    model.trainer = SimpleNamespace(estimated_stepping_batches=5)
    configured = model.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = model.optimizer_factory.keywords["lr"]
    assert rates[0] == pytest.approx(peak / 25)  # OneCycleLR's initial rate: max_lr / 25
    assert rates[0] < rates[1] <= peak  # one warm-up step, then annealing
    assert all(a > b for a, b in zip(rates[1:], rates[2:]))


def test_a_full_disk_while_saving_a_checkpoint_names_the_disk(tmp_path, monkeypatch):
    from pixelproof.utils import atomic
    from pixelproof.utils.checkpoint_io import AtomicCheckpointIO
    from pixelproof.utils.cli import one_line

    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    real_open = os.open

    def full_disk(file, flags, mode=0o777, *, dir_fd=None):
        if str(file).endswith(atomic.TEMP_SUFFIX):  # the temporary file lands on a full disk
            return real_open("/dev/full", os.O_WRONLY)
        return real_open(file, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(atomic.os, "open", full_disk)
    with pytest.raises(OSError) as raised:
        io.save_checkpoint({"global_step": 2, "weights": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    disk = tmp_path
    while not os.path.ismount(disk):
        disk = disk.parent
    assert raised.value.errno == errno.ENOSPC
    assert one_line(raised.value) == f"OSError: No space left on {disk} (writing {path})"
    assert io.load_checkpoint(path, weights_only=True) == {"global_step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.parametrize(("step", "saved"), [(0, None), (3, 3)])
def test_a_run_that_fails_before_its_first_step_leaves_no_checkpoint(
    data_root, tmp_path, step, saved
):
    from pixelproof.train import train as train_in_process

    run_dir = tmp_path / "run"
    fault = ["+callbacks.fault._target_=helpers.faults.RaiseAt", f"+callbacks.fault.step={step}"]
    overrides = [*train_overrides(data_root, tmp_path), f"paths.output_dir={run_dir}", *fault]
    with pytest.raises(RuntimeError, match=f"a fault at step {step}"):
        train_in_process(compose_config("train", *overrides))
    last = run_dir / "checkpoints" / "last.ckpt"
    if saved is None:  # no last.ckpt of an untrained model to resume from
        assert not last.exists()
    else:  # the state at the fault, as before
        assert torch.load(last, weights_only=True)["global_step"] == saved


@pytest.mark.parametrize(("function", "held"), [(os.system, "posix.system"), (print, "print")])
def test_a_pickled_checkpoint_is_refused_without_advice_to_trust_it(tmp_path, function, held):
    from pixelproof.models.loading import CheckpointError, read_checkpoint

    ckpt = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "payload": Payload(function)}, ckpt)
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(ckpt)
    message = str(raised.value)
    assert f"GLOBAL {held} " in message, message
    for advice in ("weights_only", "add_safe_globals", "safe_globals", "trust"):
        assert advice not in message, message
    assert "\n" not in message


# ---------------------------------------------------------------- the embedded dataset's folders


def tiny_build(root: Path) -> Path:
    from pixelproof.data.embedded import build_embedded_dataset

    return build_embedded_dataset(root, n_train=4, n_val=4, n_test=4, generators=["vae"])


def test_the_embedded_dataset_and_its_sample_cache_respect_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        root = tiny_build(tmp_path / "embedded")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(root.stat().st_mode) == 0o750  # 0o777 less the umask, not 0o700
    assert stat.S_IMODE((root / "train" / "REAL").stat().st_mode) == 0o750
    cached = list((tmp_path / "generator_samples").iterdir())
    assert cached and {stat.S_IMODE(p.stat().st_mode) for p in cached} == {0o640}


def test_a_build_removes_the_stale_build_folders_of_interrupted_builds_only(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process that has ended: its build can never finish
    host, day = socket.gethostname(), 24 * 3600
    folders = {  # name -> (age in seconds, removed)
        f".embedded.building-{host}-{gone.pid}-0a1b2c3d": (0, True),
        f".embedded.building-{host}-{os.getppid()}-0a1b2c3d": (2 * day, False),  # still running
        ".embedded.building-elsewhere-1-0a1b2c3d": (0, False),  # another machine's, recent
        ".embedded.building-elsewhere-2-0a1b2c3d": (2 * day, True),  # ... and one days old
        ".embedded.building-k3x9_q1": (2 * day, True),  # named by an older pixelproof
        ".embedded.building-k3x9_q2": (0, False),
        ".other.building-k3x9_q3": (2 * day, False),  # another dataset's
    }
    for name, (age, _) in folders.items():
        (tmp_path / name / "train" / "REAL").mkdir(parents=True)
        for folder in (
            tmp_path / name,
            tmp_path / name / "train",
            tmp_path / name / "train" / "REAL",
        ):
            os.utime(folder, (time.time() - age, time.time() - age))
    tiny_build(tmp_path / "embedded")
    left = {p.name for p in tmp_path.iterdir() if p.name.startswith(".")}
    assert left == {name for name, (_, removed) in folders.items() if not removed}


# ---------------------------------------------------------------- the demo's memory


def demo(tmp_path: Path, *overrides: str):
    from helpers import known_detector

    from pixelproof.demo.analysis import DemoAnalysis

    ckpt = known_detector.save_checkpoint(tmp_path / "mean.ckpt")
    settings = [f"ckpt_path={ckpt}", f"paths.root_dir={tmp_path}", "inference.device=cpu"]
    settings += ["gauge=null", "attribution.gradcam_layer=null", "attribution.ig_steps=4"]
    return DemoAnalysis(compose_config("app", *settings, *overrides))


def test_the_demo_refuses_an_image_over_its_pixel_cap_with_a_clear_message(tmp_path):
    Image.new("RGB", (1500, 1000), (90, 90, 90)).save(tmp_path / "big.png")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "small.png")
    results, _ = demo(tmp_path, "max_pixels=1000000").analyse(
        [tmp_path / "big.png", tmp_path / "small.png"]
    )
    assert results[0].error == (
        "1500x1000 pixels (1.5 MP), more than the 1.0 MP allowed (max_pixels); downscale it first"
    )
    assert results[1].error is None and results[1].p_fake is not None


def test_the_demo_decodes_one_full_size_image_at_a_time_and_keeps_it_reduced(
    tmp_path, monkeypatch, tiny_clip_dir
):
    from pixelproof.data import decoding

    real_load, decoded, alive_before = decoding.load_rgb, [], []

    def load_rgb(path, *args, **kwargs):
        gc.collect()
        alive_before.append(sum(ref() is not None for ref in decoded))
        image = real_load(path, *args, **kwargs)
        decoded.append(weakref.ref(image))
        return image

    monkeypatch.setattr(decoding, "load_rgb", load_rgb)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (1200, 900), (40 * i, 90, 160)).save(paths[-1])
    shown = demo(tmp_path, "inference.batch_size=4", f"scorer.name_or_path={tiny_clip_dir}")
    seen, score = [], shown.scorer.score
    monkeypatch.setattr(
        shown.scorer, "score", lambda im, sizes: seen.extend(im) or score(im, sizes)
    )
    results, _ = shown.analyse(paths)
    gc.collect()
    assert alive_before == [0, 0, 0]  # each decode starts with no other full-size image alive
    assert not any(ref() is not None for ref in decoded)
    # CLIP (32x32 input) reads a reduced copy; its boxes are in the upload's pixels
    assert len(seen) == 3 and all(32 <= min(image.size) < 64 for image in seen)
    for result in results:
        assert result.error is None and result.image is None and result.artifacts
        for artifact in result.artifacts:
            x0, y0, x1, y1 = artifact["box"]
            assert 0 <= x0 < x1 <= 1200 and 0 <= y0 < y1 <= 900 and x1 >= 300 and y1 >= 225
