"""Export a trained detector for deployment: one model file plus a runner that needs no
pixelproof (the library behind ``python -m pixelproof.export``).

Writes into ``output_dir`` (the run directory by default):

- ``model.onnx`` (weights inside, batch size dynamic) or ``model.pt`` (traced and frozen
  TorchScript): ``[B,3,H,W]`` float32 in [0,1] -> ``[B]`` logits, normalisation inside;
- ``preprocess.json``: image size, resize mode, the checkpoint's decision threshold, and the
  parity check below;
- ``run_detector.py``: a copy of :mod:`pixelproof.deploy.run_detector` (numpy + Pillow +
  onnxruntime or torch): ``python run_detector.py <image_dir> --output scores.csv``, with
  ``decoding.py``, a copy of :mod:`pixelproof.data.decoding`, so it reads images as pixelproof.

Every export is checked: the exported model and the PyTorch model score the same random batch,
and the largest logit difference must stay within ``tolerance`` (1e-4). An int8 model cannot meet
that; for it the difference and the share of agreeing predictions are recorded instead.

ONNX goes through ``torch.export`` (``torch.onnx.export(dynamo=True)``, needs ``onnxscript``):
the older TorchScript-based exporter cannot export the FFT ops of ``wavefreq_resnet50``
(``aten::fft_ifftshift``), the dynamo exporter turns them into ONNX ``DFT`` ops.
"""

import copy
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from pixelproof.deploy.run_detector import MODEL_FILES
from pixelproof.utils.output_paths import input_clash

log = logging.getLogger(__name__)

# copied into every export directory: the runner and the image decoder it imports
RUNNER_FILES = {
    "run_detector.py": Path(__file__).with_name("run_detector.py"),
    "decoding.py": Path(__file__).parents[1] / "data" / "decoding.py",
}


def export_files(out: Path) -> list[tuple[str, Path]]:
    """Every file an export into ``out`` may write, named."""
    names = [*MODEL_FILES.values(), "preprocess.json", *RUNNER_FILES]
    return [(f"the export's {name}", out / name) for name in names]


def refuse_overwriting_the_checkpoint(out: Path, ckpt_path: str) -> None:
    """No file the export writes may be the checkpoint it reads (or a link to it)."""
    clash = input_clash(export_files(out), [("ckpt_path", Path(ckpt_path))], [])
    if clash:
        raise ValueError(
            f"output_dir: {clash}; an output never replaces an input (whatever overwrite says): "
            "pass another output_dir"
        )


class ExportError(RuntimeError):
    """A detector that could not be exported, or whose export does not match it."""


def check_format(fmt: str) -> str:
    if fmt not in MODEL_FILES:
        raise ValueError(f"format={fmt!r}: choose one of {', '.join(MODEL_FILES)}")
    return fmt


def example_images(batch: int, image_size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, image_size, image_size, generator=generator)


