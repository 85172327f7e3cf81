"""SHA-256 digests of files and arrays: how shipped weights, sample caches and built datasets
are checked before they are used, so a damaged file stops a run instead of training it on
black images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

_CHUNK = 1 << 20


class DigestMismatch(ValueError):
    """A file whose bytes are not the ones recorded for it (damaged, truncated or replaced)."""


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """The hex SHA-256 of an array's dtype, shape and C-ordered bytes."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def check_file(path: str | Path, expected: str, remedy: str) -> None:
    """Raise :class:`DigestMismatch` (one line: the file and ``remedy``) unless ``path``'s
    SHA-256 is ``expected``."""
    if file_sha256(path) != expected:
        raise DigestMismatch(
            f"{path} is damaged or was replaced (its SHA-256 is not the recorded one); {remedy}"
        )
