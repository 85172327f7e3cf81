"""Detectors for tests of everything around them: one whose answers are known for the attacks,
and every detector config of ``conf/model/`` built offline, for the contract test and the
attribution tests."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf
from torch import nn

from helpers.configs import CONF_DIR, compose_config
from pixelproof.models.detector_module import DetectorModule


class MeanIntensityDetector(nn.Module):
    """A detector whose answers are known: logit = weight * (mean intensity - 0.5), so bright
    images are "fake". It records its own mode whenever an attack differentiates through it."""

    def __init__(self, weight: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight))
        self.norm = nn.BatchNorm1d(1, affine=False)  # has train/eval behaviour to get wrong
        self.frozen = nn.Dropout(0.5)  # stands for a frozen part kept in eval mode
        self.modes_under_attack: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            self.modes_under_attack += [m.training for m in self.modules()]
        return self.weight * (x.mean(dim=(1, 2, 3)) - 0.5)


def constant_images(*values: float, size: int = 8) -> torch.Tensor:
    return torch.stack([torch.full((3, size, size), v) for v in values])


# set wherever a config has the key: no hub here, so pretrained towers become random ones
OFFLINE = {"model.backbone.pretrained": "false"}
# the same architecture at a smaller depth, wherever a config names one: the contract is the
# config's interface, not its size (the full sizes: tests/unit/test_wavefreq_resnet.py builds
# resnet50, tests/integration/test_rine.py trains the 8M/16 tower at 224)
SMALL = {
    # a timm ResNet named by a string (resnet50): the smallest bottleneck one
    "model.net.backbone": (str, "resnet26"),
    # a random ViT tower (pretrained=false): 2 blocks
    "model.backbone.architecture.num_hidden_layers": (int, "2"),
}


def _is_detector(name: str) -> bool:
    target = OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml").get("_target_")
    if not isinstance(target, str):
        return False
    module, _, cls = target.rpartition(".")
    return issubclass(getattr(__import__(module, fromlist=[cls]), cls), DetectorModule)


DETECTORS = sorted(
    p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml") if _is_detector(p.stem)
)


def build(name: str) -> tuple[DetectorModule, dict]:
    cfg = compose_config("train", f"model={name}")
    overrides = [f"{k}={v}" for k, v in OFFLINE.items() if OmegaConf.select(cfg, k) is not None]
    overrides += [
        f"{k}={v}" for k, (kind, v) in SMALL.items() if isinstance(OmegaConf.select(cfg, k), kind)
    ]
    cfg = compose_config("train", f"model={name}", *overrides)
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg.model).eval(), OmegaConf.to_container(
        cfg.model, resolve=True
    )
