"""Robustness under strong attacks of a clean-trained, a PGD-trained and an N-FGSM-trained
detector, with the training cost of each, in one command.

    python experiments/adversarial/benchmark.py                       # the README table (long)
    python experiments/adversarial/benchmark.py --override model=simple_cnn \\
        --override data.root=data/embedded_2000 --override data.embedded.n_train=2000 \\
        --override data.batch_size=128 --epochs 10
    python experiments/adversarial/benchmark.py --train-eps 4/255 \\
        --override robustness.max_batches=4

Every ``--override`` is a Hydra override passed through as written: to ``pixelproof.train``'s
config (``model=...``, ``data...``, ``trainer...``), or, when it starts with ``robustness``, to
the robustness config of the evaluation (``--robustness``, default ``strong``).

1. **Step time**, one process, one data loader, a fresh detector per mode: Lightning trains
   ``--warmup + --timing-steps`` batches clean, then with ``AdversarialAugmentation`` under
   N-FGSM, FGSM with random start (Wong et al. 2020) and PGD-``--pgd-steps`` (eps
   ``--train-eps``, ``--fraction`` of each batch attacked). A step runs from the start of the
   batch (before the attack) to the end of the optimizer step; the median and its ratio to
   clean are reported.
2. **Training**, by ``pixelproof.train.train`` for ``--epochs``: clean, PGD (``attack=pgd``) and
   N-FGSM (``attack=nfgsm``); the adversarial runs validate under attack
   (``robust_validation``: ``val/pgd_acc``, ``val/fgsm_acc`` and the ``val/collapsed`` watch for
   catastrophic overfitting). A **surrogate**, clean-trained with another seed, is the source of
   the transfer attacks (``--transfer-ckpt`` uses a checkpoint instead, ``--no-transfer`` none).
3. **Evaluation** of each best checkpoint (by ``val/acc``) on the test split of the same data
   config, one loader per generator, by ``robustness_report`` with ``conf/robustness/strong``:
   FGSM, PGD-10, APGD-CE, Square at eps 1, 2, 4, 8 /255, transfer attacks from the surrogate, and
   the masking checks; the mean over generators.

``--reuse`` takes each model (and the surrogate) that an earlier, interrupted run of the
benchmark trained to the end in ``--output`` instead of training it again.

Writes ``<--output>/results.md`` (the tables), ``results.csv`` (every number, one row per model
and condition), ``results.png`` (accuracy vs eps, a panel per model) and, per model,
``<name>/`` (its training run) with ``<name>/robustness/`` (its full robustness report).
"""

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import hydra
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning import Callback, Trainer, seed_everything
from omegaconf import DictConfig, open_dict

from pixelproof.attacks.spec import AttackSpec, format_eps, pixel_value
from pixelproof.callbacks.adversarial_augmentation import AdversarialAugmentation
from pixelproof.evaluation.robustness import robustness_report
from pixelproof.models.loading import load_detector
from pixelproof.train import train

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("clean", "pgd", "nfgsm")


def compose_config(name: str, *overrides: str) -> DictConfig:
    """``conf/<name>.yaml`` as ``python -m pixelproof.<name> <overrides>`` composes it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(training overrides, robustness overrides): ``robustness...`` go to the evaluation."""
    robust = [o for o in overrides if o.lstrip("+~").startswith("robustness")]
    return [o for o in overrides if o not in robust], robust


