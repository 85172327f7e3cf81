"""How a detector scores a batch: its logits, or their mean over RINE's ten crops."""

import torch
from torch import nn


@torch.inference_mode()
def batch_logits(model: nn.Module, images: torch.Tensor, crop_size: int | None = None):
    """Logits ``[B]``; with ``crop_size``, the mean logit over the ten crops (four corners,
    centre, and their mirror images), RINE's protocol for Synthbuster, in one forward pass."""
    if crop_size is None:
        return model(images)
    from torchvision.transforms.v2.functional import ten_crop  # a second's import, when needed

    if crop_size > min(images.shape[-2:]):
        raise ValueError(
            f"eval.crop_size={crop_size} is larger than the images ({tuple(images.shape[-2:])})"
        )
    crops = torch.cat(ten_crop(images, [crop_size, crop_size]))  # [10B, 3, c, c], crop-major
    return model(crops).view(10, images.shape[0]).mean(0)
