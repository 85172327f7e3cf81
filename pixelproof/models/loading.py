"""Rebuild a trained detector from its checkpoint alone.

``pixelproof.train`` records the resolved model config in every checkpoint (``model_config``),
so evaluation and prediction need no ``model=`` override: the checkpoint says what it is.
"""

from pathlib import Path

import torch

from pixelproof.models.detector_module import DetectorModule


class CheckpointError(ValueError):
    """A checkpoint file that cannot be turned back into a detector."""


def load_detector(
    ckpt_path: str | Path, map_location: str | torch.device = "cpu"
) -> DetectorModule:
    """The detector saved in ``ckpt_path``, in eval mode, with its weights and threshold.

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
    config = checkpoint.get("model_config")
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
    model.model_config = config
    return model.eval().to(map_location)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "") or "none"
