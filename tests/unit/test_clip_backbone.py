"""The frozen CLIP backbone: loading by path, per-block CLS tokens, resizing, freezing, errors."""

import hydra
import pytest
import torch
import torch.nn.functional as F
from helpers.configs import compose_config
from transformers import CLIPModel, CLIPTextConfig, CLIPTextModel
from transformers.image_utils import OPENAI_CLIP_MEAN

from pixelproof.models.components.clip_backbone import CLIPBackbone


@pytest.fixture(scope="module")
def backbone(tiny_clip_dir) -> CLIPBackbone:
    return CLIPBackbone(str(tiny_clip_dir))


def test_loads_the_vision_tower_and_preprocessing_of_a_local_checkpoint(backbone, tiny_clip_dir):
    saved = CLIPModel.from_pretrained(tiny_clip_dir).vision_model.state_dict()
    loaded = backbone.vision.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)  # real weights, not random ones
    assert backbone.mean.flatten().tolist() == pytest.approx([0.5, 0.4, 0.3])  # processor's
    assert backbone.std.flatten().tolist() == pytest.approx([0.2, 0.25, 0.3])
    assert (backbone.num_blocks, backbone.hidden_size, backbone.input_size) == (3, 32, 32)


def test_cls_tokens_are_each_blocks_layer_norm2_output(backbone):
    images = torch.rand(4, 3, 32, 32)
    tokens = backbone(images)
    # Independently: each block's input (hidden_states), through its attention half, then
    # its pre-MLP LayerNorm; keep the CLS row.
    vision = backbone.vision
    x = (images - backbone.mean) / backbone.std
    with torch.no_grad():
        states = vision(pixel_values=x, output_hidden_states=True).hidden_states
        expected = []
        for layer, h in zip(vision.encoder.layers, states):
            mid = h + layer.self_attn(layer.layer_norm1(h), attention_mask=None)[0]
            expected.append(layer.layer_norm2(mid)[:, 0])
    assert tokens.shape == (4, 3, 32)
    torch.testing.assert_close(tokens, torch.stack(expected, dim=1))


def test_images_are_resized_inside_to_the_input_size(tiny_clip_dir):
    backbone = CLIPBackbone(str(tiny_clip_dir), input_size=16)  # 2x2 patches + CLS
    small = torch.rand(2, 3, 8, 8)
    up = F.interpolate(small, size=(16, 16), mode="bilinear")
    torch.testing.assert_close(backbone(small), backbone(up))
    assert backbone(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32)


@pytest.mark.parametrize("size", [12, 0, 2.5])
def test_input_size_must_be_a_multiple_of_the_patch_size(tiny_clip_dir, size):
    with pytest.raises(ValueError, match="multiple of the backbone's patch size 8"):
        CLIPBackbone(str(tiny_clip_dir), input_size=size)


def test_bad_image_shape_says_what_was_expected(backbone):
    with pytest.raises(ValueError, match=r"expected images \[B,3,H,W\].*\(2, 1, 32, 32\)"):
        backbone(torch.rand(2, 1, 32, 32))


def test_frozen_and_in_eval_mode_yet_gradients_reach_the_input(backbone):
    backbone.train()
    assert not backbone.vision.training
    assert not any(m.training for m in backbone.vision.modules())
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    tokens = backbone(images)
    # not a plain sum: a LayerNorm's outputs (unit gain) sum to a constant, with zero gradient
    (tokens * torch.randn_like(tokens)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in backbone.parameters())


@pytest.mark.parametrize(
    "preset,shape", [("tinyclip_8m16", (10, 256, 16)), ("tinyclip_40m32", (12, 512, 32))]
)
def test_presets_build_a_random_tower_offline(preset, shape):
    cfg = compose_config(
        "train",
        "model=rine_tinyclip",
        f"model/backbone={preset}",
        "model.backbone.pretrained=false",
    )
    backbone = hydra.utils.instantiate(cfg.model.backbone)
    assert (backbone.num_blocks, backbone.hidden_size, backbone.patch_size) == shape
    assert backbone.input_size == 224
    assert backbone.mean.flatten().tolist() == pytest.approx(OPENAI_CLIP_MEAN)


def test_unreachable_hub_is_one_line_naming_the_local_path_option(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as err:
        CLIPBackbone("pixelproof-tests/TinyCLIP-not-cached")
    message = str(err.value)
    assert "\n" not in message and "Hub is offline or unreachable" in message
    assert "model.backbone.name_or_path=/local/dir" in message
    assert "model.backbone.pretrained=false" in message


def test_offline_failure_through_the_config_is_the_same_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_config(
        "train", "model=rine_tinyclip", "model.backbone.name_or_path=pixelproof-tests/not-cached"
    )
    with pytest.raises(Exception, match=r"model.backbone.name_or_path=/local/dir"):
        hydra.utils.instantiate(cfg.model)


def test_missing_local_directory_is_a_clear_error():
    with pytest.raises(
        FileNotFoundError, match="name_or_path=/nowhere/tinyclip: no such directory"
    ):
        CLIPBackbone("/nowhere/tinyclip")


def test_a_checkpoint_without_a_vision_tower_is_refused_not_randomly_filled(tmp_path):
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    CLIPTextModel(CLIPTextConfig(vocab_size=64, **text)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is not a CLIP vision checkpoint"):
        CLIPBackbone(str(tmp_path))
