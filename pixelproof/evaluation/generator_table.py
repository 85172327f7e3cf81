"""The per-generator table of the CNNDetection / UFD / RINE protocol.

One row per generator (its real and fake test images): ACC@0.5, AP, accuracy on reals and on
fakes, the best-threshold ("oracle") accuracy UFD reports, AUROC, and, when the detector carries
a calibrated threshold, the accuracy at that threshold (overall, on reals and on fakes). The last
row is the unweighted mean over generators, as the papers average generators rather than images.

A test set named :data:`UNSEEN_SOURCES` (reals from sources nothing trained on, against fakes of
every generator) is reported as a row of its own but left out of the mean: it is not a
generator, and its real ACC@t is the false-positive rate's complement on new sources.
"""

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_average_precision,
    binary_recall,
    binary_specificity,
)

from pixelproof.data.layouts import UNSEEN_SOURCES
from pixelproof.evaluation.thresholds import best_accuracy

MEAN = "mean"
# column -> header in the markdown table
METRIC_HEADERS = {
    "acc": "ACC@0.5",
    "ap": "AP",
    "real_acc": "real ACC",
    "fake_acc": "fake ACC",
    "best_acc": "best ACC",
    "auroc": "AUROC",
    "acc_calibrated": "ACC@t",
    "real_acc_calibrated": "real ACC@t",
    "fake_acc_calibrated": "fake ACC@t",
}
NAN = float("nan")


def generator_row(
    name: str, probs: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5
) -> dict:
    """Metrics of one generator's scores. A metric a single-class group cannot define (AP with
    no fakes, accuracy on reals with no reals, ...) is NaN."""
    probs, labels = probs.float().flatten(), labels.int().flatten()
    if probs.numel() == 0 or probs.shape != labels.shape:
        raise ValueError(f"{name}: need as many scores as labels, and at least one")
    n_fake = int(labels.sum())
    n_real = labels.numel() - n_fake
    both = n_real > 0 and n_fake > 0
    row = {"generator": name, "n_real": n_real, "n_fake": n_fake}
    row["acc"] = float(binary_accuracy(probs, labels, threshold=0.5))
    row["ap"] = float(binary_average_precision(probs, labels)) if both else NAN
    row["real_acc"] = float(binary_specificity(probs, labels, threshold=0.5)) if n_real else NAN
    row["fake_acc"] = float(binary_recall(probs, labels, threshold=0.5)) if n_fake else NAN
    row["best_acc"], row["best_threshold"] = best_accuracy(probs, labels) if both else (NAN, NAN)
    row["auroc"] = float(binary_auroc(probs, labels)) if both else NAN
    if threshold != 0.5:
        # the verdict rule of every entry point: fake when p >= t (torchmetrics binarises p > t)
        fake, is_fake = probs >= threshold, labels.bool()
        row["threshold"] = threshold
        row["acc_calibrated"] = float((fake == is_fake).float().mean())
        row["real_acc_calibrated"] = float((~fake[~is_fake]).float().mean()) if n_real else NAN
        row["fake_acc_calibrated"] = float(fake[is_fake].float().mean()) if n_fake else NAN
    return row


def mean_row(rows: Sequence[dict]) -> dict:
    """Unweighted mean over generators of every metric (NaN entries left out); counts summed."""
    mean = {"generator": MEAN}
    for key in rows[0]:
        if key == "generator":
            continue
        values = [r[key] for r in rows if not math.isnan(r[key])]
        if key.startswith("n_"):
            mean[key] = sum(values)
        elif key == "threshold":  # one threshold for every row
            mean[key] = rows[0][key]
        elif key == "best_threshold":  # each generator's own: no mean of them means anything
            mean[key] = NAN
        else:
            mean[key] = sum(values) / len(values) if values else NAN
    return mean


def generator_table(
    scores: Mapping[str, tuple[torch.Tensor, torch.Tensor]], threshold: float = 0.5
) -> list[dict]:
    """``{generator: (p(fake), labels)}`` -> one row per generator, then the mean row (only when
    there is more than one generator)."""
    if not scores:
        raise ValueError("no scores to tabulate")
    rows = [generator_row(name, p, y, threshold) for name, (p, y) in scores.items()]
    generators = [r for r in rows if r["generator"] != UNSEEN_SOURCES]
    return rows + [mean_row(generators)] if len(generators) > 1 else rows


def flat_metrics(rows: Sequence[dict], prefix: str) -> dict[str, float]:
    """``<prefix>/<metric>`` for the mean row (or the only row, when there is one test set) and
    ``<prefix>/<generator>/<metric>`` per generator: the keys training's test stage logs
    (``test``) and ``pixelproof.eval`` writes (``eval``). Undefined (NaN) entries are left out."""
    named = [("", rows[-1])] + [(f"{r['generator']}/", r) for r in rows[:-1]]
    return {
        f"{prefix}/{name}{key}": float(value)
        for name, row in named
        for key, value in row.items()
        if key != "generator" and not math.isnan(value)
    }


def to_markdown(rows: Sequence[dict]) -> str:
    """Percentages with one decimal, as the papers print them."""
    metrics = [k for k in METRIC_HEADERS if k in rows[0]]
    header = ["generator", "#real", "#fake", *(METRIC_HEADERS[k] for k in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        name = f"**{row['generator']}**" if row["generator"] == MEAN else row["generator"]
        cells = [name, str(row["n_real"]), str(row["n_fake"])]
        cells += ["–" if math.isnan(row[k]) else f"{100 * row[k]:.1f}" for k in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    if "threshold" in rows[0]:
        lines.append(
            f"\nACC@t: accuracy at the calibrated threshold t = {rows[0]['threshold']:.4f}"
        )
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[dict], output_dir: Path, stem: str = "generators") -> list[Path]:
    """``<stem>.csv`` (fractions, full precision) and ``<stem>.md`` (percentages)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = output_dir / f"{stem}.csv", output_dir / f"{stem}.md"
    from pixelproof.utils.atomic import atomic_open, write_atomic

    with atomic_open(csv_path, "w", newline="") as handle:  # whole or not at all
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(md_path, to_markdown(rows))
    return [csv_path, md_path]
