"""Attack specs, the 2-class wrapper, and crafting: budgets, [0,1], modes, inference mode."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixelproof.attacks.craft import craft
from pixelproof.attacks.module_modes import eval_mode, module_modes
from pixelproof.attacks.spec import AttackSpec, attack_spec, format_eps, pixel_value
from pixelproof.attacks.two_class import TwoClassLogits


class MeanIntensityDetector(nn.Module):
    """A detector whose answers are known: logit = weight * (mean intensity - 0.5), so bright
    images are "fake". It records its own mode whenever an attack differentiates through it."""

    def __init__(self, weight: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight))
        self.norm = nn.BatchNorm1d(1, affine=False)  # has train/eval behaviour to get wrong
        self.frozen = nn.Dropout(0.5)  # stands for a frozen part kept in eval mode
        self.modes_under_attack: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            self.modes_under_attack += [m.training for m in self.modules()]
        return self.weight * (x.mean(dim=(1, 2, 3)) - 0.5)


def constant_images(*values: float, size: int = 8) -> torch.Tensor:
    return torch.stack([torch.full((3, size, size), v) for v in values])


@pytest.mark.parametrize(
    ("value", "expected"), [(0.03, 0.03), (1, 1.0), ("8/255", 8 / 255), ("8 / 255", 8 / 255)]
)
def test_pixel_values_accept_floats_and_fractions(value, expected):
    assert pixel_value(value, "attack.eps") == pytest.approx(expected)


def test_attack_spec_parses_configs_and_defaults_alpha():
    assert attack_spec({}) is None and attack_spec(None) is None  # attack=none
    pgd = attack_spec({"name": "pgd", "eps": "8/255", "alpha": None, "steps": 7})
    assert pgd == AttackSpec("pgd", 8 / 255, None, 7, True)
    assert pgd.step_size == pytest.approx(2.5 * (8 / 255) / 7)
    assert pgd.label == "pgd-7 eps=8/255"
    assert attack_spec({"name": "fgsm_rs", "eps": 0.04}).step_size == pytest.approx(0.05)
    assert format_eps(0.03) == "0.03"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "cw", "eps": 0.1}, "attack=fgsm|fgsm_rs|pgd|pgd_l2"),
        ({"name": "pgd", "eps": 8}, r"attack.eps=8/255"),
        ({"name": "pgd", "eps": "eight"}, "not a number"),
        ({"name": "pgd"}, "needs an eps"),
        ({"name": "pgd", "eps": 0.1, "epsilon": 0.1}, "unknown keys"),
        ({"name": "pgd", "eps": 0.1, "steps": 0}, "steps=0"),
    ],
)
def test_bad_attack_configs_say_what_to_pass(config, message):
    with pytest.raises(ValueError, match=message):
        attack_spec(config)


def test_two_class_cross_entropy_is_the_detectors_bce():
    z = torch.tensor([-3.0, -0.2, 0.0, 1.5])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    two_class = TwoClassLogits(lambda x: x)(z)
    ce = F.cross_entropy(two_class, y.long())
    assert ce.item() == pytest.approx(F.binary_cross_entropy_with_logits(z, y).item(), abs=1e-6)


@pytest.mark.parametrize("name", ["fgsm", "fgsm_rs", "pgd"])
def test_linf_attacks_stay_in_the_eps_ball_and_in_unit_range(name):
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    x[:, 0] = 0.0  # pixels at the borders of [0, 1] must stay inside
    x[:, 1] = 1.0
    y = torch.tensor([0.0, 1.0] * 3)
    eps = 8 / 255
    adversarial = craft(MeanIntensityDetector(), AttackSpec(name, eps, steps=3), x, y)
    assert (adversarial - x).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial - x).abs().max() > eps / 2  # it did move


def test_l2_attack_stays_in_the_l2_ball():
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 8, 8) * 0.5 + 0.25, torch.tensor([0.0, 1.0, 0.0, 1.0])
    adversarial = craft(MeanIntensityDetector(), AttackSpec("pgd_l2", 0.5, steps=5), x, y)
    norms = (adversarial - x).flatten(1).norm(dim=1)
    assert norms.max() <= 0.5 + 1e-5 and norms.min() > 0.4


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_an_attack_moves_every_pixel_against_the_label(name):
    """FGSM / PGD on the mean-intensity detector: fakes (bright) get darker by exactly eps,
    reals brighter, so the detector's accuracy falls from 1 to 0 once eps passes the margin."""
    detector = MeanIntensityDetector()
    x, y = constant_images(0.7, 0.3), torch.tensor([1.0, 0.0])
    assert ((detector(x) > 0).float() == y).all()  # clean: both right
    adversarial = craft(detector, AttackSpec(name, 0.25, steps=10), x, y)
    assert torch.allclose(adversarial, constant_images(0.45, 0.55), atol=1e-6)
    assert ((detector(adversarial) > 0).float() != y).all()  # attacked: both wrong


def test_attack_runs_in_eval_mode_and_restores_every_module_mode():
    detector = MeanIntensityDetector().train()
    detector.frozen.eval()  # a part that must stay in eval mode while the rest trains
    before = module_modes(detector)
    craft(detector, AttackSpec("pgd", 0.1, steps=2), constant_images(0.6), torch.ones(1))
    assert detector.modes_under_attack and not any(detector.modes_under_attack)
    assert module_modes(detector) == before
    assert module_modes(detector)["frozen"] is False and module_modes(detector)[""] is True


def test_eval_mode_restores_modes_even_when_the_block_calls_train():
    detector = MeanIntensityDetector().train()
    detector.norm.eval()
    before = module_modes(detector)
    with eval_mode(detector):
        detector.train()  # what torchattacks does after attacking a model that was training
    assert module_modes(detector) == before


def test_craft_works_inside_inference_mode_and_leaves_parameter_gradients_alone():
    detector = MeanIntensityDetector()
    with torch.inference_mode():
        x = constant_images(0.7)  # an inference tensor, as in Lightning's test loop
        adversarial = craft(detector, AttackSpec("fgsm", 0.1), x, torch.ones(1))
    assert torch.allclose(adversarial, constant_images(0.6), atol=1e-6)
    assert detector.weight.grad is None
