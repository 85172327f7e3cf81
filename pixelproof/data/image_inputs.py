"""What a :class:`~pixelproof.models.detector.Detector` takes as images, and the one way each
becomes the model's input.

Accepted, alone or in a list (which may mix them):

- a path (``str`` or ``Path``) to an image file, decoded by :func:`load_rgb` when it is read; a
  folder: its images (:func:`image_files`: any name, natural order);
- a PIL image, any mode (converted as a decoded file is, :func:`to_rgb`);
- a numpy array ``HxW``, ``HxWx3`` or ``HxWx4`` (a batch: ``BxHxWxC``), as images are laid out;
- a torch tensor ``3xHxW`` or ``1xHxW`` (a batch: ``Bx3xHxW``), as torch lays them out;

arrays and tensors of uint8, or floats in [0, 1]. An in-memory image becomes an 8-bit RGB PIL
image (floats rounded to the nearest of 256 levels, as saving it to a PNG would), then takes the
path a decoded file takes: :func:`fit` to the checkpoint's size and resize mode, then a float
tensor in [0, 1]. So the same pixels get the same p(fake) in whatever form they come, and an
array scores as the PNG it would be saved to. A file that cannot be read is reported with its
reason, never fatal (it comes from outside); an in-memory input of the wrong kind, layout or range
raises at once (it is the caller's mistake).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pixelproof.data.decoding import BadImageError, image_files, load_rgb, to_rgb

#: one input once folders and batches are expanded: a file to decode, or an RGB image
Item = Path | Image.Image

ACCEPTED = (
    "a path to an image file or a folder, a PIL image, a uint8 or [0,1] float array (HxWxC) or "
    "tensor (CxHxW), a batch of them, or a list of any of these"
)


def expand_inputs(inputs: Any, recursive: bool = False) -> list[Item]:
    """``inputs`` as a flat list of items: folders become their images, batches their images,
    in-memory images RGB PIL images (raising ``TypeError`` / ``ValueError`` for a bad one)."""
    if isinstance(inputs, str | Path):
        path = Path(inputs).expanduser()
        return list(image_files(path, recursive)[0]) if path.is_dir() else [path]
    if isinstance(inputs, list | tuple):
        return [item for part in inputs for item in expand_inputs(part, recursive)]
    if _is_batch(inputs):
        return [to_image(image) for image in inputs]
    return [to_image(inputs)]


def to_image(image: Any) -> Image.Image:
    """One in-memory image (PIL, array or tensor, see the module doc) as an 8-bit RGB PIL image."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, torch.Tensor):
        if image.ndim == 3 and image.shape[0] in (1, 3):  # CxHxW -> HxWxC
            return to_image(image.detach().cpu().permute(1, 2, 0).numpy())
        raise ValueError(f"a tensor image must be 3xHxW or 1xHxW, got {tuple(image.shape)}")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"cannot score a {type(image).__name__}; pass {ACCEPTED}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(f"an array image must be HxW, HxWx3 or HxWx4, got {image.shape}")
    return to_rgb(Image.fromarray(_uint8(image)))


def _is_batch(inputs: Any) -> bool:
    return (isinstance(inputs, torch.Tensor | np.ndarray)) and inputs.ndim == 4


def _uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    if not np.issubdtype(pixels.dtype, np.floating):
        raise ValueError(f"image pixels must be uint8 or floats in [0, 1], got {pixels.dtype}")
    if pixels.size and not (np.isfinite(pixels).all() and 0 <= pixels.min() <= pixels.max() <= 1):
        raise ValueError(
            f"float image pixels must lie in [0, 1], got {np.nanmin(pixels):.4g} to "
            f"{np.nanmax(pixels):.4g} (or NaN/inf); divide 8-bit values by 255"
        )
    return np.rint(pixels.astype(np.float64) * 255).astype(np.uint8)


class ImageInputs(Dataset):
    """Items of :func:`expand_inputs` as ``(image [3, S, S], position, error)``: a file is
    decoded on access, so a folder of any size streams through a DataLoader; one that cannot be
    read, or an image the resize policy refuses, gives a blank image and its reason, so one bad
    file never stops a 100k-image run.

    Args:
        items: from :func:`expand_inputs`. transform: RGB PIL image -> float tensor [3, S, S]
        (:class:`pixelproof.data.transforms.FitToTensor`). size: S, for the blank image.
    """

    def __init__(
        self, items: Sequence[Item], transform: Callable[[Image.Image], torch.Tensor], size: int
    ) -> None:
        self.items, self.transform = list(items), transform
        self.blank = torch.zeros(3, size, size)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, str]:
        item = self.items[position]
        try:
            image = load_rgb(item) if isinstance(item, Path) else item
            return self.transform(image), position, ""
        except (BadImageError, ValueError) as err:
            return self.blank, position, str(getattr(err, "reason", err))
