"""The embedded offline dataset: crops of the vendored photographs against samples of the
generator zoo, built once into a folder that the ordinary layouts read.

    <root>/{train,val,test}/{REAL,FAKE}/*.png
    <root>/test_per_generator/<source>/{0_real,1_fake}/*.png
    <root>/manifest.json

**Real**: random-scale square crops of the photographs in :mod:`pixelproof.photographs`,
area-averaged to 32x32; each split takes its own photographs (``photo_names(split)``), so a test
score never rewards memorising a photograph (validation also takes crops of ``unseen_val``, and
``test_per_generator/unseen_sources`` crops of ``unseen_test``: reals from sources nothing
trained on). **Fake**: samples of the shipped generators of :mod:`pixelproof.generators` (a
DCGAN, a DDPM sampled with DDIM, a VAE, a PixelCNN), which were trained on crops of the
*training* photographs only; optionally also the hand-made trace
simulations of :mod:`pixelproof.data.simulated_traces` (``simulations``, named ``sim_<name>``).
Each split is half real; its fakes are spread round robin over its fake sources.

``held_out`` leaves one generator family, or one generator, out of the training and validation
fakes while the test split keeps every source: the cross-family question (the UFD / RINE
protocol), asked offline; holding out one generator of a family asks how far the family's other
members carry.

Building samples the shipped weights, never trains them; samples are cached beside ``root``
(``generator_samples/``, keyed by the weights' digest), so rebuilding is fast. The same
parameters and weights give byte-identical PNGs. The manifest names the weights that made each
source's fakes (``generators``: file, SHA-256, model card; ``parameters.weights``: the short
digest that makes a retrained generator a new dataset).

It is a dataset of undertrained CPU generators and a few thousand crops: it teaches and measures
what detectors face (fakes out of trained generative models of several families, real photographs
of many scenes), not how they do on Stable Diffusion or Midjourney.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pixelproof.data.layouts import UNSEEN_SOURCES
from pixelproof.data.simulated_traces import SIMULATIONS
from pixelproof.generators import zoo
from pixelproof.photographs import load_photo, photo_names, random_crop
from pixelproof.utils.atomic import atomic_open, write_atomic
from pixelproof.utils.digests import DigestMismatch, array_sha256, file_sha256

log = logging.getLogger(__name__)

# Bump whenever a change here changes the bytes written, so an existing dataset built by older
# code is recognised as different instead of silently reused.
# 3: validation reals from unseen_val too, the unseen_sources test set, file digests, the
# manifest's generators; 4: the latent-diffusion family (ldm, ldm_tconv) among the default fakes
VERSION = 4
SPLITS = ("train", "val", "test")
SIMULATION_PREFIX = "sim_"


DESCRIPTION = (
    "pixelproof's embedded offline dataset. Real: random-scale crops of real photographs "
    "vendored in the package (split by photograph), area-averaged to 32x32. Fake: samples of "
    "small generative models trained on CPU on crops of the training photographs (a DCGAN, a "
    "DDPM sampled with DDIM, a VAE, a PixelCNN, two latent-diffusion models whose decoders "
    "up-sample differently), optionally with simulated traces; validation "
    "and the unseen_sources test set also hold crops of photographs from sources nothing "
    "trained on. Undertrained CPU "
    "generators and a few thousand crops: not a benchmark of Stable Diffusion or Midjourney."
)


def fake_sources(
    split: str,
    generators: Sequence[str] | None = None,
    held_out: str | None = None,
    simulations: Sequence[str] = (),
) -> list[str]:
    """The fake sources of ``split``: the generators (all of the zoo by default; the
    ``held_out`` family or generator left out of train and val), then ``sim_<name>`` per
    simulation."""
    names = list(zoo.GENERATOR_NAMES if generators is None else generators)
    unknown = [g for g in names if g not in zoo.ZOO]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f"data.embedded.generators={names}: distinct names from {list(zoo.ZOO)} please"
        )
    if held_out is not None:
        held = held_out_generators(held_out)
        if split != "test":
            names = [g for g in names if g not in held]
        if not names:
            raise ValueError(f"holding out {held_out!r} leaves no generator to train on")
    bad = [s for s in simulations if s not in SIMULATIONS]
    if bad:
        raise ValueError(
            f"data.embedded.simulations={list(simulations)}: choose from {list(SIMULATIONS)}"
        )
    return names + [SIMULATION_PREFIX + s for s in simulations]


def held_out_generators(held_out: str) -> tuple[str, ...]:
    """The generators ``held_out`` names: a family's (``latent_diffusion``: ``ldm`` and
    ``ldm_tconv``), or one generator (``ldm_tconv``). A name that is both (``vae``) means the
    same generators either way."""
    if held_out in zoo.FAMILIES:
        return zoo.FAMILIES[held_out]
    if held_out in zoo.ZOO:
        return (held_out,)
    raise ValueError(
        f"data.embedded.held_out={held_out!r}: choose a family ({', '.join(zoo.FAMILIES)}) or "
        f"one generator ({', '.join(zoo.ZOO)}), or null"
    )


def _plan(n: int, sources: Sequence[str]) -> list[tuple[str, int]]:
    """``(source or "", index within its class)`` of each image: half real, fakes round robin."""
    n_real = n // 2
    plan = [("", i) for i in range(n_real)]
    return plan + [(sources[i % len(sources)], i) for i in range(n - n_real)]


def _weights_digest(name: str) -> str:
    """The short digest that names generator ``name``'s weights, checked against its card."""
    return zoo.weights_digest(name)[:12]


