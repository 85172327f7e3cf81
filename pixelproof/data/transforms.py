"""PIL image -> model input for evaluation and prediction: the resize policy, then a float tensor.

Training data does not come through here: :class:`pixelproof.data.image_dataset.ImageFileDataset`
decodes each file once (with the same :func:`pixelproof.data.decoding.fit`) and training
augmentations run on whole batches (:mod:`pixelproof.data.augmentations`). No normalisation:
models normalise internally.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pixelproof.data.decoding import RESIZE_MODES, fit

__all__ = ["RESIZE_MODES", "FitToTensor", "build_transform", "check_resize", "to_tensor"]


def check_resize(image_size: int, resize_mode: str) -> None:
    """Raise ``ValueError`` unless ``image_size`` is a positive integer and ``resize_mode`` one of
    :data:`RESIZE_MODES`."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}.")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}.")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 tensor [3, H, W]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


class FitToTensor:
    """PIL RGB image -> float32 tensor [3, S, S] in [0, 1], brought to size by
    :func:`pixelproof.data.decoding.fit`. A class, not a closure, so dataloader workers started
    with ``spawn`` can pickle it."""

    def __init__(self, image_size: int, resize_mode: str) -> None:
        check_resize(image_size, resize_mode)
        self.image_size, self.resize_mode = image_size, resize_mode

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return to_tensor(fit(image, self.image_size, self.resize_mode)).float() / 255

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size}, mode={self.resize_mode!r})"


def build_transform(image_size: int = 32, resize_mode: str = "resize") -> FitToTensor:
    """The evaluation / prediction transform: ``resize``, ``center_crop`` or ``none`` to
    ``image_size``, then a float tensor in [0, 1]."""
    return FitToTensor(image_size, resize_mode)
