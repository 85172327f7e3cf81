"""Latent diffusion (Rombach et al., CVPR 2022, the design of Stable Diffusion) at 32x32: a DDPM
on the latents of a KL-regularised autoencoder, whose decoder makes the pixels.

The autoencoder maps ``[3, 32, 32]`` to a ``[z_channels, 32 / f, 32 / f]`` Gaussian posterior,
``f = 2 ** (len(ae_channels) - 1)`` (4 by default: an 8x8x4 latent), with residual blocks
(GroupNorm, SiLU), stride-2 convolutions down and a mid block with self-attention; the decoder
mirrors it and up-samples by nearest-neighbour resize + 3x3 convolution (``upsampling:
nearest``, Stable Diffusion's) or by 4x4 stride-2 transposed convolution (``tconv``): the
decoder's up-sampler is where a decoder-made image's trace lives, so the zoo ships one of each.
It trains as Stable Diffusion's first stage does: an L1 reconstruction summed over the pixels,
a KL term with a small weight (``kl_weight``, 1e-6 there) that only keeps the latent's scale in
check, and, from ``disc_start`` on, a PatchGAN discriminator (Isola et al. 2017) with the hinge
loss, weighted adaptively by the ratio of the reconstruction's and the adversarial loss's
gradient norms at the decoder's last layer (Esser et al. 2021), times ``disc_weight``. The
adversarial term is what makes decoded images sharp instead of blurred averages. No perceptual
(LPIPS) term: it needs pretrained VGG weights, which the zoo does without. Unlike Stable
Diffusion's constant rate, the autoencoder's learning rate anneals (cosine, ``ae_lr`` to
``ae_lr_final``) so that a stage of a few thousand batches ends settled: in reconstruction-only
runs of ~2,000 batches the constant rate's held-out L1 jumped between 0.074 and 0.086 over the
last 450 batches, while the annealed one fell steadily from 0.078 to 0.075.

The second stage is an epsilon-prediction DDPM on the latents normalised per channel to zero
mean and unit standard deviation (measured on the first batch of the stage; Stable Diffusion
scales by one number, but here a channel's mean sat up to 1.6 of its standard deviations from
zero), with the U-Net of :mod:`pixelproof.generators.diffusion` at the latent's size and Stable
Diffusion's ``scaled_linear`` schedule (alpha_bar from 0.9992 down to 0.0047). The pixel DDPM's
cosine schedule (``schedule: cosine``) ends at alpha_bar ~ 2e-9, where the clean latent
predicted from epsilon carries the network's error times ~20,000: pixels can be clipped to
[-1, 1] there, latents have no such range, and on the same autoencoder the cosine model's samples
came out oversaturated even with predictions clipped to the largest latent of a batch (15 % of
the values at 0 or 255 with 50 DDIM steps, 2 % with 200; the photographs' crops 0.3 %;
scaled-linear, unclipped, 4 % at 20, 50 or 200 steps). It is sampled by DDIM
(eta = 0) with an exponential moving average of the U-Net's weights, a module of its own
(``unet_ema``) rather than Lightning's whole-module averaging, since the autoencoder trains first.

One ``LightningModule`` trains both stages in manual optimisation, one optimiser step per batch:
batches ``[0, ae_steps)`` train the autoencoder and the discriminator (one Adam over both, each
gradient reaching only its own network), later ones the U-Net with the autoencoder frozen, so
``trainer.max_steps - ae_steps`` is the diffusion budget. Sampling needs the post-quantisation
convolution, the decoder, the averaged U-Net and the latent statistics; the encoder and the
discriminator are training-only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelproof.generators.common import IMAGE_SIZE, GenerativeModel
from pixelproof.generators.dcgan import dcgan_init
from pixelproof.generators.diffusion import Attention, UNet, beta_schedule, norm

log = logging.getLogger(__name__)


def latent_beta_schedule(kind: Literal["scaled_linear", "linear", "cosine"], steps: int) -> Tensor:
    """Stable Diffusion's ``scaled_linear`` betas (linear in sqrt(beta) from 0.00085 to 0.012 for
    T = 1000: alpha_bar ends at 0.0047, not ~0), or the pixel DDPM's schedules."""
    if kind == "scaled_linear":
        scale = 1000 / steps
        return torch.linspace((scale * 0.00085) ** 0.5, (scale * 0.012) ** 0.5, steps).double() ** 2
    return beta_schedule(kind, steps)


