"""Image transforms: an explicit resize policy plus the CNNDetection/RINE training augmentations.

Training order (as in CNNDetection and RINE): Gaussian blur -> JPEG re-compression -> resize
policy -> horizontal flip -> float tensor in [0, 1]. Blur and JPEG run on the image at its
stored resolution, before resizing, because that is where generators leave their traces.
No normalisation here: models normalise internally. All randomness comes from torch's global RNG,
so ``lightning.seed_everything`` and Lightning's worker seeding make it reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from pixelproof.data.decoding import RESIZE_MODES, fit

ResizeMode = Literal["resize", "center_crop", "none"]


class ResizePolicy:
    """Bring a PIL image to ``size`` x ``size`` by :func:`pixelproof.data.decoding.fit` (the policy
    every entry point shares): ``resize``, ``center_crop`` or ``none``."""

    def __init__(self, size: int, mode: ResizeMode) -> None:
        self.size = size
        self.mode = mode

    def __call__(self, image: Image.Image) -> Image.Image:
        return fit(image, self.size, self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, mode={self.mode!r})"


class RandomSigmaGaussianBlur:
    """Gaussian blur with sigma drawn uniformly from ``sigma`` (torch RNG), per channel.

    Same filter as CNNDetection's ``scipy.ndimage.gaussian_filter`` (kernel radius
    ``round(4 * sigma)``, mirrored edges), written as a separable numpy filter. Two reasons not to
    use ``v2.GaussianBlur``: it rejects a lower sigma bound of 0 (CNNDetection samples sigma in
    [0, 3]), and its conv2d took ~35 ms per 32x32 image on our CPU, against ~0.2 ms
    here. A sigma too small to move a pixel leaves the image unchanged.
    """

    def __init__(self, sigma: tuple[float, float]) -> None:
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        lo, hi = self.sigma
        sigma = lo + (hi - lo) * torch.rand(()).item()
        radius = int(4.0 * sigma + 0.5)
        if sigma <= 0.0 or radius < 1:
            return image
        offsets = np.arange(-radius, radius + 1, dtype=np.float64)
        weights = np.exp(-0.5 * (offsets / sigma) ** 2)
        weights /= weights.sum()
        pixels = np.asarray(image, dtype=np.float64)
        for axis in (0, 1):
            pixels = _convolve_axis(pixels, weights, axis)
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), image.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"


def _convolve_axis(pixels: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Correlate ``pixels`` with the symmetric 1-D ``weights`` along ``axis``, mirrored edges."""
    radius = len(weights) // 2
    pad = [(0, 0)] * pixels.ndim
    pad[axis] = (radius, radius)
    # numpy's "symmetric" (edge pixel repeated) is scipy.ndimage's "reflect"; it also copes with
    # a radius larger than the image.
    padded = np.pad(pixels, pad, mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(weights), axis=axis)
    return windows @ weights


def build_transform(
    image_size: int = 32,
    resize_mode: ResizeMode = "resize",
    train: bool = False,
    hflip_prob: float = 0.0,
    jpeg_prob: float = 0.0,
    jpeg_quality: tuple[int, int] = (30, 100),
    blur_prob: float = 0.0,
    blur_sigma: tuple[float, float] = (0.0, 3.0),
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> float32 tensor [3, image_size, image_size] in [0, 1].

    The resize policy applies in training and evaluation; the augmentations (each applied with
    its probability) only when ``train`` is true. Augmentation arguments are validated either
    way, so a bad config fails at start-up rather than when training begins.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}.")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}.")
    for name, p in (("hflip_prob", hflip_prob), ("jpeg_prob", jpeg_prob), ("blur_prob", blur_prob)):
        _check_probability(name, p)
    quality = _check_range("jpeg_quality", jpeg_quality, integer=True)
    if not 1 <= quality[0] <= quality[1] <= 100:
        raise ValueError(f"jpeg_quality must satisfy 1 <= low <= high <= 100, got {quality}.")
    sigma = _check_range("blur_sigma", blur_sigma, integer=False)
    if not 0.0 <= sigma[0] <= sigma[1]:
        raise ValueError(f"blur_sigma must satisfy 0 <= low <= high, got {sigma}.")

    steps: list[Callable] = []
    # Probability-0 augmentations are left out so they do not draw from the RNG.
    if train and blur_prob > 0:
        steps.append(v2.RandomApply([RandomSigmaGaussianBlur(sigma)], p=blur_prob))
    if train and jpeg_prob > 0:
        steps.append(v2.RandomApply([v2.JPEG(list(quality))], p=jpeg_prob))
    steps.append(ResizePolicy(image_size, resize_mode))
    if train and hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip_prob))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()]
    return v2.Compose(steps)


def _check_probability(name: str, p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}.")


def _check_range(name: str, value: Sequence, integer: bool) -> tuple:
    """``value`` as a (low, high) tuple; accepts tuples, lists and OmegaConf ListConfigs."""
    kind = int if integer else (int, float)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if (
        len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, kind) for v in pair)
        or any(isinstance(v, float) and not math.isfinite(v) for v in pair)
    ):
        what = "integers" if integer else "numbers"
        raise ValueError(f"{name} must be a (low, high) pair of {what}, got {value!r}.")
    return tuple(float(v) for v in pair) if not integer else pair
