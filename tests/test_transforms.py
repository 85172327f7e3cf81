"""Resize policy and the seeded training augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_factory import make_image
from omegaconf import OmegaConf
from PIL import Image
from torchvision.transforms import v2

from pixelproof.data.transforms import RandomSigmaGaussianBlur, ResizePolicy, build_transform

ALL_AUGMENTATIONS = dict(hflip_prob=1.0, jpeg_prob=1.0, blur_prob=1.0, blur_sigma=(1.0, 2.0))


def _as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def _same_pixels(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal as 8-bit images (float scaling by 1/255 may differ in the last bit)."""
    return a.shape == b.shape and torch.equal((a * 255).round(), (b * 255).round())


def _high_frequency_energy(x: torch.Tensor) -> float:
    return float(
        (x[..., 1:] - x[..., :-1]).pow(2).sum() + (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum()
    )


def test_eval_is_plain_and_deterministic() -> None:
    image = make_image()
    transform = build_transform(train=False, **ALL_AUGMENTATIONS)
    out = transform(image)
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (3, 32, 32)
    assert _same_pixels(out, _as_tensor(image))  # exact pixels: no augmentation, no normalisation
    assert torch.equal(out, transform(image))


def test_target_size_untouched_by_every_policy() -> None:
    image = make_image()
    for mode in ("resize", "center_crop", "none"):
        assert _same_pixels(build_transform(resize_mode=mode)(image), _as_tensor(image))


@pytest.mark.parametrize("resize_mode", ["resize", "center_crop"])
@pytest.mark.parametrize("size", [(100, 60), (16, 16), (20, 40)])
def test_other_sizes_resized(resize_mode: str, size: tuple[int, int]) -> None:
    out = build_transform(resize_mode=resize_mode)(make_image(size=size))
    assert out.shape == (3, 32, 32) and 0 <= out.min() <= out.max() <= 1


def test_none_policy_rejects_other_sizes() -> None:
    with pytest.raises(ValueError, match="100x60"):
        build_transform(resize_mode="none")(make_image(size=(100, 60)))


def test_resize_keeps_whole_image_center_crop_keeps_middle() -> None:
    pixels = np.zeros((32, 64, 3), dtype=np.uint8)  # 64 wide: bright middle, dark sides
    pixels[:, 16:48] = 200
    image = Image.fromarray(pixels)
    cropped = build_transform(resize_mode="center_crop")(image)
    assert torch.allclose(cropped, torch.full_like(cropped, 200 / 255))
    squashed = build_transform(resize_mode="resize")(image)
    assert squashed[:, :, 0].max() < 0.1 and squashed[:, :, 16].min() > 0.7


def test_resize_antialiases() -> None:
    # A 1-pixel checkerboard must average to grey, not alias into stripes.
    board = (np.indices((128, 128)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = Image.fromarray(np.repeat(board[..., None], 3, axis=-1))
    out = build_transform(resize_mode="resize")(image)
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=0.05)


def test_hflip_flips_exactly() -> None:
    image = make_image()
    out = build_transform(train=True, hflip_prob=1.0)(image)
    assert _same_pixels(out, _as_tensor(image).flip(-1))


def test_jpeg_changes_pixels_keeps_shape() -> None:
    image = make_image()
    out = build_transform(train=True, jpeg_prob=1.0, jpeg_quality=(30, 60))(image)
    assert out.shape == (3, 32, 32)
    assert not _same_pixels(out, _as_tensor(image))


def test_blur_lowers_high_frequency_energy() -> None:
    image = make_image()
    out = build_transform(train=True, blur_prob=1.0, blur_sigma=(1.0, 3.0))(image)
    assert out.shape == (3, 32, 32)
    assert _high_frequency_energy(out) < 0.5 * _high_frequency_energy(_as_tensor(image))


def test_zero_sigma_blur_is_identity() -> None:
    image = make_image()
    assert RandomSigmaGaussianBlur((0.0, 0.0))(image) is image
    out = build_transform(train=True, blur_prob=1.0, blur_sigma=(0.0, 0.0))(image)
    assert _same_pixels(out, _as_tensor(image))


def test_blur_on_tiny_image() -> None:
    out = build_transform(train=True, blur_prob=1.0, blur_sigma=(3.0, 3.0))(make_image(size=(4, 4)))
    assert out.shape == (3, 32, 32)


def test_augmentation_order() -> None:
    steps = build_transform(train=True, **ALL_AUGMENTATIONS).transforms
    kinds = [type(s.transforms[0]) if isinstance(s, v2.RandomApply) else type(s) for s in steps]
    assert kinds[:4] == [RandomSigmaGaussianBlur, v2.JPEG, ResizePolicy, v2.RandomHorizontalFlip]


def test_seeded_reproducibility() -> None:
    image = make_image(size=(48, 40))
    transform = build_transform(
        train=True, hflip_prob=0.5, jpeg_prob=0.5, blur_prob=0.5, jpeg_quality=(30, 90)
    )

    def run(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [transform(image) for _ in range(6)]

    first, second = run(0), run(0)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    other = run(1)
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_accepts_lists_and_listconfig() -> None:
    cfg = OmegaConf.create({"q": [50, 80], "s": [0.5, 1]})
    transform = build_transform(train=True, jpeg_prob=1, jpeg_quality=cfg.q, blur_sigma=cfg.s)
    assert transform(make_image()).shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": 32.0}, "image_size"),
        ({"resize_mode": "stretch"}, "resize_mode"),
        ({"hflip_prob": 1.5}, "hflip_prob"),
        ({"jpeg_prob": -0.1}, "jpeg_prob"),
        ({"blur_prob": "0.5"}, "blur_prob"),
        ({"jpeg_quality": (0, 90)}, "jpeg_quality"),
        ({"jpeg_quality": (90, 30)}, "jpeg_quality"),
        ({"jpeg_quality": (30, 101)}, "jpeg_quality"),
        ({"jpeg_quality": (30.5, 90)}, "jpeg_quality"),
        ({"jpeg_quality": 75}, "jpeg_quality"),
        ({"blur_sigma": (-1.0, 1.0)}, "blur_sigma"),
        ({"blur_sigma": (2.0, 1.0)}, "blur_sigma"),
        ({"blur_sigma": (0.0, 1.0, 2.0)}, "blur_sigma"),
        ({"blur_sigma": (0.0, float("inf"))}, "blur_sigma"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_transform(**kwargs)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_blur_matches_scipy_gaussian_filter(sigma: float) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    image = make_image(size=(40, 30))
    pixels = np.asarray(image, dtype=np.float64)
    expected = np.stack([ndimage.gaussian_filter(pixels[..., c], sigma) for c in range(3)], -1)
    blurred = np.asarray(RandomSigmaGaussianBlur((sigma, sigma))(image), dtype=np.float64)
    assert np.abs(blurred - np.clip(np.rint(expected), 0, 255)).max() <= 1
