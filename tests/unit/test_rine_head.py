"""RINE's trainable head: the official layer layout and the block-importance softmax."""

import pytest
import torch
from torch import nn

from pixelproof.models.components.rine_head import RineHead


def test_importance_is_a_softmax_over_blocks_for_each_feature():
    head = RineHead(num_blocks=5, width=12, nproj=2, proj_dim=8)
    weights = head.block_weights()
    assert weights.shape == (5, 8)
    torch.testing.assert_close(weights.sum(dim=0), torch.ones(8))
    assert not torch.allclose(weights, torch.full_like(weights, 0.2))  # randn start, not uniform


def test_forward_is_q1_then_weighted_sum_over_blocks_then_q2_and_head():
    head = RineHead(num_blocks=4, width=6, nproj=1, proj_dim=3).eval()
    tokens = torch.randn(2, 4, 6)
    logits, embedding = head(tokens)
    pooled = (head.block_weights() * head.q1(tokens)).sum(dim=1)
    torch.testing.assert_close(embedding, head.q2(pooled))
    torch.testing.assert_close(logits, head.classifier(embedding)[:, 0])
    assert logits.shape == (2,) and embedding.shape == (2, 3)


def test_layer_layout_follows_the_official_code():
    head = RineHead(num_blocks=3, width=10, nproj=2, proj_dim=4, dropout=0.5)
    kinds = lambda seq: [type(m).__name__ for m in seq]  # noqa: E731
    block = ["Linear", "ReLU", "Dropout"]
    assert kinds(head.q1) == ["Dropout", *block, *block] == kinds(head.q2)
    assert kinds(head.classifier) == [*block, *block, "Linear"]
    linears = [m for m in head.q1 if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 4), (4, 4)]
    assert all(m.p == 0.5 for m in head.modules() if isinstance(m, nn.Dropout))


def test_wrong_token_shape_and_zero_projections_are_refused():
    with pytest.raises(ValueError, match=r"expected CLS tokens \[B, 3, width\]"):
        RineHead(num_blocks=3, width=10)(torch.randn(2, 4, 10))
    with pytest.raises(ValueError, match="model.nproj=0"):
        RineHead(num_blocks=3, width=10, nproj=0)
