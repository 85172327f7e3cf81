"""The supervised contrastive loss against a direct, loop-by-loop computation."""

import math

import pytest
import torch
import torch.nn.functional as F

from pixelproof.models.components.supcon import supcon_loss


def supcon_by_loops(z: torch.Tensor, labels: list[int], tau: float) -> float:
    """Khosla et al. eq. 2, one view: anchors without positives count as 0 in the mean."""
    n, total = len(labels), 0.0
    for i in range(n):
        others = [a for a in range(n) if a != i]
        denominator = sum(math.exp(float(z[i] @ z[a]) / tau) for a in others)
        positives = [p for p in others if labels[p] == labels[i]]
        for p in positives:
            total -= math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator) / len(positives)
    return total / n


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_matches_the_direct_computation(tau):
    torch.manual_seed(0)
    z = F.normalize(torch.randn(9, 5, dtype=torch.float64), dim=1)
    labels = [0, 1, 1, 0, 2, 1, 0, 0, 1]  # class 2 has a single sample: no positives
    got = supcon_loss(z, torch.tensor(labels, dtype=torch.float64), tau)
    assert float(got) == pytest.approx(supcon_by_loops(z, labels, tau), rel=1e-9)


def test_gradients_are_finite_and_a_lone_sample_costs_nothing():
    z = F.normalize(torch.randn(6, 4), dim=1).requires_grad_()
    supcon_loss(z, torch.tensor([0.0, 1, 0, 1, 1, 0])).backward()
    assert torch.isfinite(z.grad).all()
    assert float(supcon_loss(F.normalize(torch.randn(1, 4), dim=1), torch.tensor([1.0]))) == 0.0


def test_separated_classes_cost_less_than_mixed_ones():
    labels = torch.tensor([0.0, 0, 1, 1])
    separated = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    mixed = torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1]])
    assert supcon_loss(separated, labels) < supcon_loss(mixed, labels)
