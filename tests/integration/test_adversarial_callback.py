"""The AdversarialAugmentation callback: what training_step sees, module modes, schedules,
logging, N-FGSM training, the catastrophic-overfitting watch, configs, and tiny end-to-end runs
for both detectors."""

import logging
import random
from functools import partial

import hydra
import pytest
import torch
from helpers.configs import compose_config
from helpers.detectors import MeanIntensityDetector
from lightning import Callback, Trainer
from torch.utils.data import DataLoader, TensorDataset

from pixelproof.attacks.module_modes import module_modes
from pixelproof.attacks.spec import AttackSpec
from pixelproof.callbacks.adversarial_augmentation import (
    FGSM_ACC,
    PGD_ACC,
    AdversarialAugmentation,
    detect_collapse,
)
from pixelproof.models.detector_module import DetectorModule
from pixelproof.train import train

EPS = 8 / 255
BATCH = 4


class SpyDetector(DetectorModule):
    """The mean-intensity detector as a DetectorModule that records the batches it trains on."""

    def __init__(self) -> None:
        super().__init__(MeanIntensityDetector(), partial(torch.optim.SGD, lr=0.0))
        self.seen: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.net.frozen.eval()  # a frozen part, in eval mode while the rest trains

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch_idx, batch[0].clone(), batch[1].clone()))
        return super().training_step(batch, batch_idx)