class ResnetBlock(nn.Module):
    """The autoencoder's residual block: (GroupNorm, SiLU, 3x3 convolution) twice, no time."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, 1, 1),
            norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, 1, 1),
        )  # fmt: skip
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.net(x)


def upsampler(cin: int, cout: int, mode: Literal["nearest", "tconv"]) -> nn.Module:
    """Doubling the resolution: nearest resize + 3x3 convolution, or a 4x4 stride-2 transposed
    convolution (whose uneven kernel overlap leaves the checkerboard GANs are known by)."""
    if mode == "nearest":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1)
        )
    if mode == "tconv":
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1)
    raise ValueError(f"upsampling={mode!r}: choose nearest or tconv")


class Encoder(nn.Module):
    """``[B, 3, 32, 32]`` -> ``[B, 2 * z_channels, 32 / f, 32 / f]`` (posterior mean, log var)."""

    def __init__(self, channels: Sequence[int], blocks: int, z_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, 1, 1)]
        cin = channels[0]
        for k, c in enumerate(channels):
            for _ in range(blocks):
                layers.append(ResnetBlock(cin, c))
                cin = c
            if k < len(channels) - 1:
                layers.append(nn.Conv2d(c, c, 3, 2, 1))
        layers += [ResnetBlock(cin, cin), Attention(cin), ResnetBlock(cin, cin)]
        layers += [norm(cin), nn.SiLU(), nn.Conv2d(cin, 2 * z_channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """``[B, z_channels, 32 / f, 32 / f]`` -> ``[B, 3, 32, 32]``: a mid block, then per
    resolution ``blocks`` residual blocks and an up-sampler to the next (narrower) width."""

    def __init__(
        self,
        channels: Sequence[int],
        blocks: int,
        z_channels: int,
        upsampling: Literal["nearest", "tconv"],
    ) -> None:
        super().__init__()
        top = channels[-1]
        layers: list[nn.Module] = [nn.Conv2d(z_channels, top, 3, 1, 1)]
        layers += [ResnetBlock(top, top), Attention(top), ResnetBlock(top, top)]
        for k in reversed(range(len(channels))):
            layers += [ResnetBlock(channels[k], channels[k]) for _ in range(blocks)]
            if k > 0:
                layers.append(upsampler(channels[k], channels[k - 1], upsampling))
        layers += [norm(channels[0]), nn.SiLU(), nn.Conv2d(channels[0], 3, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    @property
    def last_layer(self) -> Tensor:
        return self.net[-1].weight

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN: one real/fake logit per overlapping patch. ``layers`` stride-2
    convolutions, then two stride-1 4x4 ones; with one, a 32x32 image gives 14x14 logits of
    16x16-pixel patches. BatchNorm after every convolution but the first and the last."""

    def __init__(self, width: int = 32, layers: int = 1) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for stride in [2] * (layers - 1) + [1]:
            mods += [nn.Conv2d(c, 2 * c, 4, stride, 1, bias=False), nn.BatchNorm2d(2 * c)]
            mods.append(nn.LeakyReLU(0.2))
            c *= 2
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LatentStats(nn.Module):
    """The per-channel ``shift`` and ``scale`` that give the latents zero mean and unit standard
    deviation: what the diffusion model sees, and what sampling undoes before decoding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(channels, 1, 1))
        self.register_buffer("scale", torch.ones(channels, 1, 1))

    def measure(self, z: Tensor) -> None:
        """Set the statistics from a batch of raw latents ``z``."""
        self.shift.copy_(z.mean((0, 2, 3))[:, None, None])
        self.scale.copy_(1 / z.std((0, 2, 3))[:, None, None])

    def normalise(self, z: Tensor) -> Tensor:
        return (z - self.shift) * self.scale

    def denormalise(self, z: Tensor) -> Tensor:
        return z / self.scale + self.shift


class LatentDiffusion(GenerativeModel):
    """A KL autoencoder + a DDPM on its latents (see the module docstring)."""

    family = "latent_diffusion"
    sampling_modules = ("post_quant_conv", "decoder", "unet_ema", "latent_stats")

    def __init__(
        self,
        ae_channels: Sequence[int] = (16, 32, 64),
        ae_blocks: int = 1,
        z_channels: int = 4,
        upsampling: Literal["nearest", "tconv"] = "nearest",
        kl_weight: float = 1e-6,
        disc_width: int = 32,
        disc_layers: int = 1,
        disc_start: int = 1400,
        disc_weight: float = 0.5,
        ae_lr: float = 1e-3,
        ae_lr_final: float = 1e-4,
        ae_betas: Sequence[float] = (0.5, 0.9),
        ae_steps: int = 2400,
        width: int = 48,
        channel_mults: Sequence[int] = (1, 2),
        attn_resolutions: Sequence[int] = (4,),
        schedule: Literal["scaled_linear", "linear", "cosine"] = "scaled_linear",
        timesteps: int = 1000,
        sample_steps: int = 50,
        lr: float = 5e-4,
        warmup_steps: int = 100,
        ema_decay: float = 0.999,
        ema_start: int = 200,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.latent_size = IMAGE_SIZE // 2 ** (len(ae_channels) - 1)
        self.encoder = Encoder(ae_channels, ae_blocks, z_channels)
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * z_channels, 1)
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, 1)
        self.decoder = Decoder(ae_channels, ae_blocks, z_channels, upsampling)
        self.discriminator = PatchDiscriminator(disc_width, disc_layers)
        unet_args = (width, tuple(channel_mults), tuple(attn_resolutions))
        self.unet = UNet(*unet_args, in_channels=z_channels, size=self.latent_size)
        self.unet_ema = UNet(*unet_args, in_channels=z_channels, size=self.latent_size)
        self.unet_ema.load_state_dict(self.unet.state_dict())
        self.unet_ema.requires_grad_(False)
        self.latent_stats = LatentStats(z_channels)
        alpha_bar = torch.cumprod(1 - latent_beta_schedule(schedule, timesteps), 0)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    # -- sampling ---------------------------------------------------------------------------

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        shape = (self.hparams.z_channels, self.latent_size, self.latent_size)
        return rng.standard_normal(shape, dtype=np.float32)

    def ddim_timesteps(self) -> list[int]:
        steps = min(self.hparams.sample_steps, self.hparams.timesteps)
        ts = np.linspace(0, self.hparams.timesteps - 1, steps).round().astype(int)
        return sorted(set(ts.tolist()), reverse=True)

    def decode_latents(self, z: Tensor) -> Tensor:
        """Normalised latents -> images in [-1, 1]."""
        z = self.latent_stats.denormalise(z)
        return self.decoder(self.post_quant_conv(z)).clamp(-1, 1)

    def decode(self, noise: Tensor) -> Tensor:
        z, ts = noise, self.ddim_timesteps()
        for t, t_prev in zip(ts, ts[1:] + [-1]):
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[t_prev] if t_prev >= 0 else torch.ones_like(ab)
            eps = self.unet_ema(z, torch.full((z.shape[0],), t, device=z.device))
            z0 = (z - (1 - ab).sqrt() * eps) / ab.sqrt()  # latents have no range to clip to
            z = ab_prev.sqrt() * z0 + (1 - ab_prev).sqrt() * eps
        return self.decode_latents(z)

    # -- training ---------------------------------------------------------------------------

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def on_fit_start(self) -> None:
        max_steps = self.trainer.max_steps
        if 0 <= max_steps <= self.hparams.ae_steps:
            log.warning(
                "trainer.max_steps=%d <= ae_steps=%d: the diffusion model is not trained",
                max_steps,
                self.hparams.ae_steps,
            )

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        # exactly one optimiser steps per batch, so global_step counts batches
        step = self.global_step
        if step < self.hparams.ae_steps:
            self.autoencoder_step(batch, step)
        else:
            self.diffusion_step(batch, step - self.hparams.ae_steps)

    def adaptive_weight(self, rec: Tensor, adv: Tensor) -> Tensor:
        """Esser et al.'s balance: |grad rec| / |grad adv| at the decoder's last layer."""
        last = self.decoder.last_layer
        g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
        g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0]
        weight = (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, 1e4).detach()
        return weight * self.hparams.disc_weight

    def autoencoder_step(self, x: Tensor, step: int) -> None:
        hp = self.hparams
        opt = self.optimizers()[0]
        for group in opt.param_groups:  # cosine from ae_lr to ae_lr_final over the stage
            cos = 0.5 * (1 + math.cos(math.pi * step / max(1, hp.ae_steps)))
            group["lr"] = hp.ae_lr_final + (hp.ae_lr - hp.ae_lr_final) * cos
        mean, logvar = self.posterior(x)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        recon = self.decoder(self.post_quant_conv(z))
        # per image: L1 summed over the pixels, KL summed over the latent (Stable Diffusion's)
        rec = (x - recon).abs().flatten(1).sum(1).mean()
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1).mean()
        loss = rec + hp.kl_weight * kl
        logs = {"train/ae_l1": rec / x[0].numel(), "train/ae_kl": kl}
        if step >= hp.disc_start:
            self.discriminator.requires_grad_(False)  # the decoder's loss leaves D alone
            adv = -self.discriminator(recon).mean()
            self.discriminator.requires_grad_(True)
            weight = self.adaptive_weight(rec, adv)
            real, fake = self.discriminator(x), self.discriminator(recon.detach())
            loss_d = 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
            loss = loss + weight * adv + loss_d
            logs |= {
                "train/ae_adv": adv,
                "train/ae_adv_weight": weight,
                "train/disc": loss_d,
                "train/disc_real": real.mean(),
                "train/disc_fake": fake.mean(),
            }
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        self.log_dict(logs, prog_bar=True)

    @torch.no_grad()
    def raw_latents(self, x: Tensor) -> Tensor:
        """A sample of the posterior of images ``x``."""
        mean, logvar = self.posterior(x)
        return mean + (0.5 * logvar).exp() * torch.randn_like(mean)

    def diffusion_step(self, x: Tensor, step: int) -> None:
        hp = self.hparams
        opt = self.optimizers()[1]
        if step == 0:  # the first batch of the stage sets the latent statistics
            self.latent_stats.measure(self.raw_latents(x))
        z0 = self.latent_stats.normalise(self.raw_latents(x))
        t = torch.randint(0, hp.timesteps, (z0.shape[0],), device=z0.device)
        eps = torch.randn_like(z0)
        ab = self.alpha_bar[t][:, None, None, None]
        loss = F.mse_loss(self.unet(ab.sqrt() * z0 + (1 - ab).sqrt() * eps, t), eps)
        for group in opt.param_groups:
            group["lr"] = hp.lr * min(1.0, (step + 1) / max(1, hp.warmup_steps))
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        self.update_ema(step)
        self.log("train/loss", loss, prog_bar=True)

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        """Track the U-Net: a copy until ``ema_start`` steps into the stage, then an average."""
        decay = 0.0 if step < self.hparams.ema_start else self.hparams.ema_decay
        for avg, p in zip(self.unet_ema.parameters(), self.unet.parameters()):
            avg.lerp_(p, 1 - decay)

    def configure_optimizers(self):
        hp = self.hparams
        autoencoder = [
            *self.encoder.parameters(),
            *self.quant_conv.parameters(),
            *self.post_quant_conv.parameters(),
            *self.decoder.parameters(),
            *self.discriminator.parameters(),
        ]
        return [
            torch.optim.Adam(autoencoder, lr=hp.ae_lr, betas=tuple(hp.ae_betas)),
            torch.optim.Adam(self.unet.parameters(), lr=hp.lr),
        ]
