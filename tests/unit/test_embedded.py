"""The embedded offline dataset: photographs against samples of the shipped generator zoo.
Layout, determinism, splits by photograph, held-out families, simulations, and safety."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.embedded import FAST_GENERATORS, share_samples
from PIL import Image

from pixelproof.data import embedded
from pixelproof.data.embedded import VERSION, build_embedded_dataset, fake_sources
from pixelproof.data.layouts import UNSEEN_SOURCES
from pixelproof.generators import zoo
from pixelproof.photographs import photo_names

N = dict(n_train=24, n_val=12, n_test=16)


@pytest.fixture(scope="module")
def parent(tmp_path_factory, embedded_root) -> Path:
    """One folder for every build of this module, so they share one cache of samples, seeded
    with the session build's samples (seed 0, larger): seed-0 builds here sample nothing."""
    return share_samples(embedded_root, tmp_path_factory.mktemp("embedded"))


@pytest.fixture(scope="module")
def built(parent: Path) -> Path:
    return build_embedded_dataset(parent / "ds", **N, seed=0)


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_layout_counts_and_manifest(built: Path) -> None:
    generators = list(zoo.GENERATOR_NAMES)
    for split in ("train", "val", "test"):
        n = N[f"n_{split}"]
        reals, fakes = _pngs(built / split / "REAL"), _pngs(built / split / "FAKE")
        assert len(reals) == n // 2 and len(fakes) == n - n // 2
        # <source>_<index>.png: the generator's name is everything before the last "_"
        per_source = {g: sum(p.name.rsplit("_", 1)[0] == g for p in fakes) for g in generators}
        assert sum(per_source.values()) == len(fakes)  # every fake is named after its generator
        assert max(per_source.values()) - min(per_source.values()) <= 1  # round robin
    manifest = json.loads((built / "manifest.json").read_text())
    params = manifest["parameters"]
    assert params["version"] == VERSION and params["sources"]["test"] == generators
    assert set(params["weights"]) == set(generators)  # a retrained generator is a new dataset
    # which weights made which fakes: the full digest the zoo checks, and the card
    assert list(manifest["generators"]) == generators and manifest["held_out"] is None
    for g, made_by in manifest["generators"].items():
        assert made_by["weights_sha256"] == zoo.weights_digest(g)
        assert made_by["weights_sha256"].startswith(params["weights"][g])
        assert made_by["family"] == zoo.ZOO[g].family and made_by["model_card"] == f"{g}.json"
        assert made_by["trained_by"] == zoo.read_card(g)["command"]
    assert "not a benchmark of Stable Diffusion" in manifest["description"]
    for path in built.rglob("*.png"):
        with Image.open(path) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (32, 32))


def test_fakes_are_the_generators_samples(built: Path, parent: Path) -> None:
    """The test split's DCGAN fakes are, in order, the first samples of its test stream."""
    fakes = _pngs(built / "test_per_generator" / "dcgan" / "1_fake")
    seed = embedded.sample_seed(0, "test")
    samples = embedded.generator_samples("dcgan", len(fakes), seed, parent / "generator_samples")
    for path, image in zip(fakes, samples):
        assert np.array_equal(np.asarray(Image.open(path)), image)


