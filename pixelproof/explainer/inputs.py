"""The images to explain (``<dir>/<N>.<ext>``, N the image's index) and Task-1 predictions.

Files whose stem is not a non-negative integer have no index to report under: they are skipped
with one logged warning that lists them. Two files with one index (``7.png`` and ``7.jpg``) are
an error, since the output could not say which one it explains.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def indexed_images(input_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(index, path), ...]`` sorted by index."""
    root = Path(input_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"input_dir={input_dir}: no such directory; pass a folder of images named <index>.png"
        )
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    by_index: dict[int, Path] = {}
    unnamed = []
    for path in files:
        if not path.stem.isdigit():
            unnamed.append(path.name)
            continue
        index = int(path.stem)
        if index in by_index:
            raise ValueError(
                f"input_dir={input_dir}: {by_index[index].name} and {path.name} both have index "
                f"{index}; keep one file per index"
            )
        by_index[index] = path
    if unnamed:
        listed = ", ".join(unnamed[:5]) + (
            f" and {len(unnamed) - 5} more" if len(unnamed) > 5 else ""
        )
        log.warning(
            "Skipped %d image files whose name is not an index (<N>.png): %s", len(unnamed), listed
        )
    if not by_index:
        raise FileNotFoundError(
            f"input_dir={input_dir}: no image files named <index>.<ext> "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}) found"
        )
    return sorted(by_index.items())


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
