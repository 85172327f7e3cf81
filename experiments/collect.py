"""Collect a Hydra multirun into one results table and plot: one row per run.

    python experiments/collect.py logs/<task>/multiruns/<date> [--out DIR] [--title TEXT]
                                  [--x METRIC]

Reads every job directory of the sweep (``<job>/.hydra/overrides.yaml``, ``config.yaml`` and
the ``metrics.json`` that ``pixelproof.train`` writes) and writes into ``--out`` (default: the
sweep directory):

* ``results.md``: the overrides that differ between runs as columns, then test ACC@0.5 / AP and
  validation ACC / AP in % (the format of the Team 57 and Team 91 reports); a per-generator table
  (Generator, ACC, AP, Mean row, as Tables 1-2 of Team 91's report, "From Pixels to Proof") when
  the runs tested per generator; the best run by the sweep's ``optimized_metric``.
* a cross-family table when the runs hold generator families out of training
  (``held_out``, ``experiment=cross_family``): for each run, test AP / ACC@0.5 on
  the held-out family's generators against the families it trained on, and per recipe (the other
  swept overrides but ``experiment``: ``data/augment=journey``, ``callbacks=ema``, ...; sweeps
  from before the ``recipe`` group was split say ``recipe=journey``) their mean over held-out
  families; ``held_out.png`` draws them per recipe.
* ``results.csv``: the same runs with every override and every metric, unrounded.
* ``results.png``: test ACC and AP against the numeric swept parameter with the most values
  (one line per combination of the others), or a bar chart when none is numeric; with
  ``--x train/seconds`` (any logged metric) against that metric instead, one line per
  combination of the non-numeric swept parameters (a time-to-accuracy plot).

Jobs without ``metrics.json`` (failed, or still running) are skipped with a warning.
"""

import argparse
import csv
import json
import logging
import math
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import yaml

log = logging.getLogger("collect")

# (column title, metric key): the table's metric columns, in %
TABLE_METRICS = [
    ("ACC", "test/acc"),
    ("ACC@t", "test/acc_calibrated"),
    ("AP", "test/ap"),
    ("val ACC", "val/acc"),
    ("val AP", "val/ap"),
]
TRAIN_SECONDS = "train/seconds"  # wall-clock training time, logged by every training run
PER_GENERATOR = re.compile(r"^test/(?P<generator>.+)/(?P<metric>acc|ap)$")
# the override that leaves a generator family out of training, and the cross-family columns
HELD_OUT = "held_out"
HELD_OUT_KEYS = ("held_out_ap", "held_out_acc", "seen_ap", "seen_acc")
# not part of a run's recipe: which experiment ran it (a study runs several into one sweep, and
# each one's grid names its choices: data/augment=..., callbacks=ema, model=...)
EXPERIMENT = "experiment"


@dataclass
class Run:
    job: str  # the job directory, relative to the sweep directory ("0", "1", ...)
    overrides: dict[str, str]
    metrics: dict[str, float]
    config: dict = field(default_factory=dict)


# the training augmentations, by name (conf/data/augment/<name>.yaml)
AUGMENTATIONS = Path(__file__).resolve().parents[1] / "pixelproof" / "conf" / "data" / "augment"


def parse_override(text: str) -> tuple[str, str]:
    """``model.xi=0.1`` -> ``("model.xi", "0.1")``; ``+``/``++``/``~`` prefixes are dropped.
    Runs from before the ``recipe`` group was split (issue 24) say ``recipe=<augmentation>`` for
    what is ``data/augment=<augmentation>`` now, the same settings: that is how they are read, so
    old and new runs of one recipe group together (its other old choices keep their name)."""
    key, _, value = text.partition("=")
    key = key.lstrip("+~")
    if key == "recipe" and (AUGMENTATIONS / f"{value}.yaml").is_file():
        return "data/augment", value
    return key, value


