"""Task-1 predictions, read so that ``explain predictions=...`` explains only the fakes.

(The images themselves are found by :func:`pixelproof.data.decoding.indexed_images`, as for
``predict``.)
"""

from __future__ import annotations

import json
from pathlib import Path


def read_predictions(path: str | Path) -> dict[int, str]:
    """A Task-1 file ``[{"index": N, "prediction": "real"|"fake"}, ...]`` -> ``{N: label}``."""
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
