"""Export a trained detector: a self-contained model file, preprocess.json and a runner that
needs no pixelproof (see :mod:`pixelproof.deploy.exporter`).

    python -m pixelproof.export ckpt_path=<ckpt> format=onnx          # or format=torchscript
    python -m pixelproof.export ckpt_path=<ckpt> format=onnx quantize=true   # dynamic int8
"""

import hydra
from omegaconf import DictConfig

from pixelproof.utils.cli import run_entry_point


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    from pixelproof.deploy.exporter import export_checkpoint

    run_entry_point(export_checkpoint, cfg, "export")


if __name__ == "__main__":
    main()