def generator_samples(name: str, n: int, seed: int, cache_dir: Path) -> np.ndarray:
    """The first ``n`` samples of generator ``name`` for ``seed`` (``[n, 32, 32, 3]`` uint8),
    from the cache when it holds them. Image ``k`` depends on ``(seed, k)`` only, so a cache of
    more images serves fewer."""
    path = cache_dir / f"{name}-{_weights_digest(name)}-seed{seed}.npy"
    cached = _read_cache(path)
    if cached is not None and len(cached) >= n:
        return cached[:n]
    images = zoo.sample(name, n, seed=seed)
    # the digest first, the array second: a cache file is never there without its digest
    write_atomic(_digest_path(path), array_sha256(images) + "\n")
    with atomic_open(path, "wb") as handle:
        np.save(handle, images)
    _CACHE_VERIFIED.add(path)
    return images


_CACHE_VERIFIED: set[Path] = set()  # cache files checked in this process


def _digest_path(cache_file: Path) -> Path:
    return cache_file.with_name(cache_file.name + ".sha256")


def _read_cache(path: Path) -> np.ndarray | None:
    """The cached samples in ``path`` (``None`` when absent or written without a digest, so
    they are sampled again); samples that do not match their digest raise one line."""
    try:
        expected = _digest_path(path).read_text().strip()
        cached = np.load(path)
    except (OSError, ValueError):
        return None
    if path not in _CACHE_VERIFIED:
        if array_sha256(cached) != expected:
            raise DigestMismatch(
                f"{path} is damaged (its samples do not match {_digest_path(path).name}); "
                f"delete it (rm {path}) and the next run samples them again"
            )
        _CACHE_VERIFIED.add(path)
    return cached


def sample_seed(seed: int, split: str) -> int:
    """The seed of a split's sample stream: each split's fakes are samples no other split has."""
    return seed * len(SPLITS) + SPLITS.index(split)


def real_photos(split: str) -> tuple[str, ...]:
    """The photographs a split's reals are cut from: validation also takes those of
    ``unseen_val``, from packages nothing trains on, so a threshold calibrated on validation
    data answers for reals from new sources too."""
    return photo_names(split) + (photo_names("unseen_val") if split == "val" else ())


