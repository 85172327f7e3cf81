"""TRADES and MART for a one-logit detector: known answers, and the adversarial callback's
training loss with them."""

import math

import pytest
import torch
import torch.nn.functional as F
from lightning import Callback
from test_adversarial_callback import EPS, clean_batch, fit

from pixelproof.attacks.craft import craft
from pixelproof.attacks.robust_loss import bernoulli_kl, mart_loss, trades_term
from pixelproof.attacks.spec import AttackSpec
from pixelproof.callbacks.adversarial_augmentation import AdversarialAugmentation

LN3 = math.log(3)  # sigmoid(ln 3) = 0.75


def test_bernoulli_kl_known_values():
    # KL(0.5 || 0.75) = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.5 ln(4/3)
    kl = bernoulli_kl(torch.tensor([0.0, 1.5, 60.0]), torch.tensor([LN3, 1.5, -60.0]))
    assert kl[0].item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)
    assert math.isfinite(kl[2].item()) and kl[2].item() == pytest.approx(
        60.0, rel=1e-3
    )  # ln(1 / sigmoid(-60))


def test_trades_term_is_beta_times_the_mean_kl():
    clean, adv = torch.tensor([0.0, 2.0]), torch.tensor([LN3, 2.0])
    assert trades_term(clean, adv, 6.0).item() == pytest.approx(6 * 0.25 * math.log(4 / 3))


def test_mart_known_values():
    # clean p=0.5, adversarial p=0.75, label fake: boosted BCE = -ln 0.75 - ln(1.0001 - 0.25),
    # robust term = KL(0.5 || 0.75) * (1 - 0.5)
    boosted = -math.log(0.75) - math.log(1.0001 - 0.25)
    robust = 0.5 * math.log(4 / 3) * 0.5
    got = mart_loss(torch.tensor([0.0]), torch.tensor([LN3]), torch.tensor([1.0]), beta=2.0)
    assert got.item() == pytest.approx(boosted + 2 * robust, rel=1e-5)
    # the same pair with the label real: the adversarial image's true class has p = 0.25
    boosted_real = -math.log(0.25) - math.log(1.0001 - 0.75)
    got = mart_loss(torch.tensor([0.0]), torch.tensor([LN3]), torch.tensor([0.0]), beta=2.0)
    assert got.item() == pytest.approx(boosted_real + 2 * robust, rel=1e-5)


class RecordLoss(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.parametrize("loss", ["trades", "mart"])
def test_the_callback_trains_on_the_clean_batch_with_the_paired_loss(loss):
    spec = AttackSpec("fgsm", EPS)
    record = RecordLoss()
    callback = AdversarialAugmentation(spec, fraction=1.0, loss=loss, beta=3.0)
    model, _ = fit([callback, record])  # lr 0: the model is the same at every step
    assert model.paired_objective is None  # detached when the fit ends
    for (_, batch_idx, seen, _), got in zip(model.seen, record.losses, strict=True):
        clean, labels = clean_batch(batch_idx)
        assert torch.equal(seen, clean)  # the batch itself stays clean
        with torch.no_grad():
            clean_logits = model(clean)
            adv_logits = model(craft(model, spec, clean, labels))
        if loss == "trades":
            bce = F.binary_cross_entropy_with_logits(clean_logits, labels)
            want = bce + trades_term(clean_logits, adv_logits, 3.0)
        else:
            want = mart_loss(clean_logits, adv_logits, labels, 3.0)
        assert got == pytest.approx(float(want), rel=1e-5)
        assert got != pytest.approx(float(F.binary_cross_entropy_with_logits(clean_logits, labels)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(loss="hinge"), "choose ce, trades, mart"),
        (dict(loss="trades", fraction=0.5), "fraction=1"),
        (dict(loss="mart", fraction=1.0, beta=-1), "beta"),
    ],
)
def test_bad_loss_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdversarialAugmentation({"name": "tpgd", "eps": EPS}, **kwargs)
