"""pixelproof.benchmarks.latency: a markdown table with every column, one row per detector and
variant (timings are never asserted: they depend on the machine)."""

import json

import pytest
from helpers.configs import compose_config
from omegaconf import OmegaConf, open_dict

from pixelproof.benchmarks.latency import COLUMNS, bench, plan_rows, to_markdown
from pixelproof.benchmarks.latency_row import measure

TINY_WAVEFREQ = ["model=wavefreq_resnet50", "model.net.backbone=resnet26"]


def bench_config(tmp_path, tiny_clip_dir, *overrides):
    cfg = compose_config(
        "bench",
        f"paths.root_dir={tmp_path}",
        f"output={tmp_path / 'bench.md'}",
        "warmup=0",
        "iters=1",
        "throughput_batch=4",
        "train_batch=2",
        "train_steps=1",
        "matmul_size=64",
        *overrides,
    )
    with open_dict(cfg):
        cfg.detectors = OmegaConf.create(
            {
                "tiny_rine": {
                    "model": [
                        "model=rine_tinyclip",
                        f"model.backbone.name_or_path={tiny_clip_dir}",
                        "model.proj_dim=16",
                        "model.input_size=64",  # Team 91's "224": 8x8 patches of 8
                    ],
                    "native": ["model.input_size=16"],  # 2x2 patches
                },
                "tiny_wavefreq": {"model": TINY_WAVEFREQ, "native": []},
            }
        )
    return cfg


def test_table_has_every_column_and_a_row_per_variant(tmp_path, tiny_clip_dir):
    variants = "variants=[reference,batched,native,inference_mode,channels_last,torchscript,onnx]"
    cfg = bench_config(tmp_path, tiny_clip_dir, variants, "only=[tiny_rine]", "isolate=false")
    output = bench(cfg)
    lines = output.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| detector"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        c.replace("bN", "b4") for c in COLUMNS
    ]
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| tiny_")]
    cells = {r[1].strip(): [c.strip() for c in r[2:]] for r in rows}
    assert list(cells) == [
        "reference", "batched", "native", "inference_mode", "channels_last", "torchscript", "onnx"
    ]  # fmt: skip
    # input sizes and token counts: the reference resolution (64 here, 224 for TinyCLIP), native 16
    assert cells["reference"][0] == cells["batched"][0] == "64 (65)"
    assert all(cells[v][0] == "16 (5)" for v in list(cells)[2:])
    assert cells["reference"][-1] == "1.0x" and all(c[-1].endswith("x") for c in cells.values())
    assert all(float(c[2]) > 0 and float(c[4]) > 0 for c in cells.values())  # ms/img, img/s
    # training throughput where asked for (reference, native), nothing elsewhere
    assert cells["reference"][6] and cells["native"][6] and not cells["batched"][6]
    assert cells["native"][7] == ""  # in-process: no honest per-row peak memory
    results = json.loads(output.with_suffix(".json").read_text())
    assert results["matmul_peak_gflops"] > 0 and len(results["rows"]) == 7


def test_a_detector_that_cannot_export_gets_a_row_that_says_why(tmp_path, tiny_clip_dir):
    cfg = bench_config(tmp_path, tiny_clip_dir, "variants=[batched,torchscript]")
    rows = plan_rows(cfg)
    # the wavefreq net already runs at 32x32: no "batched" row of its own
    assert [(r["detector"], r["variant"]) for r in rows] == [
        ("tiny_rine", "batched"), ("tiny_rine", "torchscript"), ("tiny_wavefreq", "torchscript")
    ]  # fmt: skip
    result = measure(rows[-1])
    line = to_markdown([result], cfg, peak=1.0).splitlines()[-1]
    # pytorch_wavelets' DWT cannot be saved as TorchScript
    assert line.startswith("| tiny_wavefreq | torchscript | not run: ExportError: WaveFreqResNet")


def test_flops_grow_with_the_vit_input_and_native_is_fewer(tiny_clip_dir, tmp_path):
    cfg = bench_config(tmp_path, tiny_clip_dir, "variants=[reference,native]", "only=[tiny_rine]")
    rows = plan_rows(cfg)
    assert [r["variant"] for r in rows] == ["reference", "native"]
    assert (
        rows[1]["model_config"]["input_size"] == 16 and rows[0]["model_config"]["input_size"] == 64
    )
    reference, native = (measure({**r, "train": False}) for r in rows)
    assert reference["gflops"] > 10 * native["gflops"] > 0  # 65 tokens against 5
    assert native["peak_rss_mb"] >= native["rss_before_mb"] > 0


def test_one_isolated_row_reports_its_own_memory(tmp_path, tiny_clip_dir):
    cfg = bench_config(
        tmp_path, tiny_clip_dir, "variants=[native]", "only=[tiny_rine]", "train_variants=[]"
    )
    text = bench(cfg).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| tiny_rine"))
    memory = row.split("|")[10].strip()  # "peak (model+run)"
    peak, added = memory.replace("(", "").replace(")", "").split()
    assert float(peak) > float(added) >= 0


def test_unknown_variant_or_detector_is_refused(tmp_path, tiny_clip_dir):
    with pytest.raises(ValueError, match=r"variants: unknown \['fast'\]"):
        plan_rows(bench_config(tmp_path, tiny_clip_dir, "variants=[fast]"))
    with pytest.raises(ValueError, match=r"only=\['nope'\]: no such detector"):
        plan_rows(bench_config(tmp_path, tiny_clip_dir, "only=[nope]"))
