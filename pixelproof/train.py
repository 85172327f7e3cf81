"""Train a detector, then test its best checkpoint.

    python -m pixelproof.train                                  # default detector, embedded data
    python -m pixelproof.train trainer.max_epochs=3 data.batch_size=128 model.optimizer.lr=1e-3
    python -m pixelproof.train ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt  # resume

``train(cfg)`` is a plain function (tests and notebooks call it); ``main`` only wraps it for Hydra.
Heavy imports happen inside ``train`` so ``--help`` and ``--cfg job`` answer at once.

Faults (docs/recovery.md): every checkpoint is written atomically (:mod:`pixelproof.utils.
checkpoint_io`); ``last.ckpt`` is rewritten every epoch and every ``periodic_checkpoint``
interval; a checkpoint holds the training loader's position and the RNG states, so a resumed
run continues exactly; SIGTERM and SIGINT stop at the end of the current batch, save
``last.ckpt``, print the command that resumes it and exit with 143 / 130
(:mod:`pixelproof.utils.signal_stop`); a run without ``ckpt_path`` whose directory already holds
a ``last.ckpt`` (a requeued SLURM job) resumes from it (:mod:`pixelproof.utils.recovery`).
"""

import json
import logging
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from pixelproof.utils.cli import run_entry_point
from pixelproof.utils.recovery import checkpoint_plugins, last_checkpoint, resume_from
from pixelproof.utils.signal_stop import SignalStop
from pixelproof.utils.wandb_run import finish_wandb

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit ``cfg.model`` on ``cfg.data``, test the best checkpoint, and return every logged
    metric. Writes ``metrics.json`` (and the checkpoints and logs) under ``paths.output_dir``.

    Raises :class:`pixelproof.utils.cli.Interrupted` after SIGTERM / SIGINT (its message holds
    the command that resumes the run), ``ConfigError`` / ``CheckpointError`` for bad settings."""
    from pixelproof.validation import validate

    validate(cfg, "train")  # settings, and ckpt_path: an existing checkpoint file
    from pixelproof.evaluation.journey import check_journey

    check_journey(cfg)  # robustness=journey: its grid, before any work
    import lightning as L

    from pixelproof.models.loading import read_checkpoint
    from pixelproof.utils.console import quiet_lightning
    from pixelproof.utils.instantiate import instantiate_named

    quiet_lightning()  # every Lightning line once, through Hydra's handlers
    resume = read_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None  # before any work
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    model, model_config = _instantiate_model(cfg, resume)
    del resume  # read to check the model; fit reads it again
    callbacks = _instantiate_callbacks(cfg, model_config)
    callbacks = _without_averaging_of_frozen_weights(callbacks, model)
    loggers = instantiate_named(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=checkpoint_plugins(cfg.trainer),
    )
    _log_hyperparameters(cfg, trainer)

    metrics: dict[str, float] = {}
    with SignalStop() as stop:  # SIGTERM / SIGINT: stop at the end of the batch, last.ckpt saved
        if cfg.get("train"):
            metrics.update(_fit(cfg, trainer, model, datamodule))
        if stop.signum is None and cfg.get("test"):
            metrics.update(_test(cfg, trainer, model, datamodule))
    stop.check(trainer, "pixelproof.train")  # after a signal: Interrupted, the resume command

    if trainer.is_global_zero:  # under DDP every process gets here; one writes
        _write_outputs(cfg, trainer, model, metrics)
    return metrics


def _instantiate_model(cfg: DictConfig, resume: dict | None):
    """``(model, its config as plain data)``; with ``ckpt_path``, a ``CheckpointError`` unless
    the model can take the checkpoint's weights (``resume``, the checkpoint as read)."""
    from pixelproof.models.loading import check_resumable

    model = hydra.utils.instantiate(cfg.model)
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    if resume is not None:
        check_resumable(resume, model, model_config, f"ckpt_path={cfg.ckpt_path}")
    return model, model_config


def _instantiate_callbacks(cfg: DictConfig, model_config: dict) -> list:
    """``cfg.callbacks``, plus the model config and the RNG states in every checkpoint."""
    from pixelproof.callbacks.model_config import RecordModelConfig
    from pixelproof.callbacks.rng_state import RNGState
    from pixelproof.utils.instantiate import instantiate_named

    return [
        *instantiate_named(cfg.get("callbacks"), "callback"),
        RecordModelConfig(model_config),
        RNGState(),
    ]


def _without_averaging_of_frozen_weights(callbacks: list, model) -> list:
    """The callbacks, less Lightning's weight averaging (``callbacks=ema``, the default) where
    the model has frozen weights (RINE's CLIP backbone): the average would copy the backbone,
    drift it from its pretrained values and store it in every checkpoint. Logged, not silent."""
    from lightning.pytorch.callbacks import WeightAveraging

    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    if not frozen or not any(isinstance(c, WeightAveraging) for c in callbacks):
        return callbacks
    log.info(
        "callbacks.ema: not used for a model with frozen weights (%s, ...): the EMA would "
        "average them too; callbacks=default runs without it and without this line",
        frozen[0],
    )
    return [c for c in callbacks if not isinstance(c, WeightAveraging)]


def _log_hyperparameters(cfg: DictConfig, trainer) -> None:
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))


