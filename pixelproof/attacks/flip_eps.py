"""The robustness gauge of one image: the smallest L-inf budget at which an attack flips the
detector's verdict (the browser demo shows it per image; a large value means the verdict is hard
to move)."""

from collections.abc import Mapping
from typing import Any

import torch

from pixelproof.attacks.craft import craft
from pixelproof.attacks.spec import attack_spec


def smallest_flip_eps(
    model,
    image,
    threshold: float,
    attack: Mapping[str, Any],
    max_eps: float,
    resolution: float = 1 / 255,
) -> float | None:
    """The robustness gauge: the smallest L-inf budget (a multiple of ``resolution``, at most
    ``max_eps``) at which ``attack`` (an ``attack`` config without eps, e.g. PGD at a fixed
    number of steps) flips the verdict on ``image`` ``[1,3,H,W]``, found by binary search;
    ``None`` when even ``max_eps`` does not flip it."""

    def is_fake(x) -> bool:
        with torch.no_grad():
            return float(torch.sigmoid(model(x).float()).reshape(-1)[0]) >= threshold

    fake = is_fake(image)
    label = torch.tensor([float(fake)], device=image.device)

    def flips(levels: int) -> bool:
        spec = attack_spec({**attack, "eps": levels * resolution}, "gauge.attack")
        return is_fake(craft(model, spec, image, label)) != fake

    high = int(round(max_eps / resolution))
    if high < 1 or not flips(high):
        return None
    low = 0  # eps 0 never flips
    while high - low > 1:
        middle = (low + high) // 2
        if flips(middle):
            high = middle
        else:
            low = middle
    return high * resolution
