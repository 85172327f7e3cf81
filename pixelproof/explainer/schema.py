"""The JSON schema of the Task-2 output, checked before anything is written.

``[{"index": N, "explanation": {"<artifact name>": "<why>", ...}}, ...]``: every key a name of
the taxonomy, every value a sentence with at least one non-space character, indices unique.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def task2_schema(names: Sequence[str]) -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pixelproof Task-2 artifact explanations",
        "type": "array",
        "items": {
            "type": "object",
            "required": ["index", "explanation"],
            "additionalProperties": False,
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "explanation": {
                    "type": "object",
                    "propertyNames": {"enum": list(names)},
                    "additionalProperties": {"type": "string", "minLength": 1, "pattern": r"\S"},
                },
            },
        },
    }


def validate_task2(records: list[dict], names: Sequence[str]) -> None:
    """Raise ``jsonschema.ValidationError`` (or ``ValueError`` for repeated indices)."""
    import jsonschema

    jsonschema.validate(records, task2_schema(names), cls=jsonschema.Draft202012Validator)
    repeated = [i for i, n in Counter(r["index"] for r in records).items() if n > 1]
    if repeated:
        raise ValueError(f"Task-2 output repeats indices {sorted(repeated)}")
