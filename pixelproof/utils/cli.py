"""How an entry point ends: its result, or one line on stderr and a non-zero exit status.

Exit statuses: 0 done; 1 an error (one line: the message, the exception's type when it is not a
plain settings or file error); 2 a setting outside what it allows (:mod:`pixelproof.utils.
validation`); 130 stopped by SIGINT (Ctrl-C); 143 stopped by SIGTERM. ``HYDRA_FULL_ERROR=1``
re-raises instead, so Hydra prints the whole traceback. The traceback also goes to the run's log
file (``<run>/<task>.log``), where there is one.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

EXIT_ERROR = 1
EXIT_BAD_SETTING = 2

# errors whose message says it all (the exception's type would only add noise)
_PLAIN = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


class Interrupted(Exception):
    """A run stopped by a signal; ``exit_code`` is 128 + the signal's number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def unwrap(err: BaseException) -> BaseException:
    """The constructor's own error rather than Hydra's ``InstantiationException`` around it."""
    try:
        from hydra.errors import InstantiationException
    except ImportError:  # pragma: no cover
        return err
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def one_line(err: BaseException) -> str:
    """``err`` as one line: its message's first line (with its type unless it is plain)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    message = lines[0] if lines else ""
    if isinstance(err, _PLAIN) and message:  # CheckpointError is a ValueError too
        return message
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def run_entry_point(function: Callable[[Any], Any], cfg: Any, task: str) -> Any:
    """``function(cfg)``, ending the process as the module docstring says when it fails."""
    from pixelproof.utils.validation import ConfigError

    prefix = f"pixelproof.{task}"
    try:
        return function(cfg)
    except Interrupted as stop:
        print(f"{prefix}: {stop}", file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted (SIGINT)", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as raised:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err = unwrap(raised)
        _log_traceback(raised)
        print(f"{prefix}: {one_line(err)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_SETTING if isinstance(err, ConfigError) else EXIT_ERROR)


def _log_traceback(err: BaseException) -> None:
    """The traceback into the log files only (the console gets the one line)."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    record = logging.LogRecord("pixelproof", logging.ERROR, __file__, 0, text, None, None)
    for handler in files:
        handler.handle(record)
