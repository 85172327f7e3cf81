"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, ICML 2016) with the discretised logistic
mixture likelihood of PixelCNN++ (Salimans, Karpathy, Chen & Kingma, ICLR 2017).

The network is a stack of masked convolutions: a ``k x k`` mask-A convolution (a pixel sees the
rows above and the pixels to its left, never itself), then residual blocks of a 3x3 mask-B
convolution (the centre allowed) and a 1x1 convolution. It outputs, per pixel, a mixture of
``n_mix`` discretised logistics over the 256 levels of R, G and B, where the mean of G moves
linearly with R and the mean of B with R and G: the R -> G -> B order inside a pixel, with one
network evaluation per pixel.

Sampling runs pixel by pixel in raster order. The network is never run on the whole image:
each layer's output at pixel (i, j) only needs that layer's input at the rows i - k//2 .. i
and columns j - k//2 .. j + k//2 (its receptive field, ``receptive_field_rows`` in all), and
everything a later pixel needs of an earlier one is final once computed. So every layer keeps
its input in a cache and a step computes one position per layer (Ramachandran et al. 2017,
"Fast Generation for Convolutional Autoregressive Models"), ~1000x less work than a full pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelproof.generators.common import IMAGE_SIZE, GenerativeModel

HALF_BIN = 1 / 255  # pixels are (v / 255) * 2 - 1, v in 0..255: bins 2 / 255 wide


class MaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution that sees the rows above and, in its own row, the columns to the
    left, plus the centre for mask ``B`` (never for ``A``)."""

    def __init__(self, cin: int, cout: int, kernel: int, mask: Literal["A", "B"]) -> None:
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        c = kernel // 2
        m = torch.zeros(kernel, kernel)
        m[:c] = 1
        m[c, : c + (mask == "B")] = 1
        self.register_buffer("mask", m, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def tap_weight(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(dy, dx, weight)``: the ``T`` kernel positions the mask keeps and their weights as
        one ``[C_out, T * C_in]`` matrix, for evaluating a single output position."""
        dy, dx = self.mask.nonzero().unbind(1)
        weight = self.weight[:, :, dy, dx].permute(0, 2, 1)  # [C_out, T, C_in]
        return dy, dx, weight.reshape(weight.shape[0], -1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, 3, "B")
        self.proj = nn.Conv2d(channels, channels, 1)


Conv = Callable[[MaskedConv2d, Tensor], Tensor]
Pointwise = Callable[[nn.Conv2d, Tensor], Tensor]


class PixelCNNNet(nn.Module):
    """``x [B, 3, H, W]`` in [-1, 1] -> mixture parameters ``[B, 10 * n_mix, H, W]``."""

    def __init__(
        self, channels: int = 64, n_blocks: int = 6, first_kernel: int = 7, n_mix: int = 10
    ) -> None:
        super().__init__()
        self.n_mix = n_mix
        self.input_conv = MaskedConv2d(3, channels, first_kernel, "A")
        self.blocks = nn.ModuleList(ResidualBlock(channels) for _ in range(n_blocks))
        self.head = nn.ModuleList(
            [nn.Conv2d(channels, channels, 1), nn.Conv2d(channels, 10 * n_mix, 1)]
        )

    @property
    def receptive_field_rows(self) -> int:
        """How many rows above a pixel its output can depend on."""
        return self.input_conv.kernel_size[0] // 2 + len(self.blocks)

    def body(self, x: Tensor, conv: Conv, pointwise: Pointwise) -> Tensor:
        """The architecture, once, for both the whole-image and the one-pixel evaluation."""
        h = conv(self.input_conv, x)
        for block in self.blocks:
            h = h + pointwise(block.proj, F.relu(conv(block.conv, F.relu(h))))
        return pointwise(self.head[1], F.relu(pointwise(self.head[0], F.relu(h))))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x, lambda layer, t: layer(t), lambda layer, t: layer(t))


