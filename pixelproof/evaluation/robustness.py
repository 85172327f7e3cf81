"""Robust evaluation: ACC@0.5 and AP of a detector, clean, under white-box attacks over an eps
grid, and under RINE's non-adversarial perturbations; per generator and their unweighted mean
(the RINE / UFD protocol). Writes ``robustness.csv`` (long format), ``robustness.md`` and
``robustness.png`` (accuracy vs eps, one line per attack).
"""

import csv
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pixelproof.attacks.craft import craft
from pixelproof.attacks.module_modes import eval_mode
from pixelproof.attacks.spec import attack_spec, pixel_value
from pixelproof.evaluation.generator_table import MEAN, generator_table
from pixelproof.evaluation.perturbations import perturbation

log = logging.getLogger(__name__)

CSV_COLUMNS = ["condition", "kind", "name", "strength", "generator", "acc", "ap", "images"]
# strength of each perturbation, as the table shows it
STRENGTH_NAMES = {"jpeg": "quality", "blur": "sigma", "noise": "std", "crop": "fraction"}

Transform = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Condition:
    """One row of the table: how the test images are altered before the detector sees them."""

    kind: str  # clean | attack | perturbation
    name: str  # clean, fgsm, pgd, jpeg, blur, ...
    strength: float  # eps for attacks, the perturbation's parameter otherwise, 0 when clean
    label: str
    apply: Transform


def robustness_conditions(cfg: Mapping) -> list[Condition]:
    """Clean first, then every attack at every eps, then every perturbation at every strength."""
    conditions = [Condition("clean", "clean", 0.0, "clean", lambda model, x, y, g: x)]
    grid = [pixel_value(eps, f"robustness.eps[{i}]") for i, eps in enumerate(cfg.get("eps") or [])]
    for i, attack in enumerate(cfg.get("attacks") or []):
        for eps in grid:
            spec = attack_spec({**dict(attack), "eps": eps}, f"robustness.attacks[{i}]")
            conditions.append(
                Condition(
                    "attack",
                    spec.name,
                    eps,
                    spec.label,
                    lambda model, x, y, g, spec=spec: craft(model, spec, x, y),
                )
            )
    for name, strengths in (cfg.get("perturbations") or {}).items():
        function = perturbation(name)
        for strength in strengths:
            value = pixel_value(strength, f"robustness.perturbations.{name}")
            conditions.append(
                Condition(
                    "perturbation",
                    name,
                    value,
                    f"{name} {STRENGTH_NAMES[name]}={strength}",
                    lambda model, x, y, g, f=function, v=value: f(x, v, g),
                )
            )
    return conditions


def _device(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), torch.empty(0))
    return tensor.device


def _batches(loader: DataLoader, max_batches: int | None) -> int | None:
    try:
        count = len(loader)
    except TypeError:
        return max_batches
    return min(count, max_batches) if max_batches else count


