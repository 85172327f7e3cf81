"""Run a trained detector over a folder of images: the competition's Task-1 JSON.

    python -m pixelproof.predict ckpt_path=<ckpt> input_dir=<dir> output=predictions.json

Images are named ``N.<ext>`` (``17.png``); ``output`` gets ``[{"index": N, "prediction":
"real"|"fake"}, ...]`` sorted by N. Next to it: ``<output>.csv`` (index, path, p_fake, prediction)
and ``<output>.summary.json`` (threshold, counts, and every file left out with the reason).
A file that cannot be decoded or is not named ``N.<ext>`` is listed there, never fatal. An
``output`` whose companions would land on the same path (``output=o.csv``) is refused before any
work; every file is written whole or not at all, with the umask's permissions.
"""

import csv
import json
import logging
import math
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pixelproof.utils.atomic import write_atomic
from pixelproof.utils.cli import run_entry_point

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> dict:
    """Score every ``N.<ext>`` image in ``cfg.input_dir`` and write the Task-1 JSON, the CSV
    and the summary (each written whole or not at all). Returns the summary."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from pixelproof.data.decoding import indexed_images
    from pixelproof.data.image_dataset import UncheckedImageFiles
    from pixelproof.models.inference import batch_logits, inference_settings
    from pixelproof.models.loading import load_trained
    from pixelproof.utils.output_paths import predict_files
    from pixelproof.utils.validation import validate

    validate(cfg, "predict")
    output = Path(cfg.output)
    companions = [path for _, path in predict_files(output)]
    existing = [p for p in companions if p.exists()]
    if existing and not cfg.overwrite:
        raise FileExistsError(
            f"{existing[0]} exists; pass overwrite=true to replace it, or another output=<file>"
        )
    indexed, skipped = indexed_images(cfg.input_dir, cfg.recursive)

    trained = load_trained(cfg.ckpt_path)
    settings = inference_settings(cfg.inference, trained)
    device, threshold = settings.device, settings.threshold
    model = trained.model.to(device)
    paths = [path for _, path in indexed]
    dataset = UncheckedImageFiles(paths, settings.transform(), settings.image_size)
    loader = DataLoader(dataset, batch_size=settings.batch_size, num_workers=settings.num_workers)

    probs = torch.full((len(dataset),), float("nan"))
    for images, positions, errors in tqdm(loader, desc="Predicting", unit="batch"):
        good = torch.tensor([not e for e in errors])
        for position, error in zip(positions[~good].tolist(), [e for e in errors if e]):
            skipped.append((dataset.paths[position], error))
        if good.any():
            logits = batch_logits(model, images[good].to(device), settings.crop_size)
            probs[positions[good]] = logits.float().sigmoid().cpu()

    rows = [
        (n, path, float(p), "fake" if p >= threshold else "real")
        for (n, path), p in zip(indexed, probs.tolist())
        if not math.isnan(p)  # NaN: the file could not be read
    ]
    summary = {
        "checkpoint": str(cfg.ckpt_path),
        "input_dir": str(cfg.input_dir),
        "threshold": threshold,
        "image_size": settings.image_size,
        "resize_mode": settings.resize_mode,
        "predicted": len(rows),
        "fake": sum(r[3] == "fake" for r in rows),
        "real": sum(r[3] == "real" for r in rows),
        "skipped": [{"path": str(p), "reason": why} for p, why in skipped],
    }
    task1 = [{"index": n, "prediction": label} for n, _, _, label in rows]
    # one entry per line: diff- and grep-friendly, and still one JSON array
    write_atomic(output, "[\n" + ",\n".join(json.dumps(entry) for entry in task1) + "\n]\n")
    write_atomic(companions[1], _csv_text(rows))
    write_atomic(companions[2], json.dumps(summary, indent=2) + "\n")
    _report(summary, companions)
    return summary


def _csv_text(rows) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "path", "p_fake", "prediction"])
    writer.writerows([n, path, f"{p:.6f}", label] for n, path, p, label in rows)
    return buffer.getvalue()


def _report(summary: dict, paths: list[Path]) -> None:
    lines = [
        f"Predicted {summary['predicted']} images: {summary['fake']} fake, {summary['real']} real "
        f"(threshold {summary['threshold']:.4f})",
    ]
    if summary["skipped"]:
        lines.append(f"Left out {len(summary['skipped'])} files:")
        lines += [f"  {s['path']}: {s['reason']}" for s in summary["skipped"][:20]]
        if len(summary["skipped"]) > 20:
            lines.append(f"  ... and {len(summary['skipped']) - 20} more (see {paths[2]})")
    lines.append("Written: " + ", ".join(str(p) for p in paths))
    print("\n".join(lines))


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run_entry_point(predict, cfg, "predict")


if __name__ == "__main__":
    main()
