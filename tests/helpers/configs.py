"""The real Hydra configs, composed as the entry points compose them, and the overrides that
make a run tiny."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

TESTS = Path(__file__).resolve().parents[1]  # tests/: what a subprocess needs on its PYTHONPATH
ROOT = TESTS.parent  # the repository
CONF_DIR = str(ROOT / "conf")

TINY_EMBEDDED = ["data.embedded.n_train=96", "data.embedded.n_val=48", "data.embedded.n_test=48"]

#: the small detector of every run that does not test a specific one (``train_overrides``)
SIMPLE_CNN = ["model=simple_cnn", "model.net.widths=[8,16]"]


def compose_config(name: str, *overrides: str) -> DictConfig:
    """Compose ``conf/<name>.yaml`` as ``python -m pixelproof.<name> <overrides>`` would."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} interpolations
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run, where @hydra.main hands over the job config only
    return cfg


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


def subprocess_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with ``tests/`` first on ``PYTHONPATH`` (so a subprocess imports
    ``helpers``), plus ``extra``."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


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
