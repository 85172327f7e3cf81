"""What every generator family shares: the sampling contract, per-image noise and uint8 output.

A family is a :class:`GenerativeModel` (a ``LightningModule``) that says

* which of its sub-modules sampling needs (``sampling_modules``: saved to the weights file, the
  rest, e.g. a GAN's discriminator or a VAE's encoder, is training-only),
* what noise one image starts from (``noise(rng)``, drawn from that image's own generator),
* how a batch of noise becomes images in [-1, 1] (``decode``).

``sample`` then gives ``[n, 32, 32, 3]`` uint8 images. Image ``k`` of a call with seed ``s``
starts from the noise of ``np.random.default_rng([s, k])`` and nothing else is random: the
same call gives the same bytes, and image ``k`` is the same for any ``n`` and ``batch_size`` up
to float rounding (the size of the batch it is decoded in can change the order a convolution
sums in; that survives the uint8 rounding rarely: the shipped weights gave identical images in
batches of 40 and of 7, tiny random networks differ by one level in ~0.02 % of the values).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from lightning import LightningModule
from torch import Tensor
from tqdm.auto import tqdm

IMAGE_SIZE = 32


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of image ``index`` of a sampling call with ``seed``."""
    return np.random.default_rng([seed, index])


def to_uint8(images: Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` in [-1, 1] -> ``[B, H, W, 3]`` uint8 (clamped, rounded to nearest)."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def batches(n: int, batch_size: int) -> Iterator[range]:
    for start in range(0, n, batch_size):
        yield range(start, min(n, start + batch_size))


class GenerativeModel(LightningModule):
    """A trainable generator that samples 32x32 RGB images (see the module docstring)."""

    #: the zoo's family name: gan | diffusion | vae | autoregressive | latent_diffusion
    family: str = ""
    #: the sub-modules sampling needs; their weights are all the weights file holds
    sampling_modules: tuple[str, ...] = ()
    #: images decoded together when ``sample`` is given no ``batch_size``
    sample_batch_size: int = 250

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        """The float32 noise one image is decoded from."""
        raise NotImplementedError

    def decode(self, noise: Tensor) -> Tensor:
        """A batch of ``noise`` -> ``[B, 3, 32, 32]`` images in [-1, 1] (called in eval mode)."""
        raise NotImplementedError

    def sampling_state_dict(self) -> dict[str, Tensor]:
        return {
            f"{name}.{key}": value
            for name in self.sampling_modules
            for key, value in getattr(self, name).state_dict().items()
        }

    def load_sampling_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load what ``sampling_state_dict`` gave; missing or unexpected keys raise."""
        for name in self.sampling_modules:
            prefix = f"{name}."
            part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            getattr(self, name).load_state_dict(part, strict=True)
        unknown = {k.split(".")[0] for k in state} - set(self.sampling_modules)
        if unknown:
            raise KeyError(f"unexpected modules in the weights: {sorted(unknown)}")

    def num_sampling_parameters(self) -> int:
        return sum(
            p.numel() for name in self.sampling_modules for p in getattr(self, name).parameters()
        )

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        seed: int = 0,
        batch_size: int | None = None,
        progress: bool = True,
        desc: str = "",
    ) -> np.ndarray:
        """``n`` images as a ``[n, 32, 32, 3]`` uint8 array, deterministic for ``(n, seed)``;
        ``batch_size`` (default: the family's ``sample_batch_size``) only trades memory for
        speed."""
        batch_size = batch_size or self.sample_batch_size
        was_training = self.training
        self.eval()
        out = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        bar = tqdm(
            total=n,
            desc=desc or f"sampling {type(self).__name__}",
            unit="img",
            disable=not progress,
        )
        try:
            for idx in batches(n, batch_size):
                noise = np.stack([self.noise(image_rng(seed, k)) for k in idx])
                images = self.decode(torch.from_numpy(noise).to(self.device))
                out[idx.start : idx.stop] = to_uint8(images)
                bar.update(len(idx))
        finally:
            bar.close()
            self.train(was_training)
        return out


def contact_sheet(images: np.ndarray, columns: int = 16, scale: int = 2) -> np.ndarray:
    """Tile ``[n, H, W, 3]`` uint8 images into one uint8 image (1-pixel white gutters)."""
    n, h, w, _ = images.shape
    rows = math.ceil(n / columns)
    sheet = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, 3), 255, dtype=np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, columns)
        sheet[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = img
    return sheet.repeat(scale, axis=0).repeat(scale, axis=1)
