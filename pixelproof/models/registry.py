"""What a checkpoint's model config may build: the project's detector classes, their parts and
torch's optimizers and schedulers, and nothing else.

A checkpoint is a file from outside: its ``model_config`` is data. ``hydra.utils.instantiate``
calls whatever ``_target_`` a config names, at any depth, so a crafted checkpoint naming
``builtins.open`` or ``shutil.copyfile`` would get it called. :func:`build_detector` first checks
every ``_target_`` of the config against the lists below (names written here, in code), and
refuses interpolations (``${...}``), which OmegaConf would resolve, before anything is built.
"""

from __future__ import annotations

from typing import Any

#: the LightningModules a detector checkpoint may hold
DETECTORS: frozenset[str] = frozenset(
    {
        "pixelproof.models.detector_module.DetectorModule",
        "pixelproof.models.rine_module.RineModule",
    }
)

#: the modules a detector may be built from (:func:`register_part` adds one, in code)
PARTS: set[str] = {
    "pixelproof.models.components.simple_cnn.SimpleCNN",
    "pixelproof.models.components.wavefreq_resnet.WaveFreqResNet",
    "pixelproof.models.components.clip_backbone.CLIPBackbone",
}

# torch's optimizers and schedulers are allowed by what they are, not listed one by one
_TORCH_FACTORIES = ("torch.optim.lr_scheduler.", "torch.optim.")


def register_part(cls: type) -> type:
    """Allow checkpoints to build ``cls`` (a net of your own, ``model.net._target_``): call it
    in the module that defines the class, which must be imported before the checkpoint is
    loaded. Usable as a class decorator."""
    PARTS.add(f"{cls.__module__}.{cls.__qualname__}")
    return cls


class UntrustedConfigError(ValueError):
    """A config read from a file names something the project does not build from files."""


def check_config(config: Any, where: str) -> None:
    """Raise :class:`UntrustedConfigError` (one line naming ``where`` and the key) unless every
    ``_target_`` in ``config`` is a detector, a detector part, or a torch optimizer or scheduler,
    the top-level one a detector, and no string holds an interpolation."""
    top = config.get("_target_") if isinstance(config, dict) else None
    if top not in DETECTORS:
        raise UntrustedConfigError(
            f"{where} holds a {top or 'config without a model'}, not a real/fake detector; pass "
            f"a checkpoint of a detector model ({', '.join(_short(d) for d in sorted(DETECTORS))})"
        )
    for key, value in _leaves(config, "model"):
        if key.endswith("._target_") and not _allowed(value):
            raise UntrustedConfigError(
                f"{where}: {key}={value!r} is not a class pixelproof builds from a checkpoint; "
                "refusing to load it (a checkpoint is data, never code)"
            )
        if isinstance(value, str) and "${" in value:
            raise UntrustedConfigError(
                f"{where}: {key} holds an interpolation ({value[:60]!r}); a checkpoint's config "
                "is stored resolved, so this one was not written by pixelproof.train"
            )


def build_detector(config: dict, where: str):
    """The detector ``config`` describes, built once :func:`check_config` has passed."""
    import hydra

    check_config(config, where)
    return hydra.utils.instantiate(config)


def _allowed(target: Any) -> bool:
    if not isinstance(target, str):
        return False
    if target in DETECTORS or target in PARTS:
        return True
    return any(target.startswith(p) for p in _TORCH_FACTORIES) and _is_torch_factory(target)


def _is_torch_factory(target: str) -> bool:
    """``torch.optim.<Class>`` / ``torch.optim.lr_scheduler.<Class>``: an optimizer or scheduler
    class found by attribute lookup on those two modules (no import of a named module)."""
    import torch

    module_name, _, name = target.rpartition(".")
    modules = {"torch.optim": torch.optim, "torch.optim.lr_scheduler": torch.optim.lr_scheduler}
    found = getattr(modules.get(module_name), name, None) if name.isidentifier() else None
    bases = (
        torch.optim.Optimizer,
        torch.optim.lr_scheduler.LRScheduler,
        torch.optim.lr_scheduler.ReduceLROnPlateau,
    )
    return isinstance(found, type) and issubclass(found, bases)


def _leaves(node: Any, key: str):
    """``(dotted key, value)`` of every entry of nested dicts and lists, containers included."""
    if isinstance(node, dict):
        for name, value in node.items():
            child = f"{key}.{name}"
            yield child, value
            yield from _leaves(value, child)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            child = f"{key}[{i}]"
            yield child, value
            yield from _leaves(value, child)


def _short(target: str) -> str:
    return target.rsplit(".", 1)[-1]
