"""Where in frequency each detector finds the evidence against each generator's fakes: the mean
drop of the fake logit when one radial frequency band is removed from the image
(:mod:`pixelproof.attribution.bands`), per generator, for detectors trained with and without the
latent-diffusion family.

    python experiments/latent_diffusion/bands.py \\
        --detector "trained on all=<run>/checkpoints/epoch_0NN.ckpt" \\
        --detector "latent family held out=<run>/checkpoints/epoch_0NN.ckpt"

(the checkpoints of ``make selection``'s runs) writes ``bands.png`` and ``bands.md``.
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from pixelproof.attribution.bands import band_attribution
from pixelproof.generators.zoo import GENERATOR_NAMES
from pixelproof.models.detector import Detector

HERE = Path(__file__).resolve().parent


def fake_images(root: Path, generator: str, detector: Detector) -> torch.Tensor:
    paths = sorted((root / "test_per_generator" / generator / "1_fake").glob("*.png"))
    return torch.stack([detector.to_input(Image.open(p).convert("RGB")) for p in paths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", action="append", required=True, help="label=checkpoint")
    parser.add_argument("--root", type=Path, default=Path("data/embedded"))
    parser.add_argument("--bands", type=int, default=8)
    args = parser.parse_args()
    detectors = dict(spec.split("=", 1) for spec in args.detector)
    figure, axes = plt.subplots(1, len(detectors), figsize=(5.2 * len(detectors), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    lines = []
    for ax, (label, checkpoint) in zip(axes, detectors.items()):
        detector = Detector.load(checkpoint)
        lines += [f"**{label}** (`{checkpoint}`): mean logit drop per band, low to high", ""]
        lines += ["| generator | " + " | ".join(f"b{i}" for i in range(args.bands)) + " |"]
        lines += ["| --- " * (args.bands + 1) + "|"]
        for generator in GENERATOR_NAMES:
            images = fake_images(args.root, generator, detector)
            drops = np.array(
                [a.drops for a in band_attribution(detector.model, images, args.bands)]
            )
            mean = drops.mean(axis=0)
            ax.plot(range(args.bands), mean, marker="o", label=generator)
            lines.append(f"| {generator} | " + " | ".join(f"{d:+.2f}" for d in mean) + " |")
        lines.append("")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("radial frequency band (0 = lowest)")
    axes[0].set_ylabel("mean drop of the fake logit")
    axes[-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(HERE / "bands.png", dpi=120)
    (HERE / "bands.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"Written: {HERE / 'bands.png'}, {HERE / 'bands.md'}")


if __name__ == "__main__":
    main()
