"""The clean-vs-robust front of adversarial training, in one command (issue 25).

    python experiments/adversarial/pareto.py                      # every point of pareto.yaml
    python experiments/adversarial/pareto.py --points clean,nfgsm_eps2 --no-headline  # a few
    python experiments/adversarial/pareto.py --runs <run dir> ... --table <file.md>

Each point of ``pareto.yaml`` is a training of the default detector with its overrides (by
``pixelproof.train.train``, with ``robustness=journey``, so its ``metrics.json`` holds the test
split's AP, the journey's mean and worst AP and the false-positive rate on unseen real sources).
Its best checkpoint is then attacked **at its own calibrated threshold** t: the detector's logit
is shifted by ``logit(t)``, so ACC@0.5 of the shifted model is ACC@t, and the attacks aim at the
boundary the detector really uses. Every point: clean ACC@t and APGD-CE at 1, 2 and 4/255 on the
whole test split, every generator's fakes against reals of their own (``distinct_test_images``).
The front: the points no other beats on clean ACC@t and APGD-CE at 2 and 4/255; the best point:
the one nearest the targets of ``pareto.yaml`` by its worst axis (a recipe run with several seeds
by their mean), attacked again with APGD-CE with a restart, Square and the gradient-masking
checks. The plan's ``timed_only`` points (too
long to train here) are timed with the others, for their step cost alone.

Everything is cached under ``--output`` (a point already trained or evaluated is read back), so
an interrupted study resumes, and two processes can share the points (``--points``) on two
cores. Writes ``results.md``, ``results.csv`` and ``front.png`` to ``--results``. The
``results.csv`` there is the study's record: a point whose row was measured under the settings
it has now (its overrides, the attacks, the images: see :func:`recorded`) is read back
from it rather than trained again, so a new point costs its own training, not the study's
(``--fresh`` measures every point again).

``--runs`` scores runs trained elsewhere (the recipes of the selection study, say) on the same
images with the same attacks, instead of the plan's points, and writes their table to ``--table``.
"""

import argparse
import csv
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from textwrap import fill

import hydra
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import ROOT, StepTimer, best_checkpoint, compose_config  # noqa: E402

from pixelproof.data.image_dataset import ImageFileDataset  # noqa: E402
from pixelproof.data.layouts import FAKE, REAL, get_layout  # noqa: E402
from pixelproof.evaluation.robustness import robustness_report  # noqa: E402
from pixelproof.models.loading import load_trained  # noqa: E402
from pixelproof.train import train  # noqa: E402

PLAN = Path(__file__).with_name("pareto.yaml")
UNSEEN = "unseen_sources"  # reals of unseen sources: a false-positive test, not a generator
# how the tables name the sample (their intervals count the images as independent, though the
# reals are crops of 11 photographs)
SAMPLE = "half real, every generator's fakes against reals of its own"
AXES = ("clean", "apgd_2", "apgd_4")  # the front's: clean ACC@t, APGD-CE ACC@t at 2 and 4/255


class AtThreshold(nn.Module):
    """A detector whose decision at p(fake) >= ``threshold`` is the sign of its logit."""

    def __init__(self, scorer: nn.Module, threshold: float) -> None:
        super().__init__()
        self.scorer = scorer
        self.shift = math.log(threshold / (1 - threshold))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scorer(images) - self.shift


def point_overrides(name: str, plan: dict) -> list[str]:
    """The training overrides of point ``name`` (of the plan's ``points`` or ``timed_only``):
    the plan's ``base``, then, unless the point has none (clean training), the adversarial
    settings and the point's own."""
    overrides = {**plan["points"], **plan.get("timed_only", {})}[name]
    return [*plan["base"], *((*plan["adversarial"], *overrides) if overrides else ())]


