"""Score batches of images with a detector: p(fake) per image, optionally ten-crop averaged."""

from collections.abc import Iterable

import torch
from torch import nn
from torchvision.transforms.v2.functional import ten_crop
from tqdm.auto import tqdm


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def batch_logits(model: nn.Module, images: torch.Tensor, crop_size: int | None = None):
    """Logits ``[B]``; with ``crop_size``, the mean logit over the ten crops (four corners,
    centre, and their mirror images), RINE's protocol for Synthbuster, in one forward pass."""
    if crop_size is None:
        return model(images)
    if crop_size > min(images.shape[-2:]):
        raise ValueError(
            f"eval.crop_size={crop_size} is larger than the images ({tuple(images.shape[-2:])})"
        )
    crops = torch.cat(ten_crop(images, [crop_size, crop_size]))  # [10B, 3, c, c], crop-major
    return model(crops).view(10, images.shape[0]).mean(0)


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
