"""One row of ``python -m pixelproof.benchmarks.latency``: one detector run one way, timed on
the CPU.

    python -m pixelproof.benchmarks.latency_row < row.json   # prints one JSON line of measurements

The bench runs every row in a fresh process like this (``isolate=true``), so that the peak
memory of a row is its own. A row is a detector (its resolved model config), a *variant* (how it
runs: see ``VARIANTS``) and the timing settings. Every variant starts from the same decoded
32x32 PIL images, so pre-processing is part of each time.
"""

import json
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# variant -> what it changes. The first five are cumulative: each adds one change to the one
# before, so the table shows each change's own effect; the export rows build on inference_mode.
VARIANTS = {
    "reference": "Team 91's pipeline: per-image torchvision Resize + ToTensor, eager, no_grad",
    "batched": "batched pre-processing (one uint8 stack -> float), model at the reference input",
    "native": "ViT at the image's own resolution (model.input_size), interpolated positions",
    "inference_mode": "torch.inference_mode instead of no_grad",
    "channels_last": "channels_last memory format for model and input",
    "compile": "torch.compile (inductor)",
    "torchscript": "traced + frozen TorchScript (pixelproof.export)",
    "torchscript_int8": "TorchScript, dynamic int8 Linear weights",
    "onnx": "ONNX Runtime, CPU provider (pixelproof.export)",
    "onnx_int8": "ONNX Runtime, dynamic int8 MatMul/Gemm weights",
}
NATIVE = {"native", "inference_mode", "channels_last", "compile"} | {
    v for v in VARIANTS if v.startswith(("torchscript", "onnx"))
}


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident memory now (Linux ``/proc``; 0 where it is unavailable)."""
    return _proc_status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    """High-water resident memory, from the same source as ``rss_mb`` where it exists
    (``ru_maxrss`` is counted differently and can read a few kB below VmRSS)."""
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn: Callable[[], object], iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def to_batch(images: list[Image.Image]) -> torch.Tensor:
    """pixelproof's pre-processing: one uint8 stack, converted to [0,1] floats in one step."""
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images]))
    return pixels.permute(0, 3, 1, 2).float().div_(255)


def reference_transform(size: int | None):
    """The pre-processing of Team 91's report ("From Pixels to Proof"), per image: torchvision
    Resize (when given) + ToTensor."""
    from torchvision import transforms

    steps = [transforms.Resize(size)] if size else []
    return transforms.Compose([*steps, transforms.ToTensor()])


def build(model_config: dict) -> torch.nn.Module:
    """The detector's ``net`` (images in [0,1] -> logits), in eval mode."""
    import hydra

    torch.manual_seed(0)
    return hydra.utils.instantiate(model_config).net.eval()


def import_targets(config) -> None:
    """Import the module of every ``_target_`` in a model config (and hydra, which builds it)."""
    import importlib

    import hydra  # noqa: F401

    if isinstance(config, dict):
        if isinstance(config.get("_target_"), str):
            importlib.import_module(config["_target_"].rsplit(".", 1)[0])
        for value in config.values():
            import_targets(value)


def gflops_per_image(net: torch.nn.Module, image_size: int) -> float:
    """Matmul and convolution FLOPs of one image (torch's FlopCounterMode; FFTs not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, image_size, image_size))
    return counter.get_total_flops() / 1e9


def exported_runner(net: torch.nn.Module, variant: str, folder: Path, threads: int):
    """``batch -> logits`` of ``net`` exported by pixelproof.export (raises ExportError)."""
    from pixelproof.deploy.exporter import export_net

    fmt = "onnx" if variant.startswith("onnx") else "torchscript"
    path = folder / ("model.onnx" if fmt == "onnx" else "model.pt")
    export_net(net, path, fmt, quantize=variant.endswith("int8"))
    if fmt == "torchscript":
        module = torch.jit.load(str(path)).eval()
        return lambda batch: module(batch)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"images": batch.numpy()})[0]


def train_images_per_sec(model_config: dict, batch: int, steps: int, image_size: int) -> float:
    """Optimizer steps (forward, the detector's own training loss, backward) per second x batch."""
    import hydra

    torch.manual_seed(0)
    module = hydra.utils.instantiate(model_config).train()
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    x = torch.rand(batch, 3, image_size, image_size)
    y = (torch.arange(batch) % 2).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        module.training_loss(x, y)[0].backward()
        optimizer.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() without a Trainer
        return batch / median_seconds(step, steps, warmup=1)


def measure(row: dict) -> dict:
    """Time ``row['variant']`` of ``row['detector']``: ms per image at each batch size, GFLOPs
    per image, training images/s (for ``row['train']``), and memory."""
    torch.set_num_threads(row["threads"])
    variant, config = row["variant"], row["model_config"]
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: choose from {', '.join(VARIANTS)}")
    size = row["image_size"]
    import_targets(config)  # so the memory baseline holds the code, and the rest is the model's
    result = {"detector": row["detector"], "variant": variant, "rss_before_mb": rss_mb()}

    net = build(config)
    input_size = getattr(getattr(net, "backbone", None), "input_size", size)
    result["model_input"] = input_size
    if hasattr(net, "backbone"):
        result["tokens"] = (input_size // net.backbone.patch_size) ** 2 + 1
    result["gflops"] = gflops_per_image(net, size)

    grad_mode = (
        torch.no_grad if variant in ("reference", "batched", "native") else torch.inference_mode
    )
    prepare = to_batch
    forward: Callable = net
    folder = None
    try:
        if variant == "reference":  # resized to what the ViT takes (224), as Team 91 did
            transform = reference_transform(input_size if input_size != size else None)
            prepare = lambda images: torch.stack([transform(i) for i in images])  # noqa: E731
        elif variant == "channels_last":
            net = net.to(memory_format=torch.channels_last)
            prepare = lambda images: to_batch(images).contiguous(  # noqa: E731
                memory_format=torch.channels_last
            )
            forward = net
        elif variant == "compile":
            forward = torch.compile(net)
        elif variant in NATIVE - {"native", "inference_mode"}:
            folder = tempfile.TemporaryDirectory()
            forward = exported_runner(net, variant, Path(folder.name), row["threads"])
    except Exception as err:  # e.g. a model TorchScript cannot save: a row that says why
        result["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        return result

    rng = np.random.default_rng(0)
    ms = {}
    for batch in row["batches"]:
        pixels = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        images = [Image.fromarray(p) for p in pixels]
        iters = row["iters"] * (4 if batch == 1 else 1)  # batch 1 is quick and noisy

        def call(images=images) -> None:
            with grad_mode():
                forward(prepare(images))

        ms[batch] = 1000 * median_seconds(call, iters, row["warmup"]) / batch
    result["ms_per_image"] = {str(b): v for b, v in ms.items()}
    if folder is not None:
        folder.cleanup()
    if row.get("train"):
        train_size = input_size if variant == "reference" else size  # Team 91 trained at 224
        result["train_images_per_sec"] = train_images_per_sec(
            config, row["train_batch"], row["train_steps"], train_size
        )
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    row = json.loads(sys.stdin.read())
    print(json.dumps(measure(row)))


if __name__ == "__main__":
    main()
