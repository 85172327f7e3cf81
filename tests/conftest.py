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
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for a model hub

TINY_EMBEDDED = ["data.embedded.n_train=96", "data.embedded.n_val=48", "data.embedded.n_test=48"]


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
    return build_embedded_dataset(root, n_train=96, n_val=48, n_test=48, seed=0)


def tiny_data_overrides(tmp_path: Path, embedded_root: Path) -> list[str]:
    """The tiny embedded data, already built (read as its layout), small batches, files in
    tmp_path."""
    return [
        f"paths.root_dir={tmp_path}",
        f"data.root={embedded_root}",
        "data.embedded=null",  # already built: only read it
        "data.batch_size=16",
        "data.eval_batch_size=32",
    ]


@pytest.fixture
def train_overrides(tmp_path, embedded_root) -> list[str]:
    """Overrides that make a wavefreq training run tiny and keep its files in tmp_path (the
    published Team 57 architecture on a smaller ResNet; the default simple_cnn is tiny anyway)."""
    return [
        f"paths.output_dir={tmp_path / 'run'}",
        *tiny_data_overrides(tmp_path, embedded_root),
        "model=wavefreq_resnet50",
        "model.net.backbone=resnet26",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "callbacks.model_summary=null",
    ]


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny random CLIP checkpoint laid out like a Hub one (a whole ``CLIPModel``, text tower
    included, plus its preprocessor config), for the real load-by-path code: vision width 32,
    3 blocks, 2 heads, 8x8 patches, 32x32 input, and a non-CLIP mean/std to see it is read."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    text.update(vocab_size=64, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2)
    vision.update(patch_size=8, image_size=32)
    root = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    ).save_pretrained(root)
    CLIPImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.25, 0.3],
    ).save_pretrained(root)
    return root


@pytest.fixture
def rine_overrides(train_overrides, tiny_clip_dir) -> list[str]:
    """``train_overrides`` for ``model=rine_tinyclip`` on the tiny CLIP checkpoint."""
    shared = [o for o in train_overrides if not o.startswith(("model.", "model="))]
    return [*shared, "model=rine_tinyclip", f"model.backbone.name_or_path={tiny_clip_dir}"]


def run_multirun(*overrides: str) -> None:
    """``python -m pixelproof.train -m <overrides>``, in this process (no second ~10 s import).
    Pass ``hydra.sweep.dir=...``; errors propagate with their traceback (HYDRA_FULL_ERROR)."""
    import logging
    from unittest import mock

    from pixelproof.train import main

    # Hydra points the root logger at this test's captured stderr and the jobs' log files
    root, saved = logging.getLogger(), (logging.getLogger().handlers[:], logging.getLogger().level)
    argv = ["pixelproof.train", "-m", *overrides]
    # conf/ is found next to train.py as when run as __main__ (as a module, Hydra looks for a
    # `conf` package)
    env = {"HYDRA_FULL_ERROR": "1", "HYDRA_MAIN_MODULE": "__main__"}
    try:
        with mock.patch("sys.argv", argv), mock.patch.dict(os.environ, env):
            main()
    finally:
        for handler in set(root.handlers) - set(saved[0]):
            handler.close()
        root.handlers[:], root.level = saved
        GlobalHydra.instance().clear()