def _write_split(
    out: Path, split: str, split_id: int, n: int, seed: int, sources: list[str], cache: Path, bar
) -> dict:
    photos = real_photos(split)
    for cls in ("REAL", "FAKE"):
        (out / split / cls).mkdir(parents=True)
    plan = _plan(n, sources)
    wanted = Counter(source for source, _ in plan if source)
    pools = {
        s: iter(generator_samples(s, wanted[s], sample_seed(seed, split), cache))
        for s in sources
        if not s.startswith(SIMULATION_PREFIX)
    }
    files: dict[str, list[str]] = {"REAL": [], **{s: [] for s in sources}}
    used: Counter[str] = Counter()
    for source, i in plan:
        if source in pools:
            image, name = next(pools[source]), f"{source}_{i:05d}.png"
        else:
            # one stream per image, keyed by (seed, split, class, index): an image's bytes do not
            # depend on the order images are made in
            rng = np.random.default_rng([seed, split_id, int(bool(source)), i])
            photo = photos[int(rng.integers(len(photos)))]
            used[photo] += 1
            image = random_crop(load_photo(photo), rng)
            if source:  # a simulation re-synthesises a real crop
                image = SIMULATIONS[source.removeprefix(SIMULATION_PREFIX)](image, rng)
            name = f"{source}_{i:05d}.png" if source else f"{photo}_{i:05d}.png"
        files[source or "REAL"].append(name)
        Image.fromarray(image).save(out / split / ("FAKE" if source else "REAL") / name)
        bar.update()
    return {
        "counts": {"REAL": len(files["REAL"]), "FAKE": n - len(files["REAL"])},
        "fake_per_source": {s: len(files[s]) for s in sources},
        "photographs": list(photos),
        "crops_per_photograph": dict(sorted(used.items())),
        "_files": files,
    }


def _link(src: Path, dst: Path) -> None:
    """Hard-link (no duplicated bytes), copying where the filesystem cannot link."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_per_generator(out: Path, files: dict[str, list[str]], sources: list[str]) -> dict:
    """test_per_generator/<source>/{0_real,1_fake}: each source's test fakes against as many
    test reals, the same first reals for every source (the CNNDetection / RINE protocol)."""
    counts = {}
    for source in sources:
        fakes = files[source]
        reals = files["REAL"][: len(fakes)]
        for sub, cls, names in (("0_real", "REAL", reals), ("1_fake", "FAKE", fakes)):
            folder = out / "test_per_generator" / source / sub
            folder.mkdir(parents=True)
            for name in names:
                _link(out / "test" / cls / name, folder / name)
        counts[source] = {"0_real": len(reals), "1_fake": len(fakes)}
    return counts


def _write_unseen_sources(out: Path, n: int, seed: int, fakes: Sequence[str], bar) -> dict:
    """``test_per_generator/unseen_sources``: ``n`` crops of the ``unseen_test`` photographs
    (packages that no other split and no generator drew from) against as many of the test
    fakes, taken round robin from ``fakes`` (a list per source): the false-positive rate on
    reals from sources the detector never saw, at its threshold, is this row's real ACC@t."""
    photos = photo_names("unseen_test")
    folder = out / "test_per_generator" / UNSEEN_SOURCES
    (folder / "0_real").mkdir(parents=True)
    (folder / "1_fake").mkdir(parents=True)
    used: Counter[str] = Counter()
    for i in range(n):
        rng = np.random.default_rng([seed, len(SPLITS), 0, i])  # a stream no split draws
        photo = photos[int(rng.integers(len(photos)))]
        used[photo] += 1
        crop = random_crop(load_photo(photo), rng)
        Image.fromarray(crop).save(folder / "0_real" / f"{photo}_{i:05d}.png")
        bar.update()
    mixed = [name for group in zip(*fakes) for name in group]  # round robin over the sources
    for name in mixed[:n]:
        _link(out / "test" / "FAKE" / name, folder / "1_fake" / name)
    return {
        "0_real": n,
        "1_fake": min(n, len(mixed)),
        "photographs": list(photos),
        "crops_per_photograph": dict(sorted(used.items())),
    }


def _check_existing(root: Path, params: dict, force: bool) -> bool:
    """True if ``root`` already holds this very dataset; raise if it holds anything else."""
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text()).get("parameters")
        except (OSError, ValueError):
            recorded = None
        if recorded == params:
            return True
        if not force:
            changed = sorted(k for k in params if (recorded or {}).get(k) != params[k])
            raise ValueError(
                f"{root} already holds an embedded dataset built with other parameters "
                f"(differing: {', '.join(changed)}). Pass data.embedded.force=true to rebuild it "
                "in place, or another data.root."
            )
        return False
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and is not an embedded dataset (no manifest.json); refusing to write "
            f"into someone else's folder. Pass an empty or non-existent data.root."
        )
    return False


