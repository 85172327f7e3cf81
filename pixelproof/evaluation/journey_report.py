"""The journey protocol: every generator's test images scored again after each cell of the
journey grid (:mod:`pixelproof.evaluation.journey`), reals and fakes processed alike.

    python -m pixelproof.eval ckpt_path=<ckpt> robustness=journey

Per (cell, generator), from the per-generator table (:func:`generator_row`): AP, and at the
checkpoint's calibrated threshold ``t`` (what a user's ``pixelproof.predict`` decides with):
ACC, real ACC (1 - false-positive rate) and fake ACC (true-positive rate); ACC@0.5 and AUROC as
well. Per cell, the unweighted mean over generators (the RINE / UFD protocol). Writes
``journey.csv`` (long format), ``journey.md`` (the tables, the worst cell named, the journey
mean and worst AP) and ``journey.png`` (heatmaps cell x generator: AP, and ACC at ``t``).

The journey's summary (:func:`journey_summary`) leaves out the cells without steps: they are the
clean reference, reported next to it, so a detector cannot lift its journey numbers with them.
"""

import csv
import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelproof.attacks.module_modes import eval_mode
from pixelproof.data.layouts import UNSEEN_SOURCES
from pixelproof.evaluation.generator_table import MEAN, generator_row, mean_row
from pixelproof.evaluation.journey import Cell, image_rng, journey_settings
from pixelproof.evaluation.ten_crop import batch_logits

log = logging.getLogger(__name__)

# journey.csv columns; acc_t, real_acc_t, fake_acc_t are at the calibrated threshold
CSV_COLUMNS = [
    "cell", "generator", "n_real", "n_fake", "ap", "acc_t", "real_acc_t", "fake_acc_t", "fpr_t",
    "acc", "auroc", "threshold", "steps",
]  # fmt: skip
NUMERIC = CSV_COLUMNS[2:-1]


def to_pixels(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] -> ``uint8`` ``[H, W, 3]``, the file a user would hold."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"the journey takes [3, H, W] RGB images, not {list(image.shape)}")
    values = image.detach().cpu().float().numpy()
    low, high = float(values.min()), float(values.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(
            f"the journey processes 8-bit images: test images must be in [0, 1], not "
            f"[{low:.3g}, {high:.3g}] (normalised data?)"
        )
    pixels = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(1, 2, 0))


