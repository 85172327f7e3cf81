"""experiments/adversarial/pareto.py: the threshold shift the attacks aim at, the front, the
flags it reports and the plan it reads."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "adversarial" / "pareto.py"
spec = importlib.util.spec_from_file_location("pareto", SCRIPT)
pareto = importlib.util.module_from_spec(spec)
sys.modules["pareto"] = pareto
spec.loader.exec_module(pareto)


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.87])
def test_at_threshold_calls_fake_exactly_where_p_reaches_the_threshold(threshold):
    logits = torch.linspace(-4, 4, 801)
    shifted = pareto.AtThreshold(Identity(), threshold)(logits)
    away = (logits.sigmoid() - threshold).abs() > 1e-4  # not on the boundary itself
    assert torch.equal((shifted >= 0)[away], (logits.sigmoid() >= threshold)[away])
    assert float(shifted[0] - logits[0]) == pytest.approx(-math.log(threshold / (1 - threshold)))


def test_front_keeps_the_points_no_other_beats_on_both_axes():
    rows = [
        {"point": "clean", "clean": 0.98, "apgd_2": 0.00},
        {"point": "a", "clean": 0.90, "apgd_2": 0.60},
        {"point": "dominated", "clean": 0.85, "apgd_2": 0.55},
        {"point": "b", "clean": 0.80, "apgd_2": 0.70},
        {"point": "tie_of_a", "clean": 0.90, "apgd_2": 0.60},
    ]
    assert pareto.front(rows) == ["clean", "a", "b", "tie_of_a"]


def test_mean_flags_leaves_out_the_per_generator_findings():
    rows = [
        {"condition": "clean", "dcgan/acc": 1.0, "flags": ""},
        {"condition": "pgd", "dcgan/acc": 0.5, "flags": "large-eps: ACC 0.1; dcgan: large-eps: x"},
        {"condition": "apgd", "dcgan/acc": 0.5, "flags": "dcgan: eps-monotone: y"},
    ]
    assert pareto.mean_flags(rows) == "large-eps"
    assert pareto.mean_flags(rows[:1]) == "none"


def test_the_plan_names_overrides_for_every_point_and_a_clean_reference():
    plan = yaml.safe_load(pareto.PLAN.read_text())
    assert plan["points"]["clean"] == []
    assert all(overrides for name, overrides in plan["points"].items() if name != "clean")
    assert plan["images_per_generator"] * 6 >= 1000  # the size for the front
    assert pareto.margin(0.5, 1008) == pytest.approx(0.0309, abs=1e-3)
