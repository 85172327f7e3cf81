"""Optional parts of pixelproof and the extra that installs each (``pyproject.toml``): a missing
one stops an entry point with one line naming ``pip install 'pixelproof[<extra>]'``."""

from __future__ import annotations

import importlib.util


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def missing_modules(*modules: str) -> list[str]:
    """The ``modules`` that cannot be imported here (found by name, none imported)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken parent package, or a blocked module
            found = False
        if not found:
            missing.append(name)
    return missing


def require(extra: str, *modules: str, what: str, otherwise: str = "") -> None:
    """Raise :class:`MissingExtra` unless every one of ``modules`` is installed: ``what`` needs
    them, ``pip install 'pixelproof[<extra>]'`` installs them (``otherwise``: another way)."""
    missing = missing_modules(*modules)
    if missing:
        tail = f" ({otherwise})" if otherwise else ""
        raise MissingExtra(
            f"{what} needs {', '.join(missing)}: pip install 'pixelproof[{extra}]'{tail}"
        )
