"""Figures for an evaluation: a bar chart per metric across generators, ROC and PR curves."""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torchmetrics.functional.classification import binary_precision_recall_curve, binary_roc

from pixelproof.evaluation.generator_table import MEAN, METRIC_HEADERS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def metric_bars(rows: Sequence[dict], metric: str, path: Path) -> Path:
    """One bar per generator for ``metric`` (in %), the unweighted mean as a dashed line."""
    plt = _pyplot()
    generators = [r for r in rows if r["generator"] != MEAN]
    values = [100 * r[metric] for r in generators]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(generators) + 2), 3.5))
    bars = ax.bar([r["generator"] for r in generators], values, color="#4c72b0")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    mean = next((r[metric] for r in rows if r["generator"] == MEAN), None)
    if mean is not None and not math.isnan(mean):
        ax.axhline(100 * mean, color="#c44e52", ls="--", label=f"mean {100 * mean:.1f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{METRIC_HEADERS[metric]} (%)")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curves(scores: Mapping[str, tuple[torch.Tensor, torch.Tensor]], path: Path) -> Path | None:
    """ROC and precision-recall curves, one line per generator (two-class generators only)."""
    usable = {n: (p, y) for n, (p, y) in scores.items() if 0 < int(y.sum()) < y.numel()}
    if not usable:
        return None
    plt = _pyplot()
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(9, 4))
    for name, (probs, labels) in usable.items():
        fpr, tpr, _ = binary_roc(probs.float(), labels.int())
        precision, recall, _ = binary_precision_recall_curve(probs.float(), labels.int())
        roc_ax.plot(fpr, tpr, label=name)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    roc_ax.set(xlabel="false positive rate (reals called fake)", ylabel="true positive rate")
    roc_ax.set_title("ROC")
    pr_ax.set(xlabel="recall (fakes found)", ylabel="precision", ylim=(0, 1.02))
    pr_ax.set_title("precision-recall (fake = positive)")
    pr_ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def evaluation_plots(
    rows: Sequence[dict],
    scores: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    output_dir: Path,
) -> list[Path]:
    """``<metric>.png`` bars (ACC@0.5, AP, real/fake ACC, best ACC) and ``curves.png``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        metric_bars(rows, m, output_dir / f"{m}.png")
        for m in ("acc", "ap", "real_acc", "fake_acc", "best_acc")
    ]
    curve_path = curves(scores, output_dir / "curves.png")
    return paths + ([curve_path] if curve_path else [])