class IncrementalPixelCNN:
    """Evaluate a :class:`PixelCNNNet` one pixel at a time, in raster order, from per-layer
    caches (see the module docstring). ``canvas`` is the image so far, ``[H, W, N, 3]`` (a
    view into the input cache); write each sampled pixel into it before the next step.

    A layer's cache is its input, zero-padded by ``p = k // 2`` columns each side. The input
    layer's keeps every row (it is the canvas); the others keep only the ``p + 1`` rows the
    layer reads, row ``r`` in slot ``r % (p + 1)``: a slot not yet written is zero, as the
    padding above the image is, and a row overwritten in part only hides its old values right
    of the current pixel, which the mask never reads in its own row.
    """

    def __init__(self, net: PixelCNNNet, n: int, size: int = IMAGE_SIZE, device=None) -> None:
        self.net = net
        self.layers: dict[MaskedConv2d, tuple[Tensor, int, Tensor, Tensor, Tensor]] = {}
        for layer in [net.input_conv, *(b.conv for b in net.blocks)]:
            p = layer.kernel_size[0] // 2
            rows = size + p if layer is net.input_conv else p + 1
            cache = torch.zeros(rows, size + 2 * p, n, layer.in_channels, device=device)
            self.layers[layer] = (cache, rows, *layer.tap_weight())
        p = net.input_conv.kernel_size[0] // 2
        self.canvas = self.layers[net.input_conv][0][p:, p : p + size]

    def _conv(self, layer: MaskedConv2d, t: Tensor | None, i: int, j: int) -> Tensor:
        """``layer``'s output at ``(i, j)`` after storing its input there (the input layer's
        input is the canvas, written by the sampler)."""
        cache, rows, dy, dx, weight = self.layers[layer]
        p = layer.kernel_size[0] // 2
        if t is not None:
            cache[i % rows, j + p] = t
        # kernel row dy reads image row i - p + dy: in the input cache at i + dy (p padding
        # rows on top), in a ring at (i - p + dy) % rows
        slots = i + dy if layer is self.net.input_conv else (i - p + dy) % rows
        patch = cache[slots, j + dx]  # [T, N, C_in]
        return F.linear(patch.transpose(0, 1).flatten(1), weight, layer.bias)

    def params_at(self, i: int, j: int) -> Tensor:
        """The mixture parameters of pixel ``(i, j)``, ``[N, 10 * n_mix]``; every pixel before
        it in raster order must be on the canvas."""
        return self.net.body(
            None,
            lambda layer, t: self._conv(layer, t, i, j),
            lambda layer, t: F.linear(t, layer.weight.flatten(1), layer.bias),
        )


