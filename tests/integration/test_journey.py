"""The journey protocol: each processing step on images whose result is known, chains in order,
reals and fakes processed alike, the report on a detector whose answers are known (one that
relies on a checkerboard trace a down-up resize erases), pixelproof.eval robustness=journey on a
checkpoint, the shipped grid, and one-line errors for bad settings."""

import csv
import math

import numpy as np
import pytest
import torch
from helpers import known_detector
from helpers.configs import compose_config
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pixelproof.evaluation.journey import (
    Cell,
    blur,
    check_journey,
    crop,
    image_rng,
    journey_settings,
    jpeg,
    noise,
    parse_cells,
    resize,
    restore,
)
from pixelproof.evaluation.journey_report import (
    journey_report,
    journey_summary,
    read_journey,
    score_cell,
    to_pixels,
)
from pixelproof.validation import ConfigError, validate

SIGN = (np.indices((32, 32)).sum(0) % 2) * 2 - 1  # +1 / -1 checkerboard


def flat(value: int, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def checkerboard(amplitude: int, size: int = 32) -> np.ndarray:
    """Grey 128 +/- ``amplitude`` alternating every pixel: the finest detail an image holds."""
    sign = SIGN[:size, :size, None].repeat(3, axis=2)
    return (128 + amplitude * sign).astype(np.uint8)


def texture(seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def cell(*steps: dict, name: str = "c") -> Cell:
    (parsed,) = parse_cells({name: list(steps)})
    return parsed


# ------------------------------------------------------------------------------------ steps


def test_jpeg_keeps_a_flat_image_and_changes_a_textured_one():
    for quality in (95, 50, 10):
        assert np.array_equal(jpeg(flat(128), quality), flat(128))
    noisy = texture()
    error_95 = np.abs(jpeg(noisy, 95).astype(int) - noisy).mean()
    error_50 = np.abs(jpeg(noisy, 50).astype(int) - noisy).mean()
    assert 0 < error_95 < error_50  # lossy, and more so at a lower quality
    assert jpeg(noisy, 75).dtype == np.uint8 and jpeg(noisy, 75).shape == noisy.shape


def test_down_up_resize_blurs_a_checkerboard_away_and_keeps_its_mean():
    board = checkerboard(26)
    half = resize(board, 0.5, "bilinear")
    assert half.shape == (16, 16, 3)
    for resample in ("bilinear", "bicubic"):
        back = restore(resize(board, 0.5, resample), (32, 32), resample)
        assert back.shape == board.shape
        assert back.std() < 0.05 * board.std()  # 26 grey levels of detail -> below 1.3
        assert abs(back.mean() - board.mean()) < 1
    # an up-down round trip keeps more of it (a quarter: 1.5 is no whole factor)
    up_down = restore(resize(board, 1.5, "bicubic"), (32, 32), "bicubic")
    assert 0.2 * board.std() < up_down.std() < 0.5 * board.std()
    # the two filters differ on a textured image
    bilinear = restore(resize(texture(), 0.75, "bilinear"), (32, 32), "bilinear")
    bicubic = restore(resize(texture(), 0.75, "bicubic"), (32, 32), "bicubic")
    assert not np.array_equal(bilinear, bicubic)


def test_blur_is_an_exact_gaussian():
    assert np.array_equal(blur(flat(77), 1.0), flat(77))
    impulse = flat(0)
    impulse[16, 16] = 200
    sigma = 1.0
    taps = np.exp(-0.5 * (np.arange(-4, 5) / sigma) ** 2)  # to 4 sigma
    kernel = np.outer(taps, taps) / taps.sum() ** 2
    expected = np.rint(200 * kernel)
    out = blur(impulse, sigma)
    assert np.array_equal(out[12:21, 12:21, 0], expected)
    assert np.array_equal(out[..., 0], out[..., 2])  # channels blurred alike, not mixed
    assert out[:8].max() == 0  # nothing beyond 4 sigma


def test_noise_has_the_asked_std_and_is_seeded_by_seed_and_image_index():
    grey = flat(128, 64)
    for sigma in (2, 5):
        diff = noise(grey, sigma, image_rng(0, 3)).astype(float) - 128
        # rounding to grey levels adds 1/12 to the variance
        assert diff.std() == pytest.approx(math.sqrt(sigma**2 + 1 / 12), abs=0.1)
        assert abs(diff.mean()) < 0.1
    once = noise(grey, 5, image_rng(0, 3))
    assert np.array_equal(once, noise(grey, 5, image_rng(0, 3)))
    assert not np.array_equal(once, noise(grey, 5, image_rng(0, 4)))
    assert not np.array_equal(once, noise(grey, 5, image_rng(1, 3)))
    # clipped to the 8-bit range, as a saved file is
    assert noise(flat(255), 5, image_rng(0, 0)).min() < 255
    assert noise(flat(255), 5, image_rng(0, 0)).max() == 255
    assert np.array_equal(noise(grey, 0, image_rng(0, 0)), grey)


def test_crop_keeps_the_centre_and_restore_brings_the_size_back():
    image = texture()
    kept = crop(image, 0.875)
    assert np.array_equal(kept, image[2:30, 2:30])
    back = cell({"step": "crop", "fraction": 0.875}, {"step": "restore"})(image, image_rng(0, 0))
    assert back.shape == image.shape
    # restore is Pillow's bicubic resize of the 28x28 centre (the default resample)
    assert np.array_equal(back, restore(kept, (32, 32), "bicubic"))


def test_chains_apply_in_order_and_an_empty_cell_changes_nothing():
    image = texture(1)
    noise_then_jpeg = cell({"step": "noise", "sigma": 5}, {"step": "jpeg", "quality": 50})
    jpeg_then_noise = cell({"step": "jpeg", "quality": 50}, {"step": "noise", "sigma": 5})
    expected = jpeg(noise(image, 5, image_rng(0, 7)), 50)
    assert np.array_equal(noise_then_jpeg(image, image_rng(0, 7)), expected)
    assert not np.array_equal(jpeg_then_noise(image, image_rng(0, 7)), expected)
    two_noises = cell({"step": "noise", "sigma": 5}, {"step": "noise", "sigma": 5})
    rng = image_rng(0, 7)  # the second step draws the stream's next numbers, not the same ones
    assert np.array_equal(two_noises(image, image_rng(0, 7)), noise(noise(image, 5, rng), 5, rng))
    assert np.array_equal(cell()(image, image_rng(0, 0)), image)
    assert cell().description == "as it is"
    assert noise_then_jpeg.description == "noise(sigma=5) -> jpeg(quality=50)"


# ------------------------------------------------------------------------------- the report


class CheckerboardDetector(nn.Module):
    """Calls an image fake when it holds a pixel-level checkerboard (the trace a transposed
    convolution leaves): logit = 50 * (|checkerboard energy| - 0.05)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(50.0))
        self.register_buffer("sign", torch.from_numpy(SIGN).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = ((x - 0.5) * self.sign).mean(dim=(1, 2, 3)).abs()
        return self.weight * (energy - 0.05)


def checker_loader(amplitude: int, n: int = 3, batch_size: int = 2) -> DataLoader:
    """``n`` fakes with a checkerboard of ``amplitude`` grey levels and ``n`` reals without,
    alternating (fake first), on textures of +-10 grey levels so each image is its own."""
    rng = np.random.default_rng(amplitude)
    base = [128 + rng.integers(-10, 11, (32, 32, 3)) for _ in range(2 * n)]
    labels = torch.tensor([1.0, 0.0] * n)
    pixels = [b + amplitude * SIGN[..., None] * int(y) for b, y in zip(base, labels)]
    pixels = np.clip(np.stack(pixels), 0, 255).astype(np.uint8)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


def test_reals_and_fakes_get_the_same_processing():
    """The label never reaches the cell: the same image at the same index scores the same,
    whichever class and generator it is filed under; every score is the detector's on the
    processed pixels (the cache of shared images mixes nothing up); pixels round-trip exactly."""
    pixels = [texture(2), texture(3), texture(4)]
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2) / 255
    chain = cell({"step": "blur", "sigma": 0.5}, {"step": "jpeg", "quality": 90},
                 {"step": "noise", "sigma": 2})  # fmt: skip
    detector = CheckerboardDetector()
    datasets = {
        "as reals": TensorDataset(images, torch.zeros(3)),
        "as fakes": TensorDataset(images, torch.ones(3)),
        "reordered": TensorDataset(images.flip(0), torch.ones(3)),
    }
    scores = score_cell(detector, datasets, chain, seed=0, batch_size=2)
    assert torch.equal(scores["as reals"][0], scores["as fakes"][0])
    assert scores["as reals"][1].tolist() == [0, 0, 0] and scores["as fakes"][1].tolist() == [1] * 3
    for index in range(3):
        processed = chain(pixels[index], image_rng(0, index))
        with torch.no_grad():
            expected = detector(torch.from_numpy(processed).permute(2, 0, 1)[None].float() / 255)
        assert float(scores["as reals"][0][index]) == pytest.approx(float(expected.sigmoid()))
    # the same image at another index gets other noise
    assert scores["reordered"][0][1] == scores["as reals"][0][1]  # the middle one stays
    assert scores["reordered"][0][0] != scores["as reals"][0][2]
    assert np.array_equal(to_pixels(images[0]), pixels[0])
    with pytest.raises(ValueError, match="must be in \\[0, 1\\], not \\[-1"):
        to_pixels(images[0] * 2 - 1)


GRID = {
    "protocol": "journey",
    "seed": 0,
    "cells": {
        "none": [],
        "jpeg q95": [{"step": "jpeg", "quality": 95}],
        "down-up x0.5": [
            {"step": "resize", "scale": 0.5, "resample": "bilinear"},
            {"step": "restore", "resample": "bilinear"},
        ],
        "noise 2": [{"step": "noise", "sigma": 2}],
    },
}


def test_report_on_a_detector_that_relies_on_a_fragile_trace(tmp_path):
    """The checkerboard survives JPEG 95 and mild noise (every cell right) and not a down-up
    resize: there every fake is called real and the cell is named the worst."""
    detector = CheckerboardDetector().train()
    loaders = {"a": checker_loader(26), "b": checker_loader(20)}
    rows = journey_report(detector, loaders, GRID, tmp_path, threshold=0.3)
    assert detector.training  # its mode given back
    table = {(r["cell"], r["generator"]): r for r in rows}
    assert [(r["cell"], r["generator"]) for r in rows[:3]] == [
        ("none", "a"), ("none", "b"), ("none", "mean"),
    ]  # fmt: skip
    for name in ("none", "jpeg q95", "noise 2"):
        for generator in ("a", "b", "mean"):
            row = table[name, generator]
            assert (row["ap"], row["acc_t"], row["real_acc_t"], row["fake_acc_t"]) == (1, 1, 1, 1)
    resized = table["down-up x0.5", "mean"]
    assert resized["fake_acc_t"] == 0 and resized["real_acc_t"] == 1 and resized["acc_t"] == 0.5
    assert resized["fpr_t"] == 0 and resized["threshold"] == 0.3
    assert table["down-up x0.5", "a"]["n_fake"] == 3 and resized["n_real"] == 6

    summary = journey_summary(rows)
    assert summary.clean_ap == 1.0 and summary.worst_cell == "down-up x0.5"
    assert summary.mean_ap == pytest.approx((1 + 1 + resized["ap"]) / 3)  # "none" left out
    assert summary.worst_ap == min(table["down-up x0.5", g]["ap"] for g in "ab")
    assert summary.fpr == {"none": 0, "jpeg q95": 0, "down-up x0.5": 0, "noise 2": 0}
    assert summary.min_acc_t == 0.5
    assert summary.metrics()["journey/fpr/noise 2"] == 0.0

    with (tmp_path / "journey.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 4 * 3 and written[0]["steps"] == "as it is"
    assert (
        written[6]["steps"] == "resize(scale=0.5, resample=bilinear) -> restore(resample=bilinear)"
    )
    assert journey_summary(read_journey(tmp_path / "journey.csv")) == summary
    markdown = (tmp_path / "journey.md").read_text()
    assert "**Journey AP: mean" in markdown and "(`down-up x0.5` on " in markdown
    assert "| down-up x0.5 | " in markdown and "| processing | a | b | mean |" in markdown
    assert (tmp_path / "journey.png").read_bytes()[:4] == b"\x89PNG"


def test_report_is_deterministic_and_max_batches_makes_it_quick(tmp_path):
    grid = {**GRID, "cells": {"noise 5": [{"step": "noise", "sigma": 5}]}, "max_batches": 1}
    loaders = {"a": checker_loader(4, n=4, batch_size=3)}  # a trace as faint as the noise
    first = journey_report(CheckerboardDetector(), loaders, grid, tmp_path / "1", 0.5)
    second = journey_report(CheckerboardDetector(), loaders, grid, tmp_path / "2", 0.5)
    assert first == second and len(first) == 1  # one generator: no mean row
    assert (first[0]["n_fake"], first[0]["n_real"]) == (2, 1)  # the first batch only
    csvs = [(tmp_path / run / "journey.csv").read_text() for run in ("1", "2")]
    assert csvs[0] == csvs[1]


def test_eval_runs_the_journey_on_a_checkpoint(tmp_path):
    """pixelproof.eval robustness=journey on the known detector (p(fake) = mean grey): the
    uncompressed cell reproduces the eval table; every cell scores every generator."""
    from pixelproof.eval import evaluate

    root = tmp_path / "data"
    greys = {"g1": ([64, 90], [191, 160]), "g2": ([102, 153], [128, 140])}
    for gen, (reals, fakes) in greys.items():
        for i, value in enumerate(reals):
            known_detector.write_grey(root / "test" / gen / "0_real" / f"{i}.png", value, size=16)
        for i, value in enumerate(fakes):
            known_detector.write_grey(root / "test" / gen / "1_fake" / f"{i}.png", value, size=16)
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.52)
    cfg = compose_config(
        "eval", f"ckpt_path={ckpt}", "data=per_generator", f"data.root={root}",
        "data.test_split=test", "data.embedded=null", f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'eval'}", "inference.device=cpu", "plots=false",
        "robustness=journey",
    )  # fmt: skip
    validate(cfg, "eval")
    evaluate(cfg)
    out = tmp_path / "eval"
    rows = read_journey(out / "journey.csv")
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    assert len(cells) == len(cfg.robustness.cells) and len(rows) == 3 * len(cells)
    assert all(r["threshold"] == pytest.approx(0.52) for r in rows)
    with (out / "generators.csv").open() as handle:
        table = {r["generator"]: r for r in csv.DictReader(handle)}
    for row in (r for r in rows if r["cell"] == "none"):
        assert row["ap"] == pytest.approx(float(table[row["generator"]]["ap"]))
        assert row["acc_t"] == pytest.approx(float(table[row["generator"]]["acc_calibrated"]))
    # flat greys keep their value through JPEG, blur, resizing and crops
    for row in rows:
        if "noise" not in row["cell"]:
            assert row["ap"] == pytest.approx(float(table[row["generator"]]["ap"]))
    assert (out / "journey.md").exists() and (out / "journey.png").exists()
    assert not (out / "robustness.csv").exists()


# ------------------------------------------------------------------------------- the config


def test_shipped_grid_holds_the_issue_s_processing():
    cfg = compose_config("eval", "ckpt_path=x", "robustness=journey").robustness
    settings = journey_settings(cfg)
    by_name = {c.name: c for c in settings.cells}
    labels = {c.description for c in settings.cells}
    for quality in (95, 90, 75, 50):
        assert f"jpeg(quality={quality})" in labels
    for scale in (0.75, 0.5, 1.5):
        for resample in ("bilinear", "bicubic"):
            assert (
                f"resize(scale={scale:g}, resample={resample}) -> restore(resample={resample})"
                in labels
            )
    for step in ("blur(sigma=0.5)", "blur(sigma=1)", "noise(sigma=2)", "noise(sigma=5)",
                 "crop(fraction=0.875) -> restore(resample=bicubic)"):  # fmt: skip
        assert step in labels
    chains = [c for c in settings.cells if len({s.name for s in c.steps} - {"restore"}) >= 2]
    assert len(chains) >= 2
    assert by_name["none"].steps == () and settings.seed == 0 and settings.max_batches is None
    # a cell dropped and one added by override
    fewer = compose_config(
        "eval", "ckpt_path=x", "robustness=journey", "robustness.cells.none=null",
        "+robustness.cells.jpeg_q30=[{step: jpeg, quality: 30}]",
    )  # fmt: skip
    names = [c.name for c in journey_settings(fewer.robustness).cells]
    assert "none" not in names and names[-1] == "jpeg_q30"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("robustness.cells.none=[{step: sharpen}]",
         "robustness.cells.none[0]: step 'sharpen' is unknown; choose from jpeg, resize"),
        ("robustness.cells.none=[{step: jpeg, quality: 101}]",
         "robustness.cells.none[0]: jpeg quality=101 must be a whole number in 1..100"),
        ("robustness.cells.none=[{step: jpeg}]", "robustness.cells.none[0]: jpeg needs quality"),
        ("robustness.cells.none=[{step: blur, radius: 1}]",
         "robustness.cells.none[0]: blur has no parameter radius; it takes sigma"),
        ("robustness.cells.none=[{step: resize, scale: 0.5}]",
         "robustness.cells.none ends at another size than it started: end it with"),
        ("robustness.cells.none=[{step: resize, scale: 0.5, resample: cubic}, {step: restore}]",
         "resize resample='cubic' must be one of nearest, box, bilinear, bicubic, lanczos"),
        ("robustness.cells.none=jpeg", "robustness.cells.none must be a list of steps"),
        ("robustness.cells=null", "robustness.cells must map cell names to lists of steps"),
        ("+robustness.eps=[8/255]", "robustness=journey does not use robustness.eps"),
        ("robustness.seed=-1", "robustness.seed=-1: must be a whole number >= 0"),
        ("robustness.max_batches=0", "robustness.max_batches=0: must be a whole number >= 1"),
        ("robustness.protocol=jorney",
         "robustness.protocol=jorney: must be one of attacks, journey"),
    ],
)  # fmt: skip
def test_bad_journey_settings_are_refused_in_one_line(override, message, tmp_path):
    cfg = compose_config(
        "eval", f"ckpt_path={known_detector.save_checkpoint(tmp_path / 'k.ckpt')}",
        f"paths.output_dir={tmp_path / 'eval'}", "robustness=journey", override,
    )  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        validate(cfg, "eval")
        check_journey(cfg)  # what pixelproof.eval checks next, before any work
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "eval").exists()


def test_a_cell_refuses_images_that_are_not_8_bit_rgb():
    with pytest.raises(ValueError, match="takes uint8 \\[H, W, 3\\] images, not float64"):
        cell({"step": "jpeg", "quality": 90})(flat(1).astype(float), image_rng(0, 0))
    with pytest.raises(ValueError, match="leaves no cell to score"):
        parse_cells({"none": None})


def test_training_with_the_journey_writes_it_and_its_headline(tmp_path, train_overrides):
    from pixelproof.train import train

    cfg = compose_config(
        "train",
        *train_overrides,
        "robustness=journey",
        "robustness.max_batches=1",
    )
    metrics = train(cfg)
    rows = read_journey(tmp_path / "run" / "journey" / "journey.csv")
    summary = journey_summary(rows)
    assert metrics["journey/mean_ap"] == pytest.approx(summary.mean_ap)
    assert metrics["journey/worst_ap"] == pytest.approx(summary.worst_ap)
    assert metrics["journey/threshold"] == pytest.approx(metrics.get("test/threshold", 0.5))
    # the reals of unseen sources are scored in every cell, outside the generators' mean
    assert {r["generator"] for r in rows} >= {"unseen_sources", "mean"}
    assert "journey/unseen_fpr" in metrics


def test_a_limit_keeps_both_classes_in_proportion():
    from pixelproof.evaluation.journey_report import _spread_indices

    kept = list(_spread_indices(500, 256))  # 250 reals, then 250 fakes
    assert len(kept) <= 256 and sum(i < 250 for i in kept) == pytest.approx(len(kept) / 2, abs=1)
    assert list(_spread_indices(10, None)) == list(range(10)) == list(_spread_indices(10, 20))
