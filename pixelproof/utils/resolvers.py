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


def register() -> None:
    OmegaConf.register_new_resolver("pixelproof.wandb_offline", wandb_offline, replace=True)
