"""Standalone runner for a detector exported by ``python -m pixelproof.export``.

``pixelproof.export`` copies this file next to the model file and its ``preprocess.json``; it
needs numpy, Pillow and either onnxruntime (``model.onnx``) or torch (``model.pt``), nothing of
pixelproof, Lightning or Hydra:

    python run_detector.py <image_dir> [--output scores.csv] [--batch-size 256] [--threshold T]

Writes one CSV row per image (``path,p_fake,prediction``, in natural order: ``2.png`` before
``10.png``, as ``pixelproof.predict`` lists them) to ``--output`` (or stdout). Files that cannot
be decoded are reported on stderr and left out, never fatal. Pre-processing is pixelproof's own:
``decoding.py``, written beside this file by the export, is a copy of
``pixelproof/data/decoding.py`` (the same RGB conversions, resize policy, list of image extensions
and order of files), then values in [0, 1]; the model normalises internally and returns logits.
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
if (HERE / "decoding.py").is_file():  # the exported copy: pixelproof's decoder sits beside it
    sys.path.insert(0, str(HERE))
    from decoding import RESIZE_MODES, fit, image_files, load_rgb
else:  # inside pixelproof (pixelproof.export scores with it to check the export)
    from pixelproof.data.decoding import RESIZE_MODES, fit, image_files, load_rgb


def to_batch(images: list[Image.Image]) -> np.ndarray:
    """``[B,3,H,W]`` float32 in [0,1]: one stacked uint8 array, converted in one step."""
    pixels = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


# the model file an export holds, by format (preprocess.json may only pick one of these)
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}


def read_preprocess(path: Path) -> dict:
    """``preprocess.json``, checked: the format names one of :data:`MODEL_FILES` (and its file
    is that one, in the same folder), the size is a positive integer, the resize mode is
    known and the threshold is a number; anything else exits with one line."""
    try:
        config = json.loads(path.read_text())
        fmt, size = config["format"], config["image_size"]
        ok = (
            MODEL_FILES.get(fmt) == config["model_file"]
            and isinstance(size, int)
            and size > 0
            and config["resize_mode"] in RESIZE_MODES
            and isinstance(config["threshold"], (int, float))
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        sys.exit(f"{path} is unreadable ({type(err).__name__}: {err}); export the model again")
    if not ok:
        sys.exit(f"{path} holds settings this runner does not accept; export the model again")
    return config


class Detector:
    """The exported model: ``logits(batch)`` for a ``[B,3,H,W]`` float32 array in [0,1]."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        self.config = read_preprocess(folder / "preprocess.json")
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
    """``([(path, p_fake)] in natural order, [(path, why skipped)])`` for the images in
    ``folder`` (listed by ``decoding.image_files``, as ``pixelproof.predict`` lists them)."""
    size, mode = detector.config["image_size"], detector.config["resize_mode"]
    paths, skipped = image_files(folder)
    scores = []
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
