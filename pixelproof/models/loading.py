"""Rebuild a trained detector from its checkpoint alone.

``pixelproof.train`` records the resolved model config in every checkpoint (``model_config``,
see :mod:`pixelproof.callbacks.model_config`), and Lightning records the datamodule's settings,
so evaluation, prediction and export need no ``model=`` override and run the images at the size
and resize mode the detector was trained with.

Scoring needs no Lightning: a plain :class:`~pixelproof.models.detector_module.DetectorModule`
(whose forward is its ``net``'s) is rebuilt as its net alone, with the weights and threshold of
the checkpoint, and the LightningModule around it is built on first use of
:attr:`TrainedDetector.model` (explanations, attacks, export), around that same net. Importing
Lightning takes seconds, most of ``pixelproof.predict``'s start-up; this module imports it only
then.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from pixelproof.models.detector_module import DetectorModule

#: the checkpoint key of the resolved model config (``callbacks.model_config.KEY`` is this one;
#: defined here so that loading a checkpoint does not import Lightning)
MODEL_CONFIG = "model_config"
#: the one detector class whose forward is its net's, so that its net alone can score
PLAIN_DETECTOR = "pixelproof.models.detector_module.DetectorModule"

# what a checkpoint without datamodule settings (not written by a training run) is taken to use
DEFAULT_IMAGE_SIZE, DEFAULT_RESIZE_MODE = 32, "resize"


@dataclass(frozen=True, eq=False)
class TrainedDetector:
    """A detector rebuilt from its checkpoint, with what the checkpoint says about its use.

    ``scorer`` computes the logits ``model(x)`` computes: the model's ``net`` for a plain
    ``DetectorModule``, the model itself otherwise. ``model`` (the LightningModule) is built on
    first use around that same net when the checkpoint was loaded without it."""

    scorer: torch.nn.Module  # [B,3,H,W] in [0,1] -> [B] logits, in eval mode
    config: dict  # the resolved model config it was built from
    image_size: int  # the side its training images were brought to
    resize_mode: str  # how: resize | center_crop | none
    path: Path
    decision_threshold: torch.Tensor  # the model's buffer (0-d): p(fake) >= it means fake
    build_model: Callable[[], DetectorModule] | None = field(default=None, repr=False)

    @cached_property
    def model(self) -> DetectorModule:
        """The detector's LightningModule, in eval mode, with the checkpoint's weights."""
        return self.build_model() if self.build_model is not None else self.scorer

    @property
    def threshold(self) -> float:
        """The decision threshold calibrated on validation data (0.5 if none was)."""
        return float(self.decision_threshold)


def load_detector(
    ckpt_path: str | Path, map_location: str | torch.device = "cpu"
) -> DetectorModule:
    """The detector saved in ``ckpt_path``, in eval mode (see :func:`load_trained`)."""
    return load_trained(ckpt_path, map_location).model


class CheckpointError(ValueError):
    """A checkpoint file that cannot be turned back into a detector."""


def load_trained(
    ckpt_path: str | Path, map_location: str | torch.device = "cpu"
) -> TrainedDetector:
    """The detector saved in ``ckpt_path``, in eval mode, with its weights and threshold, and the
    image size and resize mode it was trained with.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a readable checkpoint, was not written by
            ``pixelproof.train``, names a class that is not one of the project's detectors or
            their parts (:mod:`pixelproof.models.registry`), or its weights do not fit the
            model it names.
    """
    path = Path(ckpt_path)
    return rebuild_trained(read_checkpoint(path, map_location), path, map_location)


def rebuild_trained(
    checkpoint: dict, path: Path, map_location: str | torch.device = "cpu"
) -> TrainedDetector:
    """The detector a checkpoint-shaped dict describes (``state_dict``, ``model_config``, and
    optionally ``datamodule_hyper_parameters``), read from ``path``: what :func:`load_trained`
    and a shared folder (``Detector.from_pretrained``) both rebuild through, so the model config
    passes the same allow-list and the weights the same checks. Raises :class:`CheckpointError`."""
    from pixelproof.models.registry import UntrustedConfigError, build_detector, check_config

    config = checkpoint.get(MODEL_CONFIG)
    if not isinstance(config, dict) or "_target_" not in config:
        raise CheckpointError(
            f"{path} records no model config, so the model cannot be rebuilt: pass a checkpoint "
            "written by pixelproof.train"
        )
    try:  # only the project's own detector classes: a checkpoint is data, never code
        check_config(config, str(path))
    except UntrustedConfigError as err:
        raise CheckpointError(str(err)) from None
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    image_size = int(data.get("image_size", DEFAULT_IMAGE_SIZE))
    resize_mode = str(data.get("resize_mode", DEFAULT_RESIZE_MODE))
    used = {"config": config, "image_size": image_size, "resize_mode": resize_mode, "path": path}
    net = _plain_net(checkpoint, config)
    if net is not None:  # the LightningModule waits until something asks for it
        # DetectorModule.on_load_checkpoint's default: a checkpoint from before calibration
        threshold = checkpoint["state_dict"].get("decision_threshold", torch.tensor(0.5))
        threshold = threshold.to(map_location, torch.float32)
        net = net.eval().to(map_location)
        build = lambda: _around(net, threshold, config, path)  # noqa: E731
        return TrainedDetector(scorer=net, decision_threshold=threshold, build_model=build, **used)

    from pixelproof.models.detector_module import DetectorModule

    model = build_detector(config, str(path))
    if not isinstance(model, DetectorModule):  # the registry's detectors all are
        raise CheckpointError(f"{path} holds a {config['_target_']}, not a real/fake detector")
    model.on_load_checkpoint(checkpoint)
    missing, unexpected, reshaped = _mismatches(checkpoint["state_dict"], model)
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"{path}: the weights do not fit {config['_target_']} "
            f"(missing {_some(missing)}; unexpected {_some(unexpected)}; "
            f"other shapes {_some(reshaped)})"
        )
    model.load_state_dict(checkpoint["state_dict"], strict=False)
    model = model.eval().to(map_location)
    return TrainedDetector(scorer=model, decision_threshold=model.decision_threshold, **used)


def _plain_net(checkpoint: dict, config: dict) -> torch.nn.Module | None:
    """The ``net`` of a plain ``DetectorModule`` checkpoint (config checked already) with its
    weights, built without Lightning; ``None`` for any other detector, or weights that do not
    fit the net (the whole model is then built, and says what does not fit)."""
    state = checkpoint["state_dict"]
    net_config = config.get("net")
    if config["_target_"] != PLAIN_DETECTOR or not isinstance(net_config, dict):
        return None
    if any(not k.startswith("net.") and k != "decision_threshold" for k in state):
        return None
    import hydra

    net = hydra.utils.instantiate(net_config)
    weights = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    if not isinstance(net, torch.nn.Module) or any(_mismatches(weights, net)):
        return None
    net.load_state_dict(weights)
    return net


def _around(
    net: torch.nn.Module, threshold: torch.Tensor, config: dict, path: Path
) -> DetectorModule:
    """The ``DetectorModule`` ``config`` describes, around ``net`` and ``threshold`` (the very
    tensors: a change to one is a change to the other), built without touching the global
    random state (building draws initial weights, which ``net`` replaces)."""
    from pixelproof.models.registry import build_detector

    with torch.random.fork_rng(devices=[]):
        model = build_detector(config, str(path))
    model.net = net
    model.decision_threshold = threshold  # the registered buffer, now this tensor
    return model.eval()


def read_checkpoint(ckpt_path: str | Path, map_location: Any = "cpu") -> dict:
    """The dict a Lightning checkpoint holds, loaded with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: one line: not a file ``torch.save`` wrote (a text file, a truncated
            checkpoint), not loadable with torch's safe loader, or not a training checkpoint.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path} does not exist; pass a checkpoint written by "
            "pixelproof.train, e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
        )
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives (since torch 1.6)
        raise CheckpointError(
            f"{path} is not a readable checkpoint: not a file torch.save wrote (a truncated "
            "checkpoint, or another kind of file); pass a .ckpt written by pixelproof.train"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged archive, a pickle of arbitrary objects ...
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {_reason(err)})"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} holds no Lightning state_dict: not a training checkpoint")
    return checkpoint


