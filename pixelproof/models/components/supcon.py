"""Supervised contrastive loss (Khosla et al. 2020), single view, as RINE uses it.

For each anchor i: the mean over its positives p (same label, p != i) of
``-log(exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t))``; anchors without a positive add 0,
and the loss is the mean over all anchors (the reference implementation's convention, with
``temperature == base_temperature``).
"""

import torch


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07):
    """``embeddings [B, D]`` (L2-normalised by the caller), ``labels [B]`` -> scalar loss."""
    n = embeddings.shape[0]
    if n < 2:  # no pairs; the all -inf row below would give NaN gradients
        return embeddings.new_zeros(())
    self_pair = torch.eye(n, dtype=torch.bool, device=embeddings.device)
    similarity = (embeddings @ embeddings.T / temperature).masked_fill(self_pair, float("-inf"))
    log_prob = similarity - similarity.logsumexp(dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_pair
    # masked_fill, not a product: -inf * 0 on the diagonal would be NaN
    summed = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    return -(summed / positives.sum(dim=1).clamp(min=1)).mean()