class StepTimer(Callback):
    """Seconds from the start of each training batch (before any attack) to its end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def _sync(self, module) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.seconds.append(time.perf_counter() - self._start)


def timed_attacks(args) -> dict[str, AttackSpec | None]:
    eps = pixel_value(args.train_eps, "--train-eps")
    return {
        "clean": None,
        "nfgsm": AttackSpec("nfgsm", eps),
        "fgsm_rs": AttackSpec("fgsm_rs", eps),
        f"pgd ({args.pgd_steps} steps)": AttackSpec("pgd", eps, steps=args.pgd_steps),
    }


def time_steps(args, overrides: list[str]) -> list[dict]:
    """Median training step time per mode, all in this process on one data loader."""
    cfg = compose_config("train", *overrides, "model.scheduler=null")  # no plateau to watch
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    if len(loader) < args.warmup + args.timing_steps:
        raise SystemExit(
            f"{len(loader)} training batches < --warmup + --timing-steps: more training data "
            "(--override data...) or fewer steps"
        )
    rows = []
    for mode, spec in timed_attacks(args).items():
        seed_everything(0)
        model = hydra.utils.instantiate(cfg.model)
        timer = StepTimer()
        callbacks = [timer]
        if spec is not None:
            callbacks.append(AdversarialAugmentation(spec, fraction=args.fraction))
        trainer = Trainer(
            max_epochs=1,
            limit_train_batches=args.warmup + args.timing_steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            accelerator=cfg.trainer.accelerator,
            precision=cfg.trainer.precision,
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, train_dataloaders=loader)
        median = statistics.median(timer.seconds[args.warmup :])
        rows.append({"mode": mode, "step_s": median})
        print(f"  {mode}: {median * 1000:.0f} ms/step", flush=True)
    for row in rows:
        row["ratio"] = row["step_s"] / rows[0]["step_s"]
    return rows


def training_runs(args) -> dict[str, list[str]]:
    """Model name -> its extra training overrides."""
    watch = [
        "callbacks=adversarial",
        f"callbacks.adversarial.fraction={args.fraction}",
        "callbacks.adversarial.robust_validation=true",
        f"attack.eps={args.train_eps}",
    ]
    runs = {
        "clean": ["callbacks=default"],  # the callbacks of the adversarial runs, no EMA
        "pgd": [*watch, "attack=pgd", f"attack.steps={args.pgd_steps}"],
        "nfgsm": [*watch, "attack=nfgsm"],
    }
    return {name: runs[name] for name in args.models}


def best_checkpoint(run_dir: Path) -> Path:
    best = sorted((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    if len(best) != 1:
        raise SystemExit(f"expected one best checkpoint in {run_dir / 'checkpoints'}, got {best}")
    return best[0]


def fit(name: str, extra: list[str], args, overrides: list[str]) -> dict:
    run_dir = args.output / name
    if args.reuse and (run_dir / "metrics.json").is_file():
        return reused(name, run_dir)
    cfg = compose_config(
        "train", *overrides, *extra, "test=false", f"trainer.max_epochs={args.epochs}",
        f"paths.output_dir={run_dir}",
    )  # fmt: skip
    print(f"Training {name}: {' '.join(extra) or 'clean'}", flush=True)
    start = time.perf_counter()
    metrics = train(cfg)
    return {
        "name": name,
        "ckpt": best_checkpoint(run_dir),
        "minutes": (time.perf_counter() - start) / 60,
        "val_acc": metrics.get("val/acc", float("nan")),
        "val_pgd_acc": metrics.get("val/pgd_acc", float("nan")),
        "collapsed": metrics.get("val/collapsed", float("nan")),
    }


def reused(name: str, run_dir: Path) -> dict:
    """A model a previous (interrupted) benchmark trained in ``run_dir``: its best checkpoint
    and its summary, from the ``metrics.json`` that training wrote when it finished."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(f"Reusing {name}: {run_dir}", flush=True)
    return {
        "name": name,
        "ckpt": best_checkpoint(run_dir),
        "minutes": metrics.get("train/seconds", float("nan")) / 60,
        "val_acc": metrics.get("val/acc", float("nan")),
        "val_pgd_acc": metrics.get("val/pgd_acc", float("nan")),
        "collapsed": metrics.get("val/collapsed", float("nan")),
    }


def test_loaders(overrides: list[str]) -> dict:
    cfg = compose_config("train", *overrides)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    return dict(zip(datamodule.test_names, datamodule.test_dataloader()))


