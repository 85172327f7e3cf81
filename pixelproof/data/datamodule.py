"""One LightningDataModule for every dataset layout pixelproof reads.

``layout`` picks how files are found (see :mod:`pixelproof.data.layouts`):

* ``cifake``: ``<root>/<split>/REAL|FAKE``; one test set;
* ``per_generator``: ``<root>/<split>/<generator>/[<class>/]0_real|1_fake``; training pools all
  generators, testing gets one dataloader per generator (the CNNDetection / UFD / RINE protocol);
* ``csv``: ``path,label[,generator]`` file lists; test rows are grouped by generator.

Validation is a held-out folder / CSV when given, else a seeded, class-stratified fraction of the
training files. With ``embedded`` set, ``prepare_data`` first builds the offline dataset in
``root`` (once; later runs reuse it).
"""

import logging
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from lightning import LightningDataModule
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from pixelproof.data.image_dataset import ImageFileDataset
from pixelproof.data.layouts import (
    DatasetLayoutError,
    Sample,
    cifake_samples,
    csv_samples,
    per_generator_samples,
)
from pixelproof.data.transforms import build_transform

log = logging.getLogger(__name__)

Layout = Literal["cifake", "per_generator", "csv"]


class ImageDataModule(LightningDataModule):
    def __init__(
        self,
        root: str | None,
        layout: Layout = "cifake",
        train_split: str = "train",
        test_split: str = "test",
        val_split: str | None = None,
        train_csv: str | None = None,
        val_csv: str | None = None,
        test_csv: str | None = None,
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
        if layout not in ("cifake", "per_generator", "csv"):
            raise ValueError(f"data.layout={layout!r}: choose cifake, per_generator or csv")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction={val_fraction} must be in [0, 1)")
        if layout != "csv" and root is None:
            raise ValueError(f"data.root is required for the {layout} layout")
        self.save_hyperparameters(logger=False)
        self.train_transform = build_transform(
            image_size, resize_mode, train=True, **dict(augment or {})
        )
        self.eval_transform = build_transform(image_size, resize_mode, train=False)
        self.train_set: ImageFileDataset | None = None
        self.val_set: ImageFileDataset | None = None
        self.test_sets: dict[str, ImageFileDataset] = {}

    # -- discovering files ---------------------------------------------------------------------

    def _folder(self, split: str) -> Path:
        return Path(self.hparams.root) / split

    def _pooled(self, split: str) -> list[Sample]:
        """Training / validation files of one split, all generators pooled."""
        hp = self.hparams
        if hp.layout == "cifake":
            return cifake_samples(hp.root, split)
        if hp.layout == "per_generator":
            groups = per_generator_samples(self._folder(split))
            return [s for samples in groups.values() for s in samples]
        return csv_samples(split, base_dir=hp.root)

    def _grouped(self, split: str) -> dict[str, list[Sample]]:
        """Test files of one split, one group per generator."""
        hp = self.hparams
        if hp.layout == "cifake":
            return {"all": cifake_samples(hp.root, split)}
        if hp.layout == "per_generator":
            return per_generator_samples(self._folder(split))
        groups: dict[str, list[Sample]] = defaultdict(list)
        for sample in csv_samples(split, base_dir=hp.root):
            groups[sample.generator].append(sample)
        return dict(sorted(groups.items()))

    def _split_names(self) -> tuple[str, str | None, str]:
        hp = self.hparams
        if hp.layout == "csv":
            if not hp.train_csv or not hp.test_csv:
                raise DatasetLayoutError("the csv layout needs data.train_csv and data.test_csv")
            return hp.train_csv, hp.val_csv, hp.test_csv
        return hp.train_split, hp.val_split, hp.test_split

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
        train_split, val_split, test_split = self._split_names()
        if stage in ("fit", "validate", None) and self.train_set is None:
            train = self._pooled(train_split)
            if val_split is not None:
                val = self._pooled(val_split)
            elif hp.val_fraction > 0:
                train, val = train_test_split(
                    train,
                    test_size=hp.val_fraction,
                    random_state=hp.split_seed,
                    stratify=[s.label for s in train],
                )
            else:
                raise ValueError("no validation data: set data.val_fraction > 0 or data.val_split")
            self.train_set = self._dataset(train, self.train_transform)
            self.val_set = self._dataset(val, self.eval_transform)
            log.info("train: %s | val: %s", _counts(self.train_set), _counts(self.val_set))
        if stage in ("test", None) and not self.test_sets:
            groups = self._grouped(test_split)
            self.test_sets = {n: self._dataset(s, self.eval_transform) for n, s in groups.items()}
            log.info("test: %s", {k: _counts(v) for k, v in self.test_sets.items()})

    def _dataset(self, samples: list[Sample], transform) -> ImageFileDataset:
        """Check every file once (bad files: error or logged skip), then decode on access."""
        hp = self.hparams
        return ImageFileDataset(
            samples, transform, on_bad_file=hp.on_bad_file, cache=hp.cache_images
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


def _counts(dataset: ImageFileDataset) -> str:
    fake = sum(dataset.labels)
    return f"{len(dataset)} images ({len(dataset) - fake} real, {fake} fake)"
