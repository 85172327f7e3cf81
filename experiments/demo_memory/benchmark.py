"""Peak memory of the demo's analysis of large uploads, before and after a change.

    python experiments/demo_memory/benchmark.py                  # this checkout; writes results.md
    python experiments/demo_memory/benchmark.py --before HEAD~1  # and the code at a git revision

Four 10000x10000 RGB PNGs (a few hundred KB each: a stripe pattern compresses well) are analysed
in one upload by the demo's analysis (``DemoAnalysis.analyse``; ``DetectorDemo.analyse`` in a
revision from before ``pixelproof/demo/``) with the default demo settings (attributions, the
robustness gauge) and an untrained ``simple_cnn`` checkpoint. Each measurement runs in a fresh
process: its resident memory once the demo is built, then its peak (``ru_maxrss``) after the
analysis. "Before" is the ``pixelproof`` and ``conf`` of ``--before``, read with ``git archive``
into a temporary folder (the repository is left as it is). Not a test: it takes a minute and
needs ~3 GB of memory for the code it was written against. Since ``pixelproof/demo/`` the
analysis draws no pictures (the page draws them for the image it shows), so the peak is a little
lower than ``results.md`` says.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIDE, UPLOADS = 10_000, 4


def make_uploads(folder: Path) -> list[Path]:
    """``UPLOADS`` copies of one SIDE x SIDE RGB PNG."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.tile(np.arange(256, dtype=np.uint8), SIDE // 256 + 1)[:SIDE]
    pixels = np.broadcast_to(ramp[None, :, None], (SIDE, SIDE, 3))
    first = folder / "0.png"
    Image.fromarray(np.ascontiguousarray(pixels)).save(first, optimize=True)
    paths = [first]
    for i in range(1, UPLOADS):
        paths.append(shutil.copyfile(first, folder / f"{i}.png"))
    return paths


def make_checkpoint(path: Path) -> Path:
    """An untrained simple_cnn, saved as ``pixelproof.train`` saves one (weights + config)."""
    import hydra
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=simple_cnn"])
    config = OmegaConf.to_container(cfg.model, resolve=True)
    model = hydra.utils.instantiate(config)
    torch.save({"state_dict": model.state_dict(), "model_config": config}, path)
    return path


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(code: Path, ckpt: Path, uploads: list[Path]) -> dict:
    """In this process: build the demo from ``code`` and analyse ``uploads``."""
    sys.path.insert(0, str(code))
    from hydra import compose, initialize_config_dir

    try:
        from pixelproof.demo.analysis import DemoAnalysis as DetectorDemo
    except ImportError:  # a revision from before pixelproof/demo/ (the analysis was in app.py)
        from pixelproof.app import DetectorDemo

    overrides = [f"ckpt_path={ckpt}", "inference.device=cpu", f"paths.root_dir={ckpt.parent}"]
    with initialize_config_dir(str(code / "conf"), version_base="1.3"):
        cfg = compose("app", overrides=overrides)
    demo = DetectorDemo(cfg)
    ready = rss_mb()
    results, _ = demo.analyse(uploads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    errors = sorted({r.error for r in results if r.error})
    return {"rss_ready_mb": ready, "peak_mb": peak, "analysed": len(results), "errors": errors}


def run(code: Path, ckpt: Path, uploads: list[Path]) -> dict:
    """:func:`measure` in a fresh process, with ``code``'s pixelproof first on the path."""
    env = {**os.environ, "PYTHONPATH": str(code), "GRADIO_ANALYTICS_ENABLED": "False"}
    args = [sys.executable, __file__, "--measure", str(code), str(ckpt), *map(str, uploads)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the measurement in {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a git revision to measure as well (git archive)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.md")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        code, ckpt, *uploads = map(Path, args.measure)
        print(json.dumps(measure(code, ckpt, uploads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uploads = make_uploads(tmp / "uploads")
        ckpt = make_checkpoint(tmp / "simple_cnn.ckpt")
        codes = {"this checkout": ROOT}
        if args.before:
            before = tmp / "before"
            before.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.before, "pixelproof", "conf"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
            commit = subprocess.run(
                ["git", "rev-parse", "--short", args.before],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            codes = {f"before (`{commit}`)": before, **codes}
        size_kb = uploads[0].stat().st_size / 1024
        rows = []
        for name, code in codes.items():
            found = run(code, ckpt, uploads)
            errors = "; ".join(found["errors"]) or "none"
            rows.append(
                f"| {name} | {found['rss_ready_mb']:.0f} | {found['peak_mb']:.0f} | "
                f"{found['peak_mb'] - found['rss_ready_mb']:.0f} | {errors} |"
            )
            print(rows[-1], flush=True)
    command = "python experiments/demo_memory/benchmark.py"
    command += f" --before {args.before}" if args.before else ""
    text = (
        f"Demo memory, {UPLOADS} uploads of {SIDE}x{SIDE} RGB PNGs ({size_kb:.0f} KB each), "
        f"default demo settings, untrained simple_cnn, CPU (`{command}`):"
        "\n\n| code | RSS with the demo built (MB) | peak RSS after the analysis (MB) | "
        "growth (MB) | errors |\n| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
