"""The Task-1 file ``[{"index": N, "prediction": "real"|"fake"}, ...]``: which index each image
gets, the one writer (``predict`` and the demo) and the reader (``explain predictions=``).

Index rules (``task1_index``):

- ``name``: the competition's, N of a file named ``<N>.<ext>`` (duplicates: see
  :mod:`pixelproof.data.decoding`); an image named otherwise is still scored, but has no place in
  the Task-1 file and is listed with the reason;
- ``position``: the image's 0-based place among the inputs (a folder's in natural order, the
  demo's in upload order), so every image gets one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from pixelproof.utils.settings import Rule, choice

#: the ``task1_index`` setting (predict's and the demo's)
TASK1_INDEX = Rule(choice("name", "position"), "name")


def task1_indices(
    paths: Sequence[str | Path | None], rule: str = "name"
) -> tuple[list[int | None], dict[int, str]]:
    """The index of each input by ``rule`` (``None``: not in the Task-1 file) and, by position,
    why those without one have none. ``paths``: every input in order, ``None`` for an image
    given without a file name."""
    from pixelproof.data.decoding import index_by_name

    TASK1_INDEX.require("task1_index", rule)
    if rule == "position":
        return list(range(len(paths))), {}
    named = [p for p in paths if p is not None]
    places = [i for i, p in enumerate(paths) if p is not None]
    found, reasons = index_by_name(named)
    indices: list[int | None] = [None] * len(paths)
    for index, position in found.items():
        indices[places[position]] = index
    why = {places[position]: reason for position, reason in reasons.items()}
    unnamed = "given without a file name, so it has no index"
    why |= {i: unnamed for i, p in enumerate(paths) if p is None}
    return indices, dict(sorted(why.items()))


def task1_text(entries: Iterable[tuple[int, str]]) -> str:
    """``(index, verdict)`` pairs as the Task-1 JSON: sorted by index, one entry per line
    (diff- and grep-friendly, and still one JSON array)."""
    lines = [json.dumps({"index": i, "prediction": v}) for i, v in sorted(entries)]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def read_predictions(path: str | Path) -> dict[int, str]:
    """A Task-1 file -> ``{N: label}`` (``explain predictions=`` explains only the fakes)."""
    path = Path(path).expanduser()
    expected = 'a JSON list of {"index": N, "prediction": "real" or "fake"}'
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"predictions={path}: no such file; pass {expected}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"predictions={path}: not valid JSON ({err}); expected {expected}"
        ) from None
    if not isinstance(records, list):
        raise ValueError(f"predictions={path}: expected {expected}, got a {type(records).__name__}")
    labels: dict[int, str] = {}
    for position, record in enumerate(records):
        index = record.get("index") if isinstance(record, dict) else None
        label = record.get("prediction") if isinstance(record, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"predictions={path}: entry {position} has no integer 'index'")
        if not isinstance(label, str) or label.lower() not in ("real", "fake"):
            raise ValueError(
                f"predictions={path}: entry {position} (index {index}) has prediction "
                f"{label!r}; expected 'real' or 'fake'"
            )
        labels[index] = label.lower()
    return labels
