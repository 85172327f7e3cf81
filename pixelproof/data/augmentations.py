"""Training augmentations applied to a whole batch at once: ``[B, 3, H, W]`` floats in [0, 1].

:class:`BatchAugmentation` runs after the batch reaches its device
(:meth:`pixelproof.data.datamodule.ImageDataModule.on_after_batch_transfer`, training only).
Each operation picks its images with its own probability and draws a strength for each image
(CNNDetection / RINE style); every draw comes from torch's global RNG (the noise pixels of a GPU
batch from that device's), so ``seed_everything`` reproduces a run. An operation with probability
0 draws nothing and leaves the batch untouched.

Order: random resized crop (``rescale``) -> down-up resampling (``resample``) -> Gaussian blur
-> Gaussian noise -> JPEG -> flip: the order a picture meets them on its way to us. It is framed
and resampled first (crop, a resize to another size and back, as a site that stores a smaller
copy does),
softened by the optics or the resampling filter (blur), picks up sensor or processing noise, and
is compressed last, when it is saved and shared (so JPEG quantises the noise, as it does for real
pictures, rather than noise hiding the JPEG blocks). Flipping is the viewer's choice, not the
picture's history, and comes last (at a side that is a multiple of 16, such as 32, it maps JPEG's
blocks onto blocks, so the compression traces stay on the grid they would have).
No normalisation here: models normalise internally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

# scipy.ndimage.gaussian_filter's default: the kernel reaches round(4 * sigma) pixels each way.
_TRUNCATE = 4.0


class BatchAugmentation(nn.Module):
    """Random, per-image training augmentations of a float batch in [0, 1] (see the module doc).

    Args:
        rescale_prob: probability of a random resized crop: a square window of side ``s * S``
            (``s`` uniform in ``rescale_scale``, within (0, 1]) at a random place, resized back
            to ``S x S`` (bilinear).
        resample_prob: probability of a resize to ``round(f * S)`` and back to ``S`` (``f``
            uniform in ``resample_factor``, within (0, 4]; below 1 it drops the finest detail, above
            1 it interpolates it), each way bilinear or bicubic (a coin per image) with
            anti-aliasing on the way down, as Pillow resizes.
        blur_prob: probability of a Gaussian blur, sigma uniform in ``blur_sigma`` (pixels;
            CNNDetection draws it in [0, 3]); scipy's ``gaussian_filter`` (radius
            ``round(4 * sigma)``, mirrored edges; the radius is cut to the image's side minus one
            on images smaller than that), so a sigma below 0.125 leaves the image unchanged.
        noise_prob: probability of additive Gaussian noise, its std uniform in ``noise_std``;
            the result is clipped to [0, 1].
        jpeg_prob: probability of a JPEG re-compression, the integer quality uniform in
            ``jpeg_quality`` (within 1..100, both ends included).
        hflip_prob: probability of a horizontal flip.

    Ranges are ``(low, high)`` pairs (lists, tuples or OmegaConf ListConfigs). Bad settings raise
    ``ValueError`` naming the ``data.augment.<key>`` and the values it allows.
    """

    def __init__(
        self,
        rescale_prob: float = 0.0,
        rescale_scale: Sequence[float] = (0.5, 1.0),
        resample_prob: float = 0.0,
        resample_factor: Sequence[float] = (0.5, 1.5),
        blur_prob: float = 0.0,
        blur_sigma: Sequence[float] = (0.0, 3.0),
        noise_prob: float = 0.0,
        noise_std: Sequence[float] = (0.0, 0.05),
        jpeg_prob: float = 0.0,
        jpeg_quality: Sequence[int] = (30, 100),
        hflip_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.rescale_prob = _probability("rescale_prob", rescale_prob)
        self.resample_prob = _probability("resample_prob", resample_prob)
        self.blur_prob = _probability("blur_prob", blur_prob)
        self.noise_prob = _probability("noise_prob", noise_prob)
        self.jpeg_prob = _probability("jpeg_prob", jpeg_prob)
        self.hflip_prob = _probability("hflip_prob", hflip_prob)
        self.rescale_scale = _range("rescale_scale", rescale_scale, 0, 1, open_minimum=True)
        self.resample_factor = _range("resample_factor", resample_factor, 0, 4, open_minimum=True)
        self.blur_sigma = _range("blur_sigma", blur_sigma, 0)
        self.noise_std = _range("noise_std", noise_std, 0)
        self.jpeg_quality = _range("jpeg_quality", jpeg_quality, 1, 100, integer=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` [B, 3, H, W] in [0, 1] -> a new augmented batch (the input is not changed;
        with every probability 0 it is returned as is)."""
        with _one_cpu_thread():
            for prob, op in (
                (self.rescale_prob, self._rescale),
                (self.resample_prob, self._resample),
                (self.blur_prob, self._blur),
                (self.noise_prob, self._noise),
                (self.jpeg_prob, self._jpeg),
                (self.hflip_prob, _hflip),
            ):
                if prob > 0:
                    chosen = (torch.rand(len(images)) < prob).nonzero().squeeze(1)
                    if len(chosen):
                        index = chosen.to(images.device)
                        images = images.index_copy(0, index, op(images.index_select(0, index)))
        return images

    def extra_repr(self) -> str:
        keys = ("rescale", "resample", "blur", "noise", "jpeg", "hflip")
        return ", ".join(f"{k}_prob={getattr(self, f'{k}_prob')}" for k in keys)

    # -- operations on the chosen images ------------------------------------------------------

    def _rescale(self, x: torch.Tensor) -> torch.Tensor:
        """A random square window of side ``s`` (relative) resized back to the full image."""
        n = len(x)
        scale = _uniform(self.rescale_scale, n)
        # the window's centre, in grid_sample's [-1, 1] coordinates, keeps it inside the image
        shift = (2 * torch.rand(n, 2) - 1) * (1 - scale)[:, None]
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        """Each image resized to ``round(f * S)`` and back (its own factor and filter)."""
        n, _, h, w = x.shape
        factors = _uniform(self.resample_factor, n).tolist()
        modes = ["bicubic" if b else "bilinear" for b in (torch.rand(n) < 0.5).tolist()]
        out = []
        for image, factor, mode in zip(x.split(1), factors, modes):
            size = (max(1, round(factor * h)), max(1, round(factor * w)))
            small = F.interpolate(image, size=size, mode=mode, antialias=True)
            out.append(F.interpolate(small, size=(h, w), mode=mode, antialias=True))
        # bicubic overshoots; a picture saved as 8-bit is clipped the same way
        return torch.cat(out).clamp(0.0, 1.0)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur, one kernel per image, mirrored edges (scipy's ``reflect``)."""
        n, c, h, w = x.shape
        sigma = _uniform(self.blur_sigma, n)
        # one kernel size for the batch (grouped conv), capped to the image
        radius = min(math.ceil(_TRUNCATE * self.blur_sigma[1]), max(h, w) - 1)
        if radius < 1:
            return x
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        weights = torch.exp(-0.5 * (offsets / sigma.double().clamp_min(1e-12)[:, None]) ** 2)
        # each image's own truncation, as scipy's: taps beyond round(4 * sigma) are zero
        reach = (_TRUNCATE * sigma.double() + 0.5).floor()[:, None]
        weights = torch.where(offsets.abs() <= reach, weights, 0.0)
        weights = (weights / weights.sum(1, keepdim=True)).to(x).repeat_interleave(c, 0)
        out = x.reshape(1, n * c, h, w)
        out = F.conv2d(_mirror(out, radius, -1), weights[:, None, None, :], groups=n * c)
        out = F.conv2d(_mirror(out, radius, -2), weights[:, None, :, None], groups=n * c)
        return out.reshape(n, c, h, w).clamp(0.0, 1.0)  # a weighted mean, up to rounding

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        std = _uniform(self.noise_std, len(x)).to(x)
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype)
        return (x + std[:, None, None, None] * noise).clamp(0.0, 1.0)

    def _jpeg(self, x: torch.Tensor) -> torch.Tensor:
        """JPEG encode and decode each image on the CPU (libjpeg), an integer quality each."""
        low, high = self.jpeg_quality
        quality = torch.randint(low, high + 1, (len(x),)).tolist()
        pixels = (x * 255).round().clamp(0, 255).to(device="cpu", dtype=torch.uint8)
        decoded = [
            decode_jpeg(encode_jpeg(image, quality=q), mode=ImageReadMode.RGB)
            for image, q in zip(pixels, quality, strict=True)
        ]
        return torch.stack(decoded).to(x) / 255


