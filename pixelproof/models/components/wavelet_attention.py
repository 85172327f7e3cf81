"""Wavelet attention (Zhao et al., "Wavelet-Attention CNN"): a learning-free down-sampling.

A one-level haar DWT halves the resolution without discarding information the way a strided
convolution or a max-pool does. The high-frequency detail bands LH and HL (edges) re-weight the
low-frequency band LL through a softmax over channels; HH, mostly noise, is dropped:

    out = LL + LL * softmax_c(LH + HL)
"""

import warnings

import torch
from torch import nn

with warnings.catch_warnings():
    # pytorch_wavelets 1.3.0 imports pkg_resources, which warns on every run; nothing to act on
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    from pytorch_wavelets import DWTForward


class WaveletAttention(nn.Module):
    """Halve H and W; return ``(attended, LL)`` (a block's shortcut takes the LL band)."""

    def __init__(self, wave: str = "haar") -> None:
        super().__init__()
        self.dwt = DWTForward(J=1, wave=wave, mode="zero")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"WaveletAttention needs even H and W, got {tuple(x.shape[-2:])}")
        ll, (high,) = self.dwt(x)  # high: [B, C, 3, H/2, W/2], bands ordered LH, HL, HH
        attention = torch.softmax(high[:, :, 0] + high[:, :, 1], dim=1)
        return ll + ll * attention, ll


class WaveletPool(WaveletAttention):
    """Drop-in replacement for a stride-2 pooling layer (the ResNet stem's max-pool)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]
