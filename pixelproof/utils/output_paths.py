"""The files an entry point writes beside the ``output=`` it is given: one naming rule, used by
the entry points that write them and by the settings check that refuses collisions before a run
starts (:mod:`pixelproof.validation`), and the rule that no output replaces an input."""

import os
from collections.abc import Iterable
from pathlib import Path


def predict_files(output: Path) -> list[tuple[str, Path]]:
    """What ``predict output=<file>`` writes: the Task-1 JSON, its CSV and its summary, named."""
    return [
        ("the Task-1 JSON", output),
        ("its CSV companion", output.with_suffix(".csv")),
        ("its summary", output.with_suffix(".summary.json")),
    ]


def explain_details_path(output: Path, details_output: str | None) -> Path:
    """Where ``explain`` writes its details: ``details_output``, else beside ``output``."""
    return Path(details_output) if details_output else output.with_suffix(".details.json")


def input_clash(
    outputs: Iterable[tuple[str, Path]],
    input_files: Iterable[tuple[str, Path]],
    input_dirs: Iterable[tuple[str, Path]],
) -> str | None:
    """Why one of ``outputs`` would replace an input (a file it reads, or anything inside a
    folder it reads), or ``None``. Paths are compared after resolving links, and existing files
    by identity, so a hard link or a symlink to an input counts as that input."""
    outputs = list(outputs)
    for name, path in outputs:
        for key, source in input_files:
            if _same_file(path, source):
                return f"{name} ({path}) is {key}={source}"
        for key, folder in input_dirs:
            if _inside(path, folder):
                return f"{name} ({path}) is inside {key}={folder}"
    return None


def _same_file(a: Path, b: Path) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: Path, folder: Path) -> bool:
    inner, outer = os.path.realpath(path), os.path.realpath(folder)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)
