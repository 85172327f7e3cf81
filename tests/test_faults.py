"""Fault injection: `python -m pixelproof.train` runs killed, signalled, starved of disk, started
together, and given bad settings; and the checkpoint, output and settings guards underneath.

The runs are subprocesses on a tiny CIFAKE folder of random PNGs and a two-stage SimpleCNN (5
steps an epoch, 3 epochs). Faults come from the callbacks below, which the subprocesses load as
``+callbacks.<name>._target_=test_faults.<Class>`` (tests/ is on their PYTHONPATH), so a fault
lands at a chosen training step, through the real signal handlers and the real file system.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import compose_config
from image_factory import make_cifake_tree
from lightning import Callback

TESTS = Path(__file__).resolve().parent
STEPS_PER_EPOCH, EPOCHS = 5, 3  # 43 training images (48 less a stratified 10 %), batches of 8
TIMING = {"train/images_per_sec", "train/seconds"}  # wall-clock measurements, never equal


# ---------------------------------------------------------------- faults, inside the runs


class SignalAt(Callback):
    """Send ``signal`` (SIGKILL, SIGTERM, SIGINT) to this process at the end of training step
    ``step`` (before the checkpoint callbacks of that step run)."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        self.step, self.signal = step, signal

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class SignalInValidation(Callback):
    """Send ``signal`` to this process after the first validation batch of epoch ``epoch``,
    once: the file ``once`` records that it did (a resumed run validates that epoch again)."""

    def __init__(self, epoch: int, once: str, signal: str = "SIGTERM") -> None:
        self.epoch, self.once, self.signal = epoch, Path(once), signal

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        if trainer.sanity_checking or trainer.current_epoch != self.epoch or batch_idx:
            return
        if not self.once.exists():
            self.once.touch()
            os.kill(os.getpid(), getattr(signal, self.signal))


class DiskFullAt(Callback):
    """From the start of epoch ``epoch``, no file may grow past ``limit`` bytes (RLIMIT_FSIZE):
    every later checkpoint write fails part-way, as on a full disk."""

    def __init__(self, epoch: int, limit: int = 60_000) -> None:
        self.epoch, self.limit = epoch, limit

    def on_train_epoch_start(self, trainer, *args) -> None:
        import resource

        if trainer.current_epoch == self.epoch:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.RLIM_INFINITY))


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
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
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
    kill = ["+callbacks.kill._target_=test_faults.SignalAt", f"+callbacks.kill.step={step}"]
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
        "+callbacks.int._target_=test_faults.SignalAt",
        f"+callbacks.int.step={a}",
        "+callbacks.int.signal=SIGINT",
        "+callbacks.term._target_=test_faults.SignalAt",
        f"+callbacks.term.step={b}",
        "+callbacks.term.signal=SIGTERM",
        "+callbacks.val._target_=test_faults.SignalInValidation",
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
    full = ["+callbacks.full._target_=test_faults.DiskFullAt", "+callbacks.full.epoch=1"]
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
    with initialize_config_dir(str(TESTS.parent / "conf"), version_base="1.3"):
        a, b = (compose("train", return_hydra_config=True) for _ in range(2))
    # one config resolves one name wherever it is used; another config, another name
    assert a.hydra.run.dir == a.hydra.run.dir != b.hydra.run.dir
    assert Path(a.hydra.sweep.dir).name == Path(a.hydra.run.dir).name
    assert Path(a.hydra.run.dir).parent.name == "runs"


def test_predict_refuses_outputs_that_would_overwrite_each_other(tmp_path):
    from pixelproof.utils.validation import ConfigError, validate

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    overrides = [f"ckpt_path={ckpt}", f"input_dir={tmp_path}"]
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
    from pixelproof.utils.validation import ConfigError, validate

    cfg = compose_config("train", f"paths.output_dir={tmp_path}", *overrides)
    with pytest.raises(ConfigError) as raised:
        validate(cfg)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    validate(compose_config("train", f"paths.output_dir={tmp_path}"))  # the defaults pass
