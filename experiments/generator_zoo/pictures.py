"""What each generator family's fakes look like next to real crops: a contact sheet, and the mean
spectrum of each generator's fakes minus the reals' (where its trace lives in frequency).

    python experiments/generator_zoo/pictures.py            # writes contact_sheet.png, spectra.png

Reals are crops of the training photographs, cut as the embedded dataset cuts them (the crops the
generators learned from); fakes are samples of the shipped weights (cached in
``data/generator_samples`` like the dataset's).
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pixelproof.data.embedded import generator_samples
from pixelproof.generators.zoo import GENERATOR_NAMES
from pixelproof.photographs import load_photo, photo_names, random_crop

HERE = Path(__file__).resolve().parent


def real_crops(n: int, seed: int) -> np.ndarray:
    photos = photo_names("train")
    rng = np.random.default_rng(seed)
    return np.stack(
        [random_crop(load_photo(photos[rng.integers(len(photos))]), rng) for _ in range(n)]
    )


def log_spectrum(images: np.ndarray) -> np.ndarray:
    """Mean log power spectrum of the grey images, zero frequency in the centre."""
    grey = images.astype(np.float64).mean(axis=3)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    return np.fft.fftshift(np.log10(power.mean(axis=0) + 1e-6))


def contact_sheet(rows: dict[str, np.ndarray], path: Path, per_row: int = 12) -> None:
    figure, axes = plt.subplots(len(rows), 1, figsize=(per_row * 0.6, len(rows) * 0.75))
    for ax, (name, images) in zip(axes, rows.items()):
        ax.imshow(np.concatenate(list(images[:per_row]), axis=1), interpolation="nearest")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle("32x32 real crops and samples of each shipped generator", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def spectra(rows: dict[str, np.ndarray], path: Path) -> None:
    real = log_spectrum(rows["real"])
    fakes = {name: log_spectrum(images) - real for name, images in rows.items() if name != "real"}
    limit = max(np.abs(d).max() for d in fakes.values())
    figure, axes = plt.subplots(1, len(fakes), figsize=(2.6 * len(fakes), 2.8))
    for ax, (name, difference) in zip(axes, fakes.items()):
        shown = ax.imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(shown, ax=list(axes), shrink=0.8, label="log10 power: fake - real")
    figure.suptitle("Mean spectrum of each generator's fakes minus the reals' (centre = DC)")
    figure.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images per row for the spectra")
    parser.add_argument("--cache", type=Path, default=Path("data/generator_samples"))
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    plt.switch_backend("Agg")  # files only, no display
    rows = {"real": real_crops(args.n, seed=0)}
    rows |= {name: generator_samples(name, args.n, 12345, args.cache) for name in GENERATOR_NAMES}
    args.out.mkdir(parents=True, exist_ok=True)
    contact_sheet(rows, args.out / "contact_sheet.png")
    spectra(rows, args.out / "spectra.png")
    print(f"Written: {args.out / 'contact_sheet.png'}, {args.out / 'spectra.png'}")


if __name__ == "__main__":
    main()