def check_resumable(checkpoint: dict, model: torch.nn.Module, config: dict, where: str) -> None:
    """Raise :class:`CheckpointError` (one line: the model ``checkpoint`` holds and the one
    ``config`` asks for) unless ``model``, built from ``config``, can take its weights."""
    state = dict(checkpoint["state_dict"])
    hook = getattr(model, "on_load_checkpoint", None)
    if hook is not None:  # e.g. RINE puts its frozen tower's weights back in
        hook({**checkpoint, "state_dict": state})
    missing, unexpected, reshaped = _mismatches(state, model)
    if not (missing or unexpected or reshaped):
        return
    held = checkpoint.get(MODEL_CONFIG)
    if isinstance(held, dict):
        differences = _differences(held, config)
        held_text = f"a {describe_model(held)} model" + _settings(differences, 0)
        asked_text = f"a {describe_model(config)} model" + _settings(differences, 1)
    else:
        held_text = f"weights of another model (missing {_some(missing)}; unexpected "
        held_text += f"{_some(unexpected)}; other shapes {_some(reshaped)})"
        asked_text = f"a {describe_model(config)} model"
    raise CheckpointError(
        f"{where} holds {held_text}, but this run asks for {asked_text}: resume with the "
        "model settings of the run that wrote it"
    )


def describe_model(config: dict) -> str:
    """The class a model config builds, by its net when it has one (``SimpleCNN``)."""
    net = config.get("net")
    target = net.get("_target_") if isinstance(net, dict) else None
    return str(target or config.get("_target_", "unknown")).rsplit(".", 1)[-1]


def _differences(held: Any, asked: Any, key: str = "model") -> list[tuple[str, Any, Any]]:
    """``(key, held value, asked value)`` for every leaf where two configs differ, the
    architecture's first (the optimizer and scheduler last)."""
    if isinstance(held, dict) and isinstance(asked, dict):
        found = []
        for name in [*held, *(k for k in asked if k not in held)]:
            found += _differences(held.get(name), asked.get(name), f"{key}.{name}")
        return sorted(found, key=lambda d: d[0].startswith(("model.optimizer", "model.sched")))
    return [] if held == asked else [(key, held, asked)]


def _settings(differences: list[tuple[str, Any, Any]], side: int) -> str:
    shown = [f"{key}={values[side]}" for key, *values in differences[:2]]
    return f" ({', '.join(shown)})" if shown else ""


def _mismatches(state: dict, model: torch.nn.Module) -> tuple[list, list, list]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        k
        for k, v in expected.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, reshaped


# what torch's safe loader says around its reason: advice to load with weights_only=False or to
# allow-list what it met, neither an option for a file one cannot vouch for
_TORCH_ADVICE = ("weights_only", "trust", "Check the documentation", "Please file an issue")


def _reason(err: Exception) -> str:
    """The informative line of ``err``, without torch's advice around it (``_TORCH_ADVICE``)."""
    text = str(err)
    for marker in ("Weights only load failed.", "WeightsUnpickler error:"):
        text = text.replace(marker, "\n")
    lines = [line.split(" Please use ", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not any(a in line for a in _TORCH_ADVICE)]
    return (lines or [type(err).__name__])[0][:200]


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "") or "none"