@contextmanager
def _one_cpu_thread():
    """Run CPU ops on one thread: a batch of small images is too little work to share, and on a
    busy machine every parallel region waits for a descheduled thread (on our shared 2-core CPU,
    blur + JPEG + flip of 64 32x32 images took ~195 ms on 2 threads, ~3 ms on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _uniform(bounds: tuple[float, float], n: int) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n)


def _mirror(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Pad ``dim`` by ``radius`` on both sides with the edge pixel repeated (d c b a | a b c d:
    scipy.ndimage's ``reflect``, numpy's ``symmetric``); any radius, by index arithmetic."""
    size = x.shape[dim]
    position = torch.arange(-radius, size + radius, device=x.device) % (2 * size)
    return x.index_select(dim, torch.where(position < size, position, 2 * size - 1 - position))


# ----------------------------------------------------------------------------------- settings


def _probability(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"data.augment.{key} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _range(
    key: str,
    value,
    minimum: float,
    maximum: float = math.inf,
    integer: bool = False,
    open_minimum: bool = False,
) -> tuple:
    """``value`` (a list, tuple or ListConfig) as a ``(low, high)`` tuple with ``minimum <= low
    <= high <= maximum`` (``minimum < low`` when ``open_minimum``), of integers if ``integer``."""
    kind = int if integer else (int, float)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    ok = (
        len(pair) == 2
        and not any(isinstance(v, bool) or not isinstance(v, kind) for v in pair)
        and all(math.isfinite(v) for v in pair)
        and (minimum < pair[0] if open_minimum else minimum <= pair[0])
        and pair[0] <= pair[1] <= maximum
    )
    if not ok:
        rule = f"{minimum} {'<' if open_minimum else '<='} low <= high"
        rule += f" <= {maximum}" if math.isfinite(maximum) else ""
        what = "integers" if integer else "numbers"
        raise ValueError(
            f"data.augment.{key} must be a [low, high] pair of {what} with {rule}, got {value!r}"
        )
    return pair if integer else (float(pair[0]), float(pair[1]))
