"""Adversarial training as a Lightning callback: any detector, any attack of the ``attack`` group,
and the detection of catastrophic overfitting (the collapse of single-step training).

python -m pixelproof.train callbacks=adversarial attack=pgd attack.eps=8/255 attack.steps=7
python -m pixelproof.train callbacks=adversarial attack=nfgsm \\
    callbacks.adversarial.robust_validation=true      # + val/pgd_acc, val/fgsm_acc, val/collapsed
python -m pixelproof.train callbacks=adversarial attack=tpgd callbacks.adversarial.loss=trades
"""

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import torch
from lightning import Callback

from pixelproof.attacks.craft import craft
from pixelproof.attacks.module_modes import eval_mode
from pixelproof.attacks.robust_loss import LOSSES, mart_loss, trades_term
from pixelproof.attacks.spec import ATTACKS, CHOOSE, AttackSpec, attack_spec

log = logging.getLogger(__name__)

PGD_ACC, FGSM_ACC = "val/pgd_acc", "val/fgsm_acc"


def detect_collapse(
    history: Sequence[Mapping[str, float]], drop: float = 0.2, fgsm_slack: float = 0.05
) -> bool:
    """Whether the latest epoch of ``history`` shows catastrophic overfitting.

    history: one mapping per validation epoch, oldest first, with ``val/pgd_acc`` (accuracy
    under a multi-step attack) and ``val/fgsm_acc`` (under FGSM), both at the training eps;
    epochs without them are skipped. Collapse: the PGD accuracy has fallen more than ``drop``
    (absolute) below its best so far while the FGSM accuracy rose or stayed (fell by at most
    ``fgsm_slack``) since that best epoch: the model has learnt to defeat the single step it
    trains against while its robustness to a real attack vanishes (Wong et al. 2020,
    Andriushchenko & Flammarion 2020). A PGD accuracy that falls together with the FGSM one is a
    model getting worse, not this.
    """
    points = [
        (float(h[PGD_ACC]), float(h[FGSM_ACC]))
        for h in history
        if h.get(PGD_ACC) is not None and h.get(FGSM_ACC) is not None
    ]
    points = [(p, f) for p, f in points if not (math.isnan(p) or math.isnan(f))]
    if len(points) < 2:
        return False
    best_pgd, fgsm_then = max(points, key=lambda point: point[0])
    pgd_now, fgsm_now = points[-1]
    return best_pgd - pgd_now > drop and fgsm_now >= fgsm_then - fgsm_slack


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
            ``val/robust_acc`` (ACC@0.5 on the attacked images); and, on the first
            ``robust_val_batches`` batches, ``val/fgsm_acc`` (FGSM at the active attack's eps)
            and ``val/pgd_acc`` (``pgd_validation``), from which each validation epoch
            :func:`detect_collapse` decides ``val/collapsed`` (0/1; a warning the first time).
        pgd_validation: the multi-step attack of ``val/pgd_acc`` (an attack config over the
            default ``{name: pgd, steps: 10}``; ``eps`` null or absent: the active attack's eps).
        robust_val_batches: validation batches per epoch for ``val/fgsm_acc`` and
            ``val/pgd_acc``; ``None``: all.
        collapse_drop, collapse_fgsm_slack: :func:`detect_collapse`'s ``drop`` and
            ``fgsm_slack``.
        loss: ``ce``: the model trains on the batch with its attacked samples (plain
            adversarial training, ``mode`` says how); ``trades`` or ``mart``: the batch stays
            clean and the adversarial examples enter the loss
            (:mod:`pixelproof.attacks.robust_loss`): TRADES adds ``beta`` x
            KL(clean || adversarial) to the model's own loss; MART replaces it by its loss on
            the pair (a detector's extra terms, such as RINE's SupCon, are then left out). Both
            attack every image (``fraction`` 1); TRADES crafts with ``attack=tpgd`` in the paper.
        beta: the weight of the KL term (TRADES: 6 in the paper; MART: 5-6).
        eps_warmup_epochs: the attack's eps (and an explicit alpha) grow linearly from 0 to
            their value over this many epochs, step by step (0: full eps from the first step):
            a model that cannot yet tell reals from fakes learns little from the worst case,
            and a small eps early keeps single-step training from collapsing at the start.

    Logged: ``train/adv_fraction`` (attacked samples / samples in the batch the model trains on),
    ``train/attack_success_rate`` (attacked samples the model, in eval mode, gets wrong after the
    attack) and ``train/attack_flip_rate`` (attacked samples whose prediction the attack
    changed; unlike the success rate it does not count samples that were already wrong).
    Epochs whose active attack is an L2 one, or none, log no FGSM / PGD accuracy.
    """

    def __init__(
        self,
        attack: Mapping | AttackSpec | None = None,
        fraction: float = 0.5,
        mode: Literal["replace", "append"] = "replace",
        schedule: Sequence[Mapping] | None = None,
        stats_every_n_steps: int | None = None,
        robust_validation: bool = False,
        pgd_validation: Mapping | None = None,
        robust_val_batches: int | None = 10,
        collapse_drop: float = 0.2,
        collapse_fgsm_slack: float = 0.05,
        loss: str = "ce",
        beta: float = 6.0,
        eps_warmup_epochs: float = 0,
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
        where = "callbacks.adversarial.pgd_validation"
        pgd = {"name": "pgd", "steps": 10, **(pgd_validation or {})}
        eps = pgd.pop("eps", None)
        # parsed now so a bad config fails at start-up; the eps is the training one unless given
        self.pgd_validation = attack_spec({**pgd, "eps": 1 if eps is None else eps}, where)
        self.pgd_eps = None if eps is None else self.pgd_validation.eps
        if robust_val_batches is not None and robust_val_batches < 1:
            raise ValueError(
                f"callbacks.adversarial.robust_val_batches={robust_val_batches} must be >= 1 "
                "(or null for every batch)"
            )
        if not 0 < collapse_drop < 1:
            raise ValueError(f"callbacks.adversarial.collapse_drop={collapse_drop}: in (0, 1)")
        if loss not in ("ce", *LOSSES):
            raise ValueError(f"callbacks.adversarial.loss={loss!r}: choose ce, {', '.join(LOSSES)}")
        if loss != "ce" and fraction != 1:
            raise ValueError(
                f"callbacks.adversarial.loss={loss} pairs every image with its adversarial "
                f"example: set callbacks.adversarial.fraction=1 (got {fraction})"
            )
        if not (isinstance(beta, int | float) and beta >= 0):
            raise ValueError(f"callbacks.adversarial.beta={beta!r} must be a number >= 0")
        self.loss, self.beta = loss, float(beta)
        if not (isinstance(eps_warmup_epochs, int | float) and eps_warmup_epochs >= 0):
            raise ValueError(
                f"callbacks.adversarial.eps_warmup_epochs={eps_warmup_epochs!r} must be a "
                "number of epochs >= 0"
            )
        self.eps_warmup_epochs = float(eps_warmup_epochs)
        self._pending: torch.Tensor | None = None  # this batch's adversarial examples (paired)
        self.fraction = fraction
        self.mode = mode
        self.stats_every_n_steps = stats_every_n_steps
        self.robust_validation = robust_validation
        self.robust_val_batches = robust_val_batches
        self.collapse_drop = collapse_drop
        self.collapse_fgsm_slack = collapse_fgsm_slack
        self.history: list[dict[str, float]] = []  # per validation epoch: eps, pgd and fgsm ACC
        self.collapse_warned = False
        self._robust_correct = self._robust_total = 0
        self._counts = {PGD_ACC: [0, 0], FGSM_ACC: [0, 0]}  # correct, total
        self._checked_batches = 0

    def active_attack(self, epoch: int) -> AttackSpec | None:
        """The attack used in ``epoch`` (0-based)."""
        spec = self.attack
        for start, scheduled in self.schedule:
            if start <= epoch:
                spec = scheduled
        return spec

    def warmed_up(self, spec: AttackSpec, epochs_done: float) -> AttackSpec:
        """``spec`` with its eps (and an explicit alpha) scaled by the warm-up after
        ``epochs_done`` epochs (fractional: the steps of the current epoch count)."""
        if not self.eps_warmup_epochs or epochs_done >= self.eps_warmup_epochs:
            return spec
        scale = epochs_done / self.eps_warmup_epochs
        alpha = None if spec.alpha is None else spec.alpha * scale
        return replace(spec, eps=spec.eps * scale, alpha=alpha)

    def training_attack(self, trainer, batch_idx: int) -> AttackSpec | None:
        """The attack of this training step: the epoch's, through the eps warm-up."""
        spec = self.active_attack(trainer.current_epoch)
        if spec is None or not self.eps_warmup_epochs:
            return spec
        batches = trainer.num_training_batches
        within = (batch_idx + 1) / batches if isinstance(batches, int) and batches > 0 else 1.0
        return self.warmed_up(spec, trainer.current_epoch + within)

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.loss != "ce":  # the detector asks this callback for its training loss
            pl_module.attach_paired_objective(
                self._paired_loss, f"callbacks.adversarial.loss={self.loss}"
            )

    def on_fit_end(self, trainer, pl_module) -> None:
        pl_module.detach_paired_objective(self._paired_loss)
        self._pending = None

    def _paired_loss(self, pl_module, x, y, logits, loss) -> torch.Tensor:
        """The training loss of ``loss=trades|mart`` for the clean batch ``x`` (its ``logits``,
        the model's own ``loss``) and the adversarial examples crafted for it."""
        adversarial, self._pending = self._pending, None
        if adversarial is None:  # no attack this epoch (a schedule's null entry)
            return loss
        adv_logits = pl_module(adversarial)
        if self.loss == "trades":
            return loss + trades_term(logits, adv_logits, self.beta)
        return mart_loss(logits, adv_logits, y, self.beta)

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        spec = self.training_attack(trainer, batch_idx)
        if spec is None:
            pl_module.log("train/adv_fraction", 0.0, batch_size=len(x))
            return
        if self.loss != "ce":  # the batch stays clean; the pairs enter the loss
            self._pending = craft(pl_module, spec, x, y)
            pl_module.log("train/adv_fraction", 0.5, batch_size=2 * len(x))
            every = self.stats_every_n_steps or trainer.log_every_n_steps
            if trainer.global_step % every == 0:
                self._log_success(pl_module, x, self._pending, y)
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

    def collapse_attacks(self, epoch: int) -> tuple[AttackSpec, AttackSpec] | None:
        """FGSM and the PGD of ``val/pgd_acc`` at the eps of ``epoch``'s attack (``None`` when it
        has no L-inf eps to measure at)."""
        spec = self.active_attack(epoch)
        if spec is None or ATTACKS[spec.name].l2 or spec.eps == 0:
            return None
        eps = spec.eps if self.pgd_eps is None else self.pgd_eps
        return AttackSpec("fgsm", spec.eps), replace(self.pgd_validation, eps=eps)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._robust_correct = self._robust_total = 0
        self._counts = {PGD_ACC: [0, 0], FGSM_ACC: [0, 0]}
        self._checked_batches = 0

    @staticmethod
    def _correct(pl_module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor) -> int:
        adversarial = craft(pl_module, spec, x, y)
        with torch.no_grad():
            fake = pl_module(adversarial) > 0
        return int((fake == (y > 0.5)).sum())

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        spec = self.active_attack(trainer.current_epoch)
        if not self.robust_validation or trainer.sanity_checking or spec is None:
            return
        x, y = batch[0], batch[1]
        self._robust_correct += self._correct(pl_module, spec, x, y)
        self._robust_total += len(y)
        attacks = self.collapse_attacks(trainer.current_epoch)
        limit = self.robust_val_batches
        if attacks is None or (limit is not None and self._checked_batches >= limit):
            return
        self._checked_batches += 1
        for key, attack in zip((FGSM_ACC, PGD_ACC), attacks):
            self._counts[key][0] += self._correct(pl_module, attack, x, y)
            self._counts[key][1] += len(y)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._robust_total:
            pl_module.log("val/robust_acc", self._robust_correct / self._robust_total)
        if not self._counts[PGD_ACC][1]:
            return
        accs = {key: correct / total for key, (correct, total) in self._counts.items()}
        for key, value in accs.items():
            pl_module.log(key, value)
        eps = self.collapse_attacks(trainer.current_epoch)[1].eps
        self.history.append({"epoch": trainer.current_epoch, "eps": eps, **accs})
        same_eps = [h for h in self.history if h["eps"] == eps]  # a larger eps is no collapse
        collapsed = detect_collapse(same_eps, self.collapse_drop, self.collapse_fgsm_slack)
        pl_module.log("val/collapsed", float(collapsed))
        if collapsed and not self.collapse_warned:
            self.collapse_warned = True
            best = max(same_eps, key=lambda h: h[PGD_ACC])
            log.warning(
                "Catastrophic overfitting at epoch %d: val/pgd_acc fell from %.3f (epoch %d) to "
                "%.3f while val/fgsm_acc went from %.3f to %.3f; the single-step attack no "
                "longer trains robustness (try attack=nfgsm, a smaller eps, or attack=pgd)",
                trainer.current_epoch, best[PGD_ACC], best["epoch"], accs[PGD_ACC],
                best[FGSM_ACC], accs[FGSM_ACC],
            )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "collapse_warned": self.collapse_warned}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.collapse_warned = bool(state_dict.get("collapse_warned", False))
