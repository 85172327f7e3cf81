"""A long robustness run kept generator by generator, so an interrupted one resumes.

APGD on a few thousand images takes hours on a CPU. :func:`score_conditions` can keep, after
each generator, the scores so far and the random state (torch's, its noise generator's and
CUDA's), in one file written whole. Run again with the same file, it takes the finished
generators from it, restores the random state after the last of them and goes on: the scores
are those an uninterrupted run would give. The file holds tensors, numbers and names only (read
with ``weights_only``). It names the conditions, generators, seed and batch limit it was
written for and is refused for others; the model and the images it does not know, so the
caller names the file after them (``pareto.py`` uses the cache key of its rows).
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from pixelproof.utils.atomic import atomic_open


@dataclass
class ScoreProgress:
    """The scores of the generators finished so far, and where to keep them (``path``)."""

    path: Path | None
    plan: dict  # the conditions, generators, seed and batch limit the scores belong to
    finished: list[str] = field(default_factory=list)
    probs: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # {g: {label: p}}
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    random_state: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path | None, plan: dict) -> "ScoreProgress":
        """The progress kept in ``path`` for ``plan``, or none yet (no file, or no ``path``)."""
        if path is None or not Path(path).is_file():
            return cls(path, plan)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for a file that is no pickle
            raise ValueError(f"{path}: not a progress file ({err}); remove it") from err
        if not isinstance(saved, dict) or saved.get("plan") != plan:
            raise ValueError(
                f"{path}: scores of another robustness run (other conditions, generators, seed "
                "or batch limit); remove it to start again"
            )
        kept = ("finished", "probs", "labels", "random_state")
        return cls(Path(path), plan, **{k: saved[k] for k in kept})

    def restore_random_state(self, noise: torch.Generator, cuda: list[int]) -> None:
        """Where the last finished generator left the random numbers (nothing if none)."""
        if not self.finished:
            return
        torch.set_rng_state(self.random_state["torch"])
        noise.set_state(self.random_state["noise"])
        for device, state in zip(cuda, self.random_state["cuda"]):
            torch.cuda.set_rng_state(state, device)

    def finish(
        self,
        generator: str,
        probs: dict[str, torch.Tensor],
        labels: torch.Tensor,
        noise: torch.Generator,
        cuda: list[int],
    ) -> None:
        """Record ``generator`` as scored, and keep everything so far in ``path``."""
        self.finished.append(generator)
        self.probs[generator], self.labels[generator] = probs, labels
        self.random_state = {
            "torch": torch.get_rng_state(),
            "noise": noise.get_state(),
            "cuda": [torch.cuda.get_rng_state(device) for device in cuda],
        }
        if self.path is not None:
            with atomic_open(self.path, "wb") as f:
                torch.save({k: v for k, v in vars(self).items() if k != "path"}, f)
