"""Each generator's fingerprint (Marra et al., "Do GANs leave artificial fingerprints?", 2019): the
mean noise residual of its fakes, the image minus a denoised copy of itself, averaged over many
images so that content cancels and what the generator adds at the same place every time stays.
An up-sampler that repeats a pattern every 2 pixels shows as a fixed grid here and as peaks in
the residual's spectrum; the reals' row is the baseline (photographs have no fixed pattern).

    python experiments/latent_diffusion/fingerprints.py   # needs data/embedded (make train)

writes ``fingerprints.png`` (mean residual per source, and the power spectrum of the mean
residual) and prints, per source, how much of the residual's energy the fixed pattern holds.
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from scipy.ndimage import median_filter

from pixelproof.generators.zoo import GENERATOR_NAMES

HERE = Path(__file__).resolve().parent


def residuals(paths: list[Path]) -> np.ndarray:
    """Grey-level noise residuals ``[N, 32, 32]``: each image minus its 3x3 median."""
    grey = np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float64) for p in paths])
    return grey - median_filter(grey, size=(1, 3, 3))


def sources(root: Path) -> dict[str, list[Path]]:
    train = root / "train"
    found = {"real": sorted((train / "REAL").glob("*.png"))}
    fakes = sorted((train / "FAKE").glob("*.png"))
    for name in GENERATOR_NAMES:
        found[name] = [p for p in fakes if p.name.rsplit("_", 1)[0] == name]
    return {name: paths for name, paths in found.items() if paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/embedded"))
    parser.add_argument("--n", type=int, default=500, help="images per source")
    args = parser.parse_args()
    if not (args.root / "train" / "FAKE").is_dir():
        raise SystemExit(f"{args.root} holds no embedded dataset: run `make train` first")
    found = sources(args.root)
    figure, axes = plt.subplots(2, len(found), figsize=(1.9 * len(found), 4.0))
    print("| source | images | fixed-pattern share of the residual energy |")
    print("| --- | --- | --- |")
    for column, (name, paths) in enumerate(found.items()):
        r = residuals(paths[: args.n])
        fingerprint = r.mean(axis=0)
        # the share of the residuals' energy that is the same in every image; for content that
        # averages out it falls as 1/N (0.2 % at N = 500)
        share = (fingerprint**2).sum() / (r**2).mean(axis=0).sum()
        print(f"| {name} | {len(r)} | {100 * share:.2f} % |")
        limit = np.abs(fingerprint).max()
        axes[0, column].imshow(fingerprint, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[0, column].set_title(name, fontsize=9)
        spectrum = np.fft.fftshift(np.abs(np.fft.fft2(fingerprint)) ** 2)
        axes[1, column].imshow(np.log10(spectrum + 1e-6), cmap="magma")
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("mean residual", fontsize=9)
    axes[1, 0].set_ylabel("its log power", fontsize=9)
    figure.suptitle("Fingerprints: the mean noise residual of each source's training images")
    figure.tight_layout()
    figure.savefig(HERE / "fingerprints.png", dpi=130)
    plt.close(figure)
    print(f"Written: {HERE / 'fingerprints.png'}")


if __name__ == "__main__":
    main()