def test_splits_are_by_photograph(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    used = {}
    for split in ("train", "val", "test"):
        assert manifest["splits"][split]["photographs"] == list(embedded.real_photos(split))
        used[split] = {p.name.rsplit("_", 1)[0] for p in _pngs(built / split / "REAL")}
        assert used[split] and used[split] <= set(embedded.real_photos(split))
    assert not (used["train"] & used["val"] or used["train"] & used["test"])
    # validation reals also come from the unseen_val sources, and only there
    assert set(embedded.real_photos("val")) == {*photo_names("val"), *photo_names("unseen_val")}
    assert not set(photo_names("unseen_val")) & (used["train"] | used["test"])


def test_per_generator_test_layout(built: Path) -> None:
    per_gen = built / "test_per_generator"
    assert sorted(p.name for p in per_gen.iterdir()) == sorted(
        [*zoo.GENERATOR_NAMES, UNSEEN_SOURCES]
    )
    test_reals = {p.name: p for p in _pngs(built / "test" / "REAL")}
    for gen in zoo.GENERATOR_NAMES:
        reals, fakes = _pngs(per_gen / gen / "0_real"), _pngs(per_gen / gen / "1_fake")
        assert fakes and len(reals) == len(fakes)
        for p in reals:  # the same bytes as in test/REAL, hard-linked where possible
            assert p.read_bytes() == test_reals[p.name].read_bytes()


def test_reals_of_unseen_sources_face_fakes_of_every_generator(built: Path) -> None:
    folder = built / "test_per_generator" / UNSEEN_SOURCES
    reals, fakes = _pngs(folder / "0_real"), _pngs(folder / "1_fake")
    assert len(reals) == N["n_test"] // 4 == len(fakes)  # the default n_unseen
    assert {p.name.rsplit("_", 1)[0] for p in reals} <= set(photo_names("unseen_test"))
    test_fakes = {p.name: p.read_bytes() for p in _pngs(built / "test" / "FAKE")}
    assert all(test_fakes[p.name] == p.read_bytes() for p in fakes)
    sources = [p.name.rsplit("_", 1)[0] for p in fakes]
    assert len(set(sources)) == len(sources)  # round robin: one of each before any repeats
    unseen = json.loads((built / "manifest.json").read_text())["test_per_generator"]
    assert unseen[UNSEEN_SOURCES]["0_real"] == len(reals)


def test_same_seed_same_bytes_other_seed_differs(built: Path, parent: Path) -> None:
    again = build_embedded_dataset(parent / "again", **N, seed=0)
    assert _tree_bytes(again) == _tree_bytes(built)
    # another seed, on the quick generators (a new seed samples every generator afresh)
    quick = dict(N, generators=FAST_GENERATORS)
    bytes_zero = _tree_bytes(build_embedded_dataset(parent / "quick", **quick, seed=0))
    bytes_other = _tree_bytes(build_embedded_dataset(parent / "other", **quick, seed=1))
    assert sum(bytes_other.get(k) != v for k, v in bytes_zero.items()) > N["n_train"]


def test_a_held_out_family_is_only_in_the_test_split(parent: Path) -> None:
    root = build_embedded_dataset(parent / "no_gan", **N, held_out="gan")
    for split in ("train", "val"):
        assert not any(p.name.startswith("dcgan_") for p in _pngs(root / split / "FAKE"))
    assert (root / "test_per_generator" / "dcgan" / "1_fake").is_dir()
    assert fake_sources("train", held_out="gan") == ["ddpm", "vae", "pixelcnn", "ldm", "ldm_tconv"]
    with pytest.raises(ValueError, match="held_out='cats'.*gan, diffusion, vae, autoregressive"):
        fake_sources("train", held_out="cats")


def test_one_generator_can_be_held_out_by_name(parent: Path) -> None:
    """``held_out`` takes a generator as well as a family: a family of several models can keep
    one in training while another is held out."""
    root = build_embedded_dataset(parent / "no_ddpm", **N, held_out="ddpm")
    for split in ("train", "val"):
        sources = {p.name.rsplit("_", 1)[0] for p in _pngs(root / split / "FAKE")}
        assert "ddpm" not in sources and sources == set(zoo.GENERATOR_NAMES) - {"ddpm"}
    assert (root / "test_per_generator" / "ddpm" / "1_fake").is_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["held_out"] == "ddpm" and "ddpm" in manifest["generators"]
    assert manifest["splits"]["train"]["fake_per_source"].get("ddpm") is None
    everything = list(zoo.GENERATOR_NAMES)
    assert fake_sources("val", held_out="ddpm") == [g for g in everything if g != "ddpm"]
    assert fake_sources("test", held_out="ddpm") == everything


def test_one_latent_diffusion_model_held_out_while_the_other_stays(parent: Path) -> None:
    """The latent family has two models: hold out the transposed-convolution decoder's, train on
    the nearest-resize decoder's; or hold out the whole family."""
    generators = ["dcgan", "ldm", "ldm_tconv"]
    root = build_embedded_dataset(
        parent / "no_ldm_tconv", **N, generators=generators, held_out="ldm_tconv"
    )
    for split in ("train", "val"):
        sources = {p.name.rsplit("_", 1)[0] for p in _pngs(root / split / "FAKE")}
        assert sources == {"dcgan", "ldm"}
    test_sources = {p.name.rsplit("_", 1)[0] for p in _pngs(root / "test" / "FAKE")}
    assert test_sources == set(generators)
    assert (root / "test_per_generator" / "ldm_tconv" / "1_fake").is_dir()
    made_by = json.loads((root / "manifest.json").read_text())["generators"]
    assert made_by["ldm_tconv"]["weights_sha256"] != made_by["ldm"]["weights_sha256"]
    assert {made_by[g]["family"] for g in ("ldm", "ldm_tconv")} == {"latent_diffusion"}
    assert fake_sources("train", generators, held_out="latent_diffusion") == ["dcgan"]
    assert fake_sources("train", generators, held_out="ldm") == ["dcgan", "ldm_tconv"]
    # "vae" names a family and its one generator: the same either way
    assert embedded.held_out_generators("vae") == zoo.FAMILIES["vae"] == ("vae",)
    with pytest.raises(
        ValueError, match=r"family \(.*latent_diffusion\) or one generator \(.*ldm_tconv"
    ):
        fake_sources("train", held_out="ldm_xl")


def test_simulations_are_extra_named_fake_sources(parent: Path) -> None:
    root = build_embedded_dataset(
        parent / "sims", **N, generators=["vae"], simulations=["tconv_upsample"]
    )
    assert sorted(p.name for p in (root / "test_per_generator").iterdir()) == [
        "sim_tconv_upsample",
        UNSEEN_SOURCES,
        "vae",
    ]
    with pytest.raises(ValueError, match="simulations=.*choose from"):
        fake_sources("train", simulations=["nope"])


def test_second_call_is_a_no_op_and_other_parameters_raise_unless_forced(
    built: Path, parent: Path
) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in [built / "manifest.json", *built.rglob("*.png")]}
    assert build_embedded_dataset(built, **N, seed=0) == built
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    quick = dict(N, generators=FAST_GENERATORS)  # seed 2 samples afresh: the quick generators
    root = build_embedded_dataset(parent / "forced", **quick, seed=0)
    before = _tree_bytes(root)
    with pytest.raises(ValueError, match="differing: seed.*data.embedded.force=true"):
        build_embedded_dataset(root, **quick, seed=2)
    assert _tree_bytes(root) == before  # nothing was touched
    build_embedded_dataset(root, **quick, seed=2, force=True)
    assert json.loads((root / "manifest.json").read_text())["parameters"]["seed"] == 2
    assert not [p for p in parent.iterdir() if p.name.startswith(".forced")]  # no leftovers


def test_foreign_folder_is_never_written_into(parent: Path) -> None:
    root = parent / "mine"
    root.mkdir()
    (root / "thesis.txt").write_text("precious")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="manifest"):
            build_embedded_dataset(root, **N, force=force)
    assert [p.name for p in root.iterdir()] == ["thesis.txt"]


def test_bad_arguments_raise(parent: Path) -> None:
    with pytest.raises(ValueError, match="generators"):
        build_embedded_dataset(parent / "x", **N, generators=["nope"])
    with pytest.raises(ValueError, match="n_test=4 leaves fewer fakes"):
        build_embedded_dataset(parent / "x", n_train=24, n_val=12, n_test=4)
    assert not (parent / "x").exists()


def test_missing_weights_name_the_file_and_the_command(parent: Path, monkeypatch) -> None:
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", parent / "no_weights")
    with pytest.raises(zoo.GeneratorWeightsError) as err:
        build_embedded_dataset(parent / "y", **N)
    message = str(err.value)
    assert "\n" not in message and "no_weights" in message and "make generators" in message
