"""Is there a hand-made cue that gives the latent-diffusion fakes away? Linear probes on two kinds
of global statistics, trained on the embedded dataset's training split and scored by AP on its
per-generator test sets:

- **colour**: per-channel mean, standard deviation and 8-bin histogram, saturation mean and
  standard deviation, colourfulness (Hasler & Suesstrunk 2003);
- **spectrum**: the grey image's log power, averaged over 16 rings of spatial frequency.

Each probe (standardised features, logistic regression) is trained three ways: on the latent
family's own fakes (is the cue there at all?), on the other four families' fakes (does it
transfer to a family never seen?), and on every generator but ``ldm_tconv`` (one latent model
seen, the other held out), always against the training reals.

    python experiments/latent_diffusion/probe.py     # needs data/embedded (make train builds it)

prints the table and writes ``probe.md`` next to this file.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pixelproof.generators.zoo import FAMILIES, GENERATOR_NAMES

HERE = Path(__file__).resolve().parent
LATENT = FAMILIES["latent_diffusion"]
TRAININGS = {
    "latent family only": LATENT,
    "latent family held out": tuple(g for g in GENERATOR_NAMES if g not in LATENT),
    "ldm_tconv held out": tuple(g for g in GENERATOR_NAMES if g != "ldm_tconv"),
}


def load(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in paths])


def colour_features(images: np.ndarray) -> np.ndarray:
    x = images / 255.0
    mean, std = x.mean(axis=(1, 2)), x.std(axis=(1, 2))
    hist = np.concatenate(
        [np.stack([np.histogram(im[..., c], 8, (0, 1))[0] for im in x]) for c in range(3)], axis=1
    ) / (x.shape[1] * x.shape[2])
    hi, lo = x.max(axis=3), x.min(axis=3)
    saturation = (hi - lo) / np.maximum(hi, 1e-6)
    rg, yb = x[..., 0] - x[..., 1], (x[..., 0] + x[..., 1]) / 2 - x[..., 2]
    colourfulness = np.hypot(rg.std(axis=(1, 2)), yb.std(axis=(1, 2))) + 0.3 * np.hypot(
        rg.mean(axis=(1, 2)), yb.mean(axis=(1, 2))
    )
    extras = np.stack([saturation.mean((1, 2)), saturation.std((1, 2)), colourfulness], axis=1)
    return np.concatenate([mean, std, hist, extras], axis=1)


def spectrum_features(images: np.ndarray, rings: int = 16) -> np.ndarray:
    grey = images.mean(axis=3)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.log10(np.abs(np.fft.fftshift(np.fft.fft2(grey), axes=(1, 2))) ** 2 + 1e-6)
    size = images.shape[1]
    yy, xx = np.indices((size, size)) - size // 2
    ring = np.minimum((np.hypot(yy, xx) / (size / 2) * rings).astype(int), rings - 1)
    return np.stack([power[:, ring == r].mean(axis=1) for r in range(rings)], axis=1)


FEATURES = {
    "colour": colour_features,
    "spectrum": spectrum_features,
    "colour + spectrum": lambda x: np.concatenate([colour_features(x), spectrum_features(x)], 1),
}


def training_images(root: Path, generators: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    reals = sorted((root / "train" / "REAL").glob("*.png"))
    fakes = sorted((root / "train" / "FAKE").glob("*.png"))
    fakes = [p for p in fakes if p.name.rsplit("_", 1)[0] in generators]
    images = load(reals + fakes)
    return images, np.r_[np.zeros(len(reals)), np.ones(len(fakes))]


def test_images(root: Path, generator: str) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "test_per_generator" / generator
    reals, fakes = sorted((folder / "0_real").glob("*.png")), sorted((folder / "1_fake").glob("*"))
    return load(reals + fakes), np.r_[np.zeros(len(reals)), np.ones(len(fakes))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/embedded"))
    args = parser.parse_args()
    if not (args.root / "test_per_generator").is_dir():
        raise SystemExit(f"{args.root} holds no embedded dataset: run `make train` first")
    tests = {g: test_images(args.root, g) for g in LATENT}
    lines = [
        "| features | trained on | " + " | ".join(f"AP `{g}`" for g in LATENT) + " |",
        "| --- | --- | " + " | ".join("---" for _ in LATENT) + " |",
    ]
    for training, generators in TRAININGS.items():
        images, labels = training_images(args.root, generators)
        for name, features in FEATURES.items():
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
            probe.fit(features(images), labels)
            aps = []
            for x, y in tests.values():
                aps.append(100 * average_precision_score(y, probe.predict_proba(features(x))[:, 1]))
            lines.append(f"| {name} | {training} | " + " | ".join(f"{a:.1f}" for a in aps) + " |")
    table = "\n".join(lines)
    print(table)
    (HERE / "probe.md").write_text(
        "Linear probes on global statistics (`python experiments/latent_diffusion/probe.py`, "
        "embedded dataset at its defaults; AP in %, chance = 50):\n\n" + table + "\n"
    )


if __name__ == "__main__":
    main()
