"""The non-adversarial perturbations of RINE's robustness study, as deterministic batched
functions on ``[B,3,H,W]`` tensors in [0,1].

RINE (mever-team/rine, ``src/perturbation.py``) draws one random strength per image (JPEG quality
U[10, 75], blur kernel 3-9, noise std U[5, 20] / 255, crop 5-20 %). Here each strength is a
point of a grid, so a table row says exactly what was applied and reruns give the same numbers.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms.v2.functional import gaussian_blur as tv_gaussian_blur


def jpeg(x: torch.Tensor, quality: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """JPEG-compress at ``quality`` (1-100) and decode (torchvision's libjpeg, on the CPU)."""
    quality = int(quality)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality} must be in 1..100")
    pixels = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    decoded = decode_jpeg(encode_jpeg(list(pixels), quality=quality))
    return (torch.stack(decoded).float() / 255).to(x.device)


def gaussian_blur(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2 * ceil(3 sigma) + 1,
    capped to the image; reflected borders)."""
    if sigma <= 0:
        raise ValueError(f"blur sigma {sigma} must be > 0")
    largest = 2 * (min(x.shape[-2:]) - 1) - 1  # reflect padding must stay inside the image
    size = min(2 * math.ceil(3 * sigma) + 1, largest)
    return tv_gaussian_blur(x, kernel_size=[size, size], sigma=[float(sigma), float(sigma)])


def gaussian_noise(
    x: torch.Tensor, std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add N(0, std^2) noise (std in [0,1] units) and clip to [0, 1]."""
    if std < 0:
        raise ValueError(f"noise std {std} must be >= 0")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return (x + std * noise).clamp(0, 1)


def crop_resize(
    x: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Cut ``fraction`` of each side away (half from each border, centred; at least one pixel a
    border when fraction > 0) and resize back to the original size (bicubic), as RINE's crop."""
    if not 0 <= fraction < 1:
        raise ValueError(f"crop fraction {fraction} must be in [0, 1)")
    height, width = x.shape[-2:]
    top = max(1, round(height * fraction / 2)) if fraction > 0 else 0
    left = max(1, round(width * fraction / 2)) if fraction > 0 else 0
    if top == 0 and left == 0:
        return x.clone()
    cropped = x[..., top : height - top, left : width - left]
    resized = F.interpolate(cropped, size=(height, width), mode="bicubic", align_corners=False)
    return resized.clamp(0, 1)


Perturbation = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]

# config name (conf/robustness/*.yaml `perturbations`) -> function(x, strength, generator)
PERTURBATIONS: dict[str, Perturbation] = {
    "jpeg": jpeg,
    "blur": gaussian_blur,
    "noise": gaussian_noise,
    "crop": crop_resize,
}


def perturbation(name: str) -> Perturbation:
    if name not in PERTURBATIONS:
        known = ", ".join(sorted(PERTURBATIONS))
        raise ValueError(f"robustness.perturbations.{name} is unknown; choose from {known}")
    return PERTURBATIONS[name]