def build_embedded_dataset(
    root: str | Path,
    n_train: int = 6000,
    n_val: int = 1000,
    n_test: int = 2000,
    seed: int = 0,
    generators: Sequence[str] | None = None,
    held_out: str | None = None,
    simulations: Sequence[str] = (),
    force: bool = False,
    n_unseen: int | None = None,
) -> Path:
    """Build the embedded dataset under ``root`` (unless it is there already) and return it.

    ``n_train`` / ``n_val`` / ``n_test`` are images per split, half real. ``generators``: the
    zoo's generators to sample (default: all); ``held_out``: a family or one generator left out
    of train and val;
    ``simulations``: simulated trace pipelines added as fake sources; ``n_unseen``: crops of
    reals from unseen sources in ``test_per_generator/unseen_sources`` (default ``n_test // 4``).
    A root holding the same
    build is returned untouched; one holding another build raises unless ``force``; a non-empty
    root without a manifest always raises. The build goes to a temporary sibling renamed into
    place at the end, so an interrupted build never leaves a half dataset that looks complete.
    """
    root = Path(root).expanduser().resolve()
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"data.embedded.seed={seed!r} must be a non-negative integer")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    sources = {s: fake_sources(s, generators, held_out, simulations) for s in SPLITS}
    for split, n in sizes.items():
        if not isinstance(n, int) or n - n // 2 < len(sources[split]):
            raise ValueError(
                f"data.embedded.n_{split}={n!r} leaves fewer fakes than fake sources "
                f"({len(sources[split])}); every source needs at least one image per split"
            )
    n_unseen = n_test // 4 if n_unseen is None else n_unseen
    if not isinstance(n_unseen, int) or n_unseen < 1:
        raise ValueError(f"data.embedded.n_unseen={n_unseen!r} must be a positive integer")
    params = {
        "version": VERSION,
        **{f"n_{s}": n for s, n in sizes.items()},
        "n_unseen": n_unseen,
        "seed": seed,
        "sources": sources,
        "weights": {g: _weights_digest(g) for g in sources["test"] if g in zoo.ZOO},
    }
    if _check_existing(root, params, force):
        verify_files(root)
        log.debug("embedded dataset already built at %s", root)
        return root

    start = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    cache = root.parent / "generator_samples"
    tmp = _building_dir(root)
    try:
        splits = {}
        total = sum(sizes.values()) + n_unseen
        # no rate or ETA: an image takes a millisecond to crop or seconds to sample (DDPM), so
        # they would swing by orders of magnitude; each generator's sampling bar shows its own
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]"
        with tqdm(total=total, desc="embedded dataset", unit="img", bar_format=bar_format) as bar:
            for split_id, split in enumerate(SPLITS):
                splits[split] = _write_split(
                    tmp, split, split_id, sizes[split], seed, sources[split], cache, bar
                )
        test_files = splits["test"]["_files"]
        per_generator = _write_per_generator(tmp, test_files, sources["test"])
        per_generator[UNSEEN_SOURCES] = _write_unseen_sources(
            tmp, n_unseen, seed, [test_files[s] for s in sources["test"]], bar
        )
        for info in splits.values():
            info.pop("_files")
        manifest = {
            "name": "pixelproof-embedded",
            "description": DESCRIPTION,
            "parameters": params,
            "held_out": held_out,
            "generators": _provenance(sources["test"]),
            "layout": "<split>/{REAL,FAKE}/*.png; test_per_generator/<source>/{0_real,1_fake}",
            "image_size": [32, 32, 3],
            "splits": splits,
            "test_per_generator": per_generator,
            "files": _file_digests(tmp),
        }
        # the manifest is written last: its presence marks a complete build
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into_place(tmp, root, params)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "built the embedded dataset (%s images, fake sources %s) at %s in %.1f s",
        "/".join(str(n) for n in sizes.values()),
        ", ".join(sources["test"]),
        root,
        time.perf_counter() - start,
    )
    return root


def _provenance(sources: Sequence[str]) -> dict[str, dict]:
    """Which weights made the fakes named ``<generator>_*.png``: per generator its family, the
    weights file and its full SHA-256, and the model card with the command that trained them."""
    out = {}
    for name in sources:
        if name not in zoo.ZOO:
            continue  # a simulation: made by code, no weights
        entry, card = zoo.entry(name), zoo.read_card(name)
        out[name] = {
            "family": entry.family,
            "weights_file": entry.weights,
            "weights_sha256": zoo.weights_digest(name),
            "model_card": entry.card,
            "trained_by": card.get("command"),
            "trained_on": card.get("date"),
        }
    return out


