"""OmegaConf resolvers the configs use. Registered on ``import pixelproof``."""

import netrc
import os
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf


def wandb_offline() -> bool:
    """Run wandb offline unless the user has configured it (an API key, a login, or
    ``WANDB_MODE=online``), so runs work with no account and sync later with ``wandb sync``."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "disabled", "dryrun"}:
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def sweep_group(task_name: str) -> str:
    """The wandb group of a run: ``task_name`` for a single run; in a multirun, ``task_name``
    and the sweep directory's name, so the runs of one sweep share a group and sweeps never mix."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return task_name
    hydra_cfg = HydraConfig.get()
    if OmegaConf.select(hydra_cfg, "mode", default=None) != RunMode.MULTIRUN:
        return task_name
    # the sweep directory as the job's output directory names it: HydraConfig holds a copy of
    # the config without its resolver cache, where ${pixelproof.run_id:} would give a new name
    output_dir = OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None)
    if not output_dir:
        return f"{task_name}_{Path(hydra_cfg.sweep.dir).name}"
    sweep_dir = Path(output_dir)
    for _ in Path(str(hydra_cfg.sweep.subdir)).parts:
        sweep_dir = sweep_dir.parent
    return f"{task_name}_{sweep_dir.name}"


def run_id() -> str:
    """A run directory's name: ``<date>_<time>_<microseconds>-<process id>``, e.g.
    ``2025-06-01_14-03-22_118305-40211``. Two runs started in the same second (or microsecond,
    on one machine) never share a directory. Cached per config (``use_cache``), so every
    reference in one config, and every job Hydra derives from it (its sweep jobs, a requeued
    SLURM job), sees one value."""
    now = datetime.now()
    return f"{now:%Y-%m-%d_%H-%M-%S}_{now:%f}-{os.getpid()}"


def register() -> None:
    OmegaConf.register_new_resolver("pixelproof.wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("pixelproof.sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("pixelproof.run_id", run_id, replace=True, use_cache=True)
