"""What adversarial training costs and buys, on the embedded data with the default detector.

    python experiments/adversarial/benchmark.py                 # the README table (long on a CPU)
    python experiments/adversarial/benchmark.py --n-train 96 --n-test 48 --batch-size 16 \
        --backbone resnet26 --timing-steps 2 --warmup 1 --epochs 1 --eval-batches 1   # smoke

1. Step time: one process, one data loader, a fresh ``wavefreq_resnet50`` per mode; Lightning
   trains ``--warmup + --timing-steps`` batches clean, then with ``AdversarialAugmentation``
   under FGSM, FGSM with random start and 7-step PGD (eps 8/255, the callback's default half of
   each batch attacked). A step is timed from the start of the batch (before the attack) to
   its end (after the optimizer step); the table gives the median and its ratio to clean.
2. Accuracy: ``pixelproof.train.train`` trains the detector clean and adversarially
   (``callbacks=adversarial attack=<--train-attack>``) for ``--epochs``; each best checkpoint
   (by ``val/acc``) is evaluated on the embedded per-generator test split, clean and under
   PGD (eps 8/255, ``--eval-steps`` steps, random start) by ``robustness_report``: ACC@0.5
   and AP, the mean over generators.

Prints markdown tables and writes them to ``<--output>/results.md``.
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import hydra
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning import Callback, Trainer, seed_everything
from omegaconf import DictConfig, OmegaConf, open_dict

from pixelproof.attacks.spec import AttackSpec
from pixelproof.callbacks.adversarial_augmentation import AdversarialAugmentation
from pixelproof.evaluation.robustness import robustness_report
from pixelproof.train import train

ROOT = Path(__file__).resolve().parents[2]
EPS = 8 / 255
TIMED_ATTACKS = {
    "fgsm": AttackSpec("fgsm", EPS),
    "fgsm_rs": AttackSpec("fgsm_rs", EPS),
    "pgd (7 steps)": AttackSpec("pgd", EPS, steps=7),
}


def compose_train(*overrides: str) -> DictConfig:
    """``conf/train.yaml`` as ``python -m pixelproof.train <overrides>`` composes it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


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


