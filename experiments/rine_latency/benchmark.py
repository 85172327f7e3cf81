"""CPU latency per image of RINE on the two TinyCLIP architectures (random weights: latency does
not depend on their values), next to the seed report's Table 3 and the seed's own pipeline.

    python experiments/rine_latency/benchmark.py [--threads 2] [--runs 5]

Rows: the seed's pipeline (each 32x32 PIL image resized to 224 by torchvision, normalised, then
an eager forward at 224), and pixelproof's (a [B,3,32,32] tensor in [0,1], resized and normalised
inside the model) at 224 and at lower ViT resolutions (``model.input_size``). Each cell is the
median over ``--runs`` timed calls after warm-up, under ``torch.inference_mode`` in eval mode,
divided by the batch size. Prints a markdown table and writes it to ``results.md`` here.
"""

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision import transforms

from pixelproof.models.components.clip_backbone import CLIPBackbone
from pixelproof.models.components.rine_net import RineNet

HERE = Path(__file__).resolve().parent
PRESETS = HERE.parents[1] / "conf" / "model" / "backbone"
# seed report, Table 3 ("Model Latency Table on CPU"; CPU, batch and resolution not stated)
SEED_TABLE3_MS = {"tinyclip_8m16": 22.42, "tinyclip_40m32": 27.54}
PROJ_DIM = {"tinyclip_8m16": 256, "tinyclip_40m32": 512}  # the seed's projection sizes


def build(preset: str, input_size: int | None = None) -> RineNet:
    architecture = OmegaConf.to_container(OmegaConf.load(PRESETS / f"{preset}.yaml").architecture)
    backbone = CLIPBackbone(pretrained=False, architecture=architecture, input_size=input_size)
    return RineNet(backbone, nproj=2, proj_dim=PROJ_DIM[preset]).eval()


def median_seconds(fn: Callable[[], object], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seed_pipeline(net: RineNet, images: list[Image.Image]) -> Callable[[], object]:
    """torchvision Resize(224) + ToTensor + Normalize per PIL image, then the forward at 224."""
    backbone = net.backbone
    prepare = transforms.Compose(
        [
            transforms.Resize(backbone.input_size),
            transforms.ToTensor(),
            transforms.Normalize(backbone.mean.flatten().tolist(), backbone.std.flatten().tolist()),
        ]
    )
    backbone.mean.zero_()  # already normalised outside, as in the seed
    backbone.std.fill_(1.0)
    return lambda: net(torch.stack([prepare(image) for image in images]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed calls per cell (median)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 64, 32])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    header = "| backbone | pipeline | ViT input (tokens) | " + " | ".join(
        f"batch {b} ms/img" for b in args.batches
    )
    lines = [header + " | seed Table 3 ms |", "|" + " --- |" * (4 + len(args.batches))]
    print(lines[0], lines[1], sep="\n", flush=True)
    with torch.inference_mode():
        for preset in SEED_TABLE3_MS:
            rows = [("seed: PIL resize + eager", 224)] + [("pixelproof", s) for s in args.sizes]
            for pipeline, size in rows:
                net = build(preset, input_size=size)
                tokens = (size // net.backbone.patch_size) ** 2 + 1
                cells = []
                for batch in args.batches:
                    x = torch.rand(batch, 3, 32, 32)
                    if pipeline.startswith("seed"):
                        pil = [transforms.functional.to_pil_image(image) for image in x]
                        fn = seed_pipeline(build(preset, input_size=size), pil)
                    else:
                        fn = lambda net=net, x=x: net(x)  # noqa: E731
                    runs = args.runs if batch > 1 else 4 * args.runs
                    seconds = median_seconds(fn, runs=runs, warmup=2 if batch > 1 else 5)
                    cells.append(f"{1000 * seconds / batch:.2f}")
                seed = f"{SEED_TABLE3_MS[preset]:.2f}" if size == 224 else ""
                line = (
                    f"| {preset} | {pipeline} | {size} ({tokens}) | {' | '.join(cells)} | {seed} |"
                )
                lines.append(line)
                print(line, flush=True)

    cpu = platform.processor() or platform.machine()
    try:
        names = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(n.split(":", 1)[1].strip() for n in names if n.startswith("model name"))
    except (OSError, StopIteration):
        pass
    note = (
        f"CPU: {cpu}; torch {torch.__version__}, {args.threads} threads; median of {args.runs} "
        f"calls (batch 1: {4 * args.runs}) after warm-up; random weights; includes the RINE head."
    )
    (HERE / "results.md").write_text(
        "# RINE on TinyCLIP: CPU latency per image\n\n" + "\n".join(lines) + f"\n\n{note}\n"
    )
    print(f"\n{note}\nwritten to {HERE / 'results.md'}")


if __name__ == "__main__":
    main()
