"""N-FGSM (de Jorge et al. 2022, "Make Some Noise: Reliable and Efficient Single-Step
Adversarial Training"): single-step adversarial training that does not collapse.

From a point drawn uniformly in the L-inf ball of radius ``k * eps`` around the image (k = 2 in
the paper), one signed-gradient step of ``alpha`` (= eps in the paper), and **no projection back
onto the eps ball**: the perturbation can reach ``(k + 1) * eps``. Only the [0,1] image range is
enforced. The paper shows that the stronger noise and the missing projection are what keep
single-step training clear of catastrophic overfitting, at the cost of one FGSM step. With
``k = 0`` it is exactly FGSM of step ``alpha``.

torchattacks has no N-FGSM; this is one in its interface, so the attack registry, crafting and
the adversarial training callback use it like any other.
"""

import torch
import torch.nn.functional as F
from torchattacks.attack import Attack


class NFGSM(Attack):
    """N-FGSM against ``model`` (images in [0,1] -> class logits).

    Args:
        model: the model attacked (``[B,3,H,W]`` -> ``[B, classes]``).
        eps: the budget the noise and the step are measured in ([0,1] pixel units).
        alpha: the FGSM step (the paper: ``eps``).
        k: noise magnitude in units of eps: uniform noise in ``[-k eps, k eps]`` (the paper: 2).
    """

    def __init__(self, model, eps: float = 8 / 255, alpha: float = 8 / 255, k: float = 2.0):
        super().__init__("NFGSM", model)
        if k < 0:
            raise ValueError(f"N-FGSM noise factor k={k} must be >= 0")
        self.eps = eps
        self.alpha = alpha
        self.k = k
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        target = self.get_target_label(images, labels) if self.targeted else labels

        noise = torch.empty_like(images).uniform_(-self.k * self.eps, self.k * self.eps)
        start = (images + noise).clamp(0, 1).detach().requires_grad_(True)
        loss = F.cross_entropy(self.get_logits(start), target)
        if self.targeted:
            loss = -loss
        grad = torch.autograd.grad(loss, start)[0]
        # no projection onto the eps ball: only the image range is kept
        return (start + self.alpha * grad.sign()).clamp(0, 1).detach()
