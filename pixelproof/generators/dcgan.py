"""DCGAN (Radford, Metz & Chintala, ICLR 2016): transposed-convolution generator, conv critic.

The generator up-samples 1 -> 4 -> 8 -> 16 -> 32 with stride-2 4x4 transposed convolutions,
BatchNorm and ReLU, and ends in tanh; the discriminator mirrors it with stride-2 convolutions
and LeakyReLU, normalised by BatchNorm as in the paper or by spectral norm (Miyato et al. 2018;
with this small critic and a few thousand steps it left the samples tiled with one motif).
Both train with Adam (betas 0.5, 0.999) in Lightning's manual optimisation: one discriminator
step then one generator step per batch, so ``trainer.global_step`` counts two per batch.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from pixelproof.generators.common import GenerativeModel


class Generator(nn.Module):
    """``z [B, z_dim]`` -> ``[B, 3, 32, 32]`` in [-1, 1]; widths ``4w, 2w, w`` at 4, 8, 16."""

    def __init__(self, z_dim: int = 100, width: int = 64) -> None:
        super().__init__()
        chans = [z_dim, 4 * width, 2 * width, width]
        layers: list[nn.Module] = []
        for k, (cin, cout) in enumerate(zip(chans, chans[1:])):
            stride, pad = (1, 0) if k == 0 else (2, 1)  # 1 -> 4, then doubling
            layers += [
                nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """``[B, 3, 32, 32]`` -> ``[B]`` logits; widths ``w, 2w, 4w`` at 16, 8, 4."""

    def __init__(self, width: int = 64, norm: Literal["batch", "spectral"] = "batch") -> None:
        super().__init__()
        sn = spectral_norm if norm == "spectral" else (lambda m: m)
        chans = [3, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for k, (cin, cout) in enumerate(zip(chans, chans[1:])):
            layers.append(sn(nn.Conv2d(cin, cout, 4, 2, 1)))
            if norm == "batch" and k > 0:  # the paper leaves the first layer unnormalised
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(sn(nn.Conv2d(4 * width, 1, 4, 1, 0)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: N(0, 0.02) weights, BatchNorm scales N(1, 0.02)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGAN(GenerativeModel):
    """DCGAN with the non-saturating (``ns``) or hinge loss (see the module docstring)."""

    family = "gan"
    sampling_modules = ("generator",)

    def __init__(
        self,
        z_dim: int = 100,
        g_width: int = 64,
        d_width: int = 64,
        d_norm: Literal["batch", "spectral"] = "batch",
        loss: Literal["ns", "hinge"] = "ns",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(z_dim, g_width)
        self.discriminator = Discriminator(d_width, d_norm)
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(self.hparams.z_dim, dtype=np.float32)

    def decode(self, noise: Tensor) -> Tensor:
        return self.generator(noise)

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        if self.hparams.loss == "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return -fake.mean() if self.hparams.loss == "hinge" else F.softplus(-fake).mean()

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        z = torch.randn(batch.shape[0], self.hparams.z_dim, device=batch.device)
        fake = self.generator(z)

        d_real, d_fake = self.discriminator(batch), self.discriminator(fake.detach())
        loss_d = self.d_loss(d_real, d_fake)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        loss_g = self.g_loss(self.discriminator(fake))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()

        self.log_dict(
            {
                "train/loss_d": loss_d,
                "train/loss_g": loss_g,
                "train/d_real": d_real.mean(),
                "train/d_fake": d_fake.mean(),
            },
            prog_bar=True,
        )

    def configure_optimizers(self):
        hp = self.hparams
        return [
            torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=tuple(hp.betas)),
            torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=tuple(hp.betas)),
        ]
