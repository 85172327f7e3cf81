"""The shipped generator zoo: which generators exist, and loading and sampling them.

    from pixelproof.generators.zoo import FAMILIES, load_generator, sample
    images = sample("ddpm", 1000, seed=0)   # [1000, 32, 32, 3] uint8
    FAMILIES["gan"]                          # ("dcgan",): hold one family out of training

Each generator ships as ``weights/<name>.safetensors`` (the weights sampling needs) and
``weights/<name>.json`` (its model card: the config it is rebuilt from, how it was trained, and
the weights' SHA-256, checked before they are loaded: a damaged file stops the run in one line).
The card is data: the class it is rebuilt as comes from :data:`ZOO`, its config only supplies
plain keyword values.
``make generators`` or ``python -m pixelproof.train_generator generator=<name>`` retrains one.
Sampling is deterministic for ``(name, n, seed)``: image k depends on ``(seed, k)`` only, not
on ``n``, and on ``batch_size`` at most by a rare rounding (see
:mod:`pixelproof.generators.common`).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str
    module: str  # "package.module.Class" of the GenerativeModel
    weights: str  # file name in the weights directory

    @property
    def card(self) -> str:
        return Path(self.weights).with_suffix(".json").name

    @property
    def retrain(self) -> str:
        return (
            f"`make generators` or `python -m pixelproof.train_generator generator={self.name} "
            "weights_dir=pixelproof/generators/weights`"
        )

    def module_class(self) -> type:
        module, cls = self.module.rsplit(".", 1)
        return getattr(importlib.import_module(module), cls)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("dcgan", "gan", "pixelproof.generators.dcgan.DCGAN", "dcgan.safetensors"),
        ZooEntry("ddpm", "diffusion", "pixelproof.generators.diffusion.DDPM", "ddpm.safetensors"),
        ZooEntry("vae", "vae", "pixelproof.generators.vae.VAE", "vae.safetensors"),
        ZooEntry(
            "pixelcnn",
            "autoregressive",
            "pixelproof.generators.pixelcnn.PixelCNN",
            "pixelcnn.safetensors",
        ),
        ZooEntry(
            "ldm",
            "latent_diffusion",
            "pixelproof.generators.latent_diffusion.LatentDiffusion",
            "ldm.safetensors",
        ),
        ZooEntry(
            "ldm_tconv",
            "latent_diffusion",
            "pixelproof.generators.latent_diffusion.LatentDiffusion",
            "ldm_tconv.safetensors",
        ),
    )
}
# Every generator's weights ship in the package: the embedded dataset samples them all by default.
GENERATOR_NAMES: tuple[str, ...] = tuple(ZOO)
FAMILIES: dict[str, tuple[str, ...]] = {}
for _entry in ZOO.values():
    FAMILIES[_entry.family] = (*FAMILIES.get(_entry.family, ()), _entry.name)


class GeneratorWeightsError(RuntimeError):
    """A shipped generator's weights or model card are missing or unreadable."""


def entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise KeyError(f"unknown generator {name!r}; the zoo has: {', '.join(ZOO)}")
    return ZOO[name]


def read_card(name: str, weights_dir: str | Path | None = None) -> dict:
    """The model card of generator ``name`` (``<weights_dir>/<name>.json``)."""
    e = entry(name)
    path = Path(weights_dir or WEIGHTS_DIR) / e.card
    try:
        card = json.loads(path.read_text())
        card["generator"]["_target_"]  # noqa: B018  (a card without a config is corrupt)
    except FileNotFoundError:
        raise GeneratorWeightsError(f"{path} is missing; retrain it with {e.retrain}") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GeneratorWeightsError(
            f"{path} is unreadable ({type(err).__name__}); retrain it with {e.retrain}"
        ) from None
    return card


def load_generator(name: str, weights_dir: str | Path | None = None):
    """Generator ``name`` in eval mode on the CPU, rebuilt from its model card's config and
    loaded from its safetensors weights. A missing or unreadable file raises
    :class:`GeneratorWeightsError` (one line: the file and the command that retrains it)."""
    from safetensors.torch import load_file

    e = entry(name)
    card = read_card(name, weights_dir)
    config = {k: v for k, v in card["generator"].items() if k != "_target_"}
    if card["generator"]["_target_"] != e.module:
        raise GeneratorWeightsError(
            f"{Path(weights_dir or WEIGHTS_DIR) / e.card} describes {card['generator']['_target_']}"
            f", not {e.module}; retrain it with {e.retrain}"
        )
    nested = [k for k, v in config.items() if not _plain(v)]
    if nested:
        raise GeneratorWeightsError(
            f"{Path(weights_dir or WEIGHTS_DIR) / e.card}: generator.{nested[0]} is not a plain "
            f"value (numbers, strings, lists); retrain it with {e.retrain}"
        )
    path = Path(weights_dir or WEIGHTS_DIR) / e.weights
    weights_digest(name, weights_dir)  # a damaged or replaced file stops here, in one line
    model = e.module_class()(**config)
    try:
        state = load_file(path)
    except FileNotFoundError:
        raise GeneratorWeightsError(f"{path} is missing; retrain it with {e.retrain}") from None
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise GeneratorWeightsError(
            f"{path} is unreadable ({type(err).__name__}); retrain it with {e.retrain}"
        ) from None
    try:
        model.load_sampling_state_dict({k: v.float() for k, v in state.items()})
    except (KeyError, RuntimeError) as err:
        raise GeneratorWeightsError(
            f"{path} does not fit its model card ({type(err).__name__}); retrain it with "
            f"{e.retrain}"
        ) from None
    return model.eval()


_VERIFIED: dict[Path, str] = {}  # weights files checked in this process: path -> digest


def weights_digest(name: str, weights_dir: str | Path | None = None) -> str:
    """The SHA-256 of generator ``name``'s weights, checked against its card's
    ``weights_sha256`` (once per process and file). A missing, damaged or replaced file, or a
    card without a digest, raises :class:`GeneratorWeightsError` in one line."""
    e = entry(name)
    card = read_card(name, weights_dir)
    path = (Path(weights_dir or WEIGHTS_DIR) / e.weights).resolve()
    expected = card.get("weights_sha256")
    if not isinstance(expected, str):
        raise GeneratorWeightsError(
            f"{path.with_suffix('.json')} records no weights_sha256, so {path.name} cannot be "
            f"checked; retrain it with {e.retrain}"
        )
    if _VERIFIED.get(path) != expected:
        from pixelproof.utils.digests import DigestMismatch, check_file

        try:
            check_file(path, expected, f"reinstall pixelproof or retrain it with {e.retrain}")
        except FileNotFoundError:
            raise GeneratorWeightsError(f"{path} is missing; retrain it with {e.retrain}") from None
        except DigestMismatch as err:
            raise GeneratorWeightsError(str(err)) from None
        _VERIFIED[path] = expected
    return expected


def _plain(value) -> bool:
    """A JSON scalar or a list of them: what a card's generator config may hold."""
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def sample(
    name: str,
    n: int,
    seed: int = 0,
    batch_size: int | None = None,
    weights_dir: str | Path | None = None,
    progress: bool = True,
) -> np.ndarray:
    """``n`` images of generator ``name`` as ``[n, 32, 32, 3]`` uint8, deterministic for
    ``(name, n, seed, batch_size)``; ``batch_size`` (default: the family's
    ``sample_batch_size``) changes at most a rare float rounding."""
    model = load_generator(name, weights_dir)
    return model.sample(n, seed=seed, batch_size=batch_size, progress=progress, desc=name)