def _fit(cfg: DictConfig, trainer, model, datamodule) -> dict[str, float]:
    """Fit, resuming from ``ckpt_path`` or the run directory's ``last.ckpt`` (a requeued SLURM
    job: :func:`pixelproof.utils.recovery.resume_from`); the metrics logged."""
    ckpt_path = resume_from(cfg.get("ckpt_path"), trainer)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return _floats(trainer.callback_metrics)


def _test(cfg: DictConfig, trainer, model, datamodule) -> dict[str, float]:
    """Test the best checkpoint (else the current weights), then its journey if asked
    (``robustness=journey``); the metrics logged."""
    ckpt = _model_checkpoint(trainer)
    best = ckpt.best_model_path if ckpt else ""
    if not best:
        log.warning("No best checkpoint recorded: testing the current weights.")
    _detach_weight_averaging(trainer)
    with warnings.catch_warnings():  # detached on purpose (above): Lightning's reminder is noise
        warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`")
        # verbose=False: the per-generator table below, not Lightning's dump of every metric
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics = _floats(trainer.callback_metrics)
    if trainer.is_global_zero and _journey(cfg):  # the best weights are loaded now
        metrics.update(_run_journey(cfg, model, datamodule))
    return metrics


def _write_outputs(cfg: DictConfig, trainer, model, metrics: dict[str, float]) -> None:
    """``metrics.json``, the report on the console, and ``save_pretrained``'s folder."""
    from pixelproof.utils.atomic import write_atomic

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_json = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    write_atomic(output_dir / "metrics.json", metrics_json)
    _report(trainer, output_dir, metrics, getattr(model, "test_table", None))
    if cfg.get("save_pretrained"):
        _save_pretrained(trainer, output_dir)


def _save_pretrained(trainer, output_dir: Path) -> None:
    """``<run>/detector/``: the best checkpoint (else ``last.ckpt``) as a shareable folder, its
    card holding this run's command and metrics."""
    from pixelproof.models.detector import Detector

    ckpt = _model_checkpoint(trainer)
    best = Path(ckpt.best_model_path) if ckpt and ckpt.best_model_path else None
    source = best or last_checkpoint(trainer)
    if source is None:
        log.warning("save_pretrained: this run saved no checkpoint, so no detector folder")
        return
    detector = Detector.load(source, device="cpu")
    detector.run_dir = output_dir  # after a resume the best checkpoint may be an earlier run's
    detector.save_pretrained(output_dir / "detector")
    print(f"  detector:     {output_dir / 'detector'} (Detector.from_pretrained reads it)")


def _detach_weight_averaging(trainer) -> None:
    """Test what the checkpoints hold. A checkpoint saved under Lightning's weight averaging
    (callbacks=ema) holds the averaged weights as its state_dict; the callback, still attached after
    fit, would load the un-averaged ``current_model_state`` over them when the test reloads it."""
    from lightning.pytorch.callbacks import WeightAveraging

    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging)]


def _model_checkpoint(trainer):
    """The run's best-checkpoint ``ModelCheckpoint``: the first one with a monitored metric
    (``last.ckpt``'s have none; ``trainer.checkpoint_callback`` is the first of any kind)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next(
        (
            c
            for c in trainer.checkpoint_callbacks
            if isinstance(c, ModelCheckpoint) and c.monitor is not None
        ),
        None,
    )


def _journey(cfg: DictConfig) -> bool:
    return bool(cfg.get("robustness")) and cfg.robustness.get("protocol") == "journey"


def _run_journey(cfg: DictConfig, model, datamodule) -> dict[str, float]:
    """The journey of the tested weights (``robustness=journey``) into ``<run>/journey/``; its
    headline (mean and worst AP, false-positive rates) as ``journey/*`` metrics."""
    from pixelproof.evaluation.journey_report import journey_report, journey_summary

    loaders = dict(zip(datamodule.test_names, datamodule.test_dataloader()))
    output_dir = Path(cfg.paths.output_dir) / "journey"
    rows = journey_report(
        model, loaders, cfg.robustness, output_dir, float(model.decision_threshold)
    )
    return journey_summary(rows).metrics()


def _floats(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def _report(trainer, output_dir: Path, metrics: dict[str, float], table) -> None:
    from pixelproof.evaluation.generator_table import to_markdown

    ckpt = _model_checkpoint(trainer)
    lines = [f"\nTest set(s), best checkpoint:\n{to_markdown(table)}"] if table else []
    lines += ["", f"Run directory: {output_dir}"]
    if ckpt is not None and ckpt.dirpath:
        best = Path(ckpt.best_model_path)
        # after a resume the best checkpoint may be the earlier run's: then its whole path
        shown = best.name if best.parent == Path(ckpt.dirpath) else best
        lines.append(f"  checkpoints:  {ckpt.dirpath} (best: {shown})")
    for logger in trainer.loggers:
        lines.append(f"  {type(logger).__name__}: {logger.log_dir or logger.save_dir}")
    lines.append(f"  metrics:      {output_dir / 'metrics.json'}")
    if not table:
        summary = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("test/", "val/"))}
        lines.append(f"  {summary}" if summary else "")
    print("\n".join(lines))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = run_entry_point(train, cfg, "train")
    finally:
        finish_wandb()
    metric = cfg.get("optimized_metric")
    # a failed job of a sweep returns no number: the Optuna sweeper records a failed trial (a
    # NaN would crash it: Optuna refuses NaN, then the sweeper reports the failure with the NaN)
    return metrics.get(metric) if metric and metrics is not None else None


if __name__ == "__main__":
    main()
