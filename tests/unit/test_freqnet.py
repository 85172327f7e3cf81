import torch

from pixelproof.models.components.freqnet import (
    FreqNetBlock,
    FreqNetBranch,
    FrequencyConv,
    high_pass_channel,
    high_pass_spatial,
)


def centred_high_pass(x: torch.Tensor, scale: int) -> torch.Tensor:
    """FreqNet's own formulation: zero the central window of the fftshift-ed spectrum."""
    h, w = x.shape[-2:]
    f = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))
    f[..., h // 2 - h // scale : h // 2 + h // scale, w // 2 - w // scale : w // 2 + w // scale] = 0
    return torch.fft.ifft2(torch.fft.ifftshift(f, dim=(-2, -1)), norm="ortho").real


def test_spatial_high_pass_removes_flat_images_and_keeps_checkerboards():
    flat = torch.full((1, 3, 32, 32), 0.7)
    assert high_pass_spatial(flat).abs().max() < 1e-6
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2.0 - 1.0
    checker = checker.expand(1, 3, 32, 32)
    assert torch.allclose(high_pass_spatial(checker), checker, atol=1e-5)


def test_spatial_high_pass_matches_the_centred_formulation():
    torch.manual_seed(0)
    for shape in [(2, 3, 32, 32), (1, 4, 15, 16), (1, 2, 7, 9)]:
        x = torch.randn(shape)
        assert torch.allclose(high_pass_spatial(x, 4), centred_high_pass(x, 4), atol=1e-5)


def test_channel_high_pass():
    const = torch.ones(1, 64, 4, 4)  # constant across channels: only the channel DC term
    assert high_pass_channel(const).abs().max() < 1e-5
    alternating = (torch.arange(64) % 2 * 2.0 - 1.0).view(1, 64, 1, 1).expand(1, 64, 4, 4)
    assert torch.allclose(high_pass_channel(alternating), alternating, atol=1e-5)


def test_frequency_conv_with_identity_weights_is_relu():
    layer = FrequencyConv(4)
    with torch.no_grad():
        eye = torch.eye(4).view(4, 4, 1, 1)
        layer.real.weight.copy_(eye)
        layer.imag.weight.copy_(eye)
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(layer(x), torch.relu(x), atol=1e-5)


def test_block_and_branch_shapes_and_gradients():
    x = torch.rand(2, 16, 32, 32, requires_grad=True)
    assert FreqNetBlock(16, 32, stride=2)(x).shape == (2, 32, 16, 16)
    image = torch.rand(2, 3, 32, 32, requires_grad=True)
    branch = FreqNetBranch(width=16, out_channels=24)
    features = branch(image)
    assert features.shape == (2, 24)
    features.sum().backward()
    assert image.grad.abs().sum() > 0


def test_initialisation_follows_the_authors_code():
    torch.manual_seed(0)
    branch = FreqNetBranch(width=64, out_channels=256)
    # HFRI / HFRFS: torch.randn weights and biases (standard normal)
    for conv in (branch.hfri.conv, branch.block.hfrfs.conv):
        assert abs(conv.weight.std().item() - 1) < 0.15 and abs(conv.bias.std().item() - 1) < 0.3
    # FCL and the rest: Kaiming-normal, fan-out (std sqrt(2 / (out * k * k)))
    real = branch.block.fcl.real.weight
    assert abs(real.std().item() - (2 / 64) ** 0.5) < 0.02
    final = branch.final[0].weight
    assert abs(final.std().item() - (2 / (256 * 9)) ** 0.5) < 0.005
