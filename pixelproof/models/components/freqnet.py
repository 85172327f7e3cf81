"""FreqNet building blocks (Tan et al., "Frequency-Aware Deepfake Detection", AAAI 2024).

FreqNet makes a detector look at high frequencies, where up-sampling and smoothing leave their
traces, instead of at image content:

- HFRI: high-pass the image in the 2D spectrum, then a 1x1 conv (high-frequency representation
  of the image);
- HFRFC / HFRFS: high-pass a feature map across channels / across space;
- FCL: learn in the frequency domain, 1x1 convs on the real and imaginary parts of the spectrum.

Each step ends in a ReLU, as in the paper's code. Initialisation follows the authors' code too
(chuangchuangtan/FreqNet-DeepfakeDetection): the HFRI / HFRFS 1x1 convolutions are plain
``torch.randn`` weights and biases, every other convolution (FCL's included) is Kaiming-normal
with fan-out, and BatchNorm starts at weight 1, bias 0.
"""

import torch
import torch.nn.functional as F
from timm.models.resnet import Bottleneck
from torch import nn


def _low_band(n: int, scale: int) -> torch.Tensor:
    """Boolean mask over the n FFT frequencies (unshifted order) of the lowest band.

    The reference code zeroes indices ``[n//2 - n//scale, n//2 + n//scale)`` of the *centred*
    spectrum; the same set in unshifted order avoids two fftshift copies per call.
    """
    if scale <= 2:
        raise ValueError(f"scale must be > 2 (a smaller one removes every frequency), got {scale}")
    centred = torch.zeros(n, dtype=torch.bool)
    centred[n // 2 - n // scale : n // 2 + n // scale] = True
    return torch.fft.ifftshift(centred)


def high_pass_spatial(x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Zero the central ``2H/scale x 2W/scale`` (lowest-frequency) window of the 2D spectrum."""
    h, w = x.shape[-2:]
    low = _low_band(h, scale)[:, None] & _low_band(w, scale)[None, :]
    spectrum = torch.fft.fft2(x, norm="ortho") * (~low).to(x.device)
    return torch.fft.ifft2(spectrum, norm="ortho").real


def high_pass_channel(x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The same high-pass along the channel axis (a 1D FFT over channels)."""
    keep = ~_low_band(x.shape[1], scale)
    spectrum = torch.fft.fft(x, dim=1, norm="ortho") * keep.to(x.device).view(1, -1, 1, 1)
    return torch.fft.ifft(spectrum, dim=1, norm="ortho").real


class FrequencyConv(nn.Module):
    """FCL: 1x1 convolutions on the real and imaginary parts of the feature map's 2D spectrum.

    A 1x1 conv acts on each frequency separately, so the fftshift of the reference code (a
    permutation of frequencies) changes nothing and is skipped.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.real = nn.Conv2d(channels, channels, 1, bias=False)
        self.imag = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.fft2(x, norm="ortho")
        spectrum = torch.complex(self.real(spectrum.real), self.imag(spectrum.imag))
        return F.relu(torch.fft.ifft2(spectrum, norm="ortho").real)


class HighFrequencyConv(nn.Module):
    """HFRI / HFRFS: spatial high-pass, then a (possibly strided) 1x1 conv and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, scale: int = 4):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride)
        # the authors' weights and biases are torch.randn parameters (standard normal)
        nn.init.normal_(self.conv.weight)
        nn.init.normal_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(F.relu(high_pass_spatial(x, self.scale))))


class FreqNetBlock(nn.Module):
    """One FreqNet block: HFRFC -> FCL -> HFRFS (the last one strided)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, scale: int = 4):
        super().__init__()
        self.scale = scale
        self.fcl = FrequencyConv(in_channels)
        self.hfrfs = HighFrequencyConv(in_channels, out_channels, stride, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(high_pass_channel(x, self.scale))
        return self.hfrfs(self.fcl(x))


class FreqNetBranch(nn.Module):
    """The frequency branch of the Team 57 report's detector ("Image Classification and Artifact
    Detection"): HFRI, one FreqNet block, a strided residual layer and a strided final conv, pooled
    to a ``out_channels`` feature vector."""

    def __init__(self, width: int = 64, out_channels: int = 256, scale: int = 4) -> None:
        super().__init__()
        self.hfri = HighFrequencyConv(3, width, scale=scale)
        self.block = FreqNetBlock(width, width, stride=2, scale=scale)
        expanded = width * Bottleneck.expansion
        self.residual = Bottleneck(
            width,
            width,
            stride=2,
            downsample=nn.Sequential(
                nn.Conv2d(width, expanded, 1, stride=2, bias=False), nn.BatchNorm2d(expanded)
            ),
        )
        self.final = nn.Sequential(
            nn.Conv2d(expanded, out_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels
        high_frequency = {m.conv for m in self.modules() if isinstance(m, HighFrequencyConv)}
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module not in high_frequency:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(self.residual(self.block(self.hfri(x))))
        return x.mean(dim=(-2, -1))
