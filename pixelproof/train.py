"""Train a detector, then test its best checkpoint.

    python -m pixelproof.train                                  # default detector, embedded data
    python -m pixelproof.train trainer.max_epochs=3 data.batch_size=128 model.optimizer.lr=1e-3
    python -m pixelproof.train ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt  # resume

``train(cfg)`` is a plain function (tests and notebooks call it); ``main`` only wraps it for Hydra.
Heavy imports happen inside ``train`` so ``--help`` and ``--cfg job`` answer at once.
"""

import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def check_ckpt_path(ckpt_path: str | None) -> None:
    if ckpt_path and not Path(ckpt_path).is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path} does not exist; pass a checkpoint written by an earlier run, "
            "e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
        )


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit ``cfg.model`` on ``cfg.data``, test the best checkpoint, and return every logged
    metric. Writes ``metrics.json`` (and the checkpoints and logs) under ``paths.output_dir``."""
    check_ckpt_path(cfg.get("ckpt_path"))
    import lightning as L

    from pixelproof.callbacks.model_config import RecordModelConfig
    from pixelproof.utils.instantiate import instantiate_named

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_named(cfg.get("callbacks"), "callback")
    callbacks.append(RecordModelConfig(OmegaConf.to_container(cfg.model, resolve=True)))
    loggers = instantiate_named(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, float] = {}
    if cfg.get("train"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics.update(_floats(trainer.callback_metrics))
        if trainer.interrupted:
            log.warning(
                "Training was interrupted; resume with ckpt_path=<run>/checkpoints/last.ckpt"
            )
            return metrics

    if cfg.get("test"):
        ckpt = _model_checkpoint(trainer)
        best = ckpt.best_model_path if ckpt else ""
        if not best:
            log.warning("No best checkpoint recorded: testing the current weights.")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update(_floats(trainer.callback_metrics))

    if trainer.is_global_zero:  # under DDP every process gets here; one writes
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        metrics_json = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
        (output_dir / "metrics.json").write_text(metrics_json)
        _report(trainer, output_dir, metrics, getattr(model, "test_table", None))
    return metrics


def _model_checkpoint(trainer):
    """The run's ``ModelCheckpoint``. ``trainer.checkpoint_callback`` is the first ``Checkpoint``
    of any kind, which is the interrupt checkpoint when ``model_checkpoint`` is switched off."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)


def _floats(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def _report(trainer, output_dir: Path, metrics: dict[str, float], table) -> None:
    from pixelproof.evaluation.generator_table import to_markdown

    ckpt = _model_checkpoint(trainer)
    lines = [f"\nTest set(s), best checkpoint:\n{to_markdown(table)}"] if table else []
    lines += ["", f"Run directory: {output_dir}"]
    if ckpt is not None and ckpt.dirpath:
        lines.append(f"  checkpoints:  {ckpt.dirpath} (best: {Path(ckpt.best_model_path).name})")
    for logger in trainer.loggers:
        lines.append(f"  {type(logger).__name__}: {logger.log_dir or logger.save_dir}")
    lines.append(f"  metrics:      {output_dir / 'metrics.json'}")
    if not table:
        summary = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("test/", "val/"))}
        lines.append(f"  {summary}" if summary else "")
    print("\n".join(lines))


def _finish_wandb() -> None:
    """A multirun runs its jobs in one process, and a new WandbLogger reuses a wandb run that is
    still open: close it after each job so every job of a sweep is its own run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    finally:
        _finish_wandb()
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


if __name__ == "__main__":
    main()
