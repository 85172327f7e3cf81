"""Training images/s of each detector before and after the in-memory data path, in one run.

    python experiments/throughput/before_after.py                 # before = 6fb2ca8^
    python experiments/throughput/before_after.py --before <rev> --batches 60

"Before" is the code at ``--before`` (default: the commit before the uint8 tensor cache and
batched augmentation, which decoded every PNG again each epoch and augmented image by image),
checked out with ``git worktree`` into a temporary folder; "after" is this checkout. Both train
the same detectors for ``--batches`` batches of one epoch, each with its own defaults, on the same
PNG folder (``data=cifake`` on an embedded build, ``--root``), in alternation (before, after per
detector) so that a change in machine load hits both; ``train/images_per_sec`` comes from each
run's ``metrics.json`` (``TrainThroughput``: data loading included). Detectors added after
``--before`` (the small CNN, the small wavefreq net) get an "after" number only.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DETECTORS = {
    "wavefreq_resnet50": ["model=wavefreq_resnet50"],
    "rine_tinyclip (random tower, input 32)": [
        "model=rine_tinyclip",
        "model.input_size=32",
        "model.backbone.pretrained=false",
    ],
    "wavefreq_small": ["model=wavefreq_small"],
    "simple_cnn": ["model=simple_cnn"],
}


def images_per_sec(code: Path, overrides: list[str], logs: Path, args) -> float | None:
    """Train in ``code`` (its own pixelproof package) and return train/images_per_sec."""
    run_dir = logs / f"run{len(list(logs.iterdir()))}"
    command = [
        sys.executable,
        "-m",
        "pixelproof.train",
        *overrides,
        "data=cifake",
        f"data.root={args.root}",
        "trainer.max_epochs=1",
        f"++trainer.limit_train_batches={args.batches}",
        "++trainer.limit_val_batches=1",
        "++trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        "test=false",
        f"paths.output_dir={run_dir}",
        f"paths.log_dir={logs}",
    ]
    done = subprocess.run(command, cwd=code, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {code.name}: {' '.join(overrides)} failed: {last}", file=sys.stderr)
        return None
    return json.loads((run_dir / "metrics.json").read_text())["train/images_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="6fb2ca8^", help="the git revision of 'before'")
    parser.add_argument("--root", type=Path, default=ROOT / "data" / "embedded")
    parser.add_argument("--batches", type=int, default=40, help="training batches per run")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.md")
    args = parser.parse_args()
    if not (args.root / "train").is_dir():
        sys.exit(f"{args.root} holds no train/ split: run `make train` once to build it")
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "-f", "-q", str(before), args.before], cwd=ROOT)
        logs = Path(tmp) / "logs"
        logs.mkdir()
        rows = []
        try:
            for name, overrides in DETECTORS.items():
                old = (before / "conf" / "model" / f"{overrides[0].split('=')[1]}.yaml").exists()
                b = images_per_sec(before, overrides, logs, args) if old else None
                a = images_per_sec(ROOT, overrides, logs, args)
                ratio = f"{a / b:.1f}x" if a and b else ""
                fmt = lambda v: f"{v:.0f}" if v else "n/a"  # noqa: E731
                rows.append(f"| {name} | {fmt(b)} | {fmt(a)} | {ratio} |")
                print(rows[-1], flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT)
    lines = [
        "| detector | before (img/s) | after (img/s) | speed-up |",
        "| --- | --- | --- | --- |",
        *rows,
    ]
    text = (
        f"Training images/s, {args.batches} batches of one epoch, before = `{args.before}`, "
        f"data `{args.root.name}` (`python experiments/throughput/before_after.py`):\n\n"
        + "\n".join(lines)
        + "\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