def _job_sort_key(job: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", job)]


def find_runs(sweep_dir: Path) -> tuple[list[Run], list[str]]:
    """The finished runs of a sweep and the job directories skipped for lack of metrics."""
    if not sweep_dir.is_dir():
        raise SystemExit(
            f"collect: {sweep_dir} is not a directory; pass a multirun directory "
            "such as logs/<task>/multiruns/<date>"
        )
    jobs = sorted(
        (
            p.parent.parent
            for p in sweep_dir.rglob(".hydra/overrides.yaml")
            if ".submitit" not in p.parts
        ),
        key=lambda d: _job_sort_key(str(d.relative_to(sweep_dir))),
    )
    if not jobs:
        raise SystemExit(
            f"collect: no runs in {sweep_dir} (no <job>/.hydra/overrides.yaml); "
            "pass the directory of a multirun such as logs/<task>/multiruns/<date>"
        )
    runs, skipped = [], []
    for job_dir in jobs:
        job = str(job_dir.relative_to(sweep_dir))
        metrics_file = job_dir / "metrics.json"
        if not metrics_file.is_file():
            log.warning("skipped job %s: no metrics.json (the job failed or is still running)", job)
            skipped.append(job)
            continue
        overrides = dict(
            parse_override(o)
            for o in yaml.safe_load((job_dir / ".hydra/overrides.yaml").read_text()) or []
        )
        config_file = job_dir / ".hydra/config.yaml"
        config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
        metrics = json.loads(metrics_file.read_text()) | journey_per_generator(job_dir)
        runs.append(Run(job, overrides, metrics, config or {}))
    if not runs:
        raise SystemExit(
            f"collect: none of the {len(jobs)} jobs in {sweep_dir} wrote metrics.json "
            "(all failed or are still running)"
        )
    return runs, skipped


def journey_per_generator(job_dir: Path) -> dict[str, float]:
    """``journey/<generator>/mean_ap`` and ``worst_ap`` over the processed cells of the run's
    ``journey/journey.csv`` (``robustness=journey``), or nothing for a run without one."""
    from pixelproof.evaluation.journey_report import MEAN, read_journey

    path = job_dir / "journey" / "journey.csv"
    if not path.is_file():
        return {}
    aps: dict[str, list[float]] = {}
    for row in read_journey(path):
        if row["steps"] != "as it is" and row["generator"] != MEAN and not math.isnan(row["ap"]):
            aps.setdefault(row["generator"], []).append(row["ap"])
    metrics = {}
    for generator, values in aps.items():
        metrics[f"journey/{generator}/mean_ap"] = sum(values) / len(values)
        metrics[f"journey/{generator}/worst_ap"] = min(values)
    return metrics


def swept_keys(runs: Sequence[Run]) -> list[str]:
    """Override keys whose value is not the same in every run, in the order they first appear."""
    keys = list(dict.fromkeys(k for r in runs for k in r.overrides))
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def common_overrides(runs: Sequence[Run], swept: Sequence[str]) -> list[str]:
    keys = [k for k in runs[0].overrides if k not in swept]
    return [f"{k}={runs[0].overrides[k]}" for k in keys if all(k in r.overrides for r in runs)]


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def best_run(runs: Sequence[Run]) -> tuple[Run, str, str] | None:
    """The best run by the sweep's ``optimized_metric`` / ``optimized_mode`` (from its config)."""
    metric = runs[0].config.get("optimized_metric")
    mode = runs[0].config.get("optimized_mode", "max")
    scored = [r for r in runs if metric in r.metrics]
    if not metric or not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.metrics[metric]), metric, mode


def per_generator_table(runs: Sequence[Run]) -> list[str]:
    """Team 91's Tables 1-2 (Generator | ACC | AP, Mean row), with one ACC/AP pair per run."""
    generators = list(
        dict.fromkeys(
            m["generator"] for r in runs for k in r.metrics if (m := PER_GENERATOR.match(k))
        )
    )
    if not generators:
        return []
    header = ["Generator"] + [f"run {r.job} {m}" for r in runs for m in ("ACC", "AP")]
    rows = [
        [g] + [percent(r.metrics.get(f"test/{g}/{m}")) for r in runs for m in ("acc", "ap")]
        for g in generators
    ]
    rows.append(
        ["Mean"] + [percent(r.metrics.get(f"test/{m}")) for r in runs for m in ("acc", "ap")]
    )
    return ["", "Per generator (test ACC@0.5 / AP in %):", "", *markdown_table(header, rows)]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def held_out_scores(run: Run) -> dict[str, float | None] | None:
    """Test AP and ACC@0.5 of a run on its held-out family and on the families it saw (means
    over their generators), or ``None`` for a run that held nothing out."""
    from pixelproof.generators.zoo import FAMILIES, ZOO

    family = run.overrides.get(HELD_OUT)
    if family in (None, "", "null"):
        return None
    held_generators = FAMILIES.get(family, (family,))  # a family, or one generator
    tested = {m["generator"] for k in run.metrics if (m := PER_GENERATOR.match(k))}
    held = [g for g in held_generators if g in tested]
    # the zoo's other generators (simulated-trace sources, sim_*, are not a family)
    seen = sorted(g for g in tested if g in ZOO and g not in held_generators)
    scores = {}
    for name, generators in (("held_out", held), ("seen", seen)):
        for metric in ("ap", "acc"):
            values = [run.metrics[f"test/{g}/{metric}"] for g in generators]
            scores[f"{name}_{metric}"] = _mean(values)
    return scores


