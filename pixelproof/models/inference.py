"""Run a trained detector: the inference settings every entry point shares (``conf/inference/``,
resolved against the checkpoint), and p(fake) per image, optionally ten-crop averaged."""

import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from pixelproof.evaluation.ten_crop import batch_logits
from pixelproof.models.inference_config import InferenceConfig
from pixelproof.models.loading import TrainedDetector

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def score_loader(
    model: nn.Module,
    batches: Iterable,
    device: torch.device,
    crop_size: int | None = None,
    desc: str = "Scoring",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p(fake) [N], labels [N])`` over a loader of ``(images, labels)`` batches."""
    probs, labels = [], []
    for images, y in tqdm(batches, desc=desc, unit="batch", leave=False):
        logits = batch_logits(model, images.to(device, non_blocking=True), crop_size)
        probs.append(logits.float().sigmoid().cpu())
        labels.append(y)
    return torch.cat(probs), torch.cat(labels)


def inference_copy(model: nn.Module) -> nn.Module | None:
    """A copy of ``model`` (in eval mode) that computes the same logits faster on images, or
    ``None`` when there is nothing to gain (no BatchNorm2d): each BatchNorm2d that follows a
    Conv2d in an ``nn.Sequential`` folded into the convolution's weights, and every weight in
    channels-last order, which oneDNN's convolutions run fastest (give it channels-last
    images). The logits differ from ``model``'s by float rounding only (~1e-6)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training or not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return None
    fast = copy.deepcopy(model)
    for sequence in [m for m in fast.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequence._modules)
        for name, after in zip(names, names[1:]):
            conv, norm = sequence._modules[name], sequence._modules[after]
            # a norm without running statistics normalises with the batch's, even in eval
            foldable = isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats
            if isinstance(conv, nn.Conv2d) and foldable:
                sequence._modules[name] = fuse_conv_bn_eval(conv, norm)
                sequence._modules[after] = nn.Identity()
    return fast.to(memory_format=torch.channels_last)


@dataclass(frozen=True)
class InferenceSettings:
    """How a trained detector is run (``conf/inference/``), resolved against its checkpoint."""

    image_size: int
    resize_mode: str
    threshold: float  # p(fake) >= threshold -> fake
    device: torch.device
    batch_size: int
    num_workers: int
    crop_size: int | None  # ten-crop averaging at this crop size; None: the whole image

    def transform(self):
        """PIL image -> ``[3, S, S]`` tensor in [0, 1], as the detector's evaluation data."""
        from pixelproof.data.transforms import build_transform

        return build_transform(self.image_size, self.resize_mode)


#: ``conf/inference/default.yaml``, for a detector loaded from Python (``Detector.load``)
DEFAULTS = asdict(InferenceConfig())


def inference_config(overrides: Mapping) -> dict:
    """:data:`DEFAULTS` with ``overrides``, checked (:class:`InferenceConfig`); a key that is no
    inference setting raises ``TypeError`` naming the ones there are (a misspelt ``treshold``
    must not pass silently)."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise TypeError(
            f"unknown inference setting(s) {', '.join(unknown)}; the settings are "
            f"{', '.join(DEFAULTS)}"
        )
    return asdict(InferenceConfig(**overrides))


def inference_settings(cfg: Mapping, trained: TrainedDetector) -> InferenceSettings:
    """``cfg`` (an ``inference`` config node) with every ``null`` taken from the checkpoint: the
    image size and resize mode it was trained with, its calibrated threshold. An explicit value
    that differs from the checkpoint's is used and logged."""
    config = InferenceConfig.from_node(cfg)  # a bad value: one line naming inference.<key>
    chosen = {}
    for key, trained_value in (
        ("image_size", trained.image_size),
        ("resize_mode", trained.resize_mode),
        ("threshold", trained.threshold),
    ):
        value = getattr(config, key)
        if value is None:
            value = trained_value
        elif value != trained_value:
            log.warning(
                "inference.%s=%s overrides the checkpoint's %s (%s)", key, value, key, trained_value
            )
        chosen[key] = value
    return InferenceSettings(
        image_size=int(chosen["image_size"]),
        resize_mode=str(chosen["resize_mode"]),
        threshold=float(chosen["threshold"]),
        device=pick_device(config.device),
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        crop_size=config.crop_size if config.ten_crop else None,
    )
