"""Shared fixtures: the real Hydra configs, shrunk, and a tiny embedded dataset."""

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
os.environ.setdefault("WANDB_MODE", "offline")

TINY_EMBEDDED = ["data.embedded.n_train=96", "data.embedded.n_test=48"]


def compose_config(name: str, *overrides: str) -> DictConfig:
    """Compose ``conf/<name>.yaml`` as ``python -m pixelproof.<name> <overrides>`` would."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} interpolations
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run, where @hydra.main hands over the job config only
    return cfg


@pytest.fixture(scope="session")
def embedded_root(tmp_path_factory) -> Path:
    """The embedded dataset at the tiny size the training tests use, built once per session."""
    from pixelproof.data.embedded import build_embedded_dataset

    root = tmp_path_factory.mktemp("data") / "embedded"
    return build_embedded_dataset(root, n_train=96, n_test=48, seed=0)


@pytest.fixture
def train_overrides(tmp_path, embedded_root) -> list[str]:
    """Overrides that make the default training run tiny and keep its files in tmp_path."""
    return [
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        f"data.root={embedded_root}",
        "data.embedded=null",  # already built: read it as a plain CIFAKE folder
        "data.batch_size=16",
        "data.eval_batch_size=32",
        "model.net.backbone=resnet26",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "callbacks.model_summary=null",
    ]
