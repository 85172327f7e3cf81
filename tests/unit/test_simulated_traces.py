"""The simulated trace pipelines: each leaves the trace it claims to leave."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pixelproof.data.simulated_traces import SIMULATIONS
from pixelproof.photographs import load_photo, photo_names, random_crop


def _contents(n: int = 20, seed: int = 123) -> list[np.ndarray]:
    """Clean 32x32 crops of the train photographs, as the builder feeds the pipelines."""
    rng = np.random.default_rng(seed)
    photos = photo_names("train")
    return [random_crop(load_photo(photos[i % len(photos)]), rng) for i in range(n)]


def _fakes(name: str, contents: list[np.ndarray], seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [SIMULATIONS[name](c, rng) for c in contents]


def _power(img: np.ndarray) -> np.ndarray:
    """Power spectrum of the grey image, mean removed."""
    g = img.astype(np.float64).mean(axis=2)
    return np.abs(np.fft.fft2(g - g.mean())) ** 2


_FY, _FX = np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij")
_HIGH = np.hypot(_FY, _FX) > 0.25


def test_simulations_registry() -> None:
    assert len(SIMULATIONS) >= 3
    assert all(fn.__doc__ for fn in SIMULATIONS.values())


@pytest.mark.parametrize("name", list(SIMULATIONS))
def test_simulation_contract(name: str) -> None:
    contents = _contents(6)
    fakes = _fakes(name, contents)
    for content, fake in zip(contents, fakes):
        assert fake.dtype == np.uint8 and fake.shape == (32, 32, 3)
        assert np.abs(fake.astype(int) - content).mean() > 0
    assert all(np.array_equal(a, b) for a, b in zip(fakes, _fakes(name, contents)))  # seeded
    grey = np.repeat(contents[0][:, :, :1], 3, axis=2)  # a greyscale photo stays greyscale
    out = SIMULATIONS[name](grey, np.random.default_rng(0))
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
    res = np.stack([SIMULATIONS["smooth_resynth"](flat, rng)[:, :, 0] for _ in range(20)])
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
