"""RINE's non-adversarial perturbations: deterministic, in [0, 1], the right size and strength."""

import pytest
import torch

from pixelproof.evaluation.perturbations import (
    PERTURBATIONS,
    crop_resize,
    gaussian_blur,
    gaussian_noise,
    jpeg,
    perturbation,
)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("name", "strength"), [("jpeg", 30), ("blur", 1.0), ("noise", 0.05), ("crop", 0.2)]
)
def test_every_perturbation_keeps_shape_and_range_and_is_deterministic(images, name, strength):
    function = PERTURBATIONS[name]
    first = function(images, strength, torch.Generator().manual_seed(1))
    again = function(images, strength, torch.Generator().manual_seed(1))
    assert first.shape == images.shape and first.dtype == images.dtype
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again)
    assert not torch.allclose(first, images, atol=1e-3)  # it changed the images


def test_jpeg_loses_more_at_lower_quality(images):
    errors = [(jpeg(images, q) - images).abs().mean().item() for q in (95, 75, 30, 10)]
    assert errors == sorted(errors)
    flat = torch.full((1, 3, 16, 16), 128 / 255)  # one DC coefficient: survives any quality
    assert torch.allclose(jpeg(flat, 10), flat, atol=1.5 / 255)


def test_blur_keeps_flat_images_and_the_mean_and_smooths_more_with_sigma(images):
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    spread = [gaussian_blur(images, s).std().item() for s in (0.5, 1.0, 2.0)]
    assert spread == sorted(spread, reverse=True)
    assert gaussian_blur(images, 5.0).mean().item() == pytest.approx(images.mean().item(), abs=0.01)


def test_noise_has_the_requested_std_and_std_zero_is_identity():
    mid = torch.full((8, 3, 32, 32), 0.5)
    noisy = gaussian_noise(mid, 10 / 255, torch.Generator().manual_seed(0))
    assert (noisy - mid).std().item() == pytest.approx(10 / 255, rel=0.03)
    assert torch.equal(gaussian_noise(mid, 0.0, torch.Generator().manual_seed(0)), mid)


def test_crop_resize_zooms_in_by_the_cropped_border():
    # a 32x32 image with a 2-pixel white frame: cutting 10 % (2 px a border) removes the frame
    framed = torch.zeros(1, 3, 32, 32)
    framed[..., :2, :] = framed[..., -2:, :] = framed[..., :, :2] = framed[..., :, -2:] = 1.0
    assert crop_resize(framed, 0.1).max() == 0.0
    assert torch.equal(crop_resize(framed, 0.0), framed)
    # 5 % of 32 px is under one pixel a border; at least one pixel goes, so it still changes
    assert not torch.equal(crop_resize(framed, 0.05), framed)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: jpeg(x, 0), "quality 0"),
        (lambda x: gaussian_blur(x, 0.0), "sigma 0.0"),
        (lambda x: gaussian_noise(x, -0.1), "std -0.1"),
        (lambda x: crop_resize(x, 1.0), "fraction 1.0"),
        (lambda x: perturbation("rotate"), "blur, crop, jpeg, noise"),
    ],
)
def test_bad_strengths_are_refused(images, call, message):
    with pytest.raises(ValueError, match=message):
        call(images)
