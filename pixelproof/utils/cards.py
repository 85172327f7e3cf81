"""Model cards: one JSON format for everything pixelproof ships or shares.

A card is a flat JSON object beside its weights: what the thing is and how it was made (name,
command, the resolved config it is rebuilt from, seed, metrics), the weights file with its size
and SHA-256 (checked before the weights are loaded), and the versions and date that made it.
The generator zoo's ``weights/<name>.json`` (written by ``pixelproof.train_generator``) and a
shared detector's ``config.json`` (``Detector.save_pretrained``) are both such cards; the
detector folder also renders its card as the Hub's ``README.md``.

A card is data: readers take values from it, never a class to call (what a config may build is
checked by :mod:`pixelproof.models.registry` for detectors and by the zoo's own table for
generators).
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


class CardError(ValueError):
    """A card or the weights it describes that cannot be used (missing, unreadable, damaged)."""


def weights_fields(path: str | Path, dtype: str | None = None) -> dict[str, Any]:
    """The card's weights entries for the file ``path``: its name, dtype (if given), size and
    SHA-256, in the order the zoo's cards hold them."""
    from pixelproof.utils.digests import file_sha256

    path = Path(path)
    fields: dict[str, Any] = {"weights_file": path.name}
    if dtype is not None:
        fields["weights_dtype"] = dtype
    fields["weights_bytes"] = path.stat().st_size
    fields["weights_sha256"] = file_sha256(path)
    return fields


def package_version() -> str:
    """pixelproof's version as pyproject.toml declares it (the one place it is written), or
    ``unknown`` when this checkout runs without having been installed."""
    try:
        return version("pixelproof")
    except PackageNotFoundError:
        return "unknown"


def provenance() -> dict[str, str]:
    """The versions and the date a card records (torch, lightning, python, UTC date)."""
    import lightning
    import torch

    return {
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_card(path: str | Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as indented JSON, whole or not at all."""
    from pixelproof.utils.atomic import write_atomic

    return write_atomic(path, json.dumps(card, indent=2) + "\n")


def read_card(path: str | Path, remedy: str) -> dict[str, Any]:
    """The card in ``path`` (a JSON object); a missing or unreadable file raises
    :class:`CardError` in one line ending with ``remedy`` (what to pass or do instead)."""
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"{path} is missing; {remedy}") from None
    except (OSError, ValueError) as err:
        raise CardError(f"{path} is unreadable ({type(err).__name__}); {remedy}") from None
    if not isinstance(card, dict):
        raise CardError(f"{path} holds a JSON {type(card).__name__}, not a card; {remedy}")
    return card


def check_weights(card: dict[str, Any], folder: str | Path, where: str, remedy: str) -> Path:
    """The weights file ``card`` names, in ``folder``, once its SHA-256 is the card's; a card
    without a plain file name or digest, a missing or damaged file raise :class:`CardError`."""
    from pixelproof.utils.digests import DigestMismatch, check_file

    name, digest = card.get("weights_file"), card.get("weights_sha256")
    # a bare file name: a card never points outside its own folder
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise CardError(f"{where} names no weights file in its folder; {remedy}")
    if not isinstance(digest, str):
        raise CardError(f"{where} records no weights_sha256, so {name} cannot be checked; {remedy}")
    path = Path(folder) / name
    if not path.is_file():
        raise CardError(f"{path} is missing; {remedy}")
    try:
        check_file(path, digest, remedy)
    except DigestMismatch as err:
        raise CardError(str(err)) from None
    return path