def device_of(args) -> torch.device:
    cuda = args.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    return torch.device("cuda" if cuda else "cpu")


def evaluate(runs: list[dict], source: Path | None, args, overrides, robust_overrides) -> list:
    cfg = compose_config(
        "eval", "ckpt_path=unused", f"robustness={args.robustness}", *robust_overrides
    ).robustness
    device = device_of(args)
    source_model = None
    if source is not None:
        with open_dict(cfg):
            cfg.source_ckpt_path = str(source)
        source_model = load_detector(source).to(device)
    loaders = test_loaders(overrides)
    rows = []
    for run in runs:
        print(f"Evaluating {run['name']} ({run['ckpt']})", flush=True)
        model = load_detector(run["ckpt"]).to(device)
        table = robustness_report(
            model, loaders, cfg, args.output / run["name"] / "robustness", source=source_model
        )
        rows += [{"model": run["name"], **row} for row in table]
    return rows


def eps_grid(rows: list[dict]) -> list[float]:
    return sorted({r["strength"] for r in rows if r["kind"] == "attack"})


def _series(row: dict) -> str:
    return row["condition"].split(" eps=")[0]


def accuracy_table(rows: list[dict]) -> list[str]:
    """One line per model and attack: clean ACC, then ACC at every eps of the grid."""
    grid = eps_grid(rows)
    header = ["model", "attack", "clean", *(f"eps {format_eps(e)}" for e in grid), "flags"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for model in dict.fromkeys(r["model"] for r in rows):
        own = [r for r in rows if r["model"] == model]
        clean = own[0]["acc"]
        attacks = [r for r in own if r["kind"] in ("attack", "transfer", "check")]
        for series in dict.fromkeys(_series(r) for r in attacks):
            points = {r["strength"]: r for r in attacks if _series(r) == series}
            if not any(e in points for e in grid):
                continue  # the large-eps check: in the masking line below
            cells = [f"{points[e]['acc']:.3f}" if e in points else "" for e in grid]
            flags = sum(bool(r["flags"]) for r in points.values())
            lines.append(
                f"| {model} | {series} | {clean:.3f} | " + " | ".join(cells) + f" | {flags} |"
            )
    return lines


def masking_lines(rows: list[dict]) -> list[str]:
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        own = [r for r in rows if r["model"] == model]
        large = [r for r in own if r["kind"] == "check" and r["strength"] > max(eps_grid(own))]
        flagged = [f"`{r['condition']}`: {r['flags']}" for r in own if r["flags"]]
        at_large = ", ".join(f"{r['condition']} ACC {r['acc']:.3f}" for r in large)
        state = f"{len(flagged)} flag(s)" if flagged else "no flag"
        lines.append(f"- {model}: {state}" + (f" ({at_large})" if at_large else ""))
        lines += [f"  - {f}" for f in flagged]
    return lines


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    grid = eps_grid(rows)
    figure, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False)
    for axis, model in zip(axes[0], models):
        own = [r for r in rows if r["model"] == model]
        clean = own[0]["acc"]
        attacks = [r for r in own if r["kind"] in ("attack", "transfer") and r["strength"] in grid]
        for series in dict.fromkeys(_series(r) for r in attacks):
            points = sorted((r["strength"], r["acc"]) for r in attacks if _series(r) == series)
            eps, acc = zip(*[(0.0, clean), *points])
            style = "--" if series.startswith("transfer") else "-"
            axis.plot([e * 255 for e in eps], acc, style, marker="o", markersize=3, label=series)
        axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        axis.set_title(f"{model} (clean {clean:.3f})", fontsize=9)
        axis.set_xlabel("eps (x 1/255)")
        axis.set_ylim(0, 1)
    axes[0][0].set_ylabel("ACC@0.5, mean over generators")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_csv(rows: list[dict], path: Path) -> None:
    columns = ["model", "condition", "kind", "name", "strength", "acc", "ap", "acc_drop", "flags"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="a Hydra override for training (model=..., data...) or robustness...; repeatable",
    )  # fmt: skip
    parser.add_argument("--models", default=",".join(MODELS), help="which of clean,pgd,nfgsm")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each trained model")
    parser.add_argument("--train-eps", default="8/255", help="eps of PGD and N-FGSM training")
    parser.add_argument("--pgd-steps", type=int, default=7, help="PGD steps when training")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of a batch attacked")
    parser.add_argument("--robustness", default="strong", help="conf/robustness/<name>")
    parser.add_argument("--surrogate-seed", type=int, default=1, help="seed of the surrogate")
    parser.add_argument("--transfer-ckpt", type=Path, default=None, help="transfer source ckpt")
    parser.add_argument("--no-transfer", action="store_true", help="no surrogate, no transfer")
    parser.add_argument("--accelerator", default="auto", help="cpu | gpu | auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per mode")
    parser.add_argument("--timing-steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take a model trained to the end by an earlier run in --output instead of training it",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "logs" / "adversarial_benchmark")
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    if unknown := sorted(set(args.models) - set(MODELS)):
        parser.error(f"--models: unknown {unknown}; choose from {','.join(MODELS)}")
    args.train_eps = str(Fraction(args.train_eps.replace(" ", "")))  # "8/255" stays "8/255"
    if args.threads:
        torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    overrides, robust_overrides = split_overrides(args.override)
    overrides = [f"trainer.accelerator={args.accelerator}", *overrides]

    command = "python experiments/adversarial/benchmark.py " + " ".join(sys.argv[1:])
    device = (
        torch.cuda.get_device_name()
        if device_of(args).type == "cuda"
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    lines = [
        f"`{command.strip()}`",
        "",
        f"Overrides: {' '.join(args.override) or '(none: the default detector and data)'}; "
        f"{device}, torch {torch.__version__}. Training: {args.epochs} epochs, eps "
        f"{args.train_eps}, {args.fraction:g} of each batch attacked; PGD {args.pgd_steps} steps.",
        "",
    ]
    if not args.skip_timing:
        print("Step time per mode", flush=True)
        timing = time_steps(args, overrides)
        lines += [
            f"Training step time (median of {args.timing_steps} steps after {args.warmup} "
            f"warm-up, measured in one run; {args.fraction:g} of each batch attacked, eps "
            f"{args.train_eps}):",
            "",
            "| training | ms / step | x clean |",
            "| --- | --- | --- |",
            *[f"| {r['mode']} | {r['step_s'] * 1000:.0f} | {r['ratio']:.2f} |" for r in timing],
            "",
        ]

    runs = [fit(name, extra, args, overrides) for name, extra in training_runs(args).items()]
    source = args.transfer_ckpt
    if source is None and not args.no_transfer:
        surrogate = fit("surrogate", [f"seed={args.surrogate_seed}"], args, overrides)
        source = surrogate["ckpt"]
    rows = evaluate(runs, source, args, overrides, robust_overrides)
    write_csv(rows, args.output / "results.csv")
    plot(rows, args.output / "results.png")
    lines += [
        "Training (best `val/acc` checkpoint; `val/pgd_acc` and `val/collapsed` of the last "
        "epoch, adversarial runs only):",
        "",
        "| model | train minutes | val ACC | val PGD ACC | collapsed |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {r['name']} | {r['minutes']:.1f} | {r['val_acc']:.3f} | {r['val_pgd_acc']:.3f} "
            f"| {r['collapsed']:.0f} |"
            for r in runs
        ],
        "",
        f"Accuracy (ACC@0.5, mean over the test generators) under `robustness={args.robustness}`"
        + (f"; transfer attacks crafted on {source}" if source else "")
        + "; flags: masking flags raised on the row's points:",
        "",
        *accuracy_table(rows),
        "",
        "Masking checks (Carlini et al. 2019; details in `<model>/robustness/robustness.md`):",
        "",
        *masking_lines(rows),
        "",
        "Plot: `results.png`; every number: `results.csv`.",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    (args.output / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
