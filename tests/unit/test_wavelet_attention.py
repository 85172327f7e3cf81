import math

import pytest
import timm
import torch

from pixelproof.models.components.wavelet_attention import WaveletAttention, WaveletPool
from pixelproof.models.components.wavelet_block import WaveletBlock


def test_haar_attention_on_a_hand_computed_input():
    # channel 0: [[1,2],[3,5]] -> LL = 11/2, LH = (1+2-3-5)/2 = -2.5, HL = (1-2+3-5)/2 = -1.5
    # channel 1: constant 4    -> LL = 8,    LH = HL = 0
    x = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]]])
    attended, ll = WaveletAttention()(x)
    weights = torch.softmax(torch.tensor([-2.5 - 1.5, 0.0]), dim=0)  # softmax over channels
    expected = torch.tensor([5.5 * (1 + weights[0]), 8.0 * (1 + weights[1])])
    assert torch.allclose(ll.flatten(), torch.tensor([5.5, 8.0]))
    assert torch.allclose(attended.flatten(), expected)
    assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-6)


def test_hh_band_is_ignored():
    # a pure diagonal (HH) pattern has LH = HL = 0, so the attention is uniform over channels
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(1, 3, 1, 1) + 2.0
    attended, ll = WaveletAttention()(x)
    assert torch.allclose(attended, ll * (1 + 1 / 3))


def test_shapes_gradients_and_odd_sizes():
    x = torch.rand(2, 8, 16, 12, requires_grad=True)
    out = WaveletPool()(x)
    assert out.shape == (2, 8, 8, 6)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even"):
        WaveletPool()(torch.rand(1, 3, 15, 16))


@pytest.mark.parametrize(
    ("name", "strided", "channels"), [("resnet26", "conv2", 256), ("resnet18", "conv1", 64)]
)
def test_wavelet_block_replaces_stride_two_down_sampling(name, strided, channels):
    net = timm.create_model(name, pretrained=False, num_classes=0)
    block = net.layer2[0]
    x = torch.rand(2, channels, 16, 16)
    expected_shape = block(x).shape
    wrapped = WaveletBlock(block)
    assert getattr(block, strided).stride == (1, 1) and block.downsample[0].stride == (1, 1)
    assert wrapped(x).shape == expected_shape == (2, 2 * channels, 8, 8)
    with pytest.raises(ValueError, match="stride 2"):
        WaveletBlock(net.layer1[0])  # a stride-1 block has nothing to replace
