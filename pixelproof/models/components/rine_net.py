"""RINE as one detector: a frozen CLIP backbone's per-block CLS tokens fed to the RINE head."""

import torch
from torch import nn

from pixelproof.models.components.clip_backbone import CLIPBackbone
from pixelproof.models.components.rine_head import RineHead


class RineNet(nn.Module):
    """``[B,3,H,W]`` images in [0,1] -> ``[B]`` logits (fake = 1), the common detector contract;
    ``logits_and_embedding`` also returns the embedding the contrastive loss trains."""

    def __init__(
        self, backbone: CLIPBackbone, nproj: int = 2, proj_dim: int = 256, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = RineHead(backbone.num_blocks, backbone.hidden_size, nproj, proj_dim, dropout)

    def logits_and_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embedding(images)[0]
