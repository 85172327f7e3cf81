"""CPU benchmark of every detector, next to the pre-processing pipeline of Team 91's report
("From Pixels to Proof") measured in the same run.

    make bench                                     # = python -m pixelproof.benchmarks.latency
    python -m pixelproof.benchmarks.latency threads=8 iters=50 'only=[rine_tinyclip_8m16]'

One table row per detector and variant (``latency_row.VARIANTS``): milliseconds per image at
batch 1 (latency) and at the throughput batch, images/s, GFLOPs per image, the share of the
machine's measured fp32 matmul peak that throughput reaches, training images/s, and peak memory.
Each row runs in its own process (``isolate=true``). The table is printed and written as
markdown to ``output`` (and as JSON beside it).
"""

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
COLUMNS = [
    "detector",
    "variant",
    "input (tokens)",
    "GFLOPs/img",
    "b1 ms/img",
    "bN ms/img",
    "bN img/s",
    "% matmul peak",
    "train img/s",
    "peak RSS MB (model+run)",
    "b1 vs reference",
]


def matmul_peak_gflops(size: int, threads: int, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of a ``size`` x ``size`` matmul on ``threads`` threads: the physical
    limit the detectors' throughput is read against."""
    torch.set_num_threads(threads)
    a, b = torch.rand(size, size), torch.rand(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def compose_model(overrides: list[str]) -> dict:
    """The resolved ``model`` config ``python -m pixelproof.train <overrides>`` would build."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside @hydra.main
        cfg = compose("train", overrides=list(overrides))
    else:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
    return OmegaConf.to_container(cfg.model, resolve=True)


def plan_rows(cfg: DictConfig) -> list[dict]:
    """One row spec per (detector, variant) that applies to it."""
    from pixelproof.benchmarks.latency_row import NATIVE, VARIANTS

    unknown = [v for v in cfg.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    names = list(cfg.detectors) if cfg.only is None else list(cfg.only)
    missing = [n for n in names if n not in cfg.detectors]
    if missing:
        raise ValueError(
            f"only={missing}: no such detector in bench.detectors ({list(cfg.detectors)})"
        )
    rows = []
    for name in names:
        spec = cfg.detectors[name]
        base, native = list(spec.model), list(spec.native)
        for variant in cfg.variants:
            if variant == "batched" and not native:
                continue  # the detector already runs at the image's resolution: same as native
            overrides = base + native if variant in NATIVE else base
            rows.append(
                {
                    "detector": name,
                    "variant": variant,
                    "model_config": compose_model(overrides),
                    "image_size": cfg.image_size,
                    "threads": cfg.threads,
                    "batches": [cfg.latency_batch, cfg.throughput_batch],
                    "warmup": cfg.warmup,
                    "iters": cfg.iters,
                    "train": variant in cfg.train_variants,
                    "train_batch": cfg.train_batch,
                    "train_steps": cfg.train_steps,
                }
            )
    return rows


def run_row(row: dict, isolate: bool) -> dict:
    if not isolate:
        from pixelproof.benchmarks.latency_row import measure

        result = measure(row)
        result.pop("peak_rss_mb", None)  # this process's high-water mark, not the row's
        return result
    done = subprocess.run(
        [sys.executable, "-m", "pixelproof.benchmarks.latency_row"],
        input=json.dumps(row),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"detector": row["detector"], "variant": row["variant"], "error": last[:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table_row(result: dict, cfg: DictConfig, peak: float, reference_ms: float | None) -> list[str]:
    if "error" in result:
        return [result["detector"], result["variant"], f"not run: {result['error']}"] + [""] * (
            len(COLUMNS) - 3
        )
    ms = result["ms_per_image"]
    b1, bn = ms[str(cfg.latency_batch)], ms[str(cfg.throughput_batch)]
    per_sec = 1000 / bn
    size = str(result["model_input"]) + (f" ({result['tokens']})" if "tokens" in result else "")
    train = result.get("train_images_per_sec")
    memory = ""
    if "peak_rss_mb" in result:
        memory = (
            f"{result['peak_rss_mb']:.0f} ({result['peak_rss_mb'] - result['rss_before_mb']:.0f})"
        )
    return [
        result["detector"],
        result["variant"],
        size,
        f"{result['gflops']:.3f}",
        f"{b1:.2f}",
        f"{bn:.3f}",
        f"{per_sec:.0f}",
        f"{100 * result['gflops'] * per_sec / peak:.1f}",
        f"{train:.0f}" if train else "",
        memory,
        f"{reference_ms / b1:.1f}x" if reference_ms else "",
    ]


def to_markdown(results: list[dict], cfg: DictConfig, peak: float) -> str:
    reference_ms = {
        r["detector"]: r["ms_per_image"][str(cfg.latency_batch)]
        for r in results
        if r["variant"] == "reference" and "error" not in r
    }
    columns = [c.replace("bN", f"b{cfg.throughput_batch}") for c in COLUMNS]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for result in results:
        cells = table_row(result, cfg, peak, reference_ms.get(result["detector"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(n.split(":", 1)[1].strip() for n in names if n.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu


def bench(cfg: DictConfig) -> Path:
    """Run every row, print the table as it grows, write markdown + JSON to ``cfg.output``."""
    from pixelproof.benchmarks.latency_row import VARIANTS

    peak = matmul_peak_gflops(cfg.matmul_size, cfg.threads)
    print(f"fp32 matmul peak ({cfg.matmul_size}^2, {cfg.threads} threads): {peak:.1f} GFLOP/s")
    results = []
    print(to_markdown(results, cfg, peak), flush=True)  # the header, then each row as it is timed
    for row in plan_rows(cfg):
        results.append(run_row(row, cfg.isolate))
        print(to_markdown(results, cfg, peak).splitlines()[-1], flush=True)

    legend = "\n".join(f"- `{v}`: {VARIANTS[v]}" for v in cfg.variants)
    note = (
        f"CPU: {machine()}, {cfg.threads} threads; torch {torch.__version__}; fp32 matmul peak "
        f"{peak:.1f} GFLOP/s ({cfg.matmul_size}x{cfg.matmul_size}, best of 5). Median of "
        f"{cfg.iters} calls per cell ({4 * cfg.iters} at batch {cfg.latency_batch}) after "
        f"{cfg.warmup} warm-up calls, from decoded {cfg.image_size}x{cfg.image_size} PIL images "
        "to logits (pre-processing included). Random weights (RINE: `pretrained=false` towers; "
        "latency does not depend on the weights' values). GFLOPs: matmuls and convolutions "
        "counted by torch's FlopCounterMode (FFTs and element-wise ops not counted). Training: "
        f"batch {cfg.train_batch}, forward + loss + backward + Adam step, median of "
        f"{cfg.train_steps}. % matmul peak: GFLOPs/img x throughput / fp32 peak (int8 rows "
        "can pass 100 %). Peak RSS: the row's own process, imports included; in brackets what "
        "building, exporting and running the model added to the RSS after imports."
    )
    text = "\n\n".join(
        ["# pixelproof CPU benchmark", to_markdown(results, cfg, peak), legend, note]
    )
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    output.with_suffix(".json").write_text(
        json.dumps({"matmul_peak_gflops": peak, "rows": results}, indent=1) + "\n"
    )
    print(f"\n{legend}\n\n{note}\nWritten: {output}")
    return output


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    bench(cfg)


if __name__ == "__main__":
    main()
