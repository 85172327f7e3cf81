"""OmegaConf resolvers the configs use. Registered on ``import pixelproof``."""

import netrc
import os
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
    return f"{task_name}_{Path(hydra_cfg.sweep.dir).name}"


def register() -> None:
    OmegaConf.register_new_resolver("pixelproof.wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("pixelproof.sweep_group", sweep_group, replace=True)
