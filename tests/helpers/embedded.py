"""Builds of the embedded dataset that share the session's generator samples.

Sampling the zoo is what makes a build slow (a latent-diffusion sample takes seconds on a busy
CPU, whatever ``n``), and ``build_embedded_dataset`` keeps its samples in
``<root>/../generator_samples``, keyed by generator, weights digest and seed; image ``k`` depends
on ``(seed, k)`` only, so a cache of more images serves fewer. The session's tiny build
(``embedded_root``: seed 0, 96/48/48 images, every generator) samples each generator once; a
folder given a copy of its cache builds any seed-0 dataset up to that size without sampling.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CACHE = "generator_samples"  # the folder build_embedded_dataset keeps beside each root

#: the quick generators (a GAN and a VAE: two families), for builds whose point is not which
#: generators they sample
FAST_GENERATORS = ["dcgan", "vae"]


def share_samples(embedded_root: Path, parent: Path) -> Path:
    """``parent`` (created), holding a copy of the sample cache of the session's build
    ``embedded_root``: build roots inside it as ``parent / <name>``."""
    parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(embedded_root.parent / CACHE, parent / CACHE, dirs_exist_ok=True)
    return parent
