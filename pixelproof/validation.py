"""Check a composed config before any work: one line naming the key and the values it allows.

:func:`validate` is called at the start of every entry point (``train``, ``train_generator``,
``evaluate``, ``predict``, ``explain``) and, through :class:`ValidateConfig` (``hydra.callbacks`` in
``conf/hydra/default.yaml``), as soon as Hydra has composed the config: before the run directory
is created, so a bad setting stops the command with one line on stderr, exit status 2, and
nothing written. The values are checked by the settings classes of the components that own them
(:func:`pixelproof.run_settings.check_components`), each built from its node where the config has
one; this module adds the checks on the files an entry point reads and writes. It imports
nothing heavy (no torch): it runs before the entry point's imports.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from pixelproof.explainer.scorer_settings import has_scorer
from pixelproof.run_settings import check_components
from pixelproof.utils.output_paths import (
    explain_details_path,
    input_clash,
    predict_files,
)
from pixelproof.utils.settings import ConfigError

try:  # Hydra's callback base class (hydra-core >= 1.1)
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]

EXIT_BAD_SETTING = 2
_ABSENT = object()

# files and folders an entry point reads: key -> (kind, what to pass)
INPUTS: dict[str, tuple[str, str]] = {
    "ckpt_path": ("checkpoint", "a checkpoint written by pixelproof.train"),
    "detector_ckpt_path": ("checkpoint", "a checkpoint written by pixelproof.train"),
    "input_dir": ("dir", "a folder of images"),
    "predictions": ("file", "a Task-1 JSON written by pixelproof.predict"),
    "robustness.source_ckpt_path": ("checkpoint", "a checkpoint written by pixelproof.train"),
}
# keys an entry point cannot run without (they are ??? in its config)
REQUIRED = ("ckpt_path", "input_dir", "output")


def validate(cfg: DictConfig, task: str | None = None, run_dir: str | None = None) -> None:
    """Raise :class:`ConfigError` (or ``FileNotFoundError`` for a missing input) on the first
    setting of ``cfg`` outside what it allows. ``task`` defaults to ``cfg.task_name``;
    ``run_dir`` (default ``paths.output_dir`` when it resolves) must be creatable and writable."""
    task = task or _get(cfg, "task_name") or ""
    for key in REQUIRED:
        if OmegaConf.is_missing(cfg, key):
            what = INPUTS[key][1] if key in INPUTS else "a file to write"
            raise ConfigError(f"{key} is required: pass {key}=<{what}>")
    check_components(cfg)
    output_key, outputs = _outputs(cfg, task)  # what the run writes, worked out once
    if task == "predict" and outputs:
        _check_distinct(output_key, outputs)
    if task == "explain" and outputs and _same(outputs[0][1], outputs[1][1]):
        raise ConfigError(
            f"details_output={outputs[1][1]} is also output={outputs[0][1]}: the Task-2 file and "
            "its details would overwrite each other; pass another details_output (or null)"
        )
    if task == "explain" and not has_scorer(cfg) and not _get(cfg, "detector_ckpt_path"):
        raise ConfigError(
            "scorer=null and no detector_ckpt_path: nothing would explain the images; pass "
            "scorer.name_or_path=<a CLIP model> or detector_ckpt_path=<ckpt> (or both)"
        )
    for key, (kind, what) in INPUTS.items():
        _check_input(key, _get(cfg, key), kind, what)
    _check_outputs_spare_inputs(cfg, task, output_key, outputs)
    if run_dir is None:
        run_dir = _get(cfg, "paths.output_dir")
    if run_dir not in (_ABSENT, None):
        check_writable_dir(str(run_dir), "the run directory")


def check_writable_dir(path: str, what: str) -> None:
    """``path`` exists as a writable folder or can be created: tried with a temporary folder in
    its nearest existing parent, removed at once (``os.access`` says yes to root anywhere)."""
    target = Path(path).absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {existing} is not a folder")
    try:
        Path(tempfile.mkdtemp(prefix=".pixelproof-check-", dir=existing)).rmdir()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(
            f"{what} {path} cannot be created or written ({existing}: {reason}); "
            "pass hydra.run.dir=<a writable folder> (or PIXELPROOF_ROOT=<folder>)"
        ) from None


def _check_input(key: str, value: Any, kind: str, what: str) -> None:
    if value in (_ABSENT, None) or (key == "robustness.source_ckpt_path" and not value):
        return
    path = Path(str(value))
    if kind in ("file", "checkpoint") and not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"{key}={value} {problem}; pass {what}")
    if kind == "checkpoint" and not zipfile.is_zipfile(path):  # what torch.save writes
        raise ConfigError(
            f"{key}={value} is not a checkpoint: not a file torch.save wrote (a truncated "
            f"checkpoint, or another kind of file); pass {what}"
        )
    if kind == "dir" and not path.is_dir():
        problem = "is a file, not a folder" if path.is_file() else "does not exist"
        raise FileNotFoundError(f"{key}={value} {problem}; pass {what}")


def _outputs(cfg: DictConfig, task: str) -> tuple[str, list[tuple[str, Path]]]:
    """The setting that names what ``task`` writes, and the files it names."""
    output = _get(cfg, "output")
    if task == "predict" and output not in (_ABSENT, None):
        return "output", predict_files(Path(str(output)))
    if task == "explain" and output not in (_ABSENT, None):
        details = explain_details_path(Path(str(output)), _get(cfg, "details_output") or None)
        return "output", [("the Task-2 JSON", Path(str(output))), ("its details", details)]
    if task == "eval" and _get(cfg, "paths.output_dir") not in (_ABSENT, None):
        return "paths.output_dir", [("the run directory", Path(str(cfg.paths.output_dir)))]
    return "", []


def _check_outputs_spare_inputs(
    cfg: DictConfig, task: str, key: str, outputs: list[tuple[str, Path]]
) -> None:
    """Refuse, whatever ``overwrite`` says, an output (``key`` names it) that is a checkpoint or
    file the run reads, or that lies inside a folder it reads (its images, the evaluated
    dataset)."""
    if not outputs:
        return
    files = [
        (k, Path(str(v)))
        for k, (kind, _) in INPUTS.items()
        if kind != "dir" and (v := _get(cfg, k)) not in (_ABSENT, None, "")
    ]
    folders = [
        (k, Path(str(v)))
        for k in ("input_dir", *(["data.root"] if task == "eval" else []))
        if (v := _get(cfg, k)) not in (_ABSENT, None, "")
    ]
    clash = input_clash(outputs, files, folders)
    if clash:
        raise ConfigError(
            f"{key}: {clash}; an output never replaces an input (whatever overwrite says): "
            f"pass another {key}"
        )


def _check_distinct(key: str, files: Iterable[tuple[str, Path]]) -> None:
    seen: dict[str, str] = {}
    for name, path in files:
        where = os.path.abspath(path)
        if where in seen:
            raise ConfigError(
                f"{key}={path}: {seen[where]} and {name} would both be written to {path}; "
                f"pass {key}=<name>.json"
            )
        seen[where] = name


def _same(a: Path, b: Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def _get(cfg: DictConfig, key: str) -> Any:
    """The value at ``key`` (resolved, plain containers), or ``_ABSENT``."""
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except Exception:  # an interpolation that cannot resolve yet (e.g. ${hydra:...})
        return _ABSENT
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


class ValidateConfig(_HydraCallback):
    """Hydra callback: :func:`validate` the composed config before the run directory exists.

    A bad setting prints one line (``<task>: <message>``) on stderr and exits with status 2;
    ``HYDRA_FULL_ERROR=1`` raises it with its traceback instead."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, _get(config, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, _get(config, "hydra.sweep.dir"))

    @staticmethod
    def _check(config: DictConfig, run_dir: Any) -> None:
        try:
            validate(config, run_dir=None if run_dir is _ABSENT else str(run_dir))
        except (ConfigError, FileNotFoundError) as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            task = _get(config, "task_name")
            print(f"pixelproof.{task}: {err}", file=sys.stderr)
            sys.exit(EXIT_BAD_SETTING)
