"""Batch training augmentations: each operation, the RNG contract, settings, and the datamodule
hook that applies them only while training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.image_factory import make_cifake_tree, make_image
from lightning import Callback, LightningModule, Trainer
from omegaconf import OmegaConf
from torch import nn

import pixelproof.data.augmentations as augmentations
from pixelproof.data.augmentations import BatchAugmentation
from pixelproof.data.datamodule import ImageDataModule

EVERY_OP = dict(
    rescale_prob=0.5,
    resample_prob=0.5,
    blur_prob=0.5,
    noise_prob=0.5,
    jpeg_prob=0.5,
    hflip_prob=0.5,
)


def _batch(n: int = 8, size: tuple[int, int] = (32, 32)) -> torch.Tensor:
    """Random-noise images (as 8-bit pixels) [n, 3, H, W] in [0, 1]."""
    images = [np.array(make_image(size=size, seed=i)) for i in range(n)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def _high_frequency_energy(x: torch.Tensor) -> float:
    return float(
        (x[..., 1:] - x[..., :-1]).pow(2).sum() + (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum()
    )


# ---------------------------------------------------------------------------------- operations


def test_hflip_is_exact() -> None:
    x = _batch()
    assert torch.equal(BatchAugmentation(hflip_prob=1.0)(x), x.flip(-1))


def test_hflip_picks_images_by_probability() -> None:
    x = _batch(64)
    torch.manual_seed(0)
    out = BatchAugmentation(hflip_prob=0.5)(x)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each image: one or other
    assert 16 < sum(flipped) < 48


def test_blur_lowers_high_frequency_energy() -> None:
    x = _batch()
    out = BatchAugmentation(blur_prob=1.0, blur_sigma=(1.0, 3.0))(x)
    assert out.shape == x.shape and 0 <= out.min() <= out.max() <= 1
    for blurred, image in zip(out, x, strict=True):
        assert _high_frequency_energy(blurred) < 0.5 * _high_frequency_energy(image)


@pytest.mark.parametrize("sigma", [0.0, 0.1])
def test_blur_too_small_to_move_a_pixel_is_identity(sigma: float) -> None:
    x = _batch()
    assert torch.equal(BatchAugmentation(blur_prob=1.0, blur_sigma=(sigma, sigma))(x), x)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_blur_matches_scipy_gaussian_filter(sigma: float) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _batch(2, size=(40, 30))  # not square: both axes are filtered the right way round
    out = BatchAugmentation(blur_prob=1.0, blur_sigma=(sigma, sigma))(x)
    expected = ndimage.gaussian_filter(x.double().numpy(), (0, 0, sigma, sigma), mode="reflect")
    assert np.abs(out.double().numpy() - expected).max() <= 1 / 255


def test_blur_strength_drawn_per_image() -> None:
    x = _batch(1).expand(8, -1, -1, -1)
    out = BatchAugmentation(blur_prob=1.0, blur_sigma=(0.5, 3.0))(x)
    energies = {round(_high_frequency_energy(image), 6) for image in out}
    assert len(energies) == 8


def test_blur_on_an_image_smaller_than_the_kernel() -> None:
    x = _batch(3, size=(4, 4))
    out = BatchAugmentation(blur_prob=1.0, blur_sigma=(3.0, 3.0))(x)
    assert out.shape == x.shape and 0 <= out.min() <= out.max() <= 1
    assert torch.allclose(out.mean((-1, -2)), x.mean((-1, -2)), atol=0.1)  # a blur, not a shift


def test_noise_has_its_std_and_stays_in_range() -> None:
    grey = torch.full((16, 3, 32, 32), 0.5)
    out = BatchAugmentation(noise_prob=1.0, noise_std=(0.05, 0.05))(grey)
    assert abs((out - grey).std().item() - 0.05) < 0.002
    assert abs((out - grey).mean().item()) < 0.002
    strong = BatchAugmentation(noise_prob=1.0, noise_std=(0.5, 0.5))(_batch())
    assert strong.min() == 0 and strong.max() == 1  # clipped, and the clip is reached


def test_noise_std_drawn_per_image() -> None:
    grey = torch.full((32, 3, 32, 32), 0.5)
    torch.manual_seed(0)
    stds = (BatchAugmentation(noise_prob=1.0, noise_std=(0.0, 0.1))(grey) - grey).std((1, 2, 3))
    assert stds.min() < 0.03 and stds.max() > 0.07 and stds.max() < 0.105


def test_jpeg_changes_pixels_keeps_shape_and_range() -> None:
    x = _batch()
    out = BatchAugmentation(jpeg_prob=1.0, jpeg_quality=(30, 60))(x)
    assert out.shape == x.shape and out.dtype == x.dtype and 0 <= out.min() <= out.max() <= 1
    assert all(not torch.equal(o, i) for o, i in zip(out, x, strict=True))
    assert torch.equal((out * 255).round(), out * 255)  # decoded 8-bit pixels


def test_jpeg_quality_sets_the_error() -> None:
    # smooth pictures: on pixel noise even q=100 errs, as its colours are subsampled 4:2:0
    x = F.interpolate(_batch(8, size=(4, 4)), size=32, mode="bilinear")
    error = {
        q: (BatchAugmentation(jpeg_prob=1.0, jpeg_quality=(q, q))(x) - x).abs().mean().item()
        for q in (10, 100)
    }
    assert error[100] < 0.02 and error[10] > 3 * error[100]


def test_jpeg_quality_range_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[int] = []
    original = augmentations.encode_jpeg

    def encode(image: torch.Tensor, quality: int) -> torch.Tensor:
        used.append(quality)
        return original(image, quality=quality)

    monkeypatch.setattr(augmentations, "encode_jpeg", encode)
    BatchAugmentation(jpeg_prob=1.0, jpeg_quality=(40, 42))(_batch(64))
    assert len(used) == 64 and set(used) == {40, 41, 42}


def test_rescale_keeps_shape_and_scale_one_is_identity() -> None:
    x = _batch()
    out = BatchAugmentation(rescale_prob=1.0, rescale_scale=(1.0, 1.0))(x)
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=1e-6)


def test_rescale_zooms_into_a_window() -> None:
    # a horizontal ramp: zooming in by 1/s makes its slope s times the original
    ramp = ((torch.arange(32) + 0.5) / 32).expand(4, 3, 32, 32)
    out = BatchAugmentation(rescale_prob=1.0, rescale_scale=(0.5, 0.5))(ramp)
    assert out.shape == ramp.shape
    slope = out[..., 1:] - out[..., :-1]
    assert torch.allclose(slope, torch.full_like(slope, 0.5 / 32), atol=1e-5)
    # the window lies inside the image, at a place of its own for each image
    assert out.min() >= ramp.min() - 1e-6 and out.max() <= ramp.max() + 1e-6
    assert len({round(v, 4) for v in out[:, 0, 0, 0].tolist()}) > 1


def test_resample_by_one_is_identity_and_keeps_shape() -> None:
    x = _batch()
    out = BatchAugmentation(resample_prob=1.0, resample_factor=(1.0, 1.0))(x)
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=1e-6)


def test_resample_down_and_up_drops_the_finest_detail_as_pillow_does() -> None:
    from PIL import Image

    x = _batch(4)
    out = BatchAugmentation(resample_prob=1.0, resample_factor=(0.5, 0.5))(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert _high_frequency_energy(out) < 0.5 * _high_frequency_energy(x)
    # a flat area stays flat, and each image is what Pillow's down-up resize gives, to a few
    # grey levels (the filter, bilinear or bicubic, is drawn per image)
    flat = torch.full((2, 3, 32, 32), 0.4)
    assert torch.allclose(BatchAugmentation(resample_prob=1.0)(flat), flat, atol=1e-5)
    pixels = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
    candidates = []
    for pil in (Image.BILINEAR, Image.BICUBIC):
        small = Image.fromarray(pixels).resize((16, 16), pil).resize((32, 32), pil)
        candidates.append(torch.from_numpy(np.asarray(small)).permute(2, 0, 1).float() / 255)
    error = min(float((out[0] - c).abs().mean()) for c in candidates)
    assert error < 4 / 255


def test_resample_draws_a_factor_per_image() -> None:
    torch.manual_seed(0)
    x = _batch(1).expand(16, -1, -1, -1)  # one image, 16 times
    out = BatchAugmentation(resample_prob=1.0, resample_factor=(0.3, 1.0))(x)
    # two filters alone would give at most two different results
    assert len({round(float(v), 5) for v in (out - x).abs().mean(dim=(1, 2, 3))}) > 8


# ---------------------------------------------------------------------------- RNG and batches


def test_seeded_reproducibility() -> None:
    augment, x = BatchAugmentation(**EVERY_OP), _batch(16)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return augment(x)

    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))
    assert not torch.equal(first, x)


@pytest.mark.parametrize(
    "ranges",
    [
        {},
        dict(
            rescale_scale=(0.2, 0.3),
            blur_sigma=(1.0, 2.0),
            noise_std=(0.1, 0.2),
            jpeg_quality=(10, 20),
        ),
    ],
)
def test_probability_zero_is_untouched_and_draws_nothing(ranges: dict) -> None:
    x = _batch()
    state = torch.get_rng_state()
    out = BatchAugmentation(**ranges)(x)
    assert out is x and torch.equal(x, _batch())
    assert torch.equal(torch.get_rng_state(), state)


def test_input_batch_not_changed_in_place() -> None:
    x = _batch()
    BatchAugmentation(**{k: 1.0 for k in EVERY_OP})(x)
    assert torch.equal(x, _batch())


def test_accepts_lists_and_listconfig() -> None:
    cfg = OmegaConf.create({"q": [50, 80], "s": [0.5, 1], "r": [0.6, 0.9], "n": [0, 0.1]})
    augment = BatchAugmentation(
        jpeg_prob=1, jpeg_quality=cfg.q, blur_prob=1, blur_sigma=cfg.s, rescale_scale=cfg.r
    )
    assert augment(_batch()).shape == (8, 3, 32, 32)
    assert augment.jpeg_quality == (50, 80) and augment.rescale_scale == (0.6, 0.9)
    augment = BatchAugmentation(noise_prob=1, noise_std=cfg.n, rescale_scale=[0.6, 0.9])
    assert augment(_batch()).shape == (8, 3, 32, 32) and augment.noise_std == (0.0, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hflip_prob": 1.5}, r"data\.augment\.hflip_prob must be a probability in \[0, 1\]"),
        ({"jpeg_prob": -0.1}, "data.augment.jpeg_prob"),
        ({"blur_prob": "0.5"}, "data.augment.blur_prob"),
        ({"noise_prob": True}, "data.augment.noise_prob"),
        ({"rescale_prob": None}, "data.augment.rescale_prob"),
        ({"jpeg_quality": (0, 90)}, r"data\.augment\.jpeg_quality .*integers.*1 <= low"),
        ({"jpeg_quality": (90, 30)}, "data.augment.jpeg_quality"),
        ({"jpeg_quality": (30, 101)}, "data.augment.jpeg_quality"),
        ({"jpeg_quality": (30.5, 90)}, "data.augment.jpeg_quality"),
        ({"jpeg_quality": 75}, "data.augment.jpeg_quality"),
        ({"blur_sigma": (-1.0, 1.0)}, "data.augment.blur_sigma"),
        ({"blur_sigma": (2.0, 1.0)}, "data.augment.blur_sigma"),
        ({"blur_sigma": (0.0, 1.0, 2.0)}, "data.augment.blur_sigma"),
        ({"blur_sigma": (0.0, float("inf"))}, "data.augment.blur_sigma"),
        ({"noise_std": (0.1, float("nan"))}, "data.augment.noise_std"),
        ({"noise_std": (-0.1, 0.1)}, "data.augment.noise_std"),
        ({"rescale_scale": (0.0, 1.0)}, r"data\.augment\.rescale_scale .*0 < low <= high <= 1"),
        ({"rescale_scale": (0.5, 1.5)}, "data.augment.rescale_scale"),
        ({"rescale_scale": "0.5"}, "data.augment.rescale_scale"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BatchAugmentation(**kwargs)


# ------------------------------------------------------------------------------- datamodule


class _Recorder(Callback):
    """The image batches ``training_step`` and ``validation_step`` receive."""

    def __init__(self) -> None:
        self.train: list[torch.Tensor] = []
        self.val: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train.append(batch[0].clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dl_idx=0) -> None:
        self.val.append(batch[0].clone())


class _Tiny(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 32 * 32, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self.linear(x.flatten(1)).squeeze(1), y)

    def validation_step(self, batch, batch_idx) -> None:
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_datamodule_augments_only_while_training(tmp_path) -> None:
    make_cifake_tree(tmp_path, n_per_class=8, splits=["train"])
    dm = ImageDataModule(tmp_path, val_fraction=0.25, batch_size=4, augment={"hflip_prob": 1.0})
    recorder = _Recorder()
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        callbacks=[recorder],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_Tiny(), datamodule=dm)
    train_images = dm.train_set.images.float() / 255
    val_images = dm.val_set.images.float() / 255
    seen_train, seen_val = torch.cat(recorder.train), torch.cat(recorder.val)
    assert len(seen_train) == 12 and len(seen_val) > 0  # sanity check and epoch-end validation
    assert _rows(seen_train) == _rows(train_images.flip(-1))  # every training image flipped
    assert _rows(seen_val) == _rows(val_images)  # validation as stored
    # outside a trainer's fit, batches pass as they are
    batch = next(iter(dm.train_dataloader()))
    assert dm.on_after_batch_transfer(batch, 0) is batch
