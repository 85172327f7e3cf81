"""Attack specs, the 2-class wrapper, and crafting: budgets, [0,1], modes, inference mode; APGD-CE
and Square on a detector with known answers, and N-FGSM's perturbation statistics."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers.detectors import MeanIntensityDetector, constant_images
from omegaconf import OmegaConf
from torch import nn

from pixelproof.attacks.craft import craft
from pixelproof.attacks.module_modes import eval_mode, module_modes
from pixelproof.attacks.spec import ATTACKS, AttackSpec, attack_spec, format_eps, pixel_value
from pixelproof.attacks.two_class import TwoClassLogits


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
        (
            {"name": "cw", "eps": 0.1},
            r"attack=fgsm\|fgsm_rs\|pgd\|pgd_l2\|tpgd\|nfgsm\|apgd\|square",
        ),
        ({"name": "pgd", "eps": 8}, r"attack.eps=8/255"),
        ({"name": "pgd", "eps": "eight"}, "attack.eps=eight: must be a number >= 0"),
        ({"name": "pgd"}, "needs an eps"),
        ({"name": "pgd", "eps": 0.1, "epsilon": 0.1}, "unknown keys"),
        ({"name": "pgd", "eps": 0.1, "steps": 0}, "steps=0"),
        (
            {"name": "apgd", "eps": 0.1, "alpha": 0.01},
            r"apgd does not use \['alpha'\] \(it takes eps, steps, n_restarts\)",
        ),
        ({"name": "fgsm", "eps": 0.1, "steps": 3}, r"fgsm does not use \['steps'\]"),
        ({"name": "square", "eps": 0.1, "n_queries": 0}, "n_queries=0: must be a whole"),
        ({"name": "apgd", "eps": 0.1, "n_restarts": 0}, "n_restarts=0: must be a whole"),
        ({"name": "nfgsm", "eps": 0.1, "k": -1}, "k=-1: must be a number >= 0"),
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


@pytest.mark.parametrize("name", ["fgsm", "fgsm_rs", "pgd", "tpgd", "apgd", "square"])
def test_linf_attacks_stay_in_the_eps_ball_and_in_unit_range(name):
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    x[:, 0] = 0.0  # pixels at the borders of [0, 1] must stay inside
    x[:, 1] = 1.0
    y = torch.tensor([0.0, 1.0] * 3)
    eps = 8 / 255
    spec = AttackSpec(name, eps, steps=3, n_queries=50)
    adversarial = craft(MeanIntensityDetector(), spec, x, y)
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


def test_autoattack_specs_parse_and_label_themselves():
    apgd = attack_spec({"name": "apgd", "eps": "4/255", "steps": 20, "n_restarts": 2})
    assert apgd == AttackSpec("apgd", 4 / 255, steps=20, n_restarts=2)
    assert apgd.label == "apgd-ce-20x2 eps=4/255" and apgd.gradients
    assert attack_spec({"name": "apgd", "eps": 0.1, "steps": 5}).label == "apgd-ce-5 eps=0.1"
    square = attack_spec({"name": "square", "eps": "8/255", "n_queries": 300})
    assert square.label == "square-300 eps=8/255" and not square.gradients
    nfgsm = attack_spec({"name": "nfgsm", "eps": "8/255", "alpha": None, "k": 2})
    assert nfgsm.label == "nfgsm eps=8/255" and nfgsm.step_size == pytest.approx(8 / 255)
    assert [name for name, kind in ATTACKS.items() if not kind.gradients] == ["square"]


def accuracy(detector, x, y) -> float:
    with torch.no_grad():
        return ((detector(x) > 0).float() == y).float().mean().item()


@pytest.mark.parametrize("name", ["apgd", "square"])
def test_autoattack_stages_on_a_detector_with_known_answers(name):
    """Flat images at 0.65 (fake) and 0.35 (real): the mean-intensity detector's margin is 0.15.
    No attack can cross it with eps 0.1; APGD must with eps 0.3 (the white-box optimum moves
    every pixel by eps against the label), Square, a random search, with eps 0.5."""
    detector = MeanIntensityDetector()
    x, y = constant_images(0.65, 0.65, 0.35, 0.35, size=16), torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert accuracy(detector, x, y) == 1.0
    for eps, expected in [(0.1, 1.0), (0.3 if name == "apgd" else 0.5, 0.0)]:
        torch.manual_seed(0)
        queries = 300 if expected == 0 else 30  # nothing to find at eps 0.1: a short search
        adversarial = craft(detector, AttackSpec(name, eps, steps=10, n_queries=queries), x, y)
        assert accuracy(detector, adversarial, y) == expected
        assert (adversarial - x).abs().max() <= eps + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1
    if name == "apgd":  # step-size free, it still lands on the white-box optimum
        torch.testing.assert_close(adversarial, constant_images(0.35, 0.35, 0.65, 0.65, size=16))


@pytest.mark.parametrize("name", ["apgd", "square"])
def test_autoattack_stages_attack_every_image_not_only_those_they_fool(name):
    """torchattacks hands back the clean image of every image APGD / Square did not fool and
    never attacks a misclassified one; here each image gets its attacked version, so scores
    (AP) under attack are scores of attacked images. Fake 0.65 and real 0.35 cannot be fooled
    at eps 0.1; the real at 0.55 is already wrong."""
    detector = MeanIntensityDetector()
    x, y = constant_images(0.65, 0.35, 0.55, size=16), torch.tensor([1.0, 0.0, 0.0])
    torch.manual_seed(0)
    adversarial = craft(detector, AttackSpec(name, 0.1, steps=10, n_queries=50), x, y)
    clean_z, adv_z = detector(x).detach(), detector(adversarial).detach()
    # the two robust images are pushed towards the boundary (still right), the wrong one further
    assert adv_z[0] < clean_z[0] and adv_z[1] > clean_z[1] and adv_z[2] > clean_z[2]
    assert accuracy(detector, adversarial, y) == pytest.approx(2 / 3)
    if name == "apgd":  # the highest-loss point: every pixel eps against the label
        torch.testing.assert_close(adversarial, constant_images(0.55, 0.45, 0.65, size=16))


def test_square_queries_the_model_without_gradients():
    detector = MeanIntensityDetector()
    grad_modes = []
    detector.register_forward_pre_hook(
        lambda module, args: grad_modes.append((torch.is_grad_enabled(), args[0].requires_grad))
    )
    x, y = constant_images(0.6, 0.4, size=16), torch.tensor([1.0, 0.0])
    craft(detector, AttackSpec("square", 0.2, n_queries=100), x, y)
    assert len(grad_modes) > 2 and not any(enabled or req for enabled, req in grad_modes)
    assert detector.weight.grad is None


@pytest.mark.parametrize("name", ["apgd", "square"])
def test_autoattack_stages_are_reproducible_and_leave_the_global_rng_alone(name):
    """torchattacks reseeds the global RNG with a fixed seed on every call; here the attack
    takes one draw from it for its own seed and runs on a forked RNG."""
    detector, spec = MeanIntensityDetector(), AttackSpec(name, 0.1, steps=5, n_queries=30)
    x, y = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.ones(4)
    torch.manual_seed(5)
    first, after = craft(detector, spec, x, y), torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(craft(detector, spec, x, y), first)
    torch.manual_seed(5)
    torch.randint(0, 2**31 - 1, ())  # the attack's one draw
    assert torch.equal(torch.rand(3), after)


class LinearDetector(nn.Module):
    """logit = <w, x - 0.5> with a random w: every pixel's gradient sign is its own."""

    def __init__(self, shape=(3, 8, 8)) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - 0.5) * self.w).sum(dim=(1, 2, 3))


