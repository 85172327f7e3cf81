"""The files an entry point writes beside the ``output=`` it is given: one naming rule, used by
the entry points that write them and by the settings check that refuses collisions before a run
starts (:mod:`pixelproof.utils.validation`)."""

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
