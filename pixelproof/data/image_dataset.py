"""A dataset of labelled image files, decoded once and kept in memory as one uint8 tensor.

:class:`ImageFileDataset` decodes every file when it is built (with
:func:`pixelproof.data.decoding.load_rgb` and :func:`pixelproof.data.decoding.fit`), so an
unreadable file is reported (or skipped) before training starts instead of crashing a dataloader
halfway through an epoch, and an epoch costs no decoding at all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pixelproof.data.decoding import BadImageError, fit, load_rgb
from pixelproof.data.layouts import Sample
from pixelproof.data.transforms import check_resize, to_tensor

log = logging.getLogger("pixelproof.data")

# Above this many files the construction-time scan shows a progress bar.
_PROGRESS_THRESHOLD = 2000
# How many bad files an error or warning quotes before summarising with a count.
_MAX_LISTED = 5


# ----------------------------------------------------------------------------------- dataset


class ImageFileDataset(Dataset):
    """Labelled image files, each decoded and brought to ``image_size`` once, at construction.

    Args:
        samples: files to use, e.g. from :mod:`pixelproof.data.layouts`.
        image_size: S, the side every image is brought to.
        resize_mode: how: ``resize``, ``center_crop`` or ``none`` (an image of another size
            raises ``ValueError`` naming the file), see :func:`pixelproof.data.decoding.fit`.
        on_bad_file: ``"error"`` raises :class:`BadImageError` if any file cannot be decoded;
            ``"skip"`` drops those files (listed in ``self.skipped``) with one warning.
        cache: keep the decoded images as one uint8 tensor ``self.images`` [N, 3, S, S]
            (3 KB per 32x32 image: 100k images take ~300 MB, shared with dataloader workers
            rather than copied); ``False`` decodes each file again on access, for datasets too
            big for memory.

    Items are ``(image, label)``: a float32 tensor [3, S, S] in [0, 1] and a float32 scalar
    tensor (1 = fake). Training augmentations run later, on whole batches
    (:mod:`pixelproof.data.augmentations`).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int = 32,
        resize_mode: str = "resize",
        on_bad_file: Literal["error", "skip"] = "error",
        cache: bool = True,
    ) -> None:
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}.")
        if len(samples) == 0:
            raise ValueError("ImageFileDataset needs at least one sample, got none.")
        check_resize(image_size, resize_mode)
        self.image_size, self.resize_mode = image_size, resize_mode
        self.on_bad_file = on_bad_file
        self.samples: list[Sample] = []
        self.skipped: list[tuple[Path, str]] = []
        images = torch.empty(
            (len(samples) if cache else 0, 3, image_size, image_size), dtype=torch.uint8
        )

        for sample in tqdm(
            samples,
            desc="Decoding images",
            unit="img",
            disable=len(samples) <= _PROGRESS_THRESHOLD,
            leave=False,
        ):
            try:
                image = self._decode(sample.path)
            except BadImageError as err:
                self.skipped.append((sample.path, err.reason))
                continue
            if cache:
                images[len(self.samples)] = image
            self.samples.append(sample)

        self._report_bad(samples)
        self.labels: list[int] = [s.label for s in self.samples]
        self.generators: list[str] = [s.generator for s in self.samples]
        self.images: torch.Tensor | None = images[: len(self.samples)] if cache else None

    def _decode(self, path: Path) -> torch.Tensor:
        """``path`` as a uint8 tensor [3, S, S]; BadImageError for an unreadable file, ValueError
        (naming the file) for one the resize policy refuses."""
        image = load_rgb(path)
        try:
            image = fit(image, self.image_size, self.resize_mode)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        return to_tensor(image)

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
        image = self.images[index] if self.images is not None else self._decode(sample.path)
        return image.float() / 255, torch.tensor(sample.label, dtype=torch.float32)


def _common_folder(paths: Sequence[Path]) -> Path:
    try:
        return Path(os.path.commonpath([str(p.parent) for p in paths]))
    except ValueError:  # paths on different drives, or mixed absolute and relative
        return paths[0].parent