def test_nfgsm_noise_is_k_eps_wide_and_is_not_projected_back():
    """Images in [0.4, 0.6] and eps 4/255, k = 2: nothing reaches 0 or 1, so the perturbation
    is uniform noise in [-2 eps, 2 eps] plus one step of eps against the label along
    sign(w): up to 3 eps, not clipped to eps, centred on 0."""
    eps, k = 4 / 255, 2.0
    detector = LinearDetector()
    torch.manual_seed(0)
    x = 0.4 + 0.2 * torch.rand(64, 3, 8, 8)
    y = torch.tensor([0.0, 1.0] * 32)
    delta = craft(detector, AttackSpec("nfgsm", eps, k=k), x, y) - x
    step = eps * detector.w.detach().sign() * (1 - 2 * y).view(-1, 1, 1, 1)  # raises the BCE
    noise = delta - step
    assert delta.abs().max() <= (k + 1) * eps + 1e-6
    assert delta.abs().max() > 2.9 * eps  # it reaches (k + 1) eps: no projection onto eps
    assert (delta.abs() > eps).float().mean() == pytest.approx(0.5, abs=0.03)  # P(|u + 1| > 1)
    assert delta.mean().abs() < 0.02 * eps
    assert noise.abs().max() <= k * eps + 1e-6 and noise.mean().abs() < 0.02 * eps
    assert noise.std() == pytest.approx(k * eps / 3**0.5, rel=0.03)  # uniform on [-2 eps, 2 eps]


def test_nfgsm_keeps_images_in_unit_range_and_with_k_zero_is_fgsm():
    detector, eps = LinearDetector(), 8 / 255
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    x[:, 0] = 0.0
    x[:, 1] = 1.0
    y = torch.tensor([0.0, 1.0] * 4)
    adversarial = craft(detector, AttackSpec("nfgsm", eps), x, y)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    fgsm = craft(detector, AttackSpec("fgsm", eps), x, y)
    assert torch.equal(craft(detector, AttackSpec("nfgsm", eps, k=0.0), x, y), fgsm)
    # alpha is its own: k = 0, alpha = eps / 2 is FGSM of eps / 2
    half = craft(detector, AttackSpec("nfgsm", eps, alpha=eps / 2, k=0.0), x, y)
    assert torch.equal(half, craft(detector, AttackSpec("fgsm", eps / 2), x, y))


def test_every_attack_config_parses():
    conf = Path(__file__).resolve().parents[2] / "conf" / "attack"
    for path in sorted(conf.glob("*.yaml")):
        spec = attack_spec(dict(OmegaConf.load(path)), f"conf/attack/{path.name}")
        assert spec is None if path.stem == "none" else spec.name == path.stem
    assert attack_spec(dict(OmegaConf.load(conf / "apgd.yaml"))).label == "apgd-ce-50 eps=8/255"