def _spread_indices(size: int, limit: int | None) -> range:
    """Which items of a test set a ``limit`` keeps: every k-th, so both classes (a layout lists
    its reals, then its fakes) stay in proportion."""
    if limit is None or limit >= size:
        return range(size)
    return range(0, size, -(-size // limit))  # ceil(size / limit)


def score_cell(
    model: nn.Module,
    datasets: Mapping[str, Dataset],
    cell: Cell,
    seed: int,
    batch_size: int,
    crop_size: int | None = None,
    limit: int | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{generator: (p(fake), labels)}`` after ``cell``: item ``i`` of each dataset (an
    ``(image, label)`` pair, the image ``[3, H, W]`` in [0, 1]) as 8-bit pixels, through the
    cell with :func:`image_rng` ``(seed, i)``, scored as ``pixelproof.eval`` scores (ten-crop
    when ``crop_size``). The label never reaches the cell: reals and fakes are processed alike.

    The same pixels at the same index are processed and scored once: the embedded test sets
    share their reals between generators, which would otherwise cost a third of the time."""
    device = _device(model)
    scores: dict[tuple[int, bytes], float] = {}
    pending: dict[tuple[int, bytes], np.ndarray] = {}

    def flush() -> None:
        if not pending:
            return
        images = torch.from_numpy(np.stack(list(pending.values()))).permute(0, 3, 1, 2)
        logits = batch_logits(model, (images.float() / 255).to(device), crop_size)
        scores.update(zip(pending, logits.float().sigmoid().cpu().tolist()))
        pending.clear()

    keys, labels = {}, {}
    for generator, dataset in datasets.items():
        keys[generator], labels[generator] = [], []
        for index in _spread_indices(len(dataset), limit):
            item = dataset[index]
            pixels = to_pixels(item[0])
            key = (index, hashlib.blake2b(pixels.tobytes(), digest_size=16).digest())
            keys[generator].append(key)
            labels[generator].append(float(item[1]))
            if key not in scores and key not in pending:
                pending[key] = cell(pixels, image_rng(seed, index))
                if len(pending) >= batch_size:
                    flush()
    flush()
    return {g: (torch.tensor([scores[k] for k in keys[g]]), torch.tensor(labels[g])) for g in keys}


def cell_row(name: str, probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict:
    """The journey's columns for one generator's scores, from the per-generator table's row at
    ``threshold``: AP, ACC@0.5 and AUROC, and ACC, real ACC (1 - FPR) and fake ACC at the
    threshold (fake when p >= t; NaN without reals or fakes)."""
    row = generator_row(name, probs, labels, threshold)
    # the table names its threshold columns *_calibrated, unless the threshold is 0.5 itself
    at_t = (lambda key: row[f"{key}_calibrated"]) if "acc_calibrated" in row else row.get
    return {
        "generator": name,
        "n_real": row["n_real"],
        "n_fake": row["n_fake"],
        "ap": row["ap"],
        "acc_t": at_t("acc"),
        "real_acc_t": at_t("real_acc"),
        "fake_acc_t": at_t("fake_acc"),
        "fpr_t": 1 - at_t("real_acc"),
        "acc": row["acc"],
        "auroc": row["auroc"],
        "threshold": threshold,
    }


def journey_report(
    model: nn.Module,
    loaders: Mapping[str, DataLoader],
    cfg: Mapping,
    output_dir: Path,
    threshold: float,
    crop_size: int | None = None,
) -> list[dict]:
    """Score ``model`` on every generator's test set after every cell of ``cfg`` (a
    ``conf/robustness/journey.yaml`` node) and write ``journey.csv`` / ``.md`` / ``.png``.

    model: a detector (``[B,3,H,W]`` in [0,1] -> ``[B]`` logits) on its device; it runs in eval
    mode and gets its modules' modes back. loaders: one test loader per generator; their
    datasets are read item by item (``(image, label)``, fake = 1) in batches of the first
    loader's size.
    threshold: the calibrated decision threshold (the checkpoint's, or ``inference.threshold``).
    crop_size: ten-crop averaging at that size, as :func:`pixelproof.eval.evaluate` scores.

    Returns the CSV's rows: per cell, one per generator, then the mean over generators
    (``generator`` = ``mean``; only when there is more than one generator).
    """
    settings = journey_settings(cfg)
    if not loaders:
        raise ValueError("journey_report needs at least one test loader (one per generator)")
    rows = []
    started = time.perf_counter()
    datasets = {g: loader.dataset for g, loader in loaders.items()}
    batch_size = next(iter(loaders.values())).batch_size or 256
    limit = settings.max_batches * batch_size if settings.max_batches else None
    with eval_mode(model):
        for cell in tqdm(settings.cells, desc="journey", unit="cell", leave=False):
            tick = time.perf_counter()
            scores = score_cell(model, datasets, cell, settings.seed, batch_size, crop_size, limit)
            generator_rows = [cell_row(g, p, y, threshold) for g, (p, y) in scores.items()]
            generators = [r for r in generator_rows if r["generator"] != UNSEEN_SOURCES]
            if len(generators) > 1:  # reals of unseen sources are a row, not a generator
                generator_rows.append(mean_row(generators))
            rows += [{"cell": cell.name, **r, "steps": cell.description} for r in generator_rows]
            log.info("journey cell %r: %.1f s", cell.name, time.perf_counter() - tick)
    seconds = time.perf_counter() - started

    output_dir = Path(output_dir)
    write_csv(rows, output_dir / "journey.csv")
    from pixelproof.utils.atomic import write_atomic

    write_atomic(output_dir / "journey.md", markdown(rows, settings.seed))
    plot_journey(rows, output_dir / "journey.png")
    summary = journey_summary(rows)
    log.info(
        "Journey (%d cells, %.1f s): mean AP %.3f, worst cell %s AP %.3f; table %s",
        len(settings.cells), seconds, summary.mean_ap, summary.worst_cell, summary.worst_ap,
        output_dir / "journey.md",
    )  # fmt: skip
    return rows


def _device(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), torch.empty(0))
    return tensor.device


# ------------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class JourneySummary:
    """The journey's headline numbers (fractions, not percentages), over the cells with steps.

    mean_ap: the mean over those cells of each cell's mean AP over generators. worst_ap: the
    lowest AP of any (cell, generator), named by worst_cell and worst_generator. clean_ap: the
    mean AP of the cell without steps (NaN when the grid has none). fpr: per cell (all cells),
    the false-positive rate at the threshold, mean over generators; max_fpr / max_fpr_cell: its
    highest over the cells with steps. min_acc_t: the lowest mean ACC at the threshold of a cell.
    unseen_fpr / unseen_max_fpr: the false-positive rate on the reals of unseen sources (the
    ``unseen_sources`` test set) as they are, and its highest over the cells with steps (NaN
    without that set).
    """

    mean_ap: float
    worst_ap: float
    worst_cell: str
    worst_generator: str
    clean_ap: float
    fpr: dict[str, float]
    max_fpr: float
    max_fpr_cell: str
    min_acc_t: float
    threshold: float
    unseen_fpr: float = math.nan
    unseen_max_fpr: float = math.nan

    def metrics(self, prefix: str = "journey") -> dict[str, float]:
        """Flat numbers for a logger or a sweep's table (NaN entries left out)."""
        values = {
            "mean_ap": self.mean_ap, "worst_ap": self.worst_ap, "clean_ap": self.clean_ap,
            "max_fpr": self.max_fpr, "min_acc_t": self.min_acc_t, "threshold": self.threshold,
            "unseen_fpr": self.unseen_fpr, "unseen_max_fpr": self.unseen_max_fpr,
        }  # fmt: skip
        values |= {f"fpr/{cell}": v for cell, v in self.fpr.items()}
        return {f"{prefix}/{k}": float(v) for k, v in values.items() if not math.isnan(v)}


def _cell_means(rows: Sequence[dict]) -> list[dict]:
    """One row per cell: its mean row, or its only generator's row."""
    last = {}
    for row in rows:  # the mean row comes after a cell's generators
        if row["generator"] != UNSEEN_SOURCES:
            last[row["cell"]] = row
    return list(last.values())


def journey_summary(rows: Sequence[dict]) -> JourneySummary:
    """The headline of :func:`journey_report`'s rows (or of ``journey.csv`` read back with
    :func:`read_journey`)."""
    if not rows:
        raise ValueError("no journey rows to summarise")
    means = _cell_means(rows)
    processed = [r for r in means if r["steps"] != "as it is"]
    clean = [r for r in means if r["steps"] == "as it is"]
    if not processed:
        raise ValueError("the journey grid has no cell with steps: nothing to summarise")
    names = {r["cell"] for r in processed}
    per_generator = [r for r in rows if r["cell"] in names and r["generator"] != MEAN]
    scored = [r for r in per_generator if not math.isnan(r["ap"])]
    worst = min(scored, key=lambda r: r["ap"]) if scored else None
    fprs = [r for r in processed if not math.isnan(r["fpr_t"])]
    unseen = [r for r in rows if r["generator"] == UNSEEN_SOURCES and not math.isnan(r["fpr_t"])]
    highest = max(fprs, key=lambda r: r["fpr_t"]) if fprs else None
    aps = [r["ap"] for r in processed if not math.isnan(r["ap"])]
    return JourneySummary(
        mean_ap=sum(aps) / len(aps) if aps else math.nan,
        worst_ap=worst["ap"] if worst else math.nan,
        worst_cell=worst["cell"] if worst else "",
        worst_generator=worst["generator"] if worst else "",
        clean_ap=clean[0]["ap"] if clean else math.nan,
        fpr={r["cell"]: r["fpr_t"] for r in means},
        max_fpr=highest["fpr_t"] if highest else math.nan,
        max_fpr_cell=highest["cell"] if highest else "",
        min_acc_t=min(r["acc_t"] for r in processed),
        threshold=rows[0]["threshold"],
        unseen_fpr=max((r["fpr_t"] for r in unseen if r["cell"] not in names), default=math.nan),
        unseen_max_fpr=max((r["fpr_t"] for r in unseen if r["cell"] in names), default=math.nan),
    )


# --------------------------------------------------------------------------------- files


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    from pixelproof.utils.atomic import atomic_open

    with atomic_open(path, "w", newline="") as handle:  # whole or not at all
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_journey(path: Path) -> list[dict]:
    """``journey.csv`` back as :func:`journey_report` returned it (numbers as floats)."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in NUMERIC:
            row[key] = float(row[key]) if row[key] != "" else math.nan
    return rows


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f}"


def _matrix(rows: Sequence[dict], key: str, extra: tuple[str, str] | None = None) -> list[str]:
    """A cell x generator table of ``key`` in %, then the mean (and ``extra``: (header, key) of
    the mean row)."""
    generators = list(dict.fromkeys(r["generator"] for r in rows))
    header = ["processing", *generators] + ([extra[0]] if extra else [])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for cell in dict.fromkeys(r["cell"] for r in rows):
        own = {r["generator"]: r for r in rows if r["cell"] == cell}
        values = [_pct(own[g][key]) for g in generators]
        if extra:
            values.append(_pct(own[generators[-1]][extra[1]]))
        lines.append(f"| {cell} | " + " | ".join(values) + " |")
    return lines


def markdown(rows: Sequence[dict], seed: int) -> str:
    """The headline, one line per cell (means over generators), and the cell x generator
    tables of AP and of fake ACC at the threshold."""
    summary = journey_summary(rows)
    means = _cell_means(rows)
    first = [r for r in rows if r["cell"] == rows[0]["cell"]][-1]
    generators = [r["generator"] for r in rows if r["cell"] == rows[0]["cell"]]
    generators = [g for g in generators if g != MEAN]
    processed = [r for r in means if r["steps"] != "as it is"]
    lines = [
        "# The journey: scores after the processing images meet on their way",
        "",
        f"Threshold t = {summary.threshold:.4f} (fake when p(fake) >= t); {len(generators)} "
        f"generator(s), {int(first['n_real'])} real and {int(first['n_fake'])} fake images "
        "scored per cell (over the generators' test sets), reals and fakes processed alike "
        f"(noise seeded with ({seed}, image index)). Numbers in %.",
        "",
        f"- **Journey AP: mean {_pct(summary.mean_ap)}, worst {_pct(summary.worst_ap)}** "
        f"(`{summary.worst_cell}` on {summary.worst_generator}) over the {len(processed)} "
        f"processed cells; clean {_pct(summary.clean_ap)}.",
        f"- Lowest mean ACC at t over the processed cells: {_pct(summary.min_acc_t)}; reals "
        f"called fake at t: {_pct(summary.max_fpr)} % at most (`{summary.max_fpr_cell}`).",
        "",
        "## Per processing (mean over generators)",
        "",
        "| processing | mean AP | worst AP (generator) | ACC@t | real ACC@t | fake ACC@t | "
        "ACC@0.5 | steps |",
        "|" + " --- |" * 8,
    ]
    for mean in means:
        own = [r for r in rows if r["cell"] == mean["cell"] and r["generator"] != MEAN]
        scored = [r for r in own if not math.isnan(r["ap"])]
        worst = min(scored, key=lambda r: r["ap"]) if scored else None
        worst_text = f"{_pct(worst['ap'])} ({worst['generator']})" if worst else "–"
        lines.append(
            f"| {mean['cell']} | {_pct(mean['ap'])} | {worst_text} | {_pct(mean['acc_t'])} | "
            f"{_pct(mean['real_acc_t'])} | {_pct(mean['fake_acc_t'])} | {_pct(mean['acc'])} | "
            f"{mean['steps']} |"
        )
    lines += ["", "## AP per generator", "", *_matrix(rows, "ap")]
    lines += [
        "",
        "## Fakes caught at t (fake ACC@t) per generator, and reals kept (real ACC@t, mean)",
        "",
        *_matrix(rows, "fake_acc_t", ("real ACC@t", "real_acc_t")),
    ]
    return "\n".join(lines) + "\n"


def plot_journey(rows: Sequence[dict], path: Path) -> Path:
    """Two heatmaps, processing x generator: AP, and fake ACC at the threshold with the mean
    real ACC as a last column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(dict.fromkeys(r["cell"] for r in rows))
    generators = list(dict.fromkeys(r["generator"] for r in rows))
    table = {(r["cell"], r["generator"]): r for r in rows}
    ap = np.array([[table[c, g]["ap"] for g in generators] for c in cells])
    caught = np.array(
        [[table[c, g]["fake_acc_t"] for g in generators] + [table[c, generators[-1]]["real_acc_t"]]
         for c in cells]
    )  # fmt: skip
    width = 2.5 + 0.75 * (2 * len(generators) + 1)
    figure, axes = plt.subplots(1, 2, figsize=(width, 1.2 + 0.32 * len(cells)), sharey=True)
    panels = [
        (axes[0], ap, generators, "AP", 0.5),
        (axes[1], caught, [*generators, "reals"], f"ACC at t={rows[0]['threshold']:.3f}", 0.0),
    ]
    for ax, values, columns, title, low in panels:
        image = ax.imshow(values, vmin=low, vmax=1.0, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            if not math.isnan(value):
                colour = "black" if value > low + 0.6 * (1 - low) else "white"
                ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                        color=colour)  # fmt: skip
        ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        figure.colorbar(image, ax=ax, fraction=0.05)
    axes[0].set_yticks(range(len(cells)), cells, fontsize=8)
    axes[1].set_title(axes[1].get_title() + ": fakes caught, reals kept", fontsize=9)
    figure.tight_layout()
    from pixelproof.utils.atomic import atomic_open

    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, dpi=120, format="png")
    plt.close(figure)
    return path
