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

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

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
    path = Path(name_or_path).expanduser()
    local = path.is_dir()
    if not local and name_or_path.startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"{OPTION}={name_or_path}: no such directory; {INSTEAD}")
    source = str(path) if local else name_or_path
    # Offline, huggingface_hub retries each file for ~45 s before giving up: probe once instead
    # and, if the Hub is out of reach, read only the local cache (fails at once if not there).
    cache_only = not local and not hub_reachable()
    not_clip = f"{OPTION}={name_or_path} is not a CLIP vision checkpoint"
    try:
        with quiet_transformers():
            vision, info = CLIPVisionModel.from_pretrained(
                source, local_files_only=cache_only, output_loading_info=True
            )
    except OSError as err:
        where = "the Hugging Face Hub is offline or unreachable and it is not in the local cache"
        reason = where if cache_only else str(err).splitlines()[0]
        raise OSError(
            f"{OPTION}={name_or_path}: cannot load a CLIP model ({reason}); {INSTEAD}"
        ) from None
    except (RuntimeError, ValueError) as err:  # e.g. weights of other shapes
        raise ValueError(f"{not_clip}: {str(err).splitlines()[0]}; {INSTEAD}") from None
    # A partly loaded tower would run with random weights: refuse it.
    missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
    if missing:
        raise ValueError(
            f"{not_clip}: {len(missing)} weights missing, e.g. {missing[:2]}; {INSTEAD}"
        )
    mean, std, size = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, vision.config.image_size
    try:
        with quiet_transformers():
            processor = CLIPImageProcessor.from_pretrained(source, local_files_only=cache_only)
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


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick request to the Hub endpoint (none in offline mode, ``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants, get_session

    flags = (os.environ.get(k, "").upper() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if constants.is_offline_mode() or any(f in {"1", "ON", "YES", "TRUE"} for f in flags):
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # any transport error means "not reachable"; the load then says why
        return False
    return True


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' load report (a CLIPModel checkpoint lists every text weight as
    unexpected); missing vision weights are checked explicitly instead."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
