"""DDPM (Ho, Jain & Abbeel, NeurIPS 2020) with a small U-Net, sampled by DDIM (Song, Meng &
Ermon, ICLR 2021) with eta = 0.

Training is the simple epsilon-prediction loss at a uniformly drawn step of a T-step linear
(Ho et al.) or cosine (Nichol & Dhariwal 2021) noise schedule. Sampling uses exponential moving
average weights, kept by Lightning's ``EMAWeightAveraging`` callback (which the module brings
itself, ``configure_callbacks``, and which copies the average into the module when training
ends), and takes ``sample_steps`` evenly spaced DDIM steps from t = T - 1 to 0, clipping the
predicted x0 to [-1, 1]. DDIM with eta = 0 is deterministic, so an image is a function of its
starting noise.

The U-Net follows the DDPM one at a smaller size: sinusoidal time embedding and an MLP,
residual blocks (GroupNorm, SiLU, the time embedding added in between), stride-2 convolutions
down, nearest-neighbour resize up, skip connections, and self-attention at the resolutions in
``attn_resolutions`` (8x8 by default) and in the middle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch import Tensor, nn

from pixelproof.generators.common import IMAGE_SIZE, GenerativeModel


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Transformer-style sinusoidal embedding of integer steps ``t [B]`` -> ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, 1, 1))
        self.temb = nn.Sequential(nn.SiLU(), nn.Linear(temb, cout))
        self.out_layers = nn.Sequential(norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, 1, 1))
        nn.init.zeros_(self.out_layers[-1].weight)  # each block starts as the identity
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.temb(temb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """Single-head self-attention over the positions of a feature map, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, HW, C]
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """``(x_t [B, C, S, S], t [B]) -> epsilon``; widths ``width * mult`` per resolution. ``C``
    and ``S`` are the images' (3, 32) by default; the latent-diffusion family runs it on its
    autoencoder's latents."""

    def __init__(
        self,
        width: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        attn_resolutions: Sequence[int] = (8,),
        in_channels: int = 3,
        size: int = IMAGE_SIZE,
    ) -> None:
        super().__init__()
        chans = [width * m for m in channel_mults]
        res = [size // 2**k for k in range(len(chans))]
        temb = 4 * width
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.stem = nn.Conv2d(in_channels, chans[0], 3, 1, 1)
        attn = lambda k, c: Attention(c) if res[k] in attn_resolutions else nn.Identity()

        self.down = nn.ModuleList(
            ResBlock(c_prev, c, temb) for c_prev, c in zip(chans[:1] + chans, chans)
        )
        self.down_attn = nn.ModuleList(attn(k, c) for k, c in enumerate(chans))
        self.downsample = nn.ModuleList(nn.Conv2d(c, c, 3, 2, 1) for c in chans[:-1])
        self.mid = nn.ModuleList([ResBlock(chans[-1], chans[-1], temb) for _ in range(2)])
        self.mid_attn = Attention(chans[-1])
        # up level k takes its input and level k's skip and leaves level k-1's width, so the
        # resize-up and the next convolutions run at the narrower width
        outs = chans[:1] + chans[:-1]
        self.up = nn.ModuleList(ResBlock(c + c, o, temb) for c, o in zip(chans, outs))
        self.up_attn = nn.ModuleList(attn(k, o) for k, o in enumerate(outs))
        self.head = nn.Sequential(
            norm(chans[0]), nn.SiLU(), nn.Conv2d(chans[0], in_channels, 3, 1, 1)
        )
        nn.init.zeros_(self.head[-1].weight)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.width))
        h, skips = self.stem(x), []
        for k, (block, attn) in enumerate(zip(self.down, self.down_attn)):
            h = attn(block(h, temb))
            skips.append(h)
            if k < len(self.downsample):
                h = self.downsample[k](h)
        h = self.mid[1](self.mid_attn(self.mid[0](h, temb)), temb)
        for k in reversed(range(len(self.up))):
            h = self.up_attn[k](self.up[k](torch.cat([h, skips[k]], dim=1), temb))
            if k > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.head(h)


def beta_schedule(kind: Literal["linear", "cosine"], steps: int) -> Tensor:
    """The betas of the forward process: Ho et al.'s linear 1e-4..0.02 (for T = 1000, scaled
    for other T) or Nichol & Dhariwal's cosine (s = 0.008, betas clipped at 0.999)."""
    if kind == "linear":
        scale = 1000 / steps
        return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    s = 0.008
    f = torch.cos(
        (torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2
    )
    alpha_bar = f**2 / f[0] ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)


class DDPM(GenerativeModel):
    """Epsilon-prediction DDPM with EMA weights and DDIM sampling (see the module docstring)."""

    family = "diffusion"
    sampling_modules = ("unet",)

    def __init__(
        self,
        width: int = 16,
        channel_mults: Sequence[int] = (1, 2, 4),
        attn_resolutions: Sequence[int] = (8,),
        schedule: Literal["linear", "cosine"] = "cosine",
        timesteps: int = 1000,
        sample_steps: int = 20,
        lr: float = 2e-4,
        warmup_steps: int = 100,
        ema_decay: float = 0.999,
        ema_start: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.unet = UNet(width, tuple(channel_mults), tuple(attn_resolutions))
        alpha_bar = torch.cumprod(1 - beta_schedule(schedule, timesteps), 0)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    def configure_callbacks(self):
        hp = self.hparams
        return [EMAWeightAveraging(decay=hp.ema_decay, update_starting_at_step=hp.ema_start)]

    def on_fit_start(self) -> None:
        self.unet.to(memory_format=torch.channels_last)  # ~2x faster convolutions on CPU

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)

    def ddim_timesteps(self) -> list[int]:
        steps = min(self.hparams.sample_steps, self.hparams.timesteps)
        ts = np.linspace(0, self.hparams.timesteps - 1, steps).round().astype(int)
        return sorted(set(ts.tolist()), reverse=True)

    def decode(self, noise: Tensor) -> Tensor:
        self.unet.to(memory_format=torch.channels_last)
        x = noise.contiguous(memory_format=torch.channels_last)
        ts = self.ddim_timesteps()
        for t, t_prev in zip(ts, ts[1:] + [-1]):
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[t_prev] if t_prev >= 0 else torch.ones_like(ab)
            eps = self.unet(x, torch.full((x.shape[0],), t, device=x.device))
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            # the predicted epsilon, not one re-derived from the clipped x0: at the first steps
            # (alpha_bar ~ 0) that would carry the clipping's saturation into every later step
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return x

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        x0 = batch.contiguous(memory_format=torch.channels_last)
        t = torch.randint(0, self.hparams.timesteps, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        ab = self.alpha_bar[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        loss = F.mse_loss(self.unet(xt, t), eps)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.unet.parameters(), lr=self.hparams.lr)
        warmup = max(1, self.hparams.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
