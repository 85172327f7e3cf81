"""Rebuild a trained detector from its checkpoint alone.

``pixelproof.train`` records the resolved model config in every checkpoint (``model_config``,
see :mod:`pixelproof.callbacks.model_config`), and Lightning records the datamodule's settings,
so evaluation, prediction and export need no ``model=`` override and run the images at the size
and resize mode the detector was trained with.
"""

from dataclasses import dataclass
from pathlib import Path

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
            ``pixelproof.train``, holds a model that is not a detector, or its weights do not
            fit the model it names.
    """
    import hydra

    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path} does not exist; pass a checkpoint written by "
            "pixelproof.train, e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickle of arbitrary objects, not torch at all ...
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {_first_line(err)})"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} holds no Lightning state_dict: not a training checkpoint")
    config = checkpoint.get(MODEL_CONFIG)
    if not isinstance(config, dict) or "_target_" not in config:
        raise CheckpointError(
            f"{path} records no model config, so the model cannot be rebuilt: pass a checkpoint "
            "written by pixelproof.train"
        )
    model = hydra.utils.instantiate(config)
    if not isinstance(model, DetectorModule):
        raise CheckpointError(
            f"{path} holds a {config['_target_']}, not a real/fake detector; pass a checkpoint "
            "of a detector model (e.g. model=wavefreq_resnet50 or model=rine_tinyclip)"
        )
    model.on_load_checkpoint(checkpoint)
    missing, unexpected = model.load_state_dict(checkpoint["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: the weights do not fit {config['_target_']} "
            f"(missing {_some(missing)}; unexpected {_some(unexpected)})"
        )
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    return TrainedDetector(
        model=model.eval().to(map_location),
        config=config,
        image_size=int(data.get("image_size", DEFAULT_IMAGE_SIZE)),
        resize_mode=str(data.get("resize_mode", DEFAULT_RESIZE_MODE)),
        path=path,
    )


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "") or "none"
