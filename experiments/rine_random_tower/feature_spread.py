"""How much a random (pretrained=false) CLIP tower's per-block CLS tokens vary between images.

    python experiments/rine_random_tower/feature_spread.py

Prints, per encoder block, the spread of the CLS token across images divided by its spread
across features, for random 32x32 images at the ViT sizes 224 and 32. Small ratios mean the
tokens barely depend on the image, which is why RINE's head stays at chance on a random tower.
"""

import hydra
import torch
from omegaconf import OmegaConf

PRESET = "conf/model/backbone/tinyclip_8m16.yaml"


def main() -> None:
    torch.manual_seed(0)
    cfg = OmegaConf.load(PRESET)
    cfg.pretrained = False
    backbone = hydra.utils.instantiate(cfg)
    images = torch.rand(64, 3, 32, 32)
    print(f"{PRESET}, random weights, 64 random images")
    for size in (224, 32):
        backbone.input_size = size
        with torch.no_grad():
            tokens = backbone(images)  # [images, blocks, features]
        ratio = tokens.std(dim=0).mean(dim=-1) / tokens.std(dim=-1).mean(dim=0)
        print(
            f"input {size:3d}: across-image / within-token spread per block:",
            " ".join(f"{r:.3f}" for r in ratio.tolist()),
        )


if __name__ == "__main__":
    main()