def split_params(params: Tensor, n_mix: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``[..., 10 * n_mix]`` (channels last) -> logits ``[..., K]``, means, log scales and
    coefficients ``[..., 3, K]`` (coefficients: G on R, B on R, B on G)."""
    logits = params[..., :n_mix]
    rest = params[..., n_mix:].unflatten(-1, (9, n_mix))
    means, log_scales, coeffs = rest.split(3, dim=-2)
    return logits, means, log_scales.clamp(min=-7.0), torch.tanh(coeffs)


def discretized_mix_logistic_nll(x: Tensor, params: Tensor, n_mix: int) -> Tensor:
    """Mean negative log-likelihood in nats per image of ``x [B, 3, H, W]`` (values on the
    256-level grid of [-1, 1]) under the mixture ``params [B, 10 * n_mix, H, W]``."""
    logits, means, log_scales, coeffs = split_params(params.permute(0, 2, 3, 1), n_mix)
    x = x.permute(0, 2, 3, 1)[..., None]  # [B, H, W, 3, 1]
    r, g = x[..., 0, :], x[..., 1, :]
    means = torch.stack(
        [
            means[..., 0, :],
            means[..., 1, :] + coeffs[..., 0, :] * r,
            means[..., 2, :] + coeffs[..., 1, :] * r + coeffs[..., 2, :] * g,
        ],
        dim=-2,
    )
    centred, inv_s = x - means, torch.exp(-log_scales)
    plus, minus = inv_s * (centred + HALF_BIN), inv_s * (centred - HALF_BIN)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid: the bin at 0 takes all mass below
    log_one_minus_cdf_minus = -F.softplus(minus)  # the bin at 255 takes all mass above
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * centred  # if the bin's mass underflows, its density times the bin width
    log_pdf_mid = mid - log_scales - 2 * F.softplus(mid) + np.log(2 * HALF_BIN)
    log_prob_mid = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    log_probs = torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_prob_mid)
    )
    log_mix = log_probs.sum(-2) + F.log_softmax(logits, dim=-1)  # [B, H, W, K]
    return -torch.logsumexp(log_mix, dim=-1).flatten(1).sum(1).mean()


def sample_mixture(params: Tensor, u: Tensor, n_mix: int) -> Tensor:
    """One pixel per row of ``params [N, 10 * n_mix]`` from uniforms ``u [N, 4]`` (component,
    then R, G, B by inverse CDF): ``[N, 3]`` on the 256-level grid of [-1, 1]."""
    logits, means, log_scales, coeffs = split_params(params, n_mix)
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)
    k = (cdf < u[:, :1]).sum(-1).clamp(max=n_mix - 1)
    pick = lambda t: t.gather(-1, k[:, None, None].expand(-1, 3, 1))[..., 0]  # [N, 3]
    means, scales, coeffs = pick(means), pick(log_scales).exp(), pick(coeffs)
    u = u[:, 1:].clamp(1e-5, 1 - 1e-5)
    logistic = scales * (u.log() - (-u).log1p())
    quantise = lambda v: ((v.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
    r = quantise(means[:, 0] + logistic[:, 0])
    g = quantise(means[:, 1] + coeffs[:, 0] * r + logistic[:, 1])
    b = quantise(means[:, 2] + coeffs[:, 1] * r + coeffs[:, 2] * g + logistic[:, 2])
    return torch.stack([r, g, b], dim=1)


class PixelCNN(GenerativeModel):
    """Autoregressive PixelCNN with a logistic-mixture likelihood (see the module docstring).

    ``train/bpd`` is bits per sub-pixel, the field's unit (CIFAR-10 PixelCNN++: 2.92).
    """

    family = "autoregressive"
    sampling_modules = ("net",)
    sample_batch_size = 500  # fewer, larger steps: the per-pixel loop is overhead-bound

    def __init__(
        self,
        channels: int = 48,
        n_blocks: int = 6,
        first_kernel: int = 7,
        n_mix: int = 10,
        lr: float = 1e-3,
        lr_decay_steps: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = PixelCNNNet(channels, n_blocks, first_kernel, n_mix)

    def on_fit_start(self) -> None:
        self.net.to(memory_format=torch.channels_last)

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        return rng.random((IMAGE_SIZE, IMAGE_SIZE, 4), dtype=np.float32)

    def decode(self, noise: Tensor) -> Tensor:
        n, size = noise.shape[0], noise.shape[1]
        inc = IncrementalPixelCNN(self.net, n, size, noise.device)
        for i in range(size):
            for j in range(size):
                params = inc.params_at(i, j)
                inc.canvas[i, j] = sample_mixture(params, noise[:, i, j], self.hparams.n_mix)
        return inc.canvas.permute(2, 3, 0, 1).contiguous()

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        x = batch.contiguous(memory_format=torch.channels_last)
        nll = discretized_mix_logistic_nll(batch, self.net(x), self.hparams.n_mix)
        self.log("train/loss", nll, prog_bar=True)
        self.log("train/bpd", nll / (batch[0].numel() * np.log(2)), prog_bar=True)
        return nll

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
        if not self.hparams.lr_decay_steps:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.hparams.lr_decay_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
