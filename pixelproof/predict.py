"""Run a trained detector over a folder of images: p(fake) of every image, and the Task-1 JSON.

    python -m pixelproof.predict ckpt_path=<ckpt> input_dir=<dir> output=predictions.json

Every image of ``input_dir`` is scored, whatever its name, in natural order (``2.png`` before
``10.png``). ``output`` gets the Task-1 JSON ``[{"index": N, "prediction": "real"|"fake"}, ...]``
sorted by N, where N follows ``task1_index`` (:mod:`pixelproof.data.task1`): ``name``, the
competition's ``<N>.<ext>`` (an image named otherwise is scored but not in the JSON, and listed),
or ``position``. Next to it: ``<output>.csv`` (index, path, p_fake, prediction: every scored
image, index blank when it has none) and ``<output>.summary.json`` (threshold, counts, every file
left out and every image not in the JSON, with the reason). A file that cannot be decoded is
listed there, never fatal. An ``output`` whose companions would land on the same path
(``output=o.csv``) is refused before any work; every file is written whole or not at all, with
the umask's permissions.
"""

import csv
import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pixelproof.utils.atomic import write_atomic
from pixelproof.utils.cli import run_entry_point

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> dict:
    """Score every image in ``cfg.input_dir`` and write the Task-1 JSON, the CSV and the
    summary (each written whole or not at all). Returns the summary."""
    from pixelproof.data.decoding import IMAGE_EXTENSIONS, image_files
    from pixelproof.data.task1 import task1_indices, task1_text
    from pixelproof.models.detector import Detector
    from pixelproof.utils.output_paths import predict_files
    from pixelproof.validation import validate

    validate(cfg, "predict")
    output = Path(cfg.output)
    companions = [path for _, path in predict_files(output)]
    existing = [p for p in companions if p.exists()]
    if existing and not cfg.overwrite:
        raise FileExistsError(
            f"{existing[0]} exists; pass overwrite=true to replace it, or another output=<file>"
        )
    images, skipped = image_files(cfg.input_dir, cfg.recursive)
    if not images:
        raise FileNotFoundError(
            f"input_dir={cfg.input_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
        )

    detector = Detector.load(cfg.ckpt_path, **cfg.inference)
    predictions = detector.predict(images, progress=True)
    skipped += [(p.path, p.skipped) for p in predictions if not p.scored]
    indices, no_index = task1_indices(images, cfg.task1_index)
    rows = [(indices[p.position], p) for p in predictions if p.scored]
    task1 = [(index, p.verdict) for index, p in rows if index is not None]
    summary = {
        "checkpoint": str(cfg.ckpt_path),
        "input_dir": str(cfg.input_dir),
        "threshold": detector.threshold,
        "image_size": detector.image_size,
        "resize_mode": detector.resize_mode,
        "predicted": len(rows),
        "fake": sum(p.verdict == "fake" for _, p in rows),
        "real": sum(p.verdict == "real" for _, p in rows),
        "skipped": [{"path": str(path), "reason": why} for path, why in skipped],
        "task1_index": cfg.task1_index,
        "task1_entries": len(task1),
        "task1_skipped": [
            {"path": str(p.path), "reason": no_index[p.position]}
            for index, p in rows
            if index is None
        ],
    }
    write_atomic(output, task1_text(task1))
    write_atomic(companions[1], _csv_text(rows))
    write_atomic(companions[2], json.dumps(summary, indent=2) + "\n")
    _report(summary, companions)
    return summary


def _csv_text(rows) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "path", "p_fake", "prediction"])
    writer.writerows(
        ["" if n is None else n, p.path, f"{p.p_fake:.6f}", p.verdict] for n, p in rows
    )
    return buffer.getvalue()


def _report(summary: dict, paths: list[Path]) -> None:
    rule = "their <N>.<ext> names" if summary["task1_index"] == "name" else "position"
    lines = [
        f"Predicted {summary['predicted']} images: {summary['fake']} fake, {summary['real']} real "
        f"(threshold {summary['threshold']:.4f})",
        f"Task-1 JSON: {summary['task1_entries']} images, indexed by {rule}",
    ]
    summary_file = paths[2]
    lines += _listed(summary["task1_skipped"], "Not in the Task-1 JSON: {} files:", summary_file)
    lines += _listed(summary["skipped"], "Left out {} files:", summary_file)
    lines.append("Written: " + ", ".join(str(p) for p in paths))
    print("\n".join(lines))


def _listed(entries: list[dict], heading: str, summary_file: Path) -> list[str]:
    """``heading`` with the count, then up to 20 ``path: reason`` lines."""
    if not entries:
        return []
    lines = [heading.format(len(entries))]
    lines += [f"  {e['path']}: {e['reason']}" for e in entries[:20]]
    if len(entries) > 20:
        lines.append(f"  ... and {len(entries) - 20} more (see {summary_file})")
    return lines


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run_entry_point(predict, cfg, "predict")


if __name__ == "__main__":
    main()
