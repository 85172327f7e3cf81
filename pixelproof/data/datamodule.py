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

The training loader is a :class:`ResumableLoader` over a :class:`ResumableShuffleSampler`: the
order of an epoch is a function of the seed and the epoch alone, and a run resumed mid-epoch starts
after the batches Lightning's restored progress counts, so it sees exactly the batches the
uninterrupted run would have seen (one process; see :meth:`ImageDataModule._samples_done` for DDP).
"""

import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import torch
from lightning import LightningDataModule
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Sampler

from pixelproof.data.augmentations import BatchAugmentation
from pixelproof.data.image_dataset import ImageFileDataset
from pixelproof.data.layouts import Sample, get_layout
from pixelproof.data.settings import DataSettings

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
        DataSettings(  # refuses a bad value, naming its data.* key
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            val_fraction=val_fraction,
            image_size=image_size,
        )
        self.layout = get_layout(layout, root)
        self.save_hyperparameters(logger=False)
        self.augmentation = _augmentation(augment)
        # augmented views of each image per training batch; 2 while callbacks=consistency fits
        self.views = 1
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
        """Augment ``(images, labels)`` training batches on their device; others pass as is.
        With ``views`` > 1 the batch holds that many independent augmentations of its images,
        one after the other (view 1 of every image, then view 2, ...), the labels repeated."""
        if self.trainer is not None and self.trainer.training:
            images, labels = batch
            if self.views > 1:
                views = [self.augmentation(images) for _ in range(self.views)]
                images, labels = torch.cat(views), labels.repeat(self.views)
            else:
                images = self.augmentation(images)
            # a list, as PyTorch's default collate gives (callbacks may append to it)
            return [images, labels]
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
        options = dict(
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
        )
        if not train:  # a generator of its own, as below: no draw from the global RNG
            return DataLoader(
                dataset,
                batch_size=hp.eval_batch_size or hp.batch_size,
                generator=torch.Generator().manual_seed(0),
                **options,
            )
        # the seed seed_everything set (torch's initial seed): the run's seed decides the order
        seed = torch.initial_seed() % 2**31
        return ResumableLoader(
            dataset,
            batch_size=hp.batch_size,
            sampler=ResumableShuffleSampler(len(dataset), seed, skip=self._samples_done),
            drop_last=len(dataset) > hp.batch_size,
            # the loader's own generator: creating an iterator draws a seed from it, not from
            # torch's global RNG (which the augmentations use), so the augmentations do not
            # depend on num_workers or on how many iterators were created
            generator=torch.Generator().manual_seed(seed),
            **options,
        )

    def _samples_done(self) -> int:
        """Training samples of the current epoch consumed before its iteration starts: the
        batches Lightning's progress counts (restored from the checkpoint by a run resumed
        mid-epoch; 0 at the start of an epoch) times the batch size. Under DDP, Lightning wraps
        the sampler (each process takes a share of its order) and this is 0: a mid-epoch resume
        there starts the epoch's order again."""
        trainer = self.trainer
        if trainer is None or not trainer.training or trainer.world_size > 1:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.ready) * int(
            self.hparams.batch_size
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(ds, train=False) for ds in self.test_sets.values()]


class ResumableShuffleSampler(Sampler[int]):
    """A shuffled order of ``n`` indices that depends on ``seed`` and the epoch alone.

    Lightning calls :meth:`set_epoch` before each epoch. ``skip`` (a callable, read when an
    epoch's iteration starts) says how many indices of that epoch's order were consumed before:
    0, except in a run resumed mid-epoch, which thus goes on with exactly the indices the
    uninterrupted run would have drawn next.
    """

    def __init__(self, n: int, seed: int, skip: Callable[[], int] | None = None) -> None:
        self.n, self.seed, self.epoch, self.skip = n, int(seed), 0, skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        start = self.skip() if self.skip is not None else 0
        return iter(self.order(self.epoch)[start:])

    def __len__(self) -> int:
        return self.n


class ResumableLoader(DataLoader):
    """The training DataLoader: resumable, and started lazily.

    Its iterator is created when the first batch is asked for, after Lightning has set the
    sampler's epoch and restored its batch counters (Lightning creates the iterator of a
    resumed run before either, and worker processes would draw indices at once). Its
    ``state_dict`` (the epoch and the batches handed out of it) is informational: the position
    itself comes back from Lightning's batch progress, which every checkpoint holds
    (:meth:`ImageDataModule._samples_done`), because Lightning does not load loader states when
    the loader was created before the checkpoint was restored (``estimated_stepping_batches``,
    which per-step LR schedules read, does that).

    No ``__init__`` of its own: Lightning re-creates DataLoaders from their arguments (to put a
    DistributedSampler in) and a subclass with DataLoader's signature re-creates cleanly.
    """

    _epoch: int = 0
    _batches: int = 0

    def __iter__(self) -> Iterator[Any]:
        return self._epoch_batches()

    def _epoch_batches(self) -> Iterator[Any]:
        epoch = int(getattr(self.sampler, "epoch", 0))
        if self.generator is not None and isinstance(self.sampler, ResumableShuffleSampler):
            self.generator.manual_seed(self.sampler.seed + epoch)  # worker seeds, per epoch
        iterator = super().__iter__()
        skip = self.sampler.skip() if isinstance(self.sampler, ResumableShuffleSampler) else 0
        self._epoch, self._batches = epoch, (skip // self.batch_size if self.batch_size else 0)
        for batch in iterator:
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._batches}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Nothing to load: see the class docstring."""


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
