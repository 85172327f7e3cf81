"""The artifact taxonomy: class names in their official order, a description of each, and the
subset a run scores.

Configs live in ``conf/taxonomy/`` (``all70``: the task's 70 names; ``small_image34``: 34 that can
show at 32x32). Annotation files name a class by its name or by its **1-based** position in the full
list (the files of the Team 57 report, "Image Classification and Artifact Detection", say
``"artifacts_class": "22"`` for a landing gear that "appears unsupported", which is class 22,
*Physically impossible structural elements*; 0-based it would be *Inconsistent shadow directions*).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def normalise_name(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: how names are compared."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


@dataclass(frozen=True)
class Taxonomy:
    """``names``: every class, in the official order (the order numeric ids refer to).
    ``descriptions``: name -> what the artifact looks like. ``active``: the classes scored."""

    names: tuple[str, ...]
    descriptions: Mapping[str, str]
    active: tuple[str, ...]

    @classmethod
    def from_config(
        cls, classes: Sequence[Mapping[str, str]], subset: Sequence[str] | None = None, **_: object
    ) -> Taxonomy:
        """``classes``: ``[{name, description}, ...]`` as in ``conf/taxonomy/all70.yaml``;
        ``subset``: names to score (``None``: all). Extra keys (``name``) are ignored."""
        if not classes:
            raise ValueError("taxonomy.classes is empty: pick a taxonomy, e.g. taxonomy=all70")
        names, descriptions = [], {}
        for position, entry in enumerate(classes, start=1):
            name = str(entry.get("name", "")).strip() if isinstance(entry, Mapping) else ""
            if not name:
                raise ValueError(
                    f"taxonomy.classes[{position - 1}] has no name: each entry needs "
                    "'name' and 'description'"
                )
            if name in descriptions:
                raise ValueError(f"taxonomy.classes lists {name!r} twice")
            names.append(name)
            descriptions[name] = str(entry.get("description") or "").strip()
        active = tuple(names)
        if subset is not None:
            by_norm = {normalise_name(n): n for n in names}
            unknown = [s for s in subset if normalise_name(s) not in by_norm]
            if unknown:
                raise ValueError(
                    f"taxonomy.subset names classes that are not in taxonomy.classes: {unknown}"
                )
            active = tuple(dict.fromkeys(by_norm[normalise_name(s)] for s in subset))
            if not active:
                raise ValueError("taxonomy.subset is empty: list class names, or null for all")
        return cls(tuple(names), descriptions, active)

    def resolve(self, label: str | int) -> str | None:
        """The taxonomy name for a class label: a name (any case/punctuation) or a 1-based
        number (``"18"``, ``18``). ``None`` when it is neither."""
        text = str(label).strip()
        if text.isdigit():
            number = int(text)
            return self.names[number - 1] if 1 <= number <= len(self.names) else None
        return {normalise_name(n): n for n in self.names}.get(normalise_name(text))
