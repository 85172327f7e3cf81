"""``from_pretrained`` by Hub id or local directory, failing in one line when it cannot.

The Hub is probed once (offline, huggingface_hub retries every file for ~45 s); when it is out of
reach only the local cache is read. So an offline machine gets an error at once, naming the
option that takes a local directory, and never a randomly initialised model. Every pretrained
thing pixelproof loads (RINE's CLIP tower, the explainer's CLIP scorer and VLM) comes through
:func:`load_or_fail`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick request to the Hub endpoint (none in offline mode, ``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants, get_session

    flags = (os.environ.get(k, "").upper() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if constants.is_offline_mode() or any(f in {"1", "ON", "YES", "TRUE"} for f in flags):
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # any transport error means "not reachable"; the load then says why
        return False
    return True


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' load report (a CLIPModel checkpoint lists every text weight as
    unexpected); missing weights are checked explicitly by :func:`refuse_missing_weights`."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_or_fail(
    load: Callable[..., T], name_or_path: str, option: str, what: str, instead: str | None = None
) -> T:
    """``load(source, local_files_only=...)`` for ``name_or_path``; ``option`` is the config key
    that holds it (for the error), ``what`` the kind of checkpoint ("CLIP model", ...),
    ``instead`` what the error tells the user to pass (default: a local directory)."""
    instead = instead or f"pass {option}=/local/dir (a {what} saved with save_pretrained)"
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
        raise ValueError(f"{option}={name_or_path} is not a {what}: {first}; {instead}") from None


def refuse_missing_weights(
    info: dict, option: str, name_or_path: str, what: str, instead: str | None = None
) -> None:
    """A checkpoint that left weights uninitialised would run partly random: refuse it."""
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    if missing:
        instead = instead or f"pass {option}=/local/dir holding a whole {what}"
        raise ValueError(
            f"{option}={name_or_path} is not a complete {what}: {len(missing)} weights missing, "
            f"e.g. {sorted(missing)[:2]}; {instead}"
        )
