"""RINE's trainable part (Koutlis & Papadopoulos 2024, official ``src/models.py``).

Per-block CLS tokens ``[B, n, d]`` -> Q1 (token-wise projection to ``proj_dim``) -> Trainable
Importance Estimator (a learnable ``[n, proj_dim]`` weight, softmax over the block axis, weighted
sum over blocks) -> Q2 -> a 3-layer head giving one logit. The Q2 output is the embedding the
supervised contrastive loss sees. Layer order, ``Dropout(0.5)`` everywhere and the ``randn``
initialisation of the importance weight follow the official code.
"""

import torch
from torch import nn


def projection(in_dim: int, dim: int, depth: int, dropout: float) -> nn.Sequential:
    """Dropout, then ``depth`` x [Linear, ReLU, Dropout] (RINE's Q1 and Q2)."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    for i in range(depth):
        layers += [nn.Linear(in_dim if i == 0 else dim, dim), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class RineHead(nn.Module):
    """``[B, num_blocks, width]`` CLS tokens -> ``(logits [B], embedding [B, proj_dim])``."""

    def __init__(
        self, num_blocks: int, width: int, nproj: int = 2, proj_dim: int = 256, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if nproj < 1:
            raise ValueError(f"model.nproj={nproj}: RINE needs at least one projection layer")
        self.q1 = projection(width, proj_dim, nproj, dropout)
        # randn, as the official code: the blocks start with distinct, random importances.
        self.importance = nn.Parameter(torch.randn(num_blocks, proj_dim))
        self.q2 = projection(proj_dim, proj_dim, nproj, dropout)
        self.classifier = nn.Sequential(
            nn.Linear(proj_dim, proj_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(proj_dim, proj_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(proj_dim, 1),
        )

    def block_weights(self) -> torch.Tensor:
        """``[num_blocks, proj_dim]``: each feature's importance distribution over the blocks."""
        return self.importance.softmax(dim=0)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens.ndim != 3 or tokens.shape[1] != self.importance.shape[0]:
            raise ValueError(
                f"expected CLS tokens [B, {self.importance.shape[0]}, width], "
                f"got {tuple(tokens.shape)}"
            )
        projected = self.q1(tokens)
        embedding = self.q2((self.block_weights() * projected).sum(dim=1))
        return self.classifier(embedding).squeeze(1), embedding
