"""How an entry point ends: its result, or one line on stderr and a non-zero exit status.

Exit statuses: 0 done; 1 an error (one line: the message, the exception's type when it is not a
plain settings or file error); 2 a setting outside what it allows (:mod:`pixelproof.utils.
validation`); 130 stopped by SIGINT (Ctrl-C); 143 stopped by SIGTERM. ``HYDRA_FULL_ERROR=1``
re-raises instead, so Hydra prints the whole traceback. The traceback also goes to the run's log
file (``<run>/<task>.log``), where there is one.

In a sweep (``-m``) a failed job prints its line and returns ``None`` instead of exiting, so the
sweep runs every job (an Optuna trial that returns no number is a failed trial); at the end
:class:`SweepReport` lists the failed jobs and exits with the first one's status. A signal still
ends the whole sweep. A job that runs in a process of its own (``hydra/launcher=slurm``) raises
its error instead, for its launcher to report.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from pixelproof.utils.extras import MissingExtra

try:  # Hydra's callback base class (hydra-core >= 1.1)
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]

EXIT_ERROR = 1
EXIT_BAD_SETTING = 2

# errors whose message says it all (the exception's type would only add noise)
_PLAIN = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
    MissingExtra,
)


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
    """``function(cfg)``, ending the process as the module docstring says when it fails (in a
    sweep: ``None``, the job recorded as failed)."""
    from pixelproof.utils.settings import ConfigError

    prefix = f"pixelproof.{task}"
    job = _sweep_job()
    try:
        result = function(cfg)
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
        line = one_line(err)
        status = EXIT_BAD_SETTING if isinstance(err, ConfigError) else EXIT_ERROR
        if job is None:
            print(f"{prefix}: {line}", file=sys.stderr, flush=True)
            sys.exit(status)
        print(f"{prefix}: {job}: {line}", file=sys.stderr, flush=True)
        if not _SWEEP.started:  # a job in a process of its own (SLURM): its launcher reports it
            raise
        _SWEEP.jobs.append((job, line, status))
        return None
    if job is not None:
        _SWEEP.jobs.append((job, None, 0))
    return result


class _Sweep:
    """The jobs of the sweep this process runs: ``(job, error line or None, exit status)``."""

    def __init__(self) -> None:
        self.started = False  # whether this process started the sweep (and reports on it)
        self.jobs: list[tuple[str, str | None, int]] = []
        self.shared: set[str] = set()  # the keys every job sets to the same value


_SWEEP = _Sweep()


def _sweep_job() -> str | None:
    """``job <n> (<its own overrides>)`` when this runs as a job of a sweep, else ``None``."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover
        return None
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra_cfg = HydraConfig.get()
    own = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0] not in _SWEEP.shared]
    return f"job {hydra_cfg.job.num} ({' '.join(own)})" if own else f"job {hydra_cfg.job.num}"


class SweepReport(_HydraCallback):
    """Hydra callback: after a sweep, one line per failed job on stderr and a non-zero exit."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        _SWEEP.started = True
        _SWEEP.jobs.clear()
        _SWEEP.shared = {o.get_key_element() for o in overrides if not o.is_sweep_override()}

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        _SWEEP.started = False
        failed = [(job, line, status) for job, line, status in _SWEEP.jobs if line is not None]
        if not failed:
            return
        lines = [f"pixelproof.{config.task_name}: {len(failed)} of {len(_SWEEP.jobs)} jobs failed:"]
        lines += [f"  {job}: {line}" for job, line, _ in failed]
        print("\n".join(lines), file=sys.stderr, flush=True)
        sys.exit(failed[0][2])


def _log_traceback(err: BaseException) -> None:
    """The traceback into the log files only (the console gets the one line)."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    record = logging.LogRecord("pixelproof", logging.ERROR, __file__, 0, text, None, None)
    for handler in files:
        handler.handle(record)