def robustness_report(
    model: nn.Module,
    loaders: Mapping[str, DataLoader],
    cfg: Mapping,
    output_dir: Path,
) -> list[dict]:
    """Evaluate ``model`` under every condition of ``cfg`` (a ``conf/robustness`` node).

    model: a detector (``[B,3,H,W]`` in [0,1] -> ``[B]`` logits) on its device; it runs in eval
    mode and gets its modules' modes back. loaders: one test loader per generator, batches
    ``(images, labels)`` with fake = 1. Attacks are white-box against ``model``; random starts
    and noise come from ``cfg.seed`` (the global RNG is left as it was).

    Returns one row per condition (clean first): ``condition, kind, name, strength, acc, ap``
    (means over generators), ``acc_drop`` (clean ACC minus this ACC) and ``<generator>/acc``,
    ``<generator>/ap``. The CSV has the same numbers in long format (``generator`` = ``mean``
    for the means).
    """
    if not loaders:
        raise ValueError("robustness_report needs at least one test loader (one per generator)")
    conditions = robustness_conditions(cfg)
    seed = int(cfg.get("seed") or 0)
    max_batches = cfg.get("max_batches")
    device = _device(model)
    # p(fake) and labels per (condition, generator), tabulated below like any test set
    probs = {(c.label, g): [] for c in conditions for g in loaders}
    labels = {g: [] for g in loaders}
    images = dict.fromkeys(loaders, 0)
    sizes = [_batches(loader, max_batches) for loader in loaders.values()]
    total = sum(sizes) * len(conditions) if all(s is not None for s in sizes) else None
    cuda = [device.index or 0] if device.type == "cuda" else []
    noise = torch.Generator().manual_seed(seed)
    with (
        torch.random.fork_rng(devices=cuda),
        eval_mode(model),
        tqdm(total=total, desc="robustness", unit="batch") as bar,
    ):
        torch.manual_seed(seed)  # torchattacks' random starts use the global generator
        for generator, loader in loaders.items():
            for index, batch in enumerate(loader):
                if max_batches and index >= max_batches:
                    break
                x, y = batch[0].to(device), batch[1].to(device)
                images[generator] += len(y)
                labels[generator].append(y.cpu())
                for condition in conditions:
                    bar.set_postfix_str(f"{generator}: {condition.label}", refresh=False)
                    altered = condition.apply(model, x, y, noise)
                    with torch.no_grad():
                        scores = model(altered).reshape(-1).sigmoid()
                    probs[condition.label, generator].append(scores.float().cpu())
                    bar.update()

    rows, long_rows = [], []
    for condition in conditions:
        row = {
            "condition": condition.label,
            "kind": condition.kind,
            "name": condition.name,
            "strength": condition.strength,
        }
        scores = {g: (torch.cat(probs[condition.label, g]), torch.cat(labels[g])) for g in loaders}
        table = generator_table(scores)  # ACC@0.5: the boundary the attacks aim at
        for r in table[: len(loaders)]:
            row.update({f"{r['generator']}/{k}": r[k] for k in ("acc", "ap")})
            long_rows.append(
                {**row_head(row), "generator": r["generator"], "acc": r["acc"], "ap": r["ap"]}
            )
        mean = table[-1]  # the mean row, or the only test set's own
        row.update(acc=mean["acc"], ap=mean["ap"])
        long_rows.append({**row_head(row), "generator": MEAN, "acc": mean["acc"], "ap": mean["ap"]})
        rows.append(row)
    for row in rows:
        row["acc_drop"] = rows[0]["acc"] - row["acc"]
    images["mean"] = sum(images.values())
    for row in long_rows:
        row["images"] = images[row["generator"]]

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_csv(long_rows, output_dir / "robustness.csv")
    (output_dir / "robustness.md").write_text(markdown_table(rows) + "\n")
    plot_accuracy_vs_eps(rows, output_dir / "robustness.png")
    log.info("Robustness table: %s", output_dir / "robustness.md")
    return rows


def row_head(row: Mapping) -> dict:
    return {k: row[k] for k in ("condition", "kind", "name", "strength")}


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: list[dict]) -> str:
    """Mean ACC / AP over generators per condition, and the accuracy lost to it."""
    lines = [
        "| condition | kind | ACC | AP | ACC drop |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['condition']} | {row['kind']} | {row['acc']:.3f} | {row['ap']:.3f} "
            f"| {row['acc_drop']:+.3f} |"
        )
    return "\n".join(lines)


def plot_accuracy_vs_eps(rows: list[dict], path: Path) -> None:
    """Mean ACC against eps (in 1/255), one line per attack, starting from the clean ACC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = rows[0]["acc"]
    figure, axes = plt.subplots(figsize=(5, 3.5))
    labels = {r["condition"].split(" eps=")[0] for r in rows if r["kind"] == "attack"}
    for label in sorted(labels):
        points = [(r["strength"], r["acc"]) for r in rows if r["condition"].startswith(label + " ")]
        eps, acc = zip(*sorted([(0.0, clean), *points]))
        axes.plot([e * 255 for e in eps], acc, marker="o", label=label)
    axes.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    axes.set_xlabel("eps (x 1/255; the L2 norm for pgd_l2)")
    axes.set_ylabel("ACC@0.5, mean over generators")
    axes.set_ylim(0, 1)
    axes.legend()
    axes.set_title(f"Accuracy under attack (clean ACC {clean:.3f})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
