"""Put a model in eval mode for an attack and give every submodule its own mode back afterwards.

``model.train()`` after an attack (what torchattacks does when the model was training) would
flip modules that are meant to stay in eval mode, such as RINE's frozen CLIP tower or frozen
BatchNorm statistics. Recording each module's flag and writing it back restores them exactly.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


def module_modes(model: nn.Module) -> dict[str, bool]:
    """``{qualified name: training}`` for the model and every submodule."""
    return {name: m.training for name, m in model.named_modules(remove_duplicate=False)}


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; each module's own ``training`` flag restored after."""
    saved = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in saved:
            module.training = training  # the flag only: .train() would recurse into children
