import pytest
import torch

from pixelproof.models.components.wavefreq_resnet import WaveFreqResNet
from pixelproof.models.components.wavelet_block import WaveletBlock


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return WaveFreqResNet().eval()


def test_one_logit_per_image_with_gradients_to_the_input(resnet50):
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    logits = resnet50(x)
    assert logits.shape == (3,)
    logits.sum().backward()  # adversarial attacks need this
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("stem_pools, layer1_grid", [(2, 8), (1, 16)])
def test_resnet50_size_and_32x32_wiring(stem_pools, layer1_grid):
    resnet50 = WaveFreqResNet(stem_pools=stem_pools).eval()
    params = sum(p.numel() for p in resnet50.parameters())
    assert 23e6 < params < 26e6  # the Team 57 report gives 24.8M
    grids = {}

    def record(name):
        def hook(module, inputs, output):
            grids[name] = output.shape[-1]

        return hook

    names = ["layer1", "layer2", "layer3", "layer4"]
    handles = [getattr(resnet50.spatial, n).register_forward_hook(record(n)) for n in names]
    resnet50(torch.rand(1, 3, 32, 32))
    for handle in handles:
        handle.remove()
    g = layer1_grid
    assert grids == {"layer1": g, "layer2": g // 2, "layer3": g // 4, "layer4": g // 8}


def test_normalises_internally_with_its_own_mean_and_std(resnet50):
    raw = WaveFreqResNet(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).eval()
    raw.load_state_dict(resnet50.state_dict())  # same weights, identity normalisation
    x = torch.rand(2, 3, 32, 32)
    normalised = (x - resnet50.mean) / resnet50.std
    assert torch.allclose(resnet50(x), raw(normalised), atol=1e-5)
    assert not torch.allclose(resnet50(x), raw(x), atol=1e-3)


def test_a_small_basic_block_member_of_the_family_from_a_spec():
    spec = {"block": "basic", "layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128]}
    small = WaveFreqResNet(backbone=spec, stem_pools=1, freq_width=8, freq_channels=32).eval()
    assert small.spatial.num_features == 128
    assert isinstance(small.spatial.layer4[0], WaveletBlock)
    assert small(torch.rand(2, 3, 32, 32)).shape == (2,)
    assert sum(p.numel() for p in small.parameters()) < 0.5e6
    with pytest.raises(ValueError, match="block='dense': choose basic or bottleneck"):
        WaveFreqResNet(backbone={**spec, "block": "dense"})


@pytest.mark.parametrize("branches", [["spatial"], ["frequency"]])
def test_one_branch_alone_for_the_branch_ablation(branches):
    spec = {"block": "basic", "layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64]}
    net = WaveFreqResNet(backbone=spec, freq_width=8, freq_channels=16, branches=branches)
    assert (net.spatial is None) == ("spatial" not in branches)
    assert (net.frequency is None) == ("frequency" not in branches)
    assert net.head[1].in_features == (64 if branches == ["spatial"] else 16)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2,)
    with pytest.raises(ValueError, match="branches=\\['colour'\\]"):
        WaveFreqResNet(backbone=spec, branches=["colour"])
