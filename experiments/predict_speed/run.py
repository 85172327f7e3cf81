"""``pixelproof.predict`` against the exported ONNX runner on the same folder, in one run.

    python experiments/predict_speed/run.py --ckpt <ckpt> [--images 10000] [--repeats 3]

Writes ``--images`` random 32x32 PNGs into a temporary folder (``--image-dir`` to keep them),
exports ``--ckpt`` to ONNX there (``python -m pixelproof.export``), and times each tool end to
end as a user runs it (a fresh process, decoding, writing its outputs) on a folder of one image
and on the whole folder, the tools taking turns within each repeat:

- ``predict (before)``: ``pixelproof.predict`` of the ``--before`` revision (a git worktree);
- ``predict``: this checkout's, with its defaults (and with ``--workers`` DataLoader workers);
- ``onnx runner``: ``run_detector.py`` from the export (onnxruntime, numpy, Pillow).

Start-up is the wall time on one image (imports, loading the model, writing the outputs);
steady state is ``(N - 1) / (T(N) - T(1))`` images/s. Medians over the repeats, and the ratio of
the runner's steady state to predict's within each repeat (the cores are shared, so both tools
see the same load). Prints a markdown table.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 170, 32)[None, :, None]
    for i in range(count):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        if i % 2:  # half noise, half a ramp with noise
            pixels = (pixels * 0.3 + ramp).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="also predict with N workers")
    parser.add_argument("--before", default=None, help="git revision of 'predict (before)'")
    parser.add_argument("--image-dir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    python, ckpt = sys.executable, args.ckpt.resolve()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = args.image_dir or tmp / "images"
        if len(list(images.glob("*.png"))) != args.images:
            shutil.rmtree(images, ignore_errors=True)
            write_images(images, args.images)
        one = tmp / "one"
        one.mkdir()
        shutil.copy(images / "0.png", one / "0.png")
        export = tmp / "export"
        timed(
            [python, "-m", "pixelproof.export", f"ckpt_path={ckpt}", f"output_dir={export}"]
            + [f"hydra.run.dir={tmp / 'hydra_export'}"],
            ROOT,
        )

        def predict(cwd: Path, *extra: str):
            return lambda folder: timed(
                [python, "-m", "pixelproof.predict", f"ckpt_path={ckpt}", f"input_dir={folder}"]
                + [f"output={tmp / 'out' / 'p.json'}", "overwrite=true"]
                + [f"hydra.run.dir={tmp / 'hydra'}", *extra],
                cwd,
            )

        tools = {}
        if args.before:
            before = tmp / "before"
            add = ["git", "worktree", "add", "-f", "-q", str(before), args.before]
            subprocess.run(add, cwd=ROOT, check=True)
            tools["predict (before)"] = predict(before)  # cwd first on sys.path: its pixelproof
        tools["predict"] = predict(ROOT)
        if args.workers:
            tools[f"predict, {args.workers} worker(s)"] = predict(
                ROOT, f"inference.num_workers={args.workers}"
            )
        tools["onnx runner"] = lambda folder: timed(
            [python, str(export / "run_detector.py"), str(folder), "--output", str(tmp / "r.csv")],
            ROOT,
        )
        (tmp / "out").mkdir()
        times = {name: [] for name in tools}
        try:
            for repeat in range(args.repeats):
                for name, run in tools.items():
                    start_up, whole = run(one), run(images)
                    times[name].append((start_up, (args.images - 1) / (whole - start_up)))
                    print(
                        f"repeat {repeat}: {name}: {start_up:.2f} s, {times[name][-1][1]:.0f} "
                        f"img/s",
                        flush=True,
                    )
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT)
    runner = [rate for _, rate in times["onnx runner"]]
    lines = [
        "| tool | start-up, 1 image (s) | steady state (img/s) | runner / tool, steady state |",
        "| --- | --- | --- | --- |",
    ]
    for name, rows in times.items():
        ratio = statistics.median(r / rate for r, (_, rate) in zip(runner, rows))
        lines.append(
            f"| {name} | {statistics.median(s for s, _ in rows):.2f} | "
            f"{statistics.median(rate for _, rate in rows):.0f} | {ratio:.2f}x |"
        )
    cores = len(os.sched_getaffinity(0))
    print(f"\n{args.images} images, {args.repeats} repeats, medians, {cores} cores:\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
