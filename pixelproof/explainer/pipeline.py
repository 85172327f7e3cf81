"""CLIP finds and locates the artifacts, the VLM explains them, the parser constrains the answer.

The pipeline of the Team 57 report ("Image Classification and Artifact Detection", not end to end):
CLIP zero-shot over the taxonomy, then Idefics2 prompted with the detected names. Without a VLM
(``vlm=none``) every explanation is the fallback sentence built from the class description, the
location and the CLIP score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from PIL import Image
from tqdm.auto import tqdm

from pixelproof.explainer.artifact_scorer import ArtifactScorer, ScoredArtifact
from pixelproof.explainer.parsing import fallback_explanation, parse_explanations
from pixelproof.explainer.prompt import DEFAULT_INSTRUCTION, build_prompt
from pixelproof.explainer.vlm import VisionLanguageModel


@dataclass
class ExplainStats:
    images: int = 0
    artifacts: int = 0
    from_model: int = 0
    fallbacks: int = 0
    ignored_keys: int = 0
    duplicate_keys: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class ArtifactExplainer:
    def __init__(
        self,
        scorer: ArtifactScorer,
        vlm: VisionLanguageModel | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> None:
        build_prompt([("x", None)], instruction)  # fail now on a bad template, not mid-run
        self.scorer, self.vlm, self.instruction = scorer, vlm, instruction
        self.stats = ExplainStats()

    def prompt(self, artifacts: Sequence[ScoredArtifact]) -> str:
        return build_prompt([(a.name, a.location.region) for a in artifacts], self.instruction)

    def explain(
        self, items: Sequence[tuple[int, Image.Image]], progress: bool = True
    ) -> list[dict]:
        """``[(index, image), ...]`` -> one detail record per image (see ``explain_one``)."""
        records = []
        step = self.scorer.batch_size
        with tqdm(total=len(items), desc="Explaining", unit="img", disable=not progress) as bar:
            for start in range(0, len(items), step):
                chunk = items[start : start + step]
                images = [image for _, image in chunk]
                found = self.scorer.score(images)
                answers: list[str | None] = [None] * len(chunk)
                if self.vlm is not None:
                    answers = self.vlm.generate(images, [self.prompt(f) for f in found])
                for (index, _), artifacts, answer in zip(chunk, found, answers):
                    records.append(self.explain_one(index, artifacts, answer))
                bar.update(len(chunk))
        return records

    def explain_one(
        self, index: int, artifacts: Sequence[ScoredArtifact], answer: str | None
    ) -> dict:
        """The detail record of one image: each artifact with its score, location,
        explanation and whether that came from the model or the fallback."""
        names = [a.name for a in artifacts]
        parsed = parse_explanations(answer, names) if answer is not None else None
        rows = []
        for artifact in artifacts:
            text = parsed.explanations.get(artifact.name) if parsed else None
            source = "model" if text else "fallback"
            if not text:
                text = fallback_explanation(
                    artifact.name,
                    self.scorer.taxonomy.descriptions.get(artifact.name, ""),
                    artifact.location.region,
                    artifact.score,
                )
            rows.append(
                {
                    "name": artifact.name,
                    "score": artifact.score,
                    "location": artifact.location.to_dict(),
                    "explanation": text,
                    "source": source,
                }
            )
        self.stats.images += 1
        self.stats.artifacts += len(rows)
        self.stats.from_model += sum(r["source"] == "model" for r in rows)
        self.stats.fallbacks += sum(r["source"] == "fallback" for r in rows)
        if parsed:
            self.stats.ignored_keys += len(parsed.ignored)
            self.stats.duplicate_keys += len(parsed.duplicates)
        return {
            "index": index,
            "artifacts": rows,
            "model_answer": answer,
            "ignored_keys": parsed.ignored if parsed else [],
            "duplicate_keys": parsed.duplicates if parsed else [],
        }


def unnamed_record(index: int) -> dict:
    """The detail record of an image whose artifacts nothing named (no CLIP scorer): no artifact
    and no answer, so its Task-2 explanation is empty rather than made up."""
    return {
        "index": index,
        "artifacts": [],
        "model_answer": None,
        "ignored_keys": [],
        "duplicate_keys": [],
    }


def task2_record(detail: dict) -> dict:
    """The Task-2 entry of a detail record: ``{"index": N, "explanation": {name: why}}``."""
    return {
        "index": detail["index"],
        "explanation": {a["name"]: a["explanation"] for a in detail["artifacts"]},
    }
