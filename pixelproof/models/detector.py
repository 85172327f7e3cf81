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
it is run (:class:`InferenceSettings`). It is shared as a folder (weights, card, README) through
huggingface_hub's ``ModelHubMixin``:

    detector.save_pretrained("my_detector")              # model.safetensors, config.json, README.md
    detector = Detector.from_pretrained("my_detector")   # or "<user>/<repo>" on the Hub, or a .ckpt
    detector.push_to_hub("<user>/my_detector")           # after `hf auth login`

(:mod:`pixelproof.models.sharing` has the folder's format and how it is checked when loaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import ModelHubMixin

from pixelproof.data.image_inputs import ImageInputs, expand_inputs, to_image
from pixelproof.evaluation.ten_crop import batch_logits
from pixelproof.models.inference import (
    InferenceSettings,
    inference_config,
    inference_copy,
    inference_settings,
)
from pixelproof.models.loading import TrainedDetector, load_trained

if TYPE_CHECKING:
    from pixelproof.models.detector_module import DetectorModule


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


class Detector(ModelHubMixin, library_name="pixelproof", tags=["pixelproof"]):
    """A trained detector with its inference settings; call it on images (:meth:`predict`)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Detector:
        # the mixin's __new__ records __init__'s arguments as the JSON config, and asdict() of
        # these dataclasses would deep-copy the model: config.json is the card instead
        # (_save_pretrained writes it)
        return object.__new__(cls)

    def __init__(self, trained: TrainedDetector, settings: InferenceSettings) -> None:
        self.trained, self.settings = trained, settings
        self.scorer = trained.scorer.to(settings.device).eval()  # what model(x) computes
        self.transform = settings.transform()
        self._fast: tuple[tuple, torch.nn.Module | None] | None = None  # see _scoring_module
        # what save_pretrained's card reports: the training run's directory (command, metrics),
        # and the card of the folder it was loaded from (kept when saved again)
        self.run_dir: Path | None = None
        self.card: dict[str, Any] = {}

    @classmethod
    def load(cls, ckpt_path: str | Path, **overrides: Any) -> Detector:
        """The detector in ``ckpt_path`` (a checkpoint ``pixelproof.train`` wrote), run with the
        image size, resize mode and threshold it records, unless ``overrides`` (the keys of
        ``conf/inference/``: ``threshold``, ``image_size``, ``resize_mode``, ``device``,
        ``batch_size``, ``num_workers``, ``ten_crop``, ``crop_size``) say otherwise."""
        trained = load_trained(ckpt_path)
        detector = cls(trained, inference_settings(inference_config(overrides), trained))
        run_dir = Path(ckpt_path).resolve().parent.parent  # <run>/checkpoints/<name>.ckpt
        if (run_dir / "metrics.json").is_file() or (run_dir / ".hydra").is_dir():
            detector.run_dir = run_dir
        return detector

    @classmethod
    def from_pretrained(cls, source: str | Path, **kwargs: Any) -> Detector:
        """The detector in ``source``: a folder :meth:`save_pretrained` wrote, the Hub repo id of
        one (``"owner/name"``; ``revision=``, ``cache_dir=``, ``token=`` go to
        huggingface_hub), or a checkpoint file (as :meth:`load`). Other keyword arguments are
        inference settings, as for :meth:`load`; by default the folder's own.

        Raises ``FileNotFoundError`` / ``ValueError`` (a path that is not there, a folder
        without the files, a string that is not a repo id), ``OSError`` (a repo that cannot be
        downloaded), :class:`~pixelproof.models.sharing.PretrainedError` (a damaged folder),
        each one line saying what to pass instead: never a randomly initialised detector."""
        from pixelproof.models.sharing import INSTEAD, resolve_source
        from pixelproof.utils.hub import hub_reachable

        kind, path = resolve_source(source)
        hub_keys = {"revision", "cache_dir", "force_download", "token", "local_files_only"}
        if kind == "checkpoint":
            return cls.load(path, **{k: v for k, v in kwargs.items() if k not in hub_keys})
        if kind == "folder":
            return super().from_pretrained(path, **kwargs)
        # a Hub repo: probed once, so an offline machine fails at once instead of retrying
        kwargs.setdefault("local_files_only", not hub_reachable())
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            return super().from_pretrained(str(source), **kwargs)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if kwargs["local_files_only"]:
                reason = "the Hub is offline or unreachable and it is not in the local cache"
            raise OSError(f"cannot load the Hub repo {source!r} ({reason}); {INSTEAD}") from None

    def _save_pretrained(self, save_directory: Path) -> None:
        from pixelproof.models.sharing import write_folder

        write_folder(self, Path(save_directory))

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict | None = None,  # the mixin's parse of config.json: read again, checked
        **overrides: Any,
    ) -> Detector:
        from pixelproof.models.sharing import WEIGHTS_NAME, read_folder

        folder = Path(model_id)
        if not folder.is_dir():  # a Hub repo: its weights beside the config.json just fetched
            from huggingface_hub import hf_hub_download

            folder = Path(
                hf_hub_download(
                    model_id,
                    WEIGHTS_NAME,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    local_files_only=local_files_only,
                    token=token,
                )
            ).parent
        trained, inference, card = read_folder(folder, overrides)
        detector = cls(trained, inference_settings(inference, trained))
        detector.card = card
        return detector

    def generate_model_card(self, *args: Any, **kwargs: Any):
        """The README.md :meth:`save_pretrained` writes (see :mod:`pixelproof.models.sharing`)."""
        from pixelproof.models.sharing import model_card

        return model_card(self.card)

    @cached_property
    def model(self) -> DetectorModule:
        """The detector's LightningModule, in eval mode on :attr:`device` (built on first use:
        scoring needs only the network, and Lightning takes seconds to import)."""
        return self.trained.model.to(self.device).eval()

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
        model, channels_last = self._scoring_module()
        with torch.inference_mode():
            images = images.to(self.device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = batch_logits(model, images, self.settings.crop_size)
            return logits.float().sigmoid().cpu()

    def _scoring_module(self) -> tuple[torch.nn.Module, bool]:
        """``(module, whether it takes channels-last images)``: :attr:`scorer`'s
        :func:`~pixelproof.models.inference.inference_copy` (batch norms folded, channels-last:
        the same logits up to float rounding), made again whenever a weight of the scorer has
        changed (it is :attr:`model`'s network, which callers may train or edit); the network
        itself when the copy would gain nothing or when a forward hook is on it (attributions),
        and :attr:`model` when something else was put there."""
        model = self.__dict__.get("model")
        if model is not None and model is not self.trained.__dict__.get("model"):
            return model, False
        scorer = self.scorer
        if _hooked(scorer if model is None else model):
            return scorer if model is None else model, False
        tensors = chain(scorer.parameters(), scorer.buffers())
        key = (scorer.training, *((t.data_ptr(), t._version) for t in tensors))
        if self._fast is None or self._fast[0] != key:
            self._fast = (key, inference_copy(scorer))
        fast = self._fast[1]
        return (scorer, False) if fast is None else (fast, True)

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


def _hooked(module: torch.nn.Module) -> bool:
    """Whether a forward hook is on ``module`` or any module inside it."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
