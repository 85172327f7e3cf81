"""CLIP zero-shot artifact identification (as in the Team 57 report, "Image Classification and
Artifact Detection": ``openai/clip-vit-base-patch32``, softmax threshold 0.05), with a patch-level
location for every kept artifact.

Each active taxonomy class is embedded once (the mean of its prompt templates' normalised text
embeddings, CLIP's prompt ensembling) and cached per (taxonomy, templates); every image batch
then costs one vision pass. Class probabilities are a softmax over the active classes of CLIP's
scaled cosine similarities; a class is kept when its probability reaches ``threshold``, at most
``top_k`` classes (best first) and at least ``min_artifacts`` (the best ones, even under the
threshold, so an image flagged as fake always gets an explanation).

Locations: the vision tower's patch tokens, passed through the same final LayerNorm and
projection as the CLS token, are compared with the class's text embedding (see
``localisation``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from pixelproof.explainer.localisation import Location, locate
from pixelproof.explainer.scorer_settings import ScorerSettings
from pixelproof.explainer.taxonomy import Taxonomy
from pixelproof.utils.hub import load_or_fail, refuse_missing_weights

log = logging.getLogger(__name__)

OPTION = "scorer.name_or_path"
DEFAULT_TEMPLATES = ("an image with {}.", "a synthetic image showing {}.")


@dataclass(frozen=True)
class ScoredArtifact:
    name: str
    score: float  # softmax probability over the active classes
    location: Location


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ArtifactScorer:
    """Args:
    name_or_path: a CLIP checkpoint (Hub id or local ``save_pretrained`` directory) with its
        tokenizer and image processor.
    taxonomy: the classes; ``taxonomy.active`` are scored.
    templates: prompt templates with one ``{}`` for the class name.
    threshold / top_k / min_artifacts: which classes are kept (see the module docstring).
    batch_size: images per vision pass. locate_keep: heatmap level that joins the box.
    """

    def __init__(
        self,
        name_or_path: str,
        taxonomy: Taxonomy,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        threshold: float = 0.05,
        top_k: int = 5,
        min_artifacts: int = 1,
        batch_size: int = 32,
        locate_keep: float = 0.5,
        device: str = "auto",
    ) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        if not templates or any(t.count("{}") != 1 for t in templates):
            raise ValueError(
                f"scorer.templates={list(templates)}: each template needs exactly one '{{}}' "
                "where the artifact name goes, e.g. 'an image with {}.'"
            )
        ScorerSettings(threshold=threshold, top_k=top_k, batch_size=batch_size)
        if min_artifacts < 0 or min_artifacts > top_k:
            raise ValueError(
                f"scorer.top_k={top_k}, scorer.min_artifacts={min_artifacts}: need "
                "0 <= min_artifacts <= top_k"
            )
        self.taxonomy = taxonomy
        self.templates = tuple(templates)
        self.threshold, self.top_k, self.min_artifacts = threshold, top_k, min_artifacts
        self.batch_size, self.locate_keep = batch_size, locate_keep
        self.device = pick_device(device)

        model, info = load_or_fail(
            lambda src, **kw: CLIPModel.from_pretrained(src, output_loading_info=True, **kw),
            name_or_path,
            OPTION,
            "CLIP model",
        )
        refuse_missing_weights(info, OPTION, name_or_path, "CLIP model")
        self.model = model.to(self.device).eval()
        self.tokenizer = load_or_fail(
            AutoTokenizer.from_pretrained, name_or_path, OPTION, "CLIP tokenizer"
        )
        self.image_processor = load_or_fail(
            AutoImageProcessor.from_pretrained, name_or_path, OPTION, "CLIP image processor"
        )
        self.input_size = int(self.model.config.vision_config.image_size)
        self._text_cache: dict[tuple, torch.Tensor] = {}
        self.text_passes = 0  # how many times class embeddings were computed (tests read it)

    @torch.inference_mode()
    def text_embeddings(self) -> torch.Tensor:
        """``[classes, dim]`` normalised embeddings of ``taxonomy.active``, computed once."""
        key = (self.taxonomy.active, self.templates)
        if key not in self._text_cache:
            prompts = [t.format(name) for name in self.taxonomy.active for t in self.templates]
            max_length = self.model.config.text_config.max_position_embeddings
            tokens = self.tokenizer(
                prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(self.device)
            pooled = self.model.text_model(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            ).pooler_output
            per_prompt = torch.nn.functional.normalize(self.model.text_projection(pooled), dim=-1)
            per_class = per_prompt.view(len(self.taxonomy.active), len(self.templates), -1).mean(1)
            self._text_cache[key] = torch.nn.functional.normalize(per_class, dim=-1)
            self.text_passes += 1
        return self._text_cache[key]

    @torch.inference_mode()
    def score(
        self, images: Sequence[Image.Image], sizes: Sequence[tuple[int, int]] | None = None
    ) -> list[list[ScoredArtifact]]:
        """The kept artifacts of each image, best first. ``sizes``: the (width, height) the
        boxes are given in, when ``images`` are reduced copies (default: their own sizes)."""
        sizes = list(sizes) if sizes is not None else [image.size for image in images]
        results: list[list[ScoredArtifact]] = []
        for start in range(0, len(images), self.batch_size):
            end = start + self.batch_size
            results.extend(self._score_batch(images[start:end], sizes[start:end]))
        return results

    def _score_batch(
        self, images: Sequence[Image.Image], sizes: Sequence[tuple[int, int]]
    ) -> list[list[ScoredArtifact]]:
        text = self.text_embeddings()
        size = self.input_size
        # A plain square resize (no centre crop), so patch positions map back onto the image.
        pixels = self.image_processor(
            images=list(images),
            size={"height": size, "width": size},
            do_center_crop=False,
            return_tensors="pt",
        )["pixel_values"].to(self.device, self.model.dtype)
        tokens = self.model.vision_model(pixel_values=pixels).last_hidden_state
        projected = self.model.visual_projection(self.model.vision_model.post_layernorm(tokens))
        projected = torch.nn.functional.normalize(projected, dim=-1)
        image_emb, patch_emb = projected[:, 0], projected[:, 1:]
        probs = (self.model.logit_scale.exp() * image_emb @ text.T).softmax(dim=-1).float().cpu()
        side = int(patch_emb.shape[1] ** 0.5)
        patch_sim = (patch_emb @ text.T).float().cpu()  # [B, patches, classes]

        out = []
        for i, (width, height) in enumerate(sizes):
            order = probs[i].argsort(descending=True).tolist()[: self.top_k]
            keep = [
                c
                for rank, c in enumerate(order)
                if probs[i, c] >= self.threshold or rank < self.min_artifacts
            ]
            out.append(
                [
                    ScoredArtifact(
                        self.taxonomy.active[c],
                        round(float(probs[i, c]), 4),
                        locate(
                            patch_sim[i, :, c].view(side, side),
                            width,
                            height,
                            self.locate_keep,
                        ),
                    )
                    for c in keep
                ]
            )
        return out