def _held_out_runs(runs: Sequence[Run], swept: Sequence[str]):
    """The runs that held a family out, with their scores, and how to name a run's recipe (the
    swept overrides other than the held-out family)."""
    scored = [(r, s) for r in runs if (s := held_out_scores(r)) is not None]
    recipe_keys = [k for k in swept if k not in (HELD_OUT, EXPERIMENT)]
    return scored, lambda run: _label(run, recipe_keys) or "default"


def write_held_out_plot(runs: Sequence[Run], swept: Sequence[str], out: Path, title: str) -> None:
    """``held_out.png``: per recipe, the test AP on each held-out family (bars) and their mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored, recipe = _held_out_runs(runs, swept)
    if not scored:
        return
    recipes = list(dict.fromkeys(recipe(r) for r, _ in scored))
    families = list(dict.fromkeys(r.overrides[HELD_OUT] for r, _ in scored))
    ap = {(recipe(r), r.overrides[HELD_OUT]): s["held_out_ap"] for r, s in scored}
    width = 0.8 / len(families)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(recipes) + 2), 4.2), constrained_layout=True)
    for i, family in enumerate(families):
        values = [100 * (ap.get((name, family)) or float("nan")) for name in recipes]
        xs = [k + (i - (len(families) - 1) / 2) * width for k in range(len(recipes))]
        ax.bar(xs, values, width, label=f"held out: {family}")
    means = [
        100 * _mean([v for (name, _), v in ap.items() if name == n and v is not None] or [0.0])
        for n in recipes
    ]
    ax.plot(range(len(recipes)), means, "k_", markersize=22, mew=2, label="mean")
    ax.axhline(50, color="grey", lw=0.8, ls=":")  # chance
    ax.set_xticks(range(len(recipes)), [_values(n) for n in recipes], rotation=30)
    ax.set_ylabel("test AP on the held-out family (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=len(families) + 1, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    fig.savefig(out / "held_out.png", dpi=120)
    plt.close(fig)


def cross_family_table(runs: Sequence[Run], swept: Sequence[str]) -> list[str]:
    """Held-out family vs seen families, per run, and per recipe the mean over held-out families
    (what a detector does on generators it never saw: the number to prefer)."""
    scored, recipe = _held_out_runs(runs, swept)
    if not scored:
        return []
    header = ["recipe", "held-out family", "held-out AP", "held-out ACC", "seen AP", "seen ACC"]
    rows = [
        [recipe(r), r.overrides[HELD_OUT], *(percent(s[k]) for k in HELD_OUT_KEYS)]
        for r, s in scored
    ]
    lines = [
        "",
        "Leave one generator family out (test AP / ACC@0.5 in %, means over the",
        "family's generators; seen: the zoo's families the run trained on):",
        "",
    ]
    lines += markdown_table(header, rows)
    by_recipe: dict[str, list[dict]] = {}
    for run, scores in scored:
        by_recipe.setdefault(recipe(run), []).append(scores)
    summary = [
        [
            name,
            str(len(group)),
            *(percent(_mean([s[k] for s in group if s[k] is not None])) for k in HELD_OUT_KEYS),
            percent(min(s["held_out_ap"] for s in group)),
        ]
        for name, group in by_recipe.items()
    ]
    header = [*header[:1], "families", *header[2:], "worst held-out AP"]
    lines += ["", "Per recipe, mean over the held-out families:", ""]
    return lines + markdown_table(header, summary)


# the selection rule's criteria: (column, how a recipe's value is read); all "higher is better"
UNSEEN_REAL_ACC = "test/unseen_sources/real_acc_calibrated"
SELECTION_KEYS = ("held-out AP", "journey mean AP", "journey worst AP", "unseen real ACC@t")


def selection_scores(runs: Sequence[Run], swept: Sequence[str]) -> dict[str, dict]:
    """Per recipe (the swept overrides other than the held-out family and the seed): the mean
    held-out-family AP of its held-out runs; from its runs on every family, the journey's mean
    and worst AP and the real ACC at the threshold on reals from unseen sources (means over
    seeds, with their spread); and its score, the worst of the four."""
    # the seeds' runs come from experiment=selection_seeds: the same recipe, another seed
    recipe_keys = [k for k in swept if k not in (HELD_OUT, "seed", EXPERIMENT)]
    recipe = lambda run: _label(run, recipe_keys) or "default"  # noqa: E731
    groups: dict[str, dict] = {}
    for run in runs:
        group = groups.setdefault(recipe(run), {"held": [], "full": []})
        scores = held_out_scores(run)
        if scores is not None:
            group["held"].append(scores["held_out_ap"])
        elif "journey/mean_ap" in run.metrics:
            group["full"].append(run)
    table = {}
    for name, group in groups.items():
        full = group["full"]
        values = {
            "held-out AP": _mean([v for v in group["held"] if v is not None]),
            "journey mean AP": _mean([r.metrics["journey/mean_ap"] for r in full]),
            "journey worst AP": _mean([r.metrics["journey/worst_ap"] for r in full]),
            "unseen real ACC@t": _mean(
                [r.metrics[UNSEEN_REAL_ACC] for r in full if UNSEEN_REAL_ACC in r.metrics]
            ),
        }
        known = [v for v in values.values() if v is not None]
        table[name] = {
            **values,
            "test AP": _mean([r.metrics["test/ap"] for r in full if "test/ap" in r.metrics]),
            "worst held-out AP": min(group["held"], default=None),
            "seeds": len(full),
            "spread": _spread([r.metrics["journey/mean_ap"] for r in full]),
            "score": min(known) if len(known) == len(values) else None,
        }
    return dict(sorted(table.items(), key=lambda item: -(item[1]["score"] or -1)))


def _spread(values: Sequence[float]) -> float | None:
    """Half the range of ``values`` (None for fewer than two)."""
    return (max(values) - min(values)) / 2 if len(values) > 1 else None


def selection_table(runs: Sequence[Run], swept: Sequence[str]) -> list[str]:
    """The recipes ranked by the selection rule (the worst of held-out, journey and unseen-
    source numbers), best first."""
    table = selection_scores(runs, swept)
    if not any(row["seeds"] for row in table.values()):
        return []
    header = ["recipe", "test AP", "held-out AP (worst)", "journey mean AP", "journey worst AP"]
    header += ["unseen real ACC@t", "score", "seeds"]
    rows = []
    for name, row in table.items():
        spread = f" ± {100 * row['spread']:.1f}" if row["spread"] is not None else ""
        rows.append(
            [
                name,
                percent(row["test AP"]),
                (
                    f"{percent(row['held-out AP'])} ({percent(row['worst held-out AP'])})"
                    if row["held-out AP"] is not None
                    else "– (no run)"
                ),
                percent(row["journey mean AP"]) + spread,
                percent(row["journey worst AP"]),
                percent(row["unseen real ACC@t"]),
                f"**{percent(row['score'])}**" if row["score"] is not None else "–",
                str(row["seeds"]),
            ]
        )
    lines = [
        "",
        "Recipes ranked by the selection rule: the worst of the mean held-out-family AP, the",
        "journey's mean and worst (cell, generator) AP and the real ACC at the threshold on",
        "reals from unseen sources (1 - their false-positive rate), in %. Journey and unseen",
        "numbers come from the runs on every family (means over seeds; ± half their range).",
        "A recipe without a held-out or an every-family run has no score (–) and ranks last.",
        "",
    ]
    return lines + markdown_table(header, rows)


def write_markdown(runs, skipped, swept, out: Path, title: str, command: str) -> None:
    timed = any(TRAIN_SECONDS in r.metrics for r in runs)
    header = ["run", *swept, *(name for name, _ in TABLE_METRICS), *(["train s"] * timed)]
    rows = [
        [
            r.job,
            *(r.overrides.get(k, "") for k in swept),
            *(percent(r.metrics.get(key)) for _, key in TABLE_METRICS),
            *([f"{r.metrics.get(TRAIN_SECONDS, float('nan')):.0f}"] * timed),
        ]
        for r in runs
    ]
    lines = [f"# {title}", "", f"Collected by `{command}` from {len(runs)} runs."]
    if skipped:
        lines.append(f"Skipped (no metrics.json: failed or unfinished): jobs {', '.join(skipped)}.")
    common = common_overrides(runs, swept)
    if common:
        lines.append("Common overrides: " + " ".join(f"`{o}`" for o in common) + ".")
    lines += [
        "ACC@0.5, ACC@t (at the checkpoint's calibrated threshold) and AP in %, on the test "
        "split (its mean over generators when there are several); val: the validation split "
        "after the last epoch; train s: wall-clock training seconds.",
        "",
    ]
    lines += markdown_table(header, rows)
    best = best_run(runs)
    if best:
        run, metric, mode = best
        values = _label(run, swept)
        lines += [
            "",
            f"Best by {metric} ({mode}): run {run.job} ({values}), "
            f"{metric} = {run.metrics[metric]:.4f}.",
        ]
    lines += selection_table(runs, swept)
    lines += cross_family_table(runs, swept)
    lines += per_generator_table(runs)
    (out / "results.md").write_text("\n".join(lines) + "\n")


def write_csv(runs: Sequence[Run], out: Path) -> None:
    override_keys = list(dict.fromkeys(k for r in runs for k in r.overrides))
    metric_keys = sorted({k for r in runs for k in r.metrics})
    with (out / "results.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["run", *override_keys, *metric_keys])
        for r in runs:
            writer.writerow(
                [
                    r.job,
                    *(r.overrides.get(k, "") for k in override_keys),
                    *(r.metrics.get(k, "") for k in metric_keys),
                ]
            )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _label(run: Run, keys: Sequence[str]) -> str:
    """``k=v, ...`` of the keys this run overrides (runs of a sweep can differ in their keys)."""
    return ", ".join(f"{k}={run.overrides[k]}" for k in keys if k in run.overrides)


def _values(label: str) -> str:
    """``data/augment=flip, callbacks=ema`` -> ``flip, ema``: a short tick label."""
    return ", ".join(part.partition("=")[2] or part for part in label.split(", "))


def write_plot(
    runs: Sequence[Run], swept: Sequence[str], out: Path, title: str, x_metric: str | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    numeric = [k for k in swept if all(_number(r.overrides.get(k, "")) is not None for r in runs)]
    if x_metric:  # x from a logged metric; the non-numeric parameters name the lines
        x_of = lambda r: r.metrics.get(x_metric)  # noqa: E731
        others = [k for k in swept if k not in numeric]
    else:  # x: the numeric parameter with the most values; epochs on a tie (a training curve)
        spread = lambda k: (len({r.overrides[k] for r in runs}), "epoch" in k)  # noqa: E731
        x_key = max(numeric, key=spread, default=None)
        x_of = lambda r: _number(r.overrides[x_key])  # noqa: E731
        others = [k for k in swept if k != x_key]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, (name, key) in zip(axes, [TABLE_METRICS[0], TABLE_METRICS[2]]):
        if not x_metric and x_key is None:
            labels = [r.job for r in runs]
            ax.bar(labels, [100 * r.metrics.get(key, float("nan")) for r in runs])
            ax.set_xlabel("run (see results.md)")
        else:
            series = lambda r, keys=tuple(others): _label(r, keys) or "all runs"  # noqa: E731
            for label, group in groupby(sorted(runs, key=series), key=series):
                points = sorted(
                    (x_of(r), 100 * r.metrics[key])
                    for r in group
                    if key in r.metrics and x_of(r) is not None
                )
                if points:
                    ax.plot(*zip(*points), marker="o", label=label)
            ax.set_xlabel(x_metric or x_key)
            if x_metric == TRAIN_SECONDS:
                ax.set_xscale("log")
                ax.set_xlabel("training wall-clock seconds (log)")
            ax.legend(fontsize=7)
        ax.axhline(50, color="grey", lw=0.8, ls=":")  # chance for balanced real/fake
        ax.set_ylabel(f"test {name} (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(out / "results.png", dpi=120)
    plt.close(fig)


def collect(
    sweep_dir: Path,
    out: Path | None = None,
    title: str | None = None,
    command: str | None = None,
    x_metric: str | None = None,
) -> list[Run]:
    """Write results.md, results.csv and results.png for the sweep in ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    runs, skipped = find_runs(sweep_dir)
    out = Path(out) if out else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    swept = swept_keys(runs)
    title = title or f"Sweep {sweep_dir.name}"
    command = command or f"python experiments/collect.py {sweep_dir} --out {out}"
    write_markdown(runs, skipped, swept, out, title, command)
    write_csv(runs, out)
    write_plot(runs, swept, out, title, x_metric)
    write_held_out_plot(runs, swept, out, title)
    log.info("%d runs (%d skipped) -> %s/results.{md,csv,png}", len(runs), len(skipped), out)
    return runs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun directory")
    parser.add_argument("--out", type=Path, help="where to write results.* (default: sweep_dir)")
    parser.add_argument("--title", help="the table's and plot's title")
    parser.add_argument("--x", help="plot against this logged metric, e.g. train/seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    command = shlex.join(["python", "experiments/collect.py", *(argv or sys.argv[1:])])
    collect(args.sweep_dir, args.out, args.title, command, args.x)


if __name__ == "__main__":
    main()
