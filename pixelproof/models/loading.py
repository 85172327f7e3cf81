"""Rebuild a trained detector from its checkpoint alone.

``pixelproof.train`` records the resolved model config in every checkpoint (``model_config``,
see :mod:`pixelproof.callbacks.model_config`), and Lightning records the datamodule's settings,
so evaluation, prediction and export need no ``model=`` override and run the images at the size
and resize mode the detector was trained with.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pixelproof.callbacks.model_config import KEY as MODEL_CONFIG
from pixelproof.models.detector_module import DetectorModule

# what a checkpoint without datamodule settings (not written by a training run) is taken to use
DEFAULT_IMAGE_SIZE, DEFAULT_RESIZE_MODE = 32, "resize"


@dataclass(frozen=True)
class TrainedDetector:
    """A detector rebuilt from its checkpoint, with what the checkpoint says about its use."""

    model: DetectorModule
    config: dict  # the resolved model config it was built from
    image_size: int  # the side its training images were brought to
    resize_mode: str  # how: resize | center_crop | none
    path: Path

    @property
    def threshold(self) -> float:
        """The decision threshold calibrated on validation data (0.5 if none was)."""
        return float(self.model.decision_threshold)


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
    from pixelproof.models.registry import UntrustedConfigError, build_detector

    config = checkpoint.get(MODEL_CONFIG)
    if not isinstance(config, dict) or "_target_" not in config:
        raise CheckpointError(
            f"{path} records no model config, so the model cannot be rebuilt: pass a checkpoint "
            "written by pixelproof.train"
        )
    try:  # only the project's own detector classes: a checkpoint is data, never code
        model = build_detector(config, str(path))
    except UntrustedConfigError as err:
        raise CheckpointError(str(err)) from None
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
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    return TrainedDetector(
        model=model.eval().to(map_location),
        config=config,
        image_size=int(data.get("image_size", DEFAULT_IMAGE_SIZE)),
        resize_mode=str(data.get("resize_mode", DEFAULT_RESIZE_MODE)),
        path=path,
    )


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
