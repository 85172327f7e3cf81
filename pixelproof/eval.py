"""Evaluate a checkpoint: the per-generator table of the CNNDetection / UFD / RINE protocol.

    python -m pixelproof.eval ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    python -m pixelproof.eval ckpt_path=<ckpt> data=per_generator data.root=/data/ufd
    python -m pixelproof.eval ckpt_path=<ckpt> inference.ten_crop=true logger=wandb
    python -m pixelproof.eval ckpt_path=<ckpt> robustness=journey    # after JPEG, resizing, ...

Writes into the run directory: ``generators.csv`` / ``.md`` (one row per generator plus the
unweighted mean), ``scores.csv`` (p(fake) of every image), ``metrics.json`` and ``plots/``; with
``robustness=standard`` / ``strong`` also ``robustness.*`` (:mod:`pixelproof.evaluation.
robustness`), with ``robustness=journey`` ``journey.*`` (:mod:`pixelproof.evaluation.
journey_report`).
"""

import csv
import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from pixelproof.utils.cli import run_entry_point
from pixelproof.utils.wandb_run import finish_wandb

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score every test set of ``cfg.data`` with the checkpoint's detector, write the table,
    scores and plots under ``paths.output_dir``, and return the flat metrics."""
    from pixelproof.evaluation.generator_table import (
        flat_metrics,
        generator_table,
        to_markdown,
        write_table,
    )
    from pixelproof.evaluation.journey import check_journey
    from pixelproof.models.inference import inference_settings, score_loader
    from pixelproof.models.loading import load_trained
    from pixelproof.utils.atomic import write_atomic
    from pixelproof.utils.instantiate import instantiate_named
    from pixelproof.validation import validate

    validate(cfg, "eval")
    check_journey(cfg)  # its grid, before any work
    trained = load_trained(cfg.ckpt_path)
    settings = inference_settings(cfg.inference, trained)
    model = trained.model.to(settings.device)
    # the test images are brought to the checkpoint's size the way its training images were
    datamodule = hydra.utils.instantiate(
        cfg.data,
        image_size=settings.image_size,
        resize_mode=settings.resize_mode,
        eval_batch_size=settings.batch_size,
        num_workers=settings.num_workers,
    )
    datamodule.prepare_data()
    datamodule.setup("test")
    loaders = dict(zip(datamodule.test_names, datamodule.test_dataloader()))
    scores = {
        name: score_loader(model, loader, settings.device, settings.crop_size, f"Scoring {name}")
        for name, loader in loaders.items()
    }

    output_dir = Path(cfg.paths.output_dir)
    rows = generator_table(scores, settings.threshold)
    written = write_table(rows, output_dir)
    _write_scores(datamodule, scores, output_dir / "scores.csv")
    metrics = flat_metrics(rows, "eval")
    write_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    plots = []
    if cfg.plots:
        from pixelproof.evaluation.plots import evaluation_plots

        plots = evaluation_plots(rows, scores, output_dir / "plots")

    if cfg.get("robustness") and cfg.robustness.get("protocol") == "journey":
        from pixelproof.evaluation.journey_report import journey_report

        journey_report(
            model, loaders, cfg.robustness, output_dir, settings.threshold, settings.crop_size
        )
    elif cfg.get("robustness"):
        from pixelproof.evaluation.robustness import robustness_report

        source = None  # transfer attacks are crafted on another detector
        if cfg.robustness.get("source_ckpt_path"):
            from pixelproof.models.loading import load_detector

            source = load_detector(cfg.robustness.source_ckpt_path).to(settings.device)
        robustness_report(model, loaders, cfg.robustness, output_dir, source=source)

    for logger in instantiate_named(cfg.get("logger"), "logger"):
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        _log_to(logger, metrics, rows, plots)
    finish_wandb()  # the next run in this process (a sweep's next job) gets a run of its own

    size = f"{settings.image_size}x{settings.image_size} {settings.resize_mode}"
    print(
        f"\n{cfg.ckpt_path} ({size}"
        + (f", ten-crop {settings.crop_size})" if settings.crop_size else ")")
    )
    print(to_markdown(rows))
    print(
        f"Written to {output_dir}: "
        + ", ".join(p.name for p in [*written, output_dir / "scores.csv"])
    )
    return metrics


def _write_scores(datamodule, scores, path: Path) -> None:
    from pixelproof.utils.atomic import atomic_open

    with atomic_open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["generator", "path", "label", "p_fake"])
        for name, (probs, labels) in scores.items():
            samples = datamodule.test_sets[name].samples
            for sample, p, y in zip(samples, probs.tolist(), labels.tolist(), strict=True):
                writer.writerow([name, sample.path, int(y), f"{p:.6f}"])


def _log_to(logger, metrics: dict[str, float], rows: list[dict], plots: list[Path]) -> None:
    """Metrics go to every logger; a wandb logger also gets the table and the figures."""
    logger.log_metrics(metrics)
    if hasattr(logger, "log_table"):
        columns = list(rows[0])
        logger.log_table(
            "eval/generators", columns=columns, data=[[r[c] for c in columns] for r in rows]
        )
    if hasattr(logger, "log_image") and plots:
        logger.log_image(
            "eval/plots", images=[str(p) for p in plots], caption=[p.stem for p in plots]
        )
    logger.finalize("success")


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    metrics = run_entry_point(evaluate, cfg, "eval")
    if metrics is None:  # a failed job of a sweep (see pixelproof.train's main)
        return None
    return metrics.get("eval/acc", float("nan"))


if __name__ == "__main__":
    main()
