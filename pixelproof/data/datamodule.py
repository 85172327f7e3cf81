"""One LightningDataModule for every dataset layout pixelproof reads.

``layout`` picks how files are found, from the registry :data:`pixelproof.data.layouts.LAYOUTS`
(``cifake``, ``per_generator``, ``cifake_per_generator``, ``csv``). Training pools every
generator; testing gets one dataloader per generator (the CNNDetection / UFD / RINE protocol).

Validation is a held-out split when given, else a seeded, class-stratified fraction of the
training files. With ``embedded`` set, ``prepare_data`` first builds the offline dataset in
``root`` (once; later runs reuse it).

Every image is decoded once, at ``setup`` (:class:`ImageFileDataset`); the training
augmentations (``augment``: :class:`BatchAugmentation`) run on whole batches once they reach the
model's device, in :meth:`ImageDataModule.on_after_batch_transfer`, and only while training.
"""

import inspect
import logging
from collections.abc import Mapping
from typing import Any, Literal

from lightning import LightningDataModule
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from pixelproof.data.augmentations import BatchAugmentation
from pixelproof.data.image_dataset import ImageFileDataset
from pixelproof.data.layouts import Sample, get_layout

log = logging.getLogger(__name__)


class ImageDataModule(LightningDataModule):
    def __init__(
        self,
        root: str | None,
        layout: str = "cifake",
        train_split: str = "train",
        test_split: str = "test",
        val_split: str | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        image_size: int = 32,
        resize_mode: str = "resize",
        augment: Mapping[str, Any] | None = None,
        on_bad_file: Literal["error", "skip"] = "error",
        cache_images: bool = True,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        embedded: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction={val_fraction} must be in [0, 1)")
        self.layout = get_layout(layout, root)
        self.save_hyperparameters(logger=False)
        self.augmentation = _augmentation(augment)
        self.train_set: ImageFileDataset | None = None
        self.val_set: ImageFileDataset | None = None
        self.test_sets: dict[str, ImageFileDataset] = {}

    @property
    def test_names(self) -> list[str]:
        """Names of the test dataloaders, in order (generators for per-generator layouts)."""
        if not self.test_sets:
            self.setup("test")
        return list(self.test_sets)

    # -- Lightning hooks -----------------------------------------------------------------------

    def prepare_data(self) -> None:
        if self.hparams.embedded:
            from pixelproof.data.embedded import build_embedded_dataset

            build_embedded_dataset(self.hparams.root, **dict(self.hparams.embedded))

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if stage in ("fit", "validate", None) and self.train_set is None:
            train = self.layout.pooled(hp.train_split)
            if hp.val_split is not None:
                val = self.layout.pooled(hp.val_split)
            elif hp.val_fraction > 0:
                train, val = train_test_split(
                    train,
                    test_size=hp.val_fraction,
                    random_state=hp.split_seed,
                    stratify=[s.label for s in train],
                )
            else:
                raise ValueError("no validation data: set data.val_fraction > 0 or data.val_split")
            self.train_set = self._dataset(train)
            self.val_set = self._dataset(val)
            log.info("train: %s | val: %s", _counts(self.train_set), _counts(self.val_set))
        if stage in ("test", None) and not self.test_sets:
            groups = self.layout.grouped(hp.test_split)
            self.test_sets = {n: self._dataset(s) for n, s in groups.items()}
            log.info("test: %s", {k: _counts(v) for k, v in self.test_sets.items()})

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment ``(images, labels)`` training batches on their device; others pass as is."""
        if self.trainer is not None and self.trainer.training:
            images, labels = batch
            # a list, as PyTorch's default collate gives (callbacks may append to it)
            return [self.augmentation(images), labels]
        return batch

    def _dataset(self, samples: list[Sample]) -> ImageFileDataset:
        """Decode every file once (bad files: error or logged skip), at the model's size."""
        hp = self.hparams
        return ImageFileDataset(
            samples,
            hp.image_size,
            hp.resize_mode,
            on_bad_file=hp.on_bad_file,
            cache=hp.cache_images,
        )

    def _loader(self, dataset: ImageFileDataset, train: bool) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            dataset,
            batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            shuffle=train,
            drop_last=train and len(dataset) > hp.batch_size,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(ds, train=False) for ds in self.test_sets.values()]


def _augmentation(augment: Mapping[str, Any] | None) -> BatchAugmentation:
    """``BatchAugmentation(**augment)``; an unknown key is named with the ones allowed."""
    allowed = list(inspect.signature(BatchAugmentation).parameters)
    unknown = sorted(set(augment or {}) - set(allowed))
    if unknown:
        raise ValueError(
            f"data.augment.{unknown[0]} is not an augmentation setting; use {', '.join(allowed)}"
        )
    return BatchAugmentation(**dict(augment or {}))


def _counts(dataset: ImageFileDataset) -> str:
    fake = sum(dataset.labels)
    return f"{len(dataset)} images ({len(dataset) - fake} real, {fake} fake)"
