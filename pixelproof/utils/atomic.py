"""Write a file whole or not at all: the one helper every output and checkpoint goes through.

The data goes to a temporary file in the target's own directory (so the final rename never
crosses a file system), is flushed and fsync'd, then ``os.replace``d onto the target, and the
directory entry is fsync'd. A fault at any point (a full disk, a write error, ``kill -9``) leaves
the previous file untouched; an exception also removes the temporary file, and a full disk (or
quota) is reported as one line naming the disk. The file is created with mode 0o666 minus the
umask, like any file ``open()`` creates (``tempfile.mkstemp`` would give 0o600).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """A fresh hidden name beside ``path``: ``.<name>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that lands on ``path`` only when the block ends without an error.

    ``mode`` is ``"w"`` (text; ``kwargs`` go to ``open``, e.g. ``newline=""``) or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_path(path)
        try:  # O_EXCL: never write into a file that someone else created meanwhile
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, err) from err
        raise
    _fsync_dir(path.parent)


def disk_full(path: Path, err: OSError) -> OSError:
    """``err`` (ENOSPC or EDQUOT) as one line naming the disk that ``path`` is on."""
    disk = Path(os.path.abspath(path)).parent
    while not os.path.ismount(disk) and disk != disk.parent:
        disk = disk.parent
    what = "No space left" if err.errno == errno.ENOSPC else "Disk quota exceeded"  # as strerror
    full = OSError(f"{what} on {disk} (writing {path})")
    full.errno = err.errno  # the message stays one line, without "[Errno 28]"
    return full


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return Path(path)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