def time_steps(args, overrides: list[str]) -> list[dict]:
    cfg = compose_train(*overrides, "model.scheduler=null")  # no validation: no plateau to watch
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    if len(loader) < args.warmup + args.timing_steps:
        raise SystemExit(
            f"{len(loader)} training batches < --warmup + --timing-steps; raise --n-train"
        )
    rows = []
    for mode, spec in [("clean", None), *TIMED_ATTACKS.items()]:
        seed_everything(0)
        model = hydra.utils.instantiate(cfg.model)
        timer = StepTimer()
        callbacks = [timer] if spec is None else [timer, AdversarialAugmentation(spec)]
        trainer = Trainer(
            max_epochs=1,
            limit_train_batches=args.warmup + args.timing_steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            accelerator=args.accelerator,
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


def load_best(run_dir: Path) -> torch.nn.Module:
    """The best checkpoint of a ``train`` run, rebuilt from the model config it records."""
    best = [p for p in (run_dir / "checkpoints").glob("epoch_*.ckpt")]
    if len(best) != 1:
        raise SystemExit(f"expected one best checkpoint in {run_dir / 'checkpoints'}, got {best}")
    ckpt = torch.load(best[0], weights_only=True, map_location="cpu")
    model = hydra.utils.instantiate(ckpt["model_config"])
    model.on_load_checkpoint(ckpt)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def accuracy(args, overrides: list[str], output: Path) -> list[dict]:
    attack = [f"attack={args.train_attack}", "attack.eps=8/255"]
    if args.train_attack.startswith("pgd"):
        attack.append(f"attack.steps={args.train_steps}")
    runs = {
        "clean training": [],
        f"adversarial training ({args.train_attack}, eps 8/255)": [
            "callbacks=adversarial",
            *attack,
        ],
    }
    device = torch.device(
        "cuda" if args.accelerator != "cpu" and torch.cuda.is_available() else "cpu"
    )
    robustness = OmegaConf.create(
        {
            "eps": [EPS],
            "attacks": [{"name": "pgd", "steps": args.eval_steps, "random_start": True}],
            "perturbations": {},
            "seed": 0,
            "max_batches": args.eval_batches,
        }
    )
    rows = []
    for index, (name, extra) in enumerate(runs.items()):
        run_dir = output / f"run_{index}"
        cfg = compose_train(
            *overrides, *extra, "test=false", f"trainer.max_epochs={args.epochs}",
            f"paths.output_dir={run_dir}",
        )  # fmt: skip
        start = time.perf_counter()
        metrics = train(cfg)
        minutes = (time.perf_counter() - start) / 60
        model = load_best(run_dir).to(device)
        # the per-generator test layout the embedded dataset ships: mean over its generators
        per_generator = ["data=per_generator", "data.test_split=test_per_generator"]
        shared = [o for o in overrides if not o.startswith("data.embedded.")]
        test = compose_train(*shared, *per_generator, "data.embedded=null")
        datamodule = hydra.utils.instantiate(test.data)
        datamodule.setup("test")
        loaders = dict(zip(datamodule.test_names, datamodule.test_dataloader()))
        table = robustness_report(model, loaders, robustness, run_dir / "robustness")
        clean, attacked = table[0], table[1]
        rows.append(
            {
                "model": name,
                "val_acc": metrics.get("val/acc", float("nan")),
                "clean_acc": clean["acc"],
                "clean_ap": clean["ap"],
                "pgd_acc": attacked["acc"],
                "pgd_ap": attacked["ap"],
                "minutes": minutes,
            }
        )
        print(f"  {rows[-1]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backbone", default="resnet50", help="model.net.backbone (timm name)")
    parser.add_argument("--accelerator", default="auto", help="cpu | gpu | auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per mode")
    parser.add_argument("--timing-steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each trained model")
    parser.add_argument("--train-attack", default="pgd", help="fgsm | fgsm_rs | pgd | pgd_l2")
    parser.add_argument("--train-steps", type=int, default=7, help="PGD steps when training")
    parser.add_argument("--eval-steps", type=int, default=10, help="PGD steps when evaluating")
    parser.add_argument("--eval-batches", type=int, default=None, help="per generator")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "logs" / "adversarial_benchmark")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    data_root = ROOT / "data" / f"embedded_{args.n_train}_{args.n_test}"
    overrides = [
        f"data.root={data_root}",
        f"data.embedded.n_train={args.n_train}",
        f"data.embedded.n_test={args.n_test}",
        f"data.batch_size={args.batch_size}",
        f"model.net.backbone={args.backbone}",
        f"trainer.accelerator={args.accelerator}",
        f"paths.output_dir={args.output}",
    ]
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available() and args.accelerator != "cpu"
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    lines = [
        f"Embedded data ({args.n_train} train / {args.n_test} test), wavefreq_resnet50 "
        f"(backbone {args.backbone}), batch {args.batch_size}, {device}, "
        f"torch {torch.__version__}.",
        "",
    ]
    if not args.skip_timing:
        print("Step time per mode", flush=True)
        timing = time_steps(args, overrides)
        lines += [
            f"Training step time (median of {args.timing_steps} steps after {args.warmup} warm-up; "
            "half of each batch attacked, eps 8/255):",
            "",
            "| training | ms / step | x clean |",
            "| --- | --- | --- |",
            *[f"| {r['mode']} | {r['step_s'] * 1000:.0f} | {r['ratio']:.2f} |" for r in timing],
            "",
        ]
    if not args.skip_accuracy:
        print("Clean vs adversarial training", flush=True)
        results = accuracy(args, overrides, args.output)
        lines += [
            f"Accuracy after {args.epochs} epochs (best val/acc checkpoint), mean over the "
            f"embedded test generators; PGD: eps 8/255, {args.eval_steps} steps, random start:",
            "",
            "| model | clean ACC | clean AP | PGD ACC | PGD AP | train minutes |",
            "| --- | --- | --- | --- | --- | --- |",
            *[
                f"| {r['model']} | {r['clean_acc']:.3f} | {r['clean_ap']:.3f} | "
                f"{r['pgd_acc']:.3f} | {r['pgd_ap']:.3f} | {r['minutes']:.1f} |"
                for r in results
            ],
            "",
        ]
    text = "\n".join(lines)
    print("\n" + text)
    (args.output / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
