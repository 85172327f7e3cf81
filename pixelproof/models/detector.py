"""One trained detector behind every entry point: give it images, get p(fake) and verdicts.

    from pixelproof import Detector

    detector = Detector.load("last.ckpt")  # its image size, resize mode and calibrated threshold
    for p in detector(["a.jpg", "b.png", "more_images/"]):
        print(p.path, p.p_fake, p.verdict, p.skipped)

It takes files, folders, PIL images, arrays and tensors of any size
(:mod:`pixelproof.data.image_inputs`), and brings each to the model's input as the checkpoint's
training data was. ``pixelproof.predict``, the detector part of ``pixelproof.explain`` and the
demo all score through it, so the verdict rule (:meth:`Detector.verdict`) exists once.

A detector is the rebuilt model with what its checkpoint says (:class:`TrainedDetector`) and how
it is run (:class:`InferenceSettings`); another source of the model (a shared folder) only needs
another constructor that builds those two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pixelproof.data.image_inputs import ImageInputs, expand_inputs, to_image
from pixelproof.evaluation.ten_crop import batch_logits
from pixelproof.models.inference import InferenceSettings, inference_config, inference_settings
from pixelproof.models.loading import TrainedDetector, load_trained


@dataclass(frozen=True)
class Prediction:
    """One input's result: its p(fake) and verdict, or why it could not be scored."""

    position: int  # in the inputs, folders and batches expanded (a folder in natural order)
    path: Path | None  # the file; None for an image given in memory
    p_fake: float | None = None
    verdict: str | None = None  # "fake" | "real"
    skipped: str | None = None  # why not scored: an unreadable file, a size resize_mode refuses

    @property
    def scored(self) -> bool:
        return self.skipped is None


class Detector:
    """A trained detector with its inference settings; call it on images (:meth:`predict`)."""

    def __init__(self, trained: TrainedDetector, settings: InferenceSettings) -> None:
        self.trained, self.settings = trained, settings
        self.model = trained.model.to(settings.device).eval()
        self.transform = settings.transform()

    @classmethod
    def load(cls, ckpt_path: str | Path, **overrides: Any) -> Detector:
        """The detector in ``ckpt_path`` (a checkpoint ``pixelproof.train`` wrote), run with the
        image size, resize mode and threshold it records, unless ``overrides`` (the keys of
        ``conf/inference/``: ``threshold``, ``image_size``, ``resize_mode``, ``device``,
        ``batch_size``, ``num_workers``, ``ten_crop``, ``crop_size``) say otherwise."""
        trained = load_trained(ckpt_path)
        return cls(trained, inference_settings(inference_config(overrides), trained))

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @property
    def image_size(self) -> int:
        return self.settings.image_size

    @property
    def resize_mode(self) -> str:
        return self.settings.resize_mode

    @property
    def device(self) -> torch.device:
        return self.settings.device

    def verdict(self, p_fake: float) -> str:
        """The verdict rule: fake when p(fake) reaches the threshold."""
        return "fake" if p_fake >= self.settings.threshold else "real"

    def to_input(self, image: Any) -> torch.Tensor:
        """One in-memory image (PIL, array or tensor) as the model's input ``[3, S, S]`` in
        [0, 1]; ``ValueError`` if the resize mode refuses its size."""
        return self.transform(to_image(image))

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """p(fake) ``[B]`` (on the CPU) of model inputs ``[B, 3, S, S]`` (:meth:`to_input`'s),
        ten-crop averaged when the settings ask for it."""
        with torch.inference_mode():
            logits = batch_logits(self.model, images.to(self.device), self.settings.crop_size)
            return logits.float().sigmoid().cpu()

    def predict(
        self, inputs: Any, recursive: bool = False, progress: bool = False
    ) -> list[Prediction]:
        """One :class:`Prediction` per image of ``inputs`` (see :mod:`pixelproof.data.image_inputs`;
        ``recursive``: folders' sub-folders too), in their order, scored in batches of
        ``batch_size`` with files decoded by ``num_workers`` DataLoader workers."""
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        items = expand_inputs(inputs, recursive)
        dataset = ImageInputs(items, self.transform, self.image_size)
        loader = DataLoader(
            dataset, batch_size=self.settings.batch_size, num_workers=self.settings.num_workers
        )
        paths = [item if isinstance(item, Path) else None for item in items]
        results: list[Prediction] = []
        for images, positions, errors in tqdm(
            loader, desc="Predicting", unit="batch", disable=not progress
        ):
            good = torch.tensor([not error for error in errors], dtype=torch.bool)
            probs = iter(self.score(images[good]).tolist() if good.any() else [])
            for position, error in zip(positions.tolist(), errors):
                if error:
                    results.append(Prediction(position, paths[position], skipped=error))
                else:
                    p = next(probs)
                    results.append(Prediction(position, paths[position], p, self.verdict(p)))
        return results

    __call__ = predict

    def __repr__(self) -> str:
        return (
            f"Detector({self.trained.path}, image_size={self.image_size}, "
            f"resize_mode={self.resize_mode!r}, threshold={self.threshold:.4f}, "
            f"device={self.device})"
        )
