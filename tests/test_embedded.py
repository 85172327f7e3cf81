"""The embedded offline dataset: layout, determinism, safety, and that each fake pipeline leaves
the trace it claims to leave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pixelproof.data.embedded import (
    EMBEDDED_GENERATORS,
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    VERSION,
    build_embedded_dataset,
    describe,
    load_photo,
    random_crop,
)
from pixelproof.data.fake_generators import GENERATORS

N_TRAIN, N_TEST = 40, 24


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_embedded_dataset(tmp_path_factory.mktemp("emb") / "ds", N_TRAIN, N_TEST, seed=0)


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_layout_and_counts(built: Path) -> None:
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        reals, fakes = _pngs(built / split / "REAL"), _pngs(built / split / "FAKE")
        assert len(reals) == n // 2 and len(fakes) == n - n // 2
        per_gen = {g: sum(p.name.startswith(g + "_") for p in fakes) for g in EMBEDDED_GENERATORS}
        assert sum(per_gen.values()) == len(fakes)  # every fake is named after its generator
        assert max(per_gen.values()) - min(per_gen.values()) <= 1  # round robin
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["parameters"] == {
        "version": VERSION,
        "n_train": N_TRAIN,
        "n_test": N_TEST,
        "seed": 0,
        "generators": list(EMBEDDED_GENERATORS),
    }
    assert manifest["splits"]["test"]["counts"] == {"REAL": N_TEST // 2, "FAKE": N_TEST // 2}
    assert manifest["description"] == describe() and "NOT a benchmark" in describe()
    # No temporary build folder is left beside the dataset.
    assert [p.name for p in built.parent.iterdir()] == [built.name]


def test_every_image_is_a_32x32_rgb_png(built: Path) -> None:
    files = list(built.rglob("*.png"))
    assert len(files) > N_TRAIN + N_TEST
    for path in files:
        with Image.open(path) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (32, 32))


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = build_embedded_dataset(tmp_path / "a", N_TRAIN, N_TEST, seed=3)
    b = build_embedded_dataset(tmp_path / "b", N_TRAIN, N_TEST, seed=3)
    c = build_embedded_dataset(tmp_path / "c", N_TRAIN, N_TEST, seed=4)
    assert _tree_bytes(a) == _tree_bytes(b)
    bytes_c = _tree_bytes(c)
    assert sum(bytes_c.get(k) != v for k, v in _tree_bytes(a).items()) > N_TRAIN


def test_second_call_is_a_no_op(built: Path) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in [built / "manifest.json", *built.rglob("*.png")]}
    assert build_embedded_dataset(built, N_TRAIN, N_TEST, seed=0) == built
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_other_parameters_raise_unless_forced(tmp_path: Path) -> None:
    root = build_embedded_dataset(tmp_path / "ds", N_TRAIN, N_TEST, seed=0)
    before = _tree_bytes(root)
    with pytest.raises(ValueError, match="force") as err:
        build_embedded_dataset(root, N_TRAIN, N_TEST, seed=1)
    assert str(root) in str(err.value)
    assert _tree_bytes(root) == before  # nothing was touched
    build_embedded_dataset(root, N_TRAIN, N_TEST, seed=1, force=True)
    assert json.loads((root / "manifest.json").read_text())["parameters"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # the old build is gone


def test_foreign_folder_is_never_written_into(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "thesis.txt").write_text("precious")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="manifest"):
            build_embedded_dataset(root, N_TRAIN, N_TEST, force=force)
    assert [p.name for p in root.iterdir()] == ["thesis.txt"]
    # An existing empty folder is fine.
    (tmp_path / "empty").mkdir()
    assert (build_embedded_dataset(tmp_path / "empty", N_TRAIN, N_TEST) / "manifest.json").is_file()


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="generators"):
        build_embedded_dataset(tmp_path / "x", N_TRAIN, N_TEST, generators=["nope"])
    with pytest.raises(ValueError, match="fewer fakes"):
        build_embedded_dataset(tmp_path / "x", N_TRAIN, 4)
    assert not (tmp_path / "x").exists()


def test_train_and_test_photographs_are_disjoint(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    train, test = set(manifest["photos"]["train"]), set(manifest["photos"]["test"])
    assert train == set(TRAIN_PHOTOS) and test == set(TEST_PHOTOS) and not train & test
    for split, allowed in (("train", train), ("test", test)):
        used = {p.name.rsplit("_", 1)[0] for p in _pngs(built / split / "REAL")}
        assert used and used <= allowed


def test_per_generator_layout(built: Path) -> None:
    per_gen = built / "test_per_generator"
    assert sorted(p.name for p in per_gen.iterdir()) == sorted(EMBEDDED_GENERATORS)
    test_reals = {p.name: p for p in _pngs(built / "test" / "REAL")}
    for gen in EMBEDDED_GENERATORS:
        reals, fakes = _pngs(per_gen / gen / "0_real"), _pngs(per_gen / gen / "1_fake")
        assert fakes and len(reals) == len(fakes)
        assert all(p.name.startswith(gen + "_") for p in fakes)
        for p in reals:  # the same bytes as in test/REAL, hard-linked where possible
            assert p.read_bytes() == test_reals[p.name].read_bytes()
        assert fakes[0].read_bytes() == (built / "test" / "FAKE" / fakes[0].name).read_bytes()


# --- the fake pipelines -------------------------------------------------------------------------


def _contents(n: int = 20, seed: int = 123) -> list[np.ndarray]:
    """Clean 32x32 crops of the train photographs, as the builder feeds the pipelines."""
    rng = np.random.default_rng(seed)
    return [random_crop(load_photo(TRAIN_PHOTOS[i % len(TRAIN_PHOTOS)]), rng) for i in range(n)]


def _fakes(name: str, contents: list[np.ndarray], seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [GENERATORS[name](c, rng) for c in contents]


def _power(img: np.ndarray) -> np.ndarray:
    """Power spectrum of the grey image, mean removed."""
    g = img.astype(np.float64).mean(axis=2)
    return np.abs(np.fft.fft2(g - g.mean())) ** 2


_FY, _FX = np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij")
_HIGH = np.hypot(_FY, _FX) > 0.25


def test_generators_registry() -> None:
    assert tuple(GENERATORS) == EMBEDDED_GENERATORS
    assert len(GENERATORS) >= 3
    assert all(fn.__doc__ for fn in GENERATORS.values())


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_contract(name: str) -> None:
    contents = _contents(6)
    fakes = _fakes(name, contents)
    for content, fake in zip(contents, fakes):
        assert fake.dtype == np.uint8 and fake.shape == (32, 32, 3)
        assert np.abs(fake.astype(int) - content).mean() > 0
    assert all(np.array_equal(a, b) for a, b in zip(fakes, _fakes(name, contents)))  # seeded
    grey = np.repeat(contents[0][:, :, :1], 3, axis=2)  # a greyscale photo stays greyscale
    out = GENERATORS[name](grey, np.random.default_rng(0))
    assert np.array_equal(out[:, :, 0], out[:, :, 1]) and np.array_equal(out[:, :, 0], out[:, :, 2])


def _nyquist_share(img: np.ndarray) -> float:
    """Share of the high-pass residual's power at the Nyquist frequencies (the checkerboard)."""
    g = img.astype(np.float64)
    p = _power(g - ndimage.gaussian_filter(g, sigma=(1.0, 1.0, 0)))
    return (p[16, 0] + p[0, 16] + p[16, 16]) / p.sum()


