"""A frozen CLIP vision tower (``transformers``) that returns every encoder block's CLS token.

RINE reads the CLS token at the output of each block's pre-MLP LayerNorm (``ln_2`` in OpenAI's
CLIP, ``layer_norm2`` in transformers' ``CLIPEncoderLayer``), collected with forward hooks.

The tower comes from a Hub id or a local ``save_pretrained`` directory, with the normalisation
and input size of that checkpoint's preprocessor config; or, with ``pretrained=False``, it is
built randomly initialised from an architecture preset (no download). A checkpoint that cannot be
reached is a one-line error naming the option to pass instead, never a silent random tower.

Its weights never train and it stays in eval mode (``train()`` is overridden, since Lightning
calls ``model.train()`` every epoch), but it is not run under ``no_grad``: gradients still reach
the input images, which adversarial attacks need.
"""

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from pixelproof.utils.hub import load_or_fail, refuse_missing_weights

log = logging.getLogger(__name__)

OPTION = "model.backbone.name_or_path"
INSTEAD = (
    f"pass {OPTION}=/local/dir (a CLIP checkpoint saved with save_pretrained), or "
    "model.backbone.pretrained=false for an explicitly random tower"
)


class CLIPBackbone(nn.Module):
    """Images ``[B,3,H,W]`` in [0,1] -> CLS tokens ``[B, num_blocks, hidden_size]``.

    Args:
        name_or_path: Hub id (``wkcn/TinyCLIP-ViT-8M-16-Text-3M-YFCC15M``) or local directory.
        pretrained: load ``name_or_path``; false builds a random tower from ``architecture``.
        architecture: ``CLIPVisionConfig`` fields for ``pretrained=False``.
        input_size: side the ViT runs at; ``None`` = the checkpoint's (224 for CLIP). Other
            sizes (multiples of the patch size) interpolate the position embeddings.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        pretrained: bool = True,
        architecture: Mapping[str, Any] | None = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.pretrained = pretrained
        if pretrained:
            if not name_or_path:
                raise ValueError(f"{OPTION} is empty; {INSTEAD}")
            self.vision, mean, std, native = load_pretrained(name_or_path)
        else:
            if not architecture:
                raise ValueError(
                    "model.backbone.pretrained=false needs model.backbone.architecture "
                    "(CLIPVisionConfig fields); pick a preset: model/backbone=tinyclip_8m16"
                )
            self.vision = CLIPVisionModel(CLIPVisionConfig(**dict(architecture)))
            mean, std, native = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, self.vision.config.image_size
        self.vision.requires_grad_(False)
        self.vision.eval()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.patch_size: int = self.vision.config.patch_size
        self.hidden_size: int = self.vision.config.hidden_size
        self.input_size = native if input_size is None else input_size

        blocks = [m for m in self.vision.modules() if isinstance(m, CLIPEncoderLayer)]
        self.num_blocks = len(blocks)
        self._cls: list[torch.Tensor] = []
        for block in blocks:
            block.layer_norm2.register_forward_hook(self._keep_cls)

    @property
    def input_size(self) -> int:
        return self._input_size

    @input_size.setter
    def input_size(self, size: int) -> None:
        p = self.patch_size
        if not (isinstance(size, int) and not isinstance(size, bool) and size > 0) or size % p:
            raise ValueError(
                f"model.input_size={size!r} must be a positive multiple of the backbone's patch "
                f"size {p}: pass e.g. {p * max(1, 32 // p)} or {self.vision.config.image_size} "
                "(the checkpoint's own size), or null for the latter"
            )
        self._input_size = size

    def _keep_cls(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self._cls.append(output[:, 0])

    def train(self, mode: bool = True) -> "CLIPBackbone":
        super().train(mode)
        self.vision.eval()  # frozen: no dropout, whatever Lightning asks of the parent
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B,3,H,W] in [0,1], got shape {tuple(images.shape)}")
        # Normalising before resizing is exact (both are linear, resize weights sum to 1) and
        # touches 32x32 pixels instead of 224x224.
        x = (images - self.mean) / self.std
        size = self.input_size
        if x.shape[-2:] != (size, size):
            shrink = x.shape[-1] > size or x.shape[-2] > size
            x = F.interpolate(x, (size, size), mode="bilinear", antialias=shrink)
        self._cls = []
        try:
            self.vision(
                pixel_values=x,
                interpolate_pos_encoding=size != self.vision.config.image_size,
            )
            return torch.stack(self._cls, dim=1)
        finally:
            self._cls = []


def load_pretrained(name_or_path: str) -> tuple[CLIPVisionModel, list, list, int]:
    """The vision tower of a CLIP checkpoint, its normalisation mean/std and input size."""
    what = "CLIP vision checkpoint"
    vision, info = load_or_fail(
        partial(CLIPVisionModel.from_pretrained, output_loading_info=True),
        name_or_path,
        OPTION,
        what,
        INSTEAD,
    )
    refuse_missing_weights(info, OPTION, name_or_path, what, INSTEAD)
    mean, std, size = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, vision.config.image_size
    try:
        processor = load_or_fail(CLIPImageProcessor.from_pretrained, name_or_path, OPTION, what)
        mean, std = processor.image_mean, processor.image_std
        crop = processor.crop_size if processor.do_center_crop else processor.size
        size = crop.get("height") or crop.get("shortest_edge") or size
    except OSError:
        log.warning(
            "%s=%s has no preprocessor config: using OpenAI CLIP's mean/std and size %d",
            OPTION,
            name_or_path,
            size,
        )
    return vision, list(mean), list(std), int(size)