def trained(name: str, plan: dict, output: Path) -> Path:
    """The run directory of point ``name``, trained now unless an earlier run finished it with
    the overrides the point has now (kept in its ``overrides.json``)."""
    run_dir = output / name
    overrides = [f"trainer.max_epochs={plan['epochs']}", *point_overrides(name, plan)]
    stamp = run_dir / "overrides.json"
    if (run_dir / "metrics.json").is_file():
        if not stamp.is_file() or json.loads(stamp.read_text()) != overrides:
            raise SystemExit(
                f"{run_dir}: trained with other overrides than point {name} has now; move it "
                "away to train the point again"
            )
        return run_dir
    print(f"Training {name}: {' '.join(overrides)}", flush=True)
    train(compose_config("train", *overrides, "robustness=journey", f"paths.output_dir={run_dir}"))
    stamp.write_text(json.dumps(overrides))
    return run_dir


def step_seconds(names: list[str], plan: dict, steps: int = 20) -> dict:
    """Median seconds of a training step (from the start of the batch, before any attack, to
    the end of the optimizer step) of each point, all in this process on one data loader, so
    their ratios are a fair cost."""
    from lightning import Trainer, seed_everything

    times, loader = {}, None
    for name in names:
        cfg = compose_config("train", *point_overrides(name, plan))
        if loader is None:
            datamodule = hydra.utils.instantiate(cfg.data)
            datamodule.prepare_data()
            datamodule.setup("fit")
            loader = datamodule.train_dataloader()
        seed_everything(0)
        timer = StepTimer()
        callbacks = [timer]
        if "adversarial" in cfg.callbacks:  # the attack, its loss and warm-up: all but the watch
            adversarial = hydra.utils.instantiate(cfg.callbacks.adversarial)
            adversarial.robust_validation = False
            callbacks.append(adversarial)
        trainer = Trainer(
            max_epochs=1, limit_train_batches=3 + steps, limit_val_batches=0,
            num_sanity_val_steps=0, accelerator="cpu", callbacks=callbacks, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        trainer.fit(hydra.utils.instantiate(cfg.model), train_dataloaders=loader)
        times[name] = sorted(timer.seconds[3:])[steps // 2]
        print(f"  {name}: {1000 * times[name]:.0f} ms/step", flush=True)
    return times


@dataclass(frozen=True)
class Sample:
    """The study's test images: a loader per generator, and every image's generator, label and
    bytes (read once; what attack rows are keyed on, see :func:`cache_key`)."""

    loaders: dict[str, DataLoader]
    content: bytes

    @property
    def images(self) -> int:
        return sum(len(loader.dataset) for loader in self.loaders.values())

    @cached_property
    def digest(self) -> str:
        """Every image, its generator and label, hashed once (the record's ``images`` column)."""
        return hashlib.sha256(self.content).hexdigest()[:16]


def distinct_test_images(seed: int, *overrides: str) -> Sample:
    """Per generator of the test split, every one of its fakes against as many reals, no real
    in two generators' shares: the per-generator folders all hold the same 167 reals, so a
    sample drawn from them counts one real once per generator and measures the real half on
    a sixth of the images it seems to. The test split's reals are shared out with ``seed``."""
    data = compose_config("train", *overrides).data
    if data.layout != "cifake_per_generator":  # the one whose test reals are a pool of their own
        raise SystemExit(f"data.layout={data.layout}: the study reads the embedded layout")
    hydra.utils.instantiate(data).prepare_data()  # the embedded dataset, built if missing
    layout = get_layout(data.layout, data.root)
    reals = [s for s in layout.pooled(data.test_split) if s.label == REAL]
    order = torch.randperm(len(reals), generator=torch.Generator().manual_seed(seed)).tolist()
    loaders, taken = {}, 0
    for name, samples in layout.grouped(data.test_split).items():
        if name == UNSEEN:
            continue
        fakes = [s for s in samples if s.label == FAKE]
        share = [reals[i] for i in order[taken : taken + len(fakes)]]
        if len(share) < len(fakes):
            raise SystemExit(f"{data.root}: too few test reals for a share of their own for {name}")
        taken += len(fakes)
        dataset = ImageFileDataset(
            share + fakes, data.image_size, data.resize_mode, data.on_bad_file
        )
        loaders[name] = DataLoader(dataset, batch_size=data.eval_batch_size or data.batch_size)
    content = b"".join(
        f"{name}\t{item.label}\t".encode() + Path(item.path).read_bytes()
        for name, loader in loaders.items()
        for item in loader.dataset.samples
    )
    return Sample(loaders, content)


def cache_key(sample: Sample, settings: dict, checkpoint: Path) -> str:
    """What attack rows were measured on: every image's bytes with its generator and label,
    the attacks' settings and the checkpoint's bytes (not where any of them lie)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(checkpoint.read_bytes())
    digest.update(sample.content)
    return digest.hexdigest()[:16]


def settings_digest(name: str, plan: dict) -> str:
    """What point ``name``'s row of the study depends on besides the code, the defaults of
    ``conf/`` and the images: its training overrides and epochs, and the attacks of both
    passes."""
    settings = {
        "overrides": point_overrides(name, plan),
        **{k: plan[k] for k in ("seed", "epochs", "robustness", "headline")},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


TEXT_COLUMNS = ("point", "flags", "settings", "images")  # the record's other columns are numbers


def recorded(results_csv: Path, plan: dict, sample: Sample) -> dict[str, dict]:
    """The rows of ``results_csv`` (the study's record) still valid: of a point of the plan,
    measured under the settings it has now on these images. Empty cells (a strong pass not
    run) are left out."""
    if not results_csv.is_file():
        return {}
    rows = {}
    for raw in csv.DictReader(results_csv.open()):
        name = raw.get("point")
        known = name in plan["points"] or name in plan.get("timed_only", {})
        if not known or raw.get("images") != sample.digest:
            continue
        if raw.get("settings") != settings_digest(name, plan):
            continue
        row = {k: v if k in TEXT_COLUMNS else float(v) for k, v in raw.items() if v != ""}
        if name in plan["points"] and not all(axis in row for axis in AXES):
            continue  # a step time alone: the point was timed only when it was recorded
        rows[name] = row
    return rows


def provenance(name: str, plan: dict, sample: Sample) -> dict[str, str]:
    """The record's columns that say what a row was measured under."""
    return {"settings": settings_digest(name, plan), "images": sample.digest}


def attacked(run_dir: Path, stage: str, settings: dict, sample: Sample) -> list[dict]:
    """The robustness rows of ``run_dir``'s best checkpoint under ``settings`` (a
    ``conf/robustness`` node over ``strong``), at its calibrated threshold; cached under their
    :func:`cache_key` (rows of other images, settings or weights are measured again). A pass
    cut short resumes after the last generator it finished."""
    out = run_dir / stage
    checkpoint = best_checkpoint(run_dir)
    key = cache_key(sample, settings, checkpoint)
    cached = json.loads((out / "rows.json").read_text()) if (out / "rows.json").is_file() else {}
    if isinstance(cached, dict) and cached.get("key") == key:
        return cached["rows"]
    cfg = compose_config("eval", "ckpt_path=unused", "robustness=strong").robustness
    cfg = OmegaConf.to_container(OmegaConf.merge(cfg, settings), resolve=True)
    detector = load_trained(checkpoint)
    print(f"Attacking {run_dir.name} ({stage}) at t = {detector.threshold:.3f}", flush=True)
    progress = out / f"progress-{key}.pt"  # the scores so far: an interrupted pass resumes
    for stale in set(out.glob("progress-*.pt")) - {progress}:
        stale.unlink()  # of other weights, images or settings
    model = AtThreshold(detector.scorer, detector.threshold)
    rows = robustness_report(model, sample.loaders, cfg, out, progress=progress)
    (out / "rows.json").write_text(json.dumps({"key": key, "rows": rows}, indent=1))
    return rows


def accuracy(rows: list[dict], attack: str, eps: float) -> float:
    """ACC (mean over generators) of the row of ``attack`` (a label prefix) at ``eps``."""
    for row in rows:
        if row["condition"].startswith(attack) and abs(row["strength"] - eps) < 1e-9:
            return row["acc"]
    return float("nan")


def summary(name: str, run_dir: Path, rows: list[dict], strong: list[dict] | None) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = {
        "point": name,
        "clean": rows[0]["acc"],
        **{f"apgd_{k}": accuracy(rows, "apgd", k / 255) for k in (1, 2, 4)},
        "test_ap": metrics["test/ap"],
        "journey_mean_ap": metrics.get("journey/mean_ap", float("nan")),
        "journey_worst_ap": metrics.get("journey/worst_ap", float("nan")),
        "unseen_fpr": metrics.get("journey/unseen_fpr", float("nan")),
        "threshold": metrics["test/threshold"],
        "minutes": metrics["train/seconds"] / 60,
        "collapsed": metrics.get("val/collapsed", float("nan")),
    }
    if strong:
        row.update(
            strong_apgd_2=accuracy(strong, "apgd", 2 / 255),
            strong_apgd_4=accuracy(strong, "apgd", 4 / 255),
            square_2=accuracy(strong, "square", 2 / 255),
            square_4=accuracy(strong, "square", 4 / 255),
            flags=mean_flags(strong),
        )
    return row


def mean_flags(rows: list[dict]) -> str:
    """The masking checks' findings on the mean over generators (per-generator ones, prefixed
    with their generator, are in the point's ``headline/robustness.md``)."""
    generators = {key.split("/")[0] for key in rows[0] if key.endswith("/acc")}
    found = {
        part.split(":")[0].strip()
        for row in rows
        for part in (row.get("flags") or "").split(";")
        if part.strip() and part.split(":")[0].strip() not in generators
    }
    return ", ".join(sorted(found)) or "none"


def front(rows: list[dict]) -> list[str]:
    """The points no other point matches or beats on every axis of :data:`AXES` (clean ACC@t,
    APGD-CE at 2 and 4/255) while beating them on one."""

    def beats(o: dict, r: dict) -> bool:
        return all(o[a] >= r[a] for a in AXES) and any(o[a] > r[a] for a in AXES)

    return [r["point"] for r in rows if not any(beats(o, r) for o in rows)]


def best_point(rows: list[dict], plan: dict) -> str:
    """The point nearest the plan's targets by its worst axis: the largest min(value / target).
    Points that differ only in their seed are one recipe, judged by their mean on each axis
    (a lucky seed is not a better recipe) and named by the first of them."""
    recipes: dict[tuple, list[dict]] = {}
    for row in rows:
        overrides = point_overrides(row["point"], plan)
        recipes.setdefault(tuple(o for o in overrides if not o.startswith("seed=")), []).append(row)

    def worst_ratio(runs: list[dict]) -> float:
        return min(sum(r[a] for r in runs) / len(runs) / t for a, t in plan["targets"].items())

    return max(recipes.values(), key=worst_ratio)[0]["point"]


def margin(acc: float, images: int) -> float:
    """Half-width of the 95 % normal interval of an accuracy measured on ``images`` images."""
    return 1.96 * math.sqrt(max(acc * (1 - acc), 1e-12) / images)


def attack_names(settings: dict) -> str:
    """``apgd (steps 50, n_restarts 2), square (...)``: the attacks of a robustness node."""
    return ", ".join(
        f"{a['name']} ({', '.join(f'{k} {v}' for k, v in a.items() if k != 'name')})"
        for a in settings["attacks"]
    )


def write_results(
    rows: list[dict],
    timed_only: list[dict],
    on_front: list[str],
    best: str,
    targets: dict[str, float],
    images: int,
    strong: str,
    results: Path,
) -> None:
    results.mkdir(parents=True, exist_ok=True)
    with (results / "results.csv").open("w", newline="") as f:
        record = rows + timed_only
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in record for k in r}))
        writer.writeheader()
        writer.writerows(record)
    pct = lambda v: "" if v is None or math.isnan(v) else f"{100 * v:.1f}"  # noqa: E731
    lines = [
        f"Clean ACC and APGD-CE-50 ACC at each point's calibrated threshold t, on {images} "
        f"distinct test images ({SAMPLE}; +-{100 * margin(0.5, images):.1f} points at worst, "
        "95 %). Strong: "
        f"{strong}, and the masking checks (the best point, and others where run). "
        "Journey AP and unseen-source FPR from the whole test split. Cost: the median training "
        "step (the attack included) over the clean one's, timed in one process on one loader.",
        "",
        "| point | front | clean ACC@t | APGD 1/255 | APGD 2/255 | APGD 4/255 | strong 2/255 "
        "| strong 4/255 | Square 4/255 | flags | test AP | journey mean / worst AP "
        "| unseen FPR | step cost x clean | collapsed |",
        "| --- " * 15 + "|",
    ]
    clean_step = next(o["step_s"] for o in rows if o["point"] == "clean")
    for r in rows:
        cost = r["step_s"] / clean_step
        place = "best" if r["point"] == best else "yes" if r["point"] in on_front else ""
        lines.append(
            f"| {r['point']} | {place} | {pct(r['clean'])} "
            f"| {pct(r['apgd_1'])} | {pct(r['apgd_2'])} | {pct(r['apgd_4'])} "
            f"| {pct(r.get('strong_apgd_2'))} | {pct(r.get('strong_apgd_4'))} "
            f"| {pct(r.get('square_4'))} | {r.get('flags', '')} | {pct(r['test_ap'])} "
            f"| {pct(r['journey_mean_ap'])} / {pct(r['journey_worst_ap'])} "
            f"| {pct(r['unseen_fpr'])} | {cost:.2f} "
            f"| {'yes' if r['collapsed'] == 1 else 'no'} |"
        )
    if timed_only:
        costs = ", ".join(f"{r['point']} {r['step_s'] / clean_step:.2f}x" for r in timed_only)
        lines += ["", f"Timed only, not trained (step cost x clean): {costs}."]
    (results / "results.md").write_text("\n".join(lines) + "\n")
    plot_front(rows, on_front, best, targets, results / "front.png")


