"""Craft adversarial examples against any pixelproof detector with torchattacks."""

import torch
from torch import nn

from pixelproof.attacks.module_modes import eval_mode
from pixelproof.attacks.spec import AttackSpec
from pixelproof.attacks.two_class import TwoClassLogits


def craft(detector: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Adversarial versions of ``x`` (in [0,1]) against ``detector`` for labels ``y`` (fake = 1).

    The detector runs in eval mode during the attack and gets every submodule's own mode back
    afterwards; gradients are switched on and inference mode off, so this also works inside
    Lightning's validation / test loops. Parameter gradients are left untouched (torchattacks
    differentiates with respect to the input only).
    """
    if spec.eps == 0:
        return x.detach().clone()
    with torch.inference_mode(False), torch.enable_grad(), eval_mode(detector):
        # inference tensors (made in a no-grad loop) cannot enter autograd: copy them out
        x, y = x.detach().clone(), y.detach().clone()
        # built in eval mode, so torchattacks sees a non-training model and calls no .train()
        attack = spec.build(TwoClassLogits(detector).eval())
        return attack(x, y.long()).detach()