def export_net(
    net: nn.Module,
    path: Path,
    fmt: str,
    image_size: int = 32,
    opset: int = 18,
    quantize: bool = False,
) -> Path:
    """Write ``net`` (images in [0,1] -> logits) to ``path`` as ONNX or TorchScript."""
    check_format(fmt)
    net = net.eval()
    example = example_images(2, image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        if quantize:  # weights of every nn.Linear to int8, activations quantised on the fly
            net = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(net), {nn.Linear}, dtype=torch.qint8
            )
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # shape checks in forward() become constants: fine for a fixed image size, and
                # the parity check below would catch a trace that does not generalise
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                # tracing runs the forward hooks too, so RINE's per-block CLS tokens are recorded
                traced = torch.jit.trace(net, example, check_trace=False)
            torch.jit.freeze(traced).save(str(path))
        except RuntimeError as err:
            path.unlink(missing_ok=True)  # save() may have started the file
            # e.g. wavefreq_resnet50: pytorch_wavelets' DWT is a Python autograd.Function
            # (AFB2D), which a trace records but TorchScript cannot save
            raise ExportError(
                f"{type(net).__name__} cannot be exported to TorchScript ({_first_line(err)}); "
                "use format=onnx"
            ) from err
        return path

    _require("onnxscript", "onnx")
    target = path.with_name(path.stem + ".fp32.onnx") if quantize else path
    try:
        torch.onnx.export(
            net,
            (example,),
            str(target),
            dynamo=True,
            opset_version=opset,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,  # one self-contained file (all our models are far below 2 GB)
        )
    except Exception as err:
        target.unlink(missing_ok=True)
        raise ExportError(
            f"{type(net).__name__} cannot be exported to ONNX at opset {opset} "
            f"({_first_line(err)}); "
            "try format=torchscript, or another opset="
        ) from err
    if quantize:
        _require("onnxruntime")
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # MatMul/Gemm only, like torch's Linear-only dynamic quantisation: ORT's ConvInteger
        # is slower on CPU than its float convolution.
        quantize_dynamic(
            str(target),
            str(path),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
        target.unlink()
    return path


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def _require(*modules: str) -> None:
    from pixelproof.utils.extras import require

    require("export", *modules, what="format=onnx", otherwise="or format=torchscript")


def compare(net: nn.Module, folder: Path, images: torch.Tensor, threshold: float) -> dict:
    """Largest logit difference between ``net`` and the model exported to ``folder``, and the
    share of images both call fake or both call real at ``threshold``."""
    from pixelproof.deploy.run_detector import Detector

    with torch.inference_mode():
        expected = net.eval()(images).double().numpy()
    got = Detector(folder).logits(images.numpy()).astype(np.float64)
    if got.shape != expected.shape:
        raise ExportError(f"exported model returns shape {got.shape}, expected {expected.shape}")
    p_expected, p_got = 1 / (1 + np.exp(-expected)), 1 / (1 + np.exp(-got))
    return {
        "images": len(images),
        "max_abs_logit_diff": float(np.abs(got - expected).max()),
        "prediction_agreement": float(np.mean((p_expected >= threshold) == (p_got >= threshold))),
    }


def export_checkpoint(cfg: DictConfig) -> dict:
    """Export ``cfg.ckpt_path`` into ``cfg.output_dir``; returns what ``preprocess.json`` holds."""
    from pixelproof.models.detector import Detector

    fmt = check_format(cfg.format)
    if fmt == "onnx":  # all of the extra, before any work (the parity check runs onnxruntime)
        _require("onnx", "onnxscript", "onnxruntime")
    out = Path(cfg.output_dir)
    refuse_overwriting_the_checkpoint(out, cfg.ckpt_path)
    # traced and checked on the CPU, where the exported runner runs
    detector = Detector.load(cfg.ckpt_path, **{**cfg.inference, "device": "cpu"})
    trained, settings = detector.trained, detector.settings
    model, threshold = detector.model, detector.threshold
    model_file = export_net(
        model.net, out / MODEL_FILES[fmt], fmt, settings.image_size, cfg.opset, cfg.quantize
    )
    config = {
        "format": fmt,
        "model_file": model_file.name,
        "input": "images [B,3,H,W] float32 in [0,1], RGB; output: logits [B], fake = 1",
        "image_size": settings.image_size,
        "resize_mode": settings.resize_mode,
        "threshold": threshold,
        "quantized": bool(cfg.quantize),
        "opset": int(cfg.opset) if fmt == "onnx" else None,
        "model": trained.config["_target_"],
        "checkpoint": str(cfg.ckpt_path),
        "torch": torch.__version__,
    }
    _write_json(out / "preprocess.json", config)
    for name, source in RUNNER_FILES.items():
        shutil.copyfile(source, out / name)

    check = compare(
        model.net, out, example_images(cfg.check_batch, settings.image_size, 1), threshold
    )
    config["check"] = check
    _write_json(out / "preprocess.json", config)
    if not cfg.quantize and check["max_abs_logit_diff"] > cfg.tolerance:
        raise ExportError(
            f"{model_file}: logits differ from the PyTorch model's by up to "
            f"{check['max_abs_logit_diff']:.2e} (> tolerance={cfg.tolerance}); do not deploy it"
        )
    size_mb = model_file.stat().st_size / 2**20
    print(
        f"Exported {config['model']} to {model_file} ({size_mb:.1f} MB, {fmt}"
        f"{', int8' if cfg.quantize else ''}); largest logit difference on "
        f"{check['images']} images {check['max_abs_logit_diff']:.2e}, predictions agree on "
        f"{100 * check['prediction_agreement']:.1f}%\n"
        f"Run it: python {out / 'run_detector.py'} <image_dir> --output scores.csv"
    )
    return config


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
