"""A dataset of labelled image files whose bad files are caught up front.

:class:`ImageFileDataset` decodes every file once when it is built (with
:func:`pixelproof.data.decoding.load_rgb`), so an unreadable file is reported (or skipped) before
training starts instead of crashing a dataloader worker halfway through an epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pixelproof.data.decoding import BadImageError, load_rgb
from pixelproof.data.layouts import Sample

log = logging.getLogger("pixelproof.data")

# Above this many files the construction-time scan shows a progress bar.
_PROGRESS_THRESHOLD = 2000
# How many bad files an error or warning quotes before summarising with a count.
_MAX_LISTED = 5


# ----------------------------------------------------------------------------------- dataset


class ImageFileDataset(Dataset):
    """Labelled image files, checked once at construction and decoded on access.

    Args:
        samples: files to use, e.g. from :mod:`pixelproof.data.layouts`.
        transform: PIL RGB image -> float tensor [3, H, W] in [0, 1]
            (see :func:`pixelproof.data.transforms.build_transform`).
        on_bad_file: ``"error"`` raises :class:`BadImageError` if any file cannot be decoded;
            ``"skip"`` drops those files (listed in ``self.skipped``) with one warning.
        cache: keep the images decoded during the scan in memory and reuse them in
            ``__getitem__`` (a 32x32 RGB image is ~3 KB, so 100k images take ~300 MB per
            process; dataloader workers each get a copy).

    Items are ``(image, label)`` with ``label`` a float32 scalar tensor (1 = fake).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], torch.Tensor],
        on_bad_file: Literal["error", "skip"] = "error",
        cache: bool = False,
    ) -> None:
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}.")
        if len(samples) == 0:
            raise ValueError("ImageFileDataset needs at least one sample, got none.")
        self.transform = transform
        self.on_bad_file = on_bad_file
        self.samples: list[Sample] = []
        self.skipped: list[tuple[Path, str]] = []
        self._cache: list[Image.Image] | None = [] if cache else None

        for sample in tqdm(
            samples,
            desc="Checking images",
            unit="img",
            disable=len(samples) <= _PROGRESS_THRESHOLD,
            leave=False,
        ):
            try:
                image = load_rgb(sample.path)
            except BadImageError as err:
                self.skipped.append((sample.path, err.reason))
                continue
            self.samples.append(sample)
            if self._cache is not None:
                self._cache.append(image)

        self._report_bad(samples)
        self.labels: list[int] = [s.label for s in self.samples]
        self.generators: list[str] = [s.generator for s in self.samples]

    def _report_bad(self, samples: Sequence[Sample]) -> None:
        if not self.skipped:
            return
        listed = "; ".join(f"{p}: {why}" for p, why in self.skipped[:_MAX_LISTED])
        more = len(self.skipped) - _MAX_LISTED
        listed += f"; and {more} more" if more > 0 else ""
        if not self.samples:
            where = _common_folder([s.path for s in samples])
            raise BadImageError(
                f"None of the {len(samples)} image files under {where} could be read: {listed}."
            )
        if self.on_bad_file == "error":
            raise BadImageError(
                f"{len(self.skipped)} of {len(samples)} image files could not be read: {listed}. "
                f"Fix or remove them, or set data.on_bad_file=skip to skip them."
            )
        log.warning(
            "Skipped %d of %d image files that could not be read: %s.",
            len(self.skipped),
            len(samples),
            listed,
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        image = self._cache[index] if self._cache is not None else load_rgb(sample.path)
        try:
            tensor = self.transform(image)
        except ValueError as err:
            # Transforms only see pixels; say which file broke the rule.
            raise ValueError(f"{sample.path}: {err}") from err
        return tensor, torch.tensor(sample.label, dtype=torch.float32)


class UncheckedImageFiles(Dataset):
    """Unlabelled image files decoded on access, for scoring folders of any size: items are
    ``(image, position, error)``, and an unreadable file gives a blank image and its error, so
    one bad file never stops a 100k-image run.

    Args:
        paths: the files. transform: PIL RGB image -> float tensor [3, S, S].
        image_size: S, the side of the blank image that stands in for a bad file.
    """

    def __init__(self, paths: Sequence[Path], transform, image_size: int) -> None:
        self.paths, self.transform = list(paths), transform
        self.blank = torch.zeros(3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, str]:
        try:
            return self.transform(load_rgb(self.paths[position])), position, ""
        except (BadImageError, ValueError) as err:
            return self.blank, position, str(getattr(err, "reason", err))


def _common_folder(paths: Sequence[Path]) -> Path:
    try:
        return Path(os.path.commonpath([str(p.parent) for p in paths]))
    except ValueError:  # paths on different drives, or mixed absolute and relative
        return paths[0].parent
