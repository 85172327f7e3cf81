"""AutoAttack's two stages that apply to a one-logit detector (see :mod:`pixelproof.attacks.spec`),
on torchattacks' implementations: APGD-CE and the black-box Square attack, L-inf.

Two changes to torchattacks' behaviour, neither of which changes an accuracy:

- **Every image gets its attacked version.** torchattacks attacks only the images the model
  classifies correctly and hands back the clean image of every image it failed to fool; the
  accuracy is the same, but the table's AP (and any score) would then mix clean and attacked
  scores. Here APGD returns each image's highest-loss point in the ball (its ``best_loss``
  mode; with two classes the highest cross-entropy point is misclassified whenever any point it
  visited was) and Square each image's lowest-margin point found.
- **The global RNG is left alone.** Both reseed the global RNG with a fixed seed on every call,
  which would replay the same random numbers to everything after them (training's batch
  sampling, the next attack's random start). Here each call draws its seed from the global RNG
  (runs seeded once stay reproducible, calls differ) and runs on a forked RNG.
"""

import torch
import torchattacks


class _OwnRandomness:
    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().long().to(self.device)
        self.seed = int(torch.randint(0, 2**31 - 1, ()))
        devices = [images.device.index or 0] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return self.attack_all(images, labels)


class APGDCE(_OwnRandomness, torchattacks.APGD):
    """APGD with the cross-entropy loss (Croce & Hein 2020): step-size free L-inf PGD from a
    random start, ``n_restarts`` times, each image's highest-loss point kept."""

    def __init__(self, model, eps: float, steps: int, n_restarts: int = 1) -> None:
        super().__init__(model, norm="Linf", eps=eps, steps=steps, n_restarts=n_restarts, loss="ce")

    def attack_all(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _, adversarial = self.perturb(images, labels, best_loss=True)
        return adversarial.detach()


class SquareLinf(_OwnRandomness, torchattacks.Square):
    """Square attack (Andriushchenko et al. 2020): random search over square L-inf updates with
    the margin loss, ``n_queries`` forward passes per restart, no gradients (the search runs
    under ``torch.no_grad``); each image's lowest-margin point over the restarts kept."""

    def __init__(self, model, eps: float, n_queries: int, n_restarts: int = 1) -> None:
        super().__init__(
            model, norm="Linf", eps=eps, n_queries=n_queries, n_restarts=n_restarts, loss="margin"
        )

    def attack_all(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.init_hyperparam(images)
            best = images.clone()
            best_margin = torch.full((len(images),), float("inf"), device=images.device)
            for _ in range(self.n_restarts):
                _, adversarial = self.attack_single_run(images, labels)
                margin, _ = self.margin_and_loss(adversarial, labels)
                better = margin < best_margin
                best[better] = adversarial[better]
                best_margin = torch.where(better, margin, best_margin)
        return best
