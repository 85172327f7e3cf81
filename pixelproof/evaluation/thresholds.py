"""Decision thresholds on p(fake): fixed 0.5 (the convention of the papers and of the Team 57 and
Team 91 reports), the threshold of best accuracy, or the equal-error point where real and fake
images are misclassified alike.

A threshold ``t`` means "fake when p >= t", torchmetrics' convention.
"""

from typing import Literal

import torch
from torchmetrics.functional.classification import binary_roc

Method = Literal["fixed", "best_acc", "eer"]
METHODS: tuple[str, ...] = ("fixed", "best_acc", "eer")


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


def choose_threshold(method: Method, probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The decision threshold ``method`` picks on (validation) scores."""
    if method == "fixed":
        return 0.5
    if method not in METHODS:
        raise ValueError(f"threshold method {method!r}: choose one of {', '.join(METHODS)}")
    if labels.min() == labels.max():
        raise ValueError(
            f"threshold method {method!r} needs real and fake images in the validation data; "
            f"it holds only {'fake' if labels[0] else 'real'} ones"
        )
    if method == "best_acc":
        return best_accuracy(probs, labels)[1]
    return equal_error_threshold(probs, labels)
