"""Adversarial-training objectives for a one-logit detector: TRADES and MART.

Both add to a classification loss a term that pulls the prediction on an adversarial example
towards the prediction on its clean image, and differ in which images it weighs:

* TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
  Accuracy"): ``BCE(clean) + beta * KL(p(x) || p(x_adv))``; ``beta`` trades clean accuracy
  (small) for robustness (large; the paper uses 6).
* MART (Wang et al. 2020, "Improving Adversarial Robustness Requires Revisiting Misclassified
  Examples"): ``BCE_boost(x_adv) + beta * KL(p(x) || p(x_adv)) * (1 - p_y(x))``: the boosted
  cross-entropy on the adversarial example, and the KL term weighed up on the images the model
  gets wrong when clean.

With one logit ``z`` the prediction is the Bernoulli ``p = sigmoid(z)``: the two-class softmax
of ``[-z/2, z/2]`` that attacks see (:mod:`pixelproof.attacks.two_class`), so these are the
papers' losses for two classes.
"""

import torch
import torch.nn.functional as F


def bernoulli_kl(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """Per-image ``KL(sigmoid(clean) || sigmoid(adv))`` (natural log), computed from log-sigmoids
    so that saturated logits stay finite."""
    log_p, log_not_p = F.logsigmoid(clean_logits), F.logsigmoid(-clean_logits)
    log_q, log_not_q = F.logsigmoid(adv_logits), F.logsigmoid(-adv_logits)
    return log_p.exp() * (log_p - log_q) + log_not_p.exp() * (log_not_p - log_not_q)


def trades_term(clean_logits: torch.Tensor, adv_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """What TRADES adds to the clean loss: ``beta`` x mean KL(clean || adversarial)."""
    return beta * bernoulli_kl(clean_logits, adv_logits).mean()


def mart_loss(
    clean_logits: torch.Tensor, adv_logits: torch.Tensor, labels: torch.Tensor, beta: float
) -> torch.Tensor:
    """MART, per image then averaged: the boosted BCE on the adversarial image (BCE plus
    ``-log(1.0001 - p_other)``, the margin term of the paper's code) + ``beta`` x KL(clean ||
    adversarial) x (1 - the clean probability of the true class)."""
    p_true_adv = torch.where(labels > 0.5, adv_logits.sigmoid(), (-adv_logits).sigmoid())
    boosted = F.binary_cross_entropy_with_logits(adv_logits, labels, reduction="none")
    boosted = boosted - torch.log(1.0001 - (1 - p_true_adv))
    p_true_clean = torch.where(labels > 0.5, clean_logits.sigmoid(), (-clean_logits).sigmoid())
    robust = bernoulli_kl(clean_logits, adv_logits) * (1 - p_true_clean)
    return (boosted + beta * robust).mean()


LOSSES = ("trades", "mart")
