"""Adversarial training as a Lightning callback: any detector, any attack of the ``attack`` group.

python -m pixelproof.train callbacks=adversarial attack=pgd attack.eps=8/255 attack.steps=7
"""

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from lightning import Callback

from pixelproof.attacks.craft import craft
from pixelproof.attacks.module_modes import eval_mode
from pixelproof.attacks.spec import CHOOSE, AttackSpec, attack_spec


def parse_schedule(schedule: Sequence[Mapping] | None) -> list[tuple[int, AttackSpec | None]]:
    """``[{start_epoch, attack}, ...]`` -> ``[(start_epoch, spec or None), ...]`` by epoch."""
    entries = []
    for i, entry in enumerate(schedule or []):
        where = f"callbacks.adversarial.schedule[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"start_epoch", "attack"}:
            raise ValueError(f"{where} must be {{start_epoch: <int>, attack: {{name, eps, ...}}}}")
        start = entry["start_epoch"]
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"{where}.start_epoch={start!r} must be an integer >= 0")
        entries.append((start, attack_spec(entry["attack"], f"{where}.attack")))
    starts = [start for start, _ in entries]
    if len(set(starts)) != len(starts):
        raise ValueError(f"callbacks.adversarial.schedule repeats a start_epoch: {starts}")
    return sorted(entries, key=lambda entry: entry[0])


class AdversarialAugmentation(Callback):
    """Replace (or append) a fraction of every training batch with adversarial examples crafted
    against the current model.

    Args:
        attack: the attack (an ``attack`` config node or :class:`AttackSpec`); ``None`` needs a
            schedule.
        fraction: share of each batch that is attacked, in (0, 1].
        mode: ``replace``: the attacked samples overwrite their clean versions in place (the
            batch keeps its size); ``append``: they are added to the batch, which grows by
            ``fraction`` (needs the list batch PyTorch's default collate makes).
        schedule: ``[{start_epoch, attack}, ...]``: from ``start_epoch`` on (0-based) that attack
            is used (``attack: null`` trains clean); before the first entry, ``attack``.
        stats_every_n_steps: how often the success rates are measured (two extra no-grad
            forward passes of the attacked samples); ``None``: the trainer's
            ``log_every_n_steps``.
        robust_validation: also attack every validation batch with the active attack and log
            ``val/robust_acc`` (ACC@0.5 on the attacked images).

    Logged: ``train/adv_fraction`` (attacked samples / samples in the batch the model trains on),
    ``train/attack_success_rate`` (attacked samples the model, in eval mode, gets wrong after the
    attack) and ``train/attack_flip_rate`` (attacked samples whose prediction the attack
    changed; unlike the success rate it does not count samples that were already wrong).
    """

    def __init__(
        self,
        attack: Mapping | AttackSpec | None = None,
        fraction: float = 0.5,
        mode: Literal["replace", "append"] = "replace",
        schedule: Sequence[Mapping] | None = None,
        stats_every_n_steps: int | None = None,
        robust_validation: bool = False,
    ) -> None:
        self.attack = attack_spec(attack, "callbacks.adversarial.attack")
        self.schedule = parse_schedule(schedule)
        if self.attack is None and not self.schedule:
            raise ValueError(f"callbacks=adversarial has no attack to craft with: {CHOOSE}")
        if not 0 < fraction <= 1:
            raise ValueError(f"callbacks.adversarial.fraction={fraction} must be in (0, 1]")
        if mode not in ("replace", "append"):
            raise ValueError(f"callbacks.adversarial.mode={mode!r}: choose replace or append")
        if stats_every_n_steps is not None and stats_every_n_steps < 1:
            raise ValueError(f"callbacks.adversarial.stats_every_n_steps={stats_every_n_steps}")
        self.fraction = fraction
        self.mode = mode
        self.stats_every_n_steps = stats_every_n_steps
        self.robust_validation = robust_validation
        self._robust_correct = self._robust_total = 0

    def active_attack(self, epoch: int) -> AttackSpec | None:
        """The attack used in ``epoch`` (0-based)."""
        spec = self.attack
        for start, scheduled in self.schedule:
            if start <= epoch:
                spec = scheduled
        return spec

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        spec = self.active_attack(trainer.current_epoch)
        if spec is None:
            pl_module.log("train/adv_fraction", 0.0, batch_size=len(x))
            return
        count = max(1, round(self.fraction * len(x)))
        index = torch.randperm(len(x))[:count].to(x.device)
        clean, labels = x[index], y[index]  # copies
        adversarial = craft(pl_module, spec, clean, labels)
        if self.mode == "replace":
            x[index] = adversarial  # in place: training_step receives this very tensor
        else:
            if not isinstance(batch, list):
                raise TypeError(
                    f"callbacks.adversarial.mode=append needs a list batch (PyTorch's default "
                    f"collate), got {type(batch).__name__}; use mode=replace"
                )
            batch[0], batch[1] = torch.cat([x, adversarial]), torch.cat([y, labels])
        size = len(batch[0])
        pl_module.log("train/adv_fraction", count / size, batch_size=size)
        every = self.stats_every_n_steps or trainer.log_every_n_steps
        if trainer.global_step % every == 0:
            self._log_success(pl_module, clean, adversarial, labels)

    @staticmethod
    def _log_success(pl_module, clean, adversarial, labels) -> None:
        with torch.no_grad(), eval_mode(pl_module):
            logits = pl_module(torch.cat([clean, adversarial]))
        clean_fake, adv_fake = (logits > 0).chunk(2)
        success = (adv_fake != (labels > 0.5)).float().mean()
        flipped = (adv_fake != clean_fake).float().mean()
        pl_module.log("train/attack_success_rate", success, batch_size=len(labels))
        pl_module.log("train/attack_flip_rate", flipped, batch_size=len(labels))

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._robust_correct = self._robust_total = 0

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        spec = self.active_attack(trainer.current_epoch)
        if not self.robust_validation or trainer.sanity_checking or spec is None:
            return
        x, y = batch[0], batch[1]
        adversarial = craft(pl_module, spec, x, y)
        with torch.no_grad():
            fake = pl_module(adversarial) > 0
        self._robust_correct += int((fake == (y > 0.5)).sum())
        self._robust_total += len(y)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._robust_total:
            pl_module.log("val/robust_acc", self._robust_correct / self._robust_total)
