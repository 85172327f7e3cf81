"""32x32 crops of the training photographs: what the generator zoo learns from.

Each crop is a random-scale square of one photograph, area-averaged to 32x32 (the photographs
package's ``random_crop``), optionally mirrored. Crop ``k`` of a run is drawn from
``np.random.default_rng([seed, k])`` and epoch ``e`` serves crops ``e * crops_per_epoch`` to
``(e + 1) * crops_per_epoch - 1``: fresh crops every epoch, the same ones for the same seed
(whatever the number of workers). Batches are float32 ``[B, 3, 32, 32]`` tensors scaled to
``value_range`` ([-1, 1] by default: every family in the zoo models that range; ``[0, 1]``
for a model that wants it).

The photographs are the vendored ones, :mod:`pixelproof.photographs`
(``photo_names("train")`` for the zoo: generators never see a validation or test photograph).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(frozen=True)
class PhotoSource:
    """Where the photographs come from: their names and how to load and crop one."""

    module: str
    names: tuple[str, ...]
    load: Callable[[str], np.ndarray]
    crop: Callable[[np.ndarray, np.random.Generator], np.ndarray]


@cache
def photo_source(split: str = "train") -> PhotoSource:
    """The vendored photographs of ``split`` (:mod:`pixelproof.photographs`); never an
    evaluation-only split, whose sources must stay unseen by every generator."""
    from pixelproof import photographs

    if split in photographs.EVAL_ONLY_SPLITS:
        raise ValueError(
            f"the {split!r} photographs are for evaluation only: generators train on 'train'"
        )
    return PhotoSource(
        "pixelproof.photographs",
        tuple(photographs.photo_names(split)),
        photographs.load_photo,
        lambda photo, rng: photographs.random_crop(photo, rng, size=32),
    )


class PhotoCropDataset(Dataset):
    """Crop ``k`` (any non-negative int) of the photographs, a function of ``(seed, k)``."""

    def __init__(
        self,
        source: PhotoSource,
        seed: int = 0,
        hflip: bool = True,
        value_range: Sequence[float] = (-1.0, 1.0),
    ) -> None:
        if not source.names:
            raise ValueError(f"{source.module} lists no photographs to crop")
        self.source, self.seed, self.hflip = source, seed, hflip
        self.low, self.high = (float(v) for v in value_range)

    def crop_uint8(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        name = self.source.names[int(rng.integers(len(self.source.names)))]
        crop = self.source.crop(self.source.load(name), rng)
        if self.hflip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.array(crop)  # a writable, contiguous copy

    def __getitem__(self, k: int) -> torch.Tensor:
        x = torch.from_numpy(self.crop_uint8(k)).permute(2, 0, 1).float()
        return self.low + (self.high - self.low) / 255.0 * x

    def __len__(self) -> int:  # a DataLoader asks; the sampler picks the indices
        return 2**62


class FreshCropSampler(Sampler[int]):
    """New crops every epoch: epoch ``e`` yields crop indices ``[e * n, (e + 1) * n)``, so no
    epoch repeats an earlier one's crops; Lightning calls ``set_epoch``."""

    def __init__(self, crops_per_epoch: int) -> None:
        self.n, self.epoch = crops_per_epoch, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(range(self.epoch * self.n, (self.epoch + 1) * self.n))

    def __len__(self) -> int:
        return self.n


class PhotoCrops(LightningDataModule):
    """Training batches of fresh 32x32 photograph crops (see the module docstring).

    Args:
        crops_per_epoch: crops one epoch serves (the last partial batch is dropped).
        batch_size: crops per batch.
        seed: picks the crops; the same seed gives the same crops in the same order.
        split: the photographs' split; generators train on ``train`` only.
        hflip: mirror half the crops (a mirrored photograph is still a photograph).
        value_range: the ``(low, high)`` that pixel values 0 and 255 map to.
        num_workers: DataLoader worker processes (0: crop in the training process).
    """

    def __init__(
        self,
        crops_per_epoch: int = 8192,
        batch_size: int = 64,
        seed: int = 0,
        split: str = "train",
        hflip: bool = True,
        value_range: Sequence[float] = (-1.0, 1.0),
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.dataset: PhotoCropDataset | None = None

    @property
    def photo_names(self) -> tuple[str, ...]:
        return photo_source(self.hparams.split).names

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        source = photo_source(hp.split)
        self.dataset = PhotoCropDataset(source, hp.seed, hp.hflip, tuple(hp.value_range))

    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            self.setup("fit")
        hp = self.hparams
        return DataLoader(
            self.dataset,
            batch_size=hp.batch_size,
            sampler=FreshCropSampler(hp.crops_per_epoch),
            drop_last=True,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )
