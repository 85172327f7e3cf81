"""The evaluation / prediction transform: the resize policy, then a float tensor in [0, 1]."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from helpers.image_factory import make_image
from PIL import Image

from pixelproof.data.transforms import build_transform, to_tensor


def _as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def test_plain_and_deterministic() -> None:
    image = make_image()
    transform = build_transform()
    out = transform(image)
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (3, 32, 32)
    assert torch.equal(out, _as_tensor(image))  # exact pixels: no augmentation, no normalisation
    assert torch.equal(out, transform(image))


def test_to_tensor_is_uint8_channels_first() -> None:
    image = make_image(size=(40, 30))
    pixels = to_tensor(image)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 30, 40)
    assert torch.equal(pixels, torch.from_numpy(np.array(image)).permute(2, 0, 1))


def test_target_size_untouched_by_every_policy() -> None:
    image = make_image()
    for mode in ("resize", "center_crop", "none"):
        assert torch.equal(build_transform(resize_mode=mode)(image), _as_tensor(image))


@pytest.mark.parametrize("resize_mode", ["resize", "center_crop"])
@pytest.mark.parametrize("size", [(100, 60), (16, 16), (20, 40)])
def test_other_sizes_resized(resize_mode: str, size: tuple[int, int]) -> None:
    out = build_transform(resize_mode=resize_mode)(make_image(size=size))
    assert out.shape == (3, 32, 32) and 0 <= out.min() <= out.max() <= 1


def test_other_image_size() -> None:
    assert build_transform(image_size=24)(make_image()).shape == (3, 24, 24)


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


def test_picklable_for_dataloader_workers() -> None:
    transform = pickle.loads(pickle.dumps(build_transform(24, "center_crop")))
    assert transform(make_image(size=(50, 40))).shape == (3, 24, 24)
    assert "center_crop" in repr(transform)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": 32.0}, "image_size"),
        ({"image_size": True}, "image_size"),
        ({"resize_mode": "stretch"}, "resize_mode"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_transform(**kwargs)
