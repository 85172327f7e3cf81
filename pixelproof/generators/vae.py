"""Convolutional VAE (Kingma & Welling, ICLR 2014), sampled by decoding the prior N(0, I).

The encoder halves 32 -> 16 -> 8 -> 4 with stride-2 convolutions and gives the mean and log
variance of a diagonal Gaussian posterior over ``z_dim`` latents; the decoder maps ``z`` to a
4x4 grid and doubles it back to 32x32 by nearest-neighbour resize + 3x3 convolution (not
transposed convolutions: the zoo's up-samplers differ on purpose). The likelihood is a
Gaussian with one learned scale per colour channel. The KL term is warmed up linearly from 0
to ``beta`` over ``kl_warmup_steps`` (Bowman et al. 2016) so the posterior does not collapse
before the decoder learns anything. A sample is the decoder's mean for ``z ~ N(0, I)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from pixelproof.generators.common import GenerativeModel


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    kernel = 4 if stride == 2 else 3
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU()
    )


class Encoder(nn.Module):
    """``[B, 3, 32, 32]`` -> posterior ``(mean, logvar)``, each ``[B, z_dim]``."""

    def __init__(self, z_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            conv_block(3, width),
            conv_block(width, width, 2),  # 16
            conv_block(width, 2 * width, 2),  # 8
            conv_block(2 * width, 4 * width, 2),  # 4
            nn.Flatten(),
            nn.Linear(4 * width * 16, 2 * z_dim),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 8)


class Decoder(nn.Module):
    """``z [B, z_dim]`` -> the likelihood's mean ``[B, 3, 32, 32]``; ``log_scale`` per channel."""

    def __init__(self, z_dim: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Sequential(nn.Linear(z_dim, 4 * width * 16), nn.SiLU())
        up = lambda cin, cout: nn.Sequential(nn.Upsample(scale_factor=2), conv_block(cin, cout))
        self.net = nn.Sequential(
            up(4 * width, 2 * width),  # 8
            up(2 * width, width),  # 16
            up(width, width),  # 32
            nn.Conv2d(width, 3, 3, 1, 1),
        )
        self.log_scale = nn.Parameter(torch.full((3,), math.log(0.3)))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.project(z).view(-1, 4 * self.width, 4, 4))


class VAE(GenerativeModel):
    """Convolutional VAE with a learned-scale Gaussian likelihood (see the module docstring).

    Losses are per image in nats: ``nll`` (reconstruction), ``kl``, ``elbo`` = their sum (the
    negative ELBO; ``loss`` is the same with the KL warm-up weight).
    """

    family = "vae"
    sampling_modules = ("decoder",)

    def __init__(
        self,
        z_dim: int = 16,
        width: int = 32,
        beta: float = 1.0,
        kl_warmup_steps: int = 1000,
        min_log_scale: float = math.log(1 / 255),
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder(z_dim, width)
        self.decoder = Decoder(z_dim, width)

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(self.hparams.z_dim, dtype=np.float32)

    def decode(self, noise: Tensor) -> Tensor:
        return self.decoder(noise).clamp(-1, 1)

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.encoder(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = self.decoder(z)
        log_scale = self.decoder.log_scale.clamp(min=self.hparams.min_log_scale)[
            None, :, None, None
        ]
        nll = 0.5 * ((x - recon) / log_scale.exp()) ** 2 + log_scale + 0.5 * math.log(2 * math.pi)
        nll = nll.flatten(1).sum(1).mean()
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1).mean()
        return {"nll": nll, "kl": kl, "elbo": nll + kl}

    def kl_weight(self) -> float:
        warmup = self.hparams.kl_warmup_steps
        ramp = min(1.0, (self.global_step + 1) / warmup) if warmup > 0 else 1.0
        return self.hparams.beta * ramp

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        parts = self.losses(batch)
        loss = parts["nll"] + self.kl_weight() * parts["kl"]
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=True)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
