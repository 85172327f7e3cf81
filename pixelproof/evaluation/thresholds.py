"""Decision thresholds on p(fake): fixed 0.5 (the convention of the papers and of the Team 57 and
Team 91 reports), the threshold of best accuracy, the equal-error point where real and fake
images are misclassified alike, or the threshold that calls a chosen fraction of real images
fake (a target false-positive rate: what a user who must not accuse real photographs asks for,
and the only rule that needs no fakes, whose mix changes with every new generator).

A threshold ``t`` means "fake when p >= t", torchmetrics' convention.
"""

import math
from typing import Literal

import torch
from torchmetrics.functional.classification import binary_roc

Method = Literal["fixed", "best_acc", "eer", "target_fpr"]
METHODS: tuple[str, ...] = ("fixed", "best_acc", "eer", "target_fpr")


def _roc(probs: torch.Tensor, labels: torch.Tensor):
    """Every distinct threshold with its false- and true-positive rates (highest threshold
    first); degenerate single-class inputs still give the two trivial end points."""
    fpr, tpr, thresholds = binary_roc(probs.float(), labels.int())
    # torchmetrics puts a sentinel of 1.0 first (nothing is called fake above the highest
    # score); make it strictly above every score so that end point really is "all real" -
    # except where a score is already 1.0: a threshold must stay a probability (in [0, 1]).
    thresholds = thresholds.clone()
    above_all = torch.nextafter(probs.max().float(), torch.tensor(float("inf")))
    thresholds[0] = above_all.clamp(max=1.0)
    return fpr, tpr, thresholds


def accuracy_curve(probs: torch.Tensor, labels: torch.Tensor):
    """``(thresholds, accuracies)`` over every threshold that changes a decision."""
    fpr, tpr, thresholds = _roc(probs, labels)
    positives = labels.sum().float()
    negatives = labels.numel() - positives
    accuracy = (tpr * positives + (1 - fpr) * negatives) / labels.numel()
    return thresholds, accuracy


def best_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """``(accuracy, threshold)`` at the threshold that maximises accuracy on these scores: the
    "oracle" accuracy UFD reports next to ACC@0.5. Ties go to the threshold closest to 0.5."""
    thresholds, accuracy = accuracy_curve(probs, labels)
    best = accuracy.max()
    candidates = torch.nonzero(accuracy == best).flatten()
    pick = candidates[(thresholds[candidates] - 0.5).abs().argmin()]
    return float(best), float(thresholds[pick])


def equal_error_threshold(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold where the false-positive rate (reals called fake) and the false-negative
    rate (fakes called real) are closest."""
    fpr, tpr, thresholds = _roc(probs, labels)
    return float(thresholds[(fpr - (1 - tpr)).abs().argmin()])


def target_fpr_threshold(real_probs: torch.Tensor, target_fpr: float) -> float:
    """A threshold that calls at most ``target_fpr`` of these real images fake: the ``k``-th
    highest real score, ``k = floor(target_fpr * n)`` (the upper ``1 - target_fpr`` quantile of
    the reals), or just above it when other reals tie with it (or when ``k`` is 0). It stays a
    probability, so a real image scored exactly 1.0 is still called fake."""
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr={target_fpr} must be in [0, 1)")
    reals = real_probs.float().flatten().sort(descending=True).values
    if reals.numel() == 0:
        raise ValueError("threshold method 'target_fpr' needs real images in the validation data")
    # the tolerance keeps 0.05 * 100 at 5 (the product can come out as 4.999...)
    k = min(math.floor(target_fpr * reals.numel() + 1e-9), reals.numel())
    if k > 0 and int((reals >= reals[k - 1]).sum()) <= k:
        return float(reals[k - 1])
    above = torch.nextafter(reals[max(k - 1, 0)], torch.tensor(float("inf")))
    return float(above.clamp(max=1.0))


def choose_threshold(
    method: Method, probs: torch.Tensor, labels: torch.Tensor, target_fpr: float = 0.05
) -> float:
    """The decision threshold ``method`` picks on (validation) scores; ``target_fpr`` is the
    fraction of real images the ``target_fpr`` method may call fake."""
    if method == "fixed":
        return 0.5
    if method not in METHODS:
        raise ValueError(f"threshold method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "target_fpr":
        return target_fpr_threshold(probs[labels.flatten() == 0], target_fpr)
    if labels.min() == labels.max():
        raise ValueError(
            f"threshold method {method!r} needs real and fake images in the validation data; "
            f"it holds only {'fake' if labels[0] else 'real'} ones"
        )
    if method == "best_acc":
        return best_accuracy(probs, labels)[1]
    return equal_error_threshold(probs, labels)
