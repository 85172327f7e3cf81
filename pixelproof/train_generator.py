"""Train one generator of the zoo on CPU and write its weights and model card.

    python -m pixelproof.train_generator generator=ddpm          # one generator, minutes
    python -m pixelproof.train_generator generator=dcgan trainer.max_steps=200
    python -m pixelproof.train_generator generator=ddpm weights_dir=pixelproof/generators/weights
    make generators                             # the whole zoo, installed into the package

The run trains ``cfg.generator`` for ``trainer.max_steps`` steps on fresh 32x32 crops of the
training photographs (``cfg.data``), then writes ``<weights_dir>/<name>.safetensors`` (only
the weights sampling needs, in ``weights_dtype``) and ``<name>.json``, the model card: the
command, the resolved generator config (``load_generator`` rebuilds the module from it), the
steps, the wall-clock seconds, the final losses, the parameter count, versions, the date and
the photographs. It then reloads the written files and times sampling ``time_sampling``
images. Logs (metrics.csv) go to the run directory under ``logs/train_generator/runs/``.

``weights_dir`` defaults to ``<run dir>/weights``: a run never replaces the zoo the package
ships (and the embedded dataset samples); installing weights into it is the explicit
``weights_dir=pixelproof/generators/weights``, which ``make generators`` passes. SIGTERM and
SIGINT stop at the end of the current batch, save ``<run dir>/checkpoints/last.ckpt``, print the
command that resumes it (``ckpt_path=``) and exit with 143 / 130, as ``pixelproof.train`` does.

``train_generator(cfg)`` is a plain function (the tests call it); ``main`` wraps it for Hydra.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import deque
from pathlib import Path

import hydra
from lightning import Callback
from omegaconf import DictConfig, OmegaConf

from pixelproof.utils.cli import run_entry_point

log = logging.getLogger(__name__)


class LossTracker(Callback):
    """Counts the batches and keeps the last ``window`` values of every ``train/`` metric."""

    def __init__(self, window: int = 100) -> None:
        self.window, self.batches, self.history = window, 0, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        for key, value in trainer.callback_metrics.items():
            if key.startswith("train/"):
                self.history.setdefault(key, deque(maxlen=self.window)).append(float(value))

    def last(self) -> dict[str, float]:
        return {k: v[-1] for k, v in sorted(self.history.items())}

    def mean(self) -> dict[str, float]:
        return {k: sum(v) / len(v) for k, v in sorted(self.history.items())}


def command_line() -> str:
    """The command that reproduces this run (Hydra's overrides, else ``sys.argv``)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    else:
        overrides = sys.argv[1:]
    return " ".join(["python -m pixelproof.train_generator", *overrides])


def train_generator(cfg: DictConfig) -> dict:
    """Train ``cfg.generator``, write its weights and model card, and return the card."""
    import lightning as L
    import torch
    from safetensors.torch import save_file

    from pixelproof.callbacks.progress import StepBudgetProgressBar
    from pixelproof.utils.cards import provenance, weights_fields, write_card
    from pixelproof.utils.checkpoint_io import AtomicCheckpointIO
    from pixelproof.utils.console import quiet_lightning
    from pixelproof.utils.instantiate import instantiate_named
    from pixelproof.utils.signal_stop import SignalStop
    from pixelproof.validation import validate

    validate(cfg, "train_generator")  # settings, and ckpt_path: an existing checkpoint file
    quiet_lightning()  # every Lightning line once, through Hydra's handlers
    torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True)
    # plain lists and dicts: the interrupt checkpoint holds their hyper-parameters, and a resume
    # reads it with torch's safe loader, which refuses OmegaConf containers
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    model = hydra.utils.instantiate(cfg.generator, _convert_="all")
    tracker = LossTracker()
    callbacks = [tracker, *instantiate_named(cfg.get("callbacks"), "callback")]
    if cfg.trainer.get("enable_progress_bar", True):  # "Epoch 3, step 384/3000", not "3/-2"
        callbacks.append(StepBudgetProgressBar())
    loggers = instantiate_named(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.perf_counter()
    with SignalStop() as stop:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    stop.check(trainer, "pixelproof.train_generator")
    seconds = time.perf_counter() - start
    final = tracker.last()
    if trainer.interrupted:
        raise RuntimeError("training was interrupted: no weights written")
    if not all(math.isfinite(v) for v in final.values()):
        raise FloatingPointError(f"{cfg.name}: non-finite final losses {final}; nothing written")

    out = (
        Path(cfg.weights_dir) if cfg.get("weights_dir") else Path(cfg.paths.output_dir) / "weights"
    )
    out.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, cfg.weights_dtype)
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.sampling_state_dict().items()}
    weights = out / f"{cfg.name}.safetensors"
    save_file(state, weights, metadata={"generator": cfg.name, "dtype": cfg.weights_dtype})

    card = {
        "name": cfg.name,
        "family": model.family,
        "command": command_line(),
        "generator": OmegaConf.to_container(cfg.generator, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "photographs": {"source": _photo_module(), "names": list(datamodule.photo_names)},
        "seed": cfg.seed,
        "threads": cfg.threads,
        "iterations": tracker.batches,
        "optimizer_steps": trainer.global_step,
        "train_seconds": round(seconds, 1),
        "final_losses": final,
        "final_losses_mean_last_100": tracker.mean(),
        "parameters": model.num_sampling_parameters(),
        "parameters_with_training_only_parts": sum(p.numel() for p in model.parameters()),
        # name, dtype, size and SHA-256 (checked by the zoo before every load)
        **weights_fields(weights, cfg.weights_dtype),
        **provenance(),  # torch, lightning, python, date
    }
    card_path = write_card(out / f"{cfg.name}.json", card)

    if cfg.time_sampling:
        card["sampling"] = _time_sampling(cfg, model, out)
        write_card(card_path, card)
    log.info("wrote %s and %s", weights, card_path)
    print(f"\n{cfg.name}: {weights} ({card['weights_bytes'] / 1e6:.2f} MB), {card_path}")
    print(f"  {card['iterations']} iterations in {seconds:.0f} s; final losses {final}")
    if "sampling" in card:
        print(f"  sampling: {card['sampling']}")
    return card


def _photo_module() -> str:
    from pixelproof.generators.crops import photo_source

    return photo_source("train").module


def _time_sampling(cfg: DictConfig, model, out: Path) -> dict:
    """Reload the written weights (a round trip through the zoo's loader) and time sampling."""
    from pixelproof.generators import zoo

    if cfg.name in zoo.ZOO:
        model = zoo.load_generator(cfg.name, out)
    n, batch = int(cfg.time_sampling), cfg.sampling_batch_size or model.sample_batch_size
    start = time.perf_counter()
    images = model.sample(n, seed=0, batch_size=batch, desc=f"sampling {cfg.name}")
    seconds = time.perf_counter() - start
    return {
        "images": n,
        "seconds": round(seconds, 1),
        "batch_size": batch,
        "threads": cfg.threads,
        "mean_pixel": round(float(images.mean()), 2),
        "std_pixel": round(float(images.std()), 2),
    }


@hydra.main(version_base="1.3", config_path="conf", config_name="train_generator")
def main(cfg: DictConfig) -> None:
    run_entry_point(train_generator, cfg, "train_generator")


if __name__ == "__main__":
    main()