def plot_front(rows: list[dict], on_front: list[str], best: str, targets: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 5), sharey=True)
    for ax, k in zip(axes, (1, 2, 4)):
        for i, r in enumerate(rows, 1):  # numbers, not names: the points crowd near 70 % clean
            mark = "*" if r["point"] == best else "o" if r["point"] in on_front else "x"
            xy = (100 * r[f"apgd_{k}"], 100 * r["clean"])
            ax.scatter(*xy, marker=mark, s=120 if mark == "*" else 36, color="C0")
            ax.annotate(str(i), xy, xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.axhline(100 * targets["clean"], color="C3", ls="--", lw=0.8)
        if f"apgd_{k}" in targets:
            ax.axvline(100 * targets[f"apgd_{k}"], color="C3", ls="--", lw=0.8)
        ax.set_xlabel(f"APGD-CE ACC@t at {k}/255 (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("clean ACC@t (%)")
    fig.suptitle(
        "Clean against robust accuracy at the threshold (*: the best point, o: on the front, "
        "x: beaten; dashed: the targets)"
    )
    key = "   ".join(f"{i}\u00a0{r['point']}" for i, r in enumerate(rows, 1))  # unbroken
    fig.text(0.5, 0.01, fill(key, 190), ha="center", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_runs_table(rows: list[dict], run_dirs: list[Path], images: int, table: Path) -> None:
    """``--runs``: each run's overrides, clean ACC@t and APGD-CE at 1, 2 and 4/255 (Markdown)."""
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = [
        f"Clean ACC and APGD-CE-50 ACC at each run's calibrated threshold t, on {images} "
        f"distinct test images ({SAMPLE}; +-{100 * margin(0.5, images):.1f} points at worst, "
        "95 %).",
        "",
        "| run | overrides | clean ACC@t | APGD 1/255 | APGD 2/255 | APGD 4/255 |",
        "| --- " * 6 + "|",
    ]
    for row, run_dir in zip(rows, run_dirs, strict=True):
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
        lines.append(
            f"| {run_dir.name} | {' '.join(overrides)} | {pct(row['clean'])} "
            f"| {pct(row['apgd_1'])} | {pct(row['apgd_2'])} | {pct(row['apgd_4'])} |"
        )
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines) + "\n")
    print(f"Wrote {table}")


def study(
    names: list[str], plan: dict, sample: Sample, record: dict, output: Path, headline: bool
) -> list[dict]:
    """The rows of points ``names``: read back from ``record`` where it holds one and the point
    has no run under ``output``, measured otherwise (trained and attacked, or read from the
    cache there); with ``headline``, the best point's strong pass too (and any other's cached)."""
    rows, runs = {}, {}  # runs: the points measured here
    for name in names:
        if name in record and not (output / name / "metrics.json").is_file():
            print(f"{name}: read back from the study's results.csv", flush=True)
            rows[name] = record[name]
            continue
        runs[name] = trained(name, plan, output)
        quick = attacked(runs[name], "robustness", plan["robustness"], sample)
        rows[name] = {
            **summary(name, runs[name], quick, None),
            **provenance(name, plan, sample),
        }
    best = best_point(list(rows.values()), plan)
    for name in names if headline else ():
        if name in runs:
            wanted = name == best or (runs[name] / "headline" / "rows.json").is_file()
        else:  # read back: measured again only to become the best point
            wanted = name == best and "strong_apgd_2" not in rows[name]
        if not wanted:
            continue
        run_dir = runs[name] = trained(name, plan, output)
        quick = attacked(run_dir, "robustness", plan["robustness"], sample)
        strong = attacked(run_dir, "headline", plan["headline"], sample)
        rows[name] = {**summary(name, run_dir, quick, strong), **provenance(name, plan, sample)}
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, default=PLAN)
    parser.add_argument("--points", default=None, help="comma-separated; default: every point")
    parser.add_argument("--no-headline", action="store_true", help="skip the front's strong pass")
    parser.add_argument(
        "--fresh", action="store_true", help="measure every point again, none read back"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "logs" / "adversarial_pareto")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "pareto")
    parser.add_argument(
        "--runs", nargs="+", type=Path, help="score these trained runs instead of the points"
    )
    parser.add_argument("--table", type=Path, help="with --runs: their Markdown table")
    args = parser.parse_args()
    plan = yaml.safe_load(args.plan.read_text())
    if args.runs:
        if args.table is None:
            raise SystemExit("--runs needs --table <file.md>, where their table goes")
        missing = [str(d) for d in args.runs if not (d / "metrics.json").is_file()]
        if missing:
            raise SystemExit(f"--runs: no finished run (metrics.json) in {', '.join(missing)}")
        sample = distinct_test_images(plan["seed"])
        rows = [
            summary(d.name, d, attacked(d, "robustness", plan["robustness"], sample), None)
            for d in args.runs
        ]
        write_runs_table(rows, args.runs, sample.images, args.table)
        return
    names = args.points.split(",") if args.points else list(plan["points"])
    unknown = sorted(set(names) - set(plan["points"]))
    if unknown:
        raise SystemExit(f"--points: {', '.join(unknown)} not in {args.plan}")
    sample = distinct_test_images(plan["seed"])
    record = {} if args.fresh else recorded(args.results / "results.csv", plan, sample)
    rows = study(names, plan, sample, record, args.output, headline=not args.no_headline)
    if not args.points:  # the study's tables only from every point
        on_front, best = front(rows), best_point(rows, plan)
        timed_only = list(plan.get("timed_only", {}))
        timed = {n: r["step_s"] for n, r in record.items() if "step_s" in r}
        # ratios only between steps timed in one process: all again when one point is new
        every = names + timed_only
        seconds = timed if set(every) <= set(timed) else step_seconds(every, plan)
        for row in rows:
            row["step_s"] = seconds[row["point"]]
        costs = [
            {"point": n, "step_s": seconds[n], **provenance(n, plan, sample)} for n in timed_only
        ]
        strong = attack_names(plan["headline"])
        write_results(
            rows, costs, on_front, best, plan["targets"], sample.images, strong, args.results
        )
        print(f"Wrote {args.results / 'results.md'}")
    for row in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})


if __name__ == "__main__":
    main()
