"""``from_pretrained`` by Hub id or local directory, failing in one line when it cannot.

As for the CLIP backbone (``models/components/clip_backbone.py``): the Hub is probed once, and
if it is out of reach only the local cache is read, so an offline machine gets an error at once
(naming the option that takes a local directory) instead of minutes of retries, and never a
randomly initialised model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pixelproof.models.components.clip_backbone import hub_reachable, quiet_transformers

T = TypeVar("T")


def load_or_fail(load: Callable[..., T], name_or_path: str, option: str, what: str) -> T:
    """``load(source, local_files_only=...)`` for ``name_or_path``; ``option`` is the config key
    that holds it (for the error), ``what`` the kind of checkpoint ("CLIP model", ...)."""
    instead = f"pass {option}=/local/dir (a {what} saved with save_pretrained)"
    if not name_or_path:
        raise ValueError(f"{option} is empty; {instead}")
    path = Path(str(name_or_path)).expanduser()
    local = path.is_dir()
    if not local and str(name_or_path).startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"{option}={name_or_path}: no such directory; {instead}")
    cache_only = not local and not hub_reachable()
    try:
        with quiet_transformers():
            return load(str(path) if local else name_or_path, local_files_only=cache_only)
    except OSError as err:
        reason = (
            "the Hugging Face Hub is offline or unreachable and it is not in the local cache"
            if cache_only
            else (str(err).strip().splitlines() or ["not found"])[0]
        )
        raise OSError(
            f"{option}={name_or_path}: cannot load a {what} ({reason}); {instead}"
        ) from None
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"{option}={name_or_path} is not a usable {what}: {first}; {instead}"
        ) from None


def refuse_missing_weights(info: dict, option: str, name_or_path: str, what: str) -> None:
    """A checkpoint that left weights uninitialised would run partly random: refuse it."""
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    if missing:
        raise ValueError(
            f"{option}={name_or_path} is not a complete {what}: {len(missing)} weights missing, "
            f"e.g. {sorted(missing)[:2]}; pass {option}=/local/dir holding a whole {what}"
        )