class RecordModes(Callback):
    """Placed before and after the adversarial callback: module modes on every batch."""

    def __init__(self) -> None:
        self.modes: list[dict[str, bool]] = []
        self.epoch_modes: dict[str, bool] = {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_modes = module_modes(pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.modes.append(module_modes(pl_module))


def images_and_labels(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    # in [0.25, 0.75]: an eps step never reaches the clamp, so every pixel moves by exactly eps
    images = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    return images, torch.tensor([0.0, 1.0] * (n // 2))


def fit(
    callbacks: list[Callback], epochs: int = 1, model: SpyDetector | None = None, val=None
) -> tuple[SpyDetector, Trainer]:
    """Train ``model`` (a fresh SpyDetector) on the 12 images in batches of 4, unshuffled."""
    model = model or SpyDetector()
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=callbacks,
        limit_val_batches=0 if val is None else None,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    loader = DataLoader(TensorDataset(*images_and_labels()), batch_size=BATCH, shuffle=False)
    trainer.fit(model, loader, val)
    return model, trainer


def clean_batch(batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = images_and_labels()
    return images[batch_idx * BATCH : (batch_idx + 1) * BATCH], labels[
        batch_idx * BATCH : (batch_idx + 1) * BATCH
    ]


def moved_by(seen: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per image: the largest pixel change."""
    return (seen - clean).abs().flatten(1).amax(dim=1)


def test_training_step_sees_the_batch_with_half_of_it_replaced():
    model, trainer = fit([AdversarialAugmentation({"name": "fgsm", "eps": EPS}, fraction=0.5)])
    assert len(model.seen) == 3
    for _, batch_idx, seen, labels in model.seen:
        clean, clean_labels = clean_batch(batch_idx)
        assert torch.equal(labels, clean_labels) and seen.shape == clean.shape
        moved = moved_by(seen, clean)
        assert (moved == 0).sum() == 2  # two images kept clean
        assert moved[moved > 0] == pytest.approx([EPS, EPS], abs=1e-6)  # FGSM moves every pixel
    assert trainer.callback_metrics["train/adv_fraction"] == pytest.approx(0.5)
    assert 0 <= trainer.callback_metrics["train/attack_success_rate"] <= 1
    assert 0 <= trainer.callback_metrics["train/attack_flip_rate"] <= 1


def test_append_mode_trains_on_the_clean_batch_plus_the_attacked_copies():
    model, trainer = fit(
        [AdversarialAugmentation({"name": "fgsm", "eps": EPS}, fraction=0.5, mode="append")]
    )
    for _, batch_idx, seen, labels in model.seen:
        clean, clean_labels = clean_batch(batch_idx)
        assert seen.shape[0] == BATCH + 2 and torch.equal(seen[:BATCH], clean)
        for image, label in zip(seen[BATCH:], labels[BATCH:]):
            distance = moved_by(clean, image.expand_as(clean))
            source = int(distance.argmin())  # the clean image it was crafted from
            assert distance[source] == pytest.approx(EPS, abs=1e-6)
            assert label == clean_labels[source]
    assert trainer.callback_metrics["train/adv_fraction"] == pytest.approx(2 / 6)


def test_module_modes_are_the_same_before_and_after_the_callback_and_eval_while_crafting():
    before, after = RecordModes(), RecordModes()
    callback = AdversarialAugmentation({"name": "pgd", "eps": EPS, "steps": 2}, fraction=1.0)
    # callbacks run in list order: `after` sees the model right after the adversarial callback
    model, _ = fit([before, callback, after])
    assert len(after.modes) == 3 and after.modes == before.modes
    assert after.modes[0][""] is True and after.modes[0]["net.frozen"] is False
    under_attack = model.net.modes_under_attack
    assert under_attack and not any(under_attack)  # every module in eval mode while crafting


def test_schedule_switches_attacks_by_epoch():
    schedule = [
        {"start_epoch": 0, "attack": {"name": "fgsm", "eps": "4/255"}},
        {"start_epoch": 1, "attack": {"name": "fgsm", "eps": "8/255"}},
        {"start_epoch": 2, "attack": None},
    ]
    model, _ = fit([AdversarialAugmentation(schedule=schedule, fraction=1.0)], epochs=3)
    moved = {epoch: set() for epoch in range(3)}
    for epoch, batch_idx, seen, _ in model.seen:
        moved[epoch] |= {
            round(v * 255, 3) for v in moved_by(seen, clean_batch(batch_idx)[0]).tolist()
        }
    assert moved == {0: {4.0}, 1: {8.0}, 2: {0.0}}


def test_eps_warm_up_grows_the_budget_step_by_step_to_eps():
    # 3 batches per epoch, warm-up over 2 epochs: FGSM moves pixels by eps * (steps done) / 6,
    # then by eps from the third epoch on
    callback = AdversarialAugmentation({"name": "fgsm", "eps": EPS}, fraction=1.0)
    callback.eps_warmup_epochs = 2.0
    model, _ = fit([callback], epochs=3)
    moved = [
        float(moved_by(seen, clean_batch(batch_idx)[0]).max())
        for _, batch_idx, seen, _ in model.seen
    ]
    expected = [EPS * min(1.0, step / 6) for step in range(1, 10)]
    assert moved == pytest.approx(expected, abs=1e-6)


def test_eps_warm_up_scales_an_explicit_step_size_too_and_refuses_negative_epochs():
    callback = AdversarialAugmentation({"name": "pgd", "eps": EPS, "alpha": EPS / 4}, 1.0)
    callback.eps_warmup_epochs = 4.0
    half = callback.warmed_up(callback.attack, 2.0)
    assert (half.eps, half.alpha) == pytest.approx((EPS / 2, EPS / 8))
    assert callback.warmed_up(callback.attack, 4.5) == callback.attack
    with pytest.raises(ValueError, match="eps_warmup_epochs"):
        AdversarialAugmentation({"name": "fgsm", "eps": EPS}, eps_warmup_epochs=-1)


def test_robust_validation_logs_robust_accuracy_below_clean_accuracy():
    model = SpyDetector()
    model.net.weight.data.fill_(200.0)
    val_images = torch.cat([torch.full((4, 3, 8, 8), 0.52), torch.full((4, 3, 8, 8), 0.48)])
    val_labels = torch.tensor([1.0] * 4 + [0.0] * 4)  # margin 0.02 < eps: PGD flips them all
    callback = AdversarialAugmentation({"name": "pgd", "eps": EPS}, robust_validation=True)
    val = DataLoader(TensorDataset(val_images, val_labels), batch_size=BATCH)
    _, trainer = fit([callback], model=model, val=val)  # Lightning validates in inference mode
    assert trainer.callback_metrics["val/acc"] == 1.0
    assert trainer.callback_metrics["val/robust_acc"] == 0.0


def test_nfgsm_training_moves_pixels_beyond_eps():
    """N-FGSM through the callback: noise of 2 eps plus a step of eps, never projected back."""
    torch.manual_seed(0)
    model, _ = fit([AdversarialAugmentation({"name": "nfgsm", "eps": EPS}, fraction=1.0)])
    moved = torch.cat([moved_by(seen, clean_batch(i)[0]) for _, i, seen, _ in model.seen])
    assert (moved <= 3 * EPS + 1e-6).all() and (moved > 2.5 * EPS).all()


def history(*points: tuple[float, float]) -> list[dict[str, float]]:
    return [{PGD_ACC: pgd, FGSM_ACC: fgsm} for pgd, fgsm in points]


def test_detect_collapse_fires_on_catastrophic_overfitting():
    # PGD accuracy falls from 0.45 to 0.05 while FGSM accuracy soars: the textbook collapse
    collapsed = history((0.30, 0.40), (0.40, 0.50), (0.45, 0.55), (0.05, 0.85))
    assert detect_collapse(collapsed)
    assert not detect_collapse(collapsed[:3])  # before it
    assert detect_collapse(history((0.45, 0.55), (0.20, 0.53)))  # FGSM stays (within slack)
    assert not detect_collapse(history((0.45, 0.55), (0.30, 0.85)))  # a drop of 0.15 only
    assert detect_collapse(history((0.45, 0.55), (0.30, 0.85)), drop=0.1)


def test_detect_collapse_is_quiet_on_improvement_noise_and_plain_decline():
    steady = history(*[(0.1 + 0.05 * i, 0.2 + 0.05 * i) for i in range(10)])
    assert not any(detect_collapse(steady[: i + 1]) for i in range(len(steady)))
    rng = random.Random(0)
    noisy = history(*[(0.4 + rng.uniform(-0.08, 0.08), 0.5 + rng.uniform(-0.1, 0.1))
                      for _ in range(50)])  # fmt: skip
    assert not any(detect_collapse(noisy[: i + 1]) for i in range(len(noisy)))
    # PGD and FGSM accuracy falling together: a model getting worse, not catastrophic overfitting
    assert not detect_collapse(history((0.45, 0.60), (0.20, 0.30)))
    assert not detect_collapse([]) and not detect_collapse(history((0.5, 0.5)))
    # epochs without the two accuracies (no L-inf attack active) are skipped
    assert detect_collapse([*history((0.45, 0.55)), {"val/acc": 0.9}, *history((0.1, 0.9))])


def watched_fit(callback, weight: float = 200.0, n_val: int = 8):
    """One epoch of the spy detector with a validation set whose margin (0.02) is below eps."""
    model = SpyDetector()
    model.net.weight.data.fill_(weight)
    half = n_val // 2
    val_images = torch.cat([torch.full((half, 3, 8, 8), 0.52), torch.full((half, 3, 8, 8), 0.48)])
    val_labels = torch.tensor([1.0] * half + [0.0] * half)
    val = DataLoader(TensorDataset(val_images, val_labels), batch_size=BATCH)
    return fit([callback], model=model, val=val)


def test_robust_validation_logs_fgsm_and_pgd_accuracy_on_at_most_robust_val_batches():
    callback = AdversarialAugmentation(
        {"name": "nfgsm", "eps": EPS}, robust_validation=True, robust_val_batches=1
    )
    _, trainer = watched_fit(callback, n_val=12)  # 3 validation batches
    metrics = trainer.callback_metrics
    assert metrics["val/acc"] == 1.0 and metrics["val/robust_acc"] <= 1.0
    assert metrics[FGSM_ACC] == 0.0 and metrics[PGD_ACC] == 0.0  # margin 0.02 < eps
    assert metrics["val/collapsed"] == 0.0  # one epoch: nothing to compare
    assert callback._counts[PGD_ACC][1] == BATCH  # one batch of PGD, not three
    assert callback._robust_total == 12  # the training attack still sees every batch
    assert callback.history == [{"epoch": 0, "eps": EPS, PGD_ACC: 0.0, FGSM_ACC: 0.0}]
    assert callback.collapse_attacks(0)[1].label == "pgd-10 eps=8/255"  # the training eps


def test_a_collapse_is_logged_and_warned_once(caplog):
    callback = AdversarialAugmentation(
        {"name": "fgsm", "eps": EPS}, robust_validation=True, pgd_validation={"steps": 2}
    )
    # an earlier epoch at the same eps where PGD accuracy was high (and FGSM accuracy no higher)
    callback.history = [{"epoch": -1, "eps": EPS, PGD_ACC: 0.9, FGSM_ACC: 0.0}]
    with caplog.at_level(logging.WARNING):
        _, trainer = watched_fit(callback)
    assert trainer.callback_metrics["val/collapsed"] == 1.0
    warnings = [r for r in caplog.records if "Catastrophic overfitting" in r.getMessage()]
    assert len(warnings) == 1 and "fell from 0.900 (epoch -1) to 0.000" in warnings[0].getMessage()
    assert callback.state_dict()["collapse_warned"] is True
    # a larger eps later on (a schedule) is compared with its own epochs only
    callback.history = [{"epoch": 0, "eps": EPS / 2, PGD_ACC: 0.9, FGSM_ACC: 0.0}]
    callback.collapse_warned = False
    _, trainer = watched_fit(callback)
    assert trainer.callback_metrics["val/collapsed"] == 0.0


def test_bad_callback_settings_are_refused():
    with pytest.raises(ValueError, match="attack=fgsm\\|fgsm_rs\\|pgd\\|pgd_l2\\|tpgd\\|nfgsm"):
        AdversarialAugmentation({})
    with pytest.raises(ValueError, match="pgd_validation: attack name 'cw'"):
        AdversarialAugmentation(AttackSpec("fgsm", EPS), pgd_validation={"name": "cw"})
    with pytest.raises(ValueError, match="robust_val_batches=0 must be >= 1"):
        AdversarialAugmentation(AttackSpec("fgsm", EPS), robust_val_batches=0)
    with pytest.raises(ValueError, match="fraction=0"):
        AdversarialAugmentation(AttackSpec("fgsm", EPS), fraction=0)
    with pytest.raises(ValueError, match="mode='mix'"):
        AdversarialAugmentation(AttackSpec("fgsm", EPS), mode="mix")
    with pytest.raises(ValueError, match="repeats a start_epoch"):
        AdversarialAugmentation(
            schedule=[{"start_epoch": 1, "attack": None}, {"start_epoch": 1, "attack": None}]
        )


def test_configs_select_the_attack_and_refuse_attack_none(train_overrides):
    cfg = compose_config(
        "train", *train_overrides, "callbacks=adversarial", "attack=pgd", "attack.eps=0.03",
        "attack.steps=7",
    )  # fmt: skip
    callback = hydra.utils.instantiate(cfg.callbacks.adversarial)
    assert callback.attack == AttackSpec("pgd", 0.03, None, 7, True)
    assert "model_checkpoint" in cfg.callbacks  # the default callbacks are still there
    with pytest.raises(Exception, match="pass attack=fgsm\\|fgsm_rs\\|pgd\\|pgd_l2\\|tpgd\\|nfgsm"):
        hydra.utils.instantiate(
            compose_config("train", *train_overrides, "callbacks=adversarial").callbacks.adversarial
        )
    curriculum = hydra.utils.instantiate(
        compose_config("train", "callbacks=adversarial_curriculum").callbacks.adversarial
    )
    labels = [curriculum.active_attack(epoch).label for epoch in range(4)]
    assert labels == ["fgsm eps=4/255", "fgsm eps=8/255", "pgd-7 eps=8/255", "pgd-7 eps=8/255"]


def test_adversarial_config_trains_with_nfgsm_and_watches_for_collapse():
    watch = "callbacks.adversarial.robust_validation=true"
    cfg = compose_config("train", "callbacks=adversarial", "attack=nfgsm", watch)
    callback = hydra.utils.instantiate(cfg.callbacks.adversarial)
    assert callback.attack == AttackSpec("nfgsm", 8 / 255, None, k=2.0)
    assert callback.robust_validation and callback.robust_val_batches == 10
    assert callback.pgd_validation == AttackSpec("pgd", 1.0, steps=10) and callback.pgd_eps is None
    assert (callback.collapse_drop, callback.collapse_fgsm_slack) == (0.2, 0.05)
    fixed = compose_config(
        "train", "callbacks=adversarial", "attack=pgd",
        "callbacks.adversarial.pgd_validation.steps=20",
        "callbacks.adversarial.pgd_validation.eps=4/255",
    )  # fmt: skip
    callback = hydra.utils.instantiate(fixed.callbacks.adversarial)
    assert callback.collapse_attacks(0)[1].label == "pgd-20 eps=4/255"


def test_end_to_end_wavefreq(wavefreq_overrides):
    metrics = train(
        compose_config(
            "train",
            *wavefreq_overrides,
            "callbacks=adversarial",
            "attack=fgsm_rs",
            "callbacks.adversarial.robust_validation=true",
            "++trainer.fast_dev_run=true",
        )
    )
    assert metrics["train/adv_fraction"] == pytest.approx(0.5)
    assert 0 <= metrics["train/attack_success_rate"] <= 1
    assert 0 <= metrics["val/robust_acc"] <= 1 and "test/acc" in metrics


def test_end_to_end_rine_keeps_the_frozen_tower_in_eval_mode(rine_overrides):
    watch = "+callbacks.modes._target_=test_adversarial_callback.CheckTowerFrozen"
    CheckTowerFrozen.batches = 0
    cfg = compose_config(
        "train", *rine_overrides, "callbacks=adversarial", "attack=pgd", "attack.steps=2",
        "callbacks.adversarial.fraction=1.0", watch, "++trainer.fast_dev_run=true",
    )  # fmt: skip
    metrics = train(cfg)
    assert CheckTowerFrozen.batches == 1
    assert metrics["train/adv_fraction"] == 1.0 and "test/ap" in metrics


class CheckTowerFrozen(RecordModes):
    """After the adversarial callback: RINE's CLIP tower in eval mode, its head training."""

    batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        modes = module_modes(pl_module)
        assert modes == self.epoch_modes
        assert not any(v for k, v in modes.items() if k.startswith("net.backbone.vision"))
        assert modes["net.head"] if "net.head" in modes else modes[""]
        CheckTowerFrozen.batches += 1