def _file_digests(root: Path) -> dict[str, str]:
    """``relative path -> SHA-256`` of every file under ``root`` (the manifest aside)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in files}


_VERIFIED_ROOTS: set[Path] = set()  # datasets checked in this process


def verify_files(root: str | Path) -> None:
    """Check, once per process, that ``root`` holds exactly the files its manifest lists, with
    the bytes it records: a missing, damaged or added file raises one line naming it and the
    command that rebuilds the dataset, instead of a run training around it."""
    root = Path(root)
    if root in _VERIFIED_ROOTS:
        return
    recorded = json.loads((root / "manifest.json").read_text()).get("files") or {}
    found = {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    rebuild = f"delete it (rm -r {root}) and run again to rebuild it"
    missing = sorted(set(recorded) - set(found))
    added = sorted(set(found) - set(recorded))
    if not recorded or missing or added:
        what = (
            "its manifest lists no files (built by an older pixelproof)"
            if not recorded
            else f"{len(missing)} files listed in its manifest are missing (e.g. {missing[0]})"
            if missing
            else f"{len(added)} files are not in its manifest (e.g. {added[0]})"
        )
        raise DigestMismatch(f"the embedded dataset at {root} is incomplete: {what}; {rebuild}")
    for name, path in found.items():
        if file_sha256(path) != recorded[name]:
            raise DigestMismatch(f"{path} is damaged or was replaced (SHA-256); {rebuild}")
    _VERIFIED_ROOTS.add(root)


def _move_into_place(tmp: Path, root: Path, params: dict) -> None:
    """Rename the finished build onto ``root``. An old build (force=True) is moved aside first
    and deleted only once the new one is in place; if the rename fails it is put back."""
    old = None
    if root.exists():
        if (root / "manifest.json").is_file():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent)) / "data"
            os.replace(root, old)
        else:
            root.rmdir()  # _check_existing made sure it is an empty directory
    try:
        os.rename(tmp, root)
    except OSError:
        if old is not None and not root.exists():
            os.replace(old, root)
            shutil.rmtree(old.parent, ignore_errors=True)
            raise
        # another process (e.g. a second DDP rank) finished the same build first: keep theirs
        if _check_existing(root, params, force=False):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


# a build on another machine (or of an older pixelproof) that wrote nothing for this long ended
STALE_BUILD_HOURS = 6


def _building_dir(root: Path) -> Path:
    """A new hidden folder beside ``root`` for a build, ``.<root>.building-<host>-<pid>-<hex>``
    (0o777 less the umask, as the dataset it becomes; ``mkdtemp`` would make it 0o700), once the
    folders of builds that can never finish are removed."""
    _remove_stale_builds(root)
    owner = f"{socket.gethostname()}-{os.getpid()}"
    while True:
        tmp = root.parent / f".{root.name}.building-{owner}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def _remove_stale_builds(root: Path) -> None:
    """Remove the build folders of ``root`` left by interrupted builds: on this machine, those
    whose process has ended; from another machine or an older pixelproof (no process in the
    name), those untouched for ``STALE_BUILD_HOURS``. A running build is never touched."""
    prefix, host = f".{root.name}.building-", socket.gethostname()
    for folder in root.parent.iterdir():
        if not folder.name.startswith(prefix) or not folder.is_dir():
            continue
        owner = folder.name.removeprefix(prefix).rsplit("-", 2)  # host, pid, random
        if len(owner) == 3 and owner[0] == host and owner[1].isdigit():
            stale = not _running(int(owner[1]))
        else:
            stale = time.time() - _last_write(folder) > STALE_BUILD_HOURS * 3600
        if stale:
            log.info("removing %s, left by an interrupted build", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _last_write(folder: Path) -> float:
    """When a build last wrote into ``folder``: images land in ``<split>/<class>/``, whose
    modification times change with every file."""
    times = []
    for path in (folder, *folder.glob("*"), *folder.glob("*/*")):
        try:
            times.append(path.stat().st_mtime)
        except OSError:  # removed meanwhile
            continue
    return max(times, default=0.0)
