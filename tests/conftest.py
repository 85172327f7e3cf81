"""Shared fixtures: a tiny embedded dataset, the overrides that make a training run tiny, and a
tiny CLIP checkpoint. The helpers the tests import are in ``tests/helpers``."""

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for a model hub
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", ... under `pytest -n 2` (make test)
if XDIST_WORKER:
    # one worker a core: each with one thread, and so each subprocess it starts (before torch)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

from helpers.configs import SIMPLE_CNN, tiny_data_overrides  # noqa: E402


def pytest_configure(config) -> None:
    if XDIST_WORKER:
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def embedded_root(tmp_path_factory) -> Path:
    """The embedded dataset at the tiny size the training tests use, built once per session
    (under xdist once for all workers, each given its own copy, sample cache included)."""
    from pixelproof.data.embedded import build_embedded_dataset

    def build(parent: Path) -> Path:
        return build_embedded_dataset(parent / "embedded", n_train=96, n_val=48, n_test=48, seed=0)

    own = tmp_path_factory.mktemp("data")
    if not XDIST_WORKER:
        return build(own)
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "shared_data"  # every worker's basetemp's
    with FileLock(f"{shared}.lock"):
        build(shared)  # the first worker builds it; the others find it built
    shutil.copytree(shared, own, dirs_exist_ok=True)
    return build(own)  # found built: returned untouched


@pytest.fixture
def train_overrides(tmp_path, embedded_root) -> list[str]:
    """Overrides that make a training run tiny and keep its files in tmp_path: the tiny
    embedded data, one epoch, and a two-stage simple_cnn (:data:`SIMPLE_CNN`), for every run that
    does not test a specific detector (those swap ``model`` as ``wavefreq_overrides`` and
    ``rine_overrides`` do)."""
    return [
        f"paths.output_dir={tmp_path / 'run'}",
        *tiny_data_overrides(tmp_path, embedded_root),
        *SIMPLE_CNN,
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "callbacks.model_summary=null",
    ]


def without_model(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith(("model.", "model="))]


@pytest.fixture
def wavefreq_overrides(train_overrides) -> list[str]:
    """``train_overrides`` for the wavefreq detector (the published Team 57 architecture) on a
    smaller ResNet, for the tests of that detector."""
    wavefreq = ["model=wavefreq_resnet50", "model.net.backbone=resnet26"]
    return [*without_model(train_overrides), *wavefreq]


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
    shared = without_model(train_overrides)
    return [*shared, "model=rine_tinyclip", f"model.backbone.name_or_path={tiny_clip_dir}"]


LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items) -> None:
    """Mark each test with its layer, the folder it lives in (``-m "not e2e"`` and the like)."""
    tests = Path(__file__).parent
    for item in items:
        layer = Path(item.fspath).relative_to(tests).parts[0]
        if layer in LAYERS:
            item.add_marker(layer)
