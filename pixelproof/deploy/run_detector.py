"""Standalone runner for a detector exported by ``python -m pixelproof.export``.

``pixelproof.export`` copies this file next to the model file and its ``preprocess.json``; it
needs numpy, Pillow and either onnxruntime (``model.onnx``) or torch (``model.pt``), nothing of
pixelproof, Lightning or Hydra:

    python run_detector.py <image_dir> [--output scores.csv] [--batch-size 256] [--threshold T]

Writes one CSV row per image (``path,p_fake,prediction``, sorted by path) to ``--output`` (or
stdout). Files that cannot be decoded are reported on stderr and left out, never fatal.
Pre-processing is pixelproof's evaluation path: the same RGB conversions (alpha composited onto
black, 16-bit scaled), Pillow's bilinear resize (or shorter-side resize + centre crop) to the
exported size, values in [0, 1]; the model normalises internally and returns logits.
"""

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # as pixelproof


def load_rgb(path: Path) -> Image.Image:
    """``path`` decoded as 8-bit RGB, converted as pixelproof's data pipeline converts it."""
    with Image.open(path) as image:
        image.load()
        mode = image.mode
        if mode == "RGB":
            return image.copy()
        has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La")
        if has_alpha or (mode in ("P", "L") and "transparency" in image.info):
            rgba = image.convert("RGBA")
            out = Image.new("RGB", rgba.size, (0, 0, 0))  # transparent pixels become black
            out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
            return out
        if mode.startswith("I;16") or mode == "I":
            return _grey(_scale(np.asarray(image, dtype=np.float64), 65535.0))
        if mode == "F":
            values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
            return _grey(values * 255.0 if values.size and values.max() <= 1.0 else values)
        return image.convert("RGB")


def _scale(values: np.ndarray, full: float) -> np.ndarray:
    """16-bit values scaled to 0..255 (never clipped); other ranges min-max stretched."""
    if values.size and values.min() >= 0 and values.max() <= full:
        return values * (255.0 / full)
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)


def _grey(values: np.ndarray) -> Image.Image:
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=-1))


def fit(image: Image.Image, size: int, mode: str) -> Image.Image:
    """The exported size: ``resize`` (whole image), ``center_crop`` or ``none`` (must fit)."""
    if image.size == (size, size):
        return image
    if mode == "none":
        raise ValueError(f"image is {image.size[0]}x{image.size[1]}, the model takes {size}x{size}")
    if mode == "resize":
        return image.resize((size, size), Image.BILINEAR)
    width, height = image.size  # shorter side -> size, then the central size x size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    image = image.resize(new, Image.BILINEAR)
    left, top = round((new[0] - size) / 2.0), round((new[1] - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def to_batch(images: list[Image.Image]) -> np.ndarray:
    """``[B,3,H,W]`` float32 in [0,1]: one stacked uint8 array, converted in one step."""
    pixels = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


class Detector:
    """The exported model: ``logits(batch)`` for a ``[B,3,H,W]`` float32 array in [0,1]."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        self.config = json.loads((folder / "preprocess.json").read_text())
        model_file = folder / self.config["model_file"]
        if self.config["format"] == "onnx":
            try:
                import onnxruntime
            except ImportError:
                sys.exit("this model needs onnxruntime: pip install onnxruntime")
            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            self.session = onnxruntime.InferenceSession(
                str(model_file), options, providers=["CPUExecutionProvider"]
            )
            self.input_name = self.session.get_inputs()[0].name
        else:
            import torch

            if threads:
                torch.set_num_threads(threads)
            self.module = torch.jit.load(str(model_file), map_location="cpu").eval()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        if self.config["format"] == "onnx":
            return self.session.run(None, {self.input_name: batch})[0]
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(batch)).numpy()


def score_folder(detector: Detector, folder: Path, batch_size: int):
    """``([(path, p_fake)] sorted by path, [(path, why skipped)])`` for the images in ``folder``."""
    size, mode = detector.config["image_size"], detector.config["resize_mode"]
    paths = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    scores, skipped = [], []
    for start in range(0, len(paths), batch_size):
        good, images = [], []
        for path in paths[start : start + batch_size]:
            try:
                images.append(fit(load_rgb(path), size, mode))
                good.append(path)
            except Exception as err:  # corrupt, truncated, wrong size: report and go on
                skipped.append((path, f"{type(err).__name__}: {err}"))
        if images:
            logits = detector.logits(to_batch(images)).astype(np.float64)
            scores += zip(good, (1.0 / (1.0 + math.exp(-z)) for z in logits.tolist()))
    return scores, skipped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score a folder of images: p(fake) per image.")
    parser.add_argument("image_dir", type=Path)
    parser.add_argument("--model-dir", type=Path, default=HERE, help="default: this file's folder")
    parser.add_argument("--output", type=Path, help="CSV file (default: stdout)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, help="CPU threads (default: the runtime's)")
    parser.add_argument("--threshold", type=float, help="default: the one exported")
    args = parser.parse_args(argv)
    if not args.image_dir.is_dir():
        sys.exit(f"{args.image_dir} is not a folder of images")

    detector = Detector(args.model_dir, args.threads)
    threshold = detector.config["threshold"] if args.threshold is None else args.threshold
    scores, skipped = score_folder(detector, args.image_dir, args.batch_size)
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    out = args.output.open("w", newline="") if args.output else sys.stdout
    writer = csv.writer(out)
    writer.writerow(["path", "p_fake", "prediction"])
    for path, p in scores:
        writer.writerow([str(path), f"{p:.6f}", "fake" if p >= threshold else "real"])
    if args.output:
        out.close()
    fakes = sum(p >= threshold for _, p in scores)
    summary = f"{len(scores)} images: {fakes} fake, {len(scores) - fakes} real"
    skip_note = f"; {len(skipped)} skipped" if skipped else ""
    print(f"{summary} (threshold {threshold:.4f}){skip_note}", file=sys.stderr)


if __name__ == "__main__":
    main()