def test_tconv_upsample_leaves_a_checkerboard() -> None:
    contents = _contents()
    fake = np.mean([_nyquist_share(f) for f in _fakes("tconv_upsample", contents)])
    real = np.mean([_nyquist_share(c) for c in contents])
    assert fake > 20 * real


def _high_share(img: np.ndarray) -> float:
    p = _power(img)
    return p[_HIGH].sum() / p.sum()


def test_interp_upsample_removes_high_frequencies() -> None:
    contents = _contents()
    fake = np.mean([_high_share(f) for f in _fakes("interp_upsample", contents)])
    assert fake < 0.75 * np.mean([_high_share(c) for c in contents])


def test_smooth_resynth_smooths_and_adds_structured_noise() -> None:
    contents = _contents(30)
    fakes = _fakes("smooth_resynth", contents)
    # Texture is flattened: less high-frequency power in the textured half of the crops (on flat
    # crops the added noise is all the high frequencies there are).
    hf_real = np.array([_power(c)[_HIGH].sum() for c in contents])
    hf_fake = np.array([_power(f)[_HIGH].sum() for f in fakes])
    textured = hf_real >= np.median(hf_real)
    assert np.median(hf_fake[textured] / hf_real[textured]) < 0.7
    # What it adds on flat ground is noise streaked along the diagonal: correlated at lag (1, 1)
    # and not at lag (1, -1).
    flat = np.full((32, 32, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    res = np.stack([GENERATORS["smooth_resynth"](flat, rng)[:, :, 0] for _ in range(20)])
    res = res - res.mean(axis=(1, 2), keepdims=True)
    diag = (res[:, 1:, 1:] * res[:, :-1, :-1]).mean() / res.var()
    anti = (res[:, 1:, :-1] * res[:, :-1, 1:]).mean() / res.var()
    assert diag > 0.4 and abs(anti) < 0.15


def test_spectral_peaks_adds_a_few_high_frequency_peaks() -> None:
    contents = _contents()
    shares, peak_is_high = [], []
    for content, fake in zip(contents, _fakes("spectral_peaks", contents)):
        p = _power(fake.astype(np.float64) - content)
        shares.append(np.sort(p.ravel())[::-1][:6].sum() / p.sum())  # 4 sinusoids: <= 6 bins
        peak_is_high.append(_HIGH[p == p.max()].all())
    assert np.mean(shares) > 0.9 and np.mean(peak_is_high) > 0.9
