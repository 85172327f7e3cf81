"""Where a run resumes from (``pixelproof.utils.recovery``): ``ckpt_path`` first, else the
``last.ckpt`` its directory already holds, as a requeued SLURM job finds it; and every trainer
writes its checkpoints atomically."""

import os
from types import SimpleNamespace

from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from pixelproof.callbacks.interrupt_checkpoint import InterruptCheckpoint
from pixelproof.utils.checkpoint_io import AtomicCheckpointIO
from pixelproof.utils.recovery import checkpoint_plugins, last_checkpoint, resume_from


def trainer_in(run_dir):
    """A fresh job's trainer over ``run_dir/checkpoints`` (its callbacks have saved nothing)."""
    checkpoints = str(run_dir / "checkpoints")
    return SimpleNamespace(
        callbacks=[
            ModelCheckpoint(dirpath=checkpoints, monitor="val/ap", mode="max"),
            InterruptCheckpoint(dirpath=checkpoints),
        ]
    )


def test_a_fresh_run_starts_from_scratch(tmp_path):
    assert last_checkpoint(trainer_in(tmp_path)) is None
    assert resume_from(None, trainer_in(tmp_path)) is None


def test_a_requeued_job_resumes_from_the_last_ckpt_its_directory_holds(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(b"state")
    (tmp_path / "checkpoints" / "hpc_ckpt_1.ckpt").write_bytes(b"mid-batch state")
    assert resume_from(None, trainer_in(tmp_path)) == str(last.absolute())
    assert resume_from("", trainer_in(tmp_path)) == str(last.absolute())


def test_ckpt_path_wins_over_the_run_directory(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"state")
    assert resume_from("elsewhere/last.ckpt", trainer_in(tmp_path)) == "elsewhere/last.ckpt"


def test_the_newest_of_the_last_states_is_the_last_checkpoint(tmp_path):
    trainer = trainer_in(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    interrupt = tmp_path / "checkpoints" / "last.ckpt"
    epoch_end = tmp_path / "checkpoints" / "last-v1.ckpt"
    for age, path in ((100, interrupt), (0, epoch_end)):
        path.write_bytes(b"state")
        os.utime(path, ns=(10**18 - age, 10**18 - age))
    trainer.callbacks[0].last_model_path = str(epoch_end)
    assert last_checkpoint(trainer) == epoch_end.absolute()
    os.utime(interrupt, ns=(10**18 + 1, 10**18 + 1))
    assert last_checkpoint(trainer) == interrupt.absolute()


def test_every_trainer_writes_its_checkpoints_atomically():
    plugins = checkpoint_plugins(OmegaConf.create({"max_epochs": 1}))
    assert [type(p) for p in plugins] == [AtomicCheckpointIO]
    target = "lightning.pytorch.plugins.io.TorchCheckpointIO"
    configured = checkpoint_plugins(OmegaConf.create({"plugins": [{"_target_": target}]}))
    assert [type(p).__name__ for p in configured] == ["TorchCheckpointIO"]  # the user's choice
