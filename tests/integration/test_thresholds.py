"""Decision thresholds: best accuracy, equal error, a target false-positive rate, and
calibration during training."""

import lightning as L
import pytest
import torch
from helpers import known_detector
from torch.utils.data import DataLoader, TensorDataset

from pixelproof.callbacks.threshold_calibration import ThresholdCalibration
from pixelproof.evaluation.thresholds import (
    best_accuracy,
    choose_threshold,
    equal_error_threshold,
    target_fpr_threshold,
)


def t(values):
    return torch.tensor(values, dtype=torch.float32)


def test_best_accuracy_threshold_separates_shifted_scores():
    # every fake scores above every real, but all below 0.5: ACC@0.5 is 1/2, best is 1
    probs, labels = t([0.1, 0.2, 0.3, 0.35, 0.4, 0.45]), t([0, 0, 0, 1, 1, 1])
    accuracy, threshold = best_accuracy(probs, labels)
    assert accuracy == 1.0
    assert threshold == pytest.approx(0.35)
    assert choose_threshold("best_acc", probs, labels) == pytest.approx(0.35)


def test_best_accuracy_can_call_everything_real():
    # fakes are rarer and score lowest: the best rule calls every image real (3/4 right)
    probs, labels = t([0.9, 0.8, 0.7, 0.1]), t([0, 0, 0, 1])
    accuracy, threshold = best_accuracy(probs, labels)
    assert accuracy == 0.75
    assert threshold > 0.9  # above every score, including the highest


def test_thresholds_stay_probabilities_when_a_score_saturates_at_one():
    # a real image at p = 1.0 (a saturated sigmoid): "above every score" cannot exceed 1
    probs, labels = t([1.0, 0.9, 0.8, 0.1]), t([0, 0, 0, 1])
    for method in ("best_acc", "eer"):
        assert 0.0 <= choose_threshold(method, probs, labels) <= 1.0


def test_equal_error_threshold():
    # reals 0.1..0.4 (one at 0.6), fakes 0.5..0.9 (one at 0.3): at 0.5 one of each is wrong
    probs = t([0.1, 0.2, 0.4, 0.6, 0.3, 0.5, 0.7, 0.9])
    labels = t([0, 0, 0, 0, 1, 1, 1, 1])
    threshold = equal_error_threshold(probs, labels)
    called_fake = probs >= threshold
    false_positive = called_fake[:4].float().mean()
    false_negative = (~called_fake[4:]).float().mean()
    assert false_positive == false_negative == 0.25


def test_target_fpr_threshold_is_the_upper_quantile_of_the_reals():
    # 100 reals at 0.01 .. 1.00 and fakes anywhere: 5 % of the reals called fake means the 5
    # highest (0.96 .. 1.00), so t = 0.96, the 0.95 quantile's upper neighbour
    reals = torch.arange(1, 101, dtype=torch.float32) / 100
    probs = torch.cat([reals, t([0.05, 0.5, 0.99])])
    labels = torch.cat([torch.zeros(100), torch.ones(3)])
    threshold = choose_threshold("target_fpr", probs, labels, target_fpr=0.05)
    assert threshold == pytest.approx(0.96)
    assert float((reals >= threshold).float().mean()) == pytest.approx(0.05)
    assert choose_threshold("target_fpr", probs, labels, target_fpr=0.1) == pytest.approx(0.91)
    # the fakes do not move it
    assert choose_threshold("target_fpr", reals, torch.zeros(100), 0.05) == threshold
    # a target below one real in n: above every real, none called fake
    assert choose_threshold("target_fpr", probs, labels, target_fpr=0.001) > 1.0 - 1e-6
    assert target_fpr_threshold(t([0.2, 0.4]), 0.0) > 0.4


def test_target_fpr_never_calls_more_reals_fake_than_asked_when_scores_tie():
    # 10 reals, 3 tied at the top: 10 % (one real) cannot be called fake alone, so none is
    reals = t([0.9, 0.9, 0.9, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.0])
    threshold = target_fpr_threshold(reals, 0.1)
    assert threshold > 0.9 and int((reals >= threshold).sum()) == 0
    # 30 %: exactly the three tied ones
    assert target_fpr_threshold(reals, 0.3) == pytest.approx(0.9)
    # saturated reals: the threshold stays a probability
    assert target_fpr_threshold(t([1.0, 1.0, 0.5]), 0.0) == 1.0


def test_choose_threshold_errors():
    assert choose_threshold("fixed", t([0.9]), t([1])) == 0.5
    with pytest.raises(ValueError, match="choose one of fixed, best_acc, eer, target_fpr"):
        choose_threshold("median", t([0.1, 0.9]), t([0, 1]))
    with pytest.raises(ValueError, match="target_fpr' needs real images"):
        choose_threshold("target_fpr", t([0.1, 0.9]), t([1, 1]))
    with pytest.raises(ValueError, match="target_fpr=1.0 must be in \\[0, 1\\)"):
        choose_threshold("target_fpr", t([0.1, 0.9]), t([0, 1]), target_fpr=1.0)
    with pytest.raises(ValueError, match="target_fpr=-0.1: must be a number in"):
        ThresholdCalibration("target_fpr", target_fpr=-0.1)
    with pytest.raises(ValueError, match="only real"):
        choose_threshold("eer", t([0.1, 0.9]), t([0, 0]))
    with pytest.raises(ValueError, match="threshold_calibration.method='best'"):
        ThresholdCalibration("best")


def test_calibration_stores_the_validation_threshold_in_the_checkpoint(tmp_path):
    """Fit a detector whose scores are known (lr 0 keeps them fixed); the callback sets the
    threshold from the validation scores and the checkpoint carries it."""
    # validation: constant images, score = intensity; reals 0.10/0.20, fakes 0.30/0.40
    values = t([0.1, 0.2, 0.3, 0.4])
    images = values.view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    loader = DataLoader(TensorDataset(images, t([0, 0, 1, 1])), batch_size=2)
    model = known_detector.build()
    model.optimizer_factory = lambda params: torch.optim.SGD(params, lr=0.0)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        callbacks=[ThresholdCalibration("best_acc")],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert float(model.decision_threshold) == pytest.approx(0.3, abs=1e-5)
    assert trainer.callback_metrics["val/threshold"] == pytest.approx(0.3, abs=1e-5)
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    saved = torch.load(tmp_path / "c.ckpt", weights_only=True)["state_dict"]
    assert float(saved["decision_threshold"]) == pytest.approx(0.3, abs=1e-5)


def test_target_fpr_calibration_in_training_and_its_setting(tmp_path):
    # validation reals 0.10 .. 0.40, fakes 0.60 / 0.70: 25 % of the reals -> t = 0.40, the
    # highest real, where best_acc would sit between the classes
    values = t([0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
    images = values.view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    loader = DataLoader(TensorDataset(images, t([0, 0, 0, 0, 1, 1])), batch_size=4)
    model = known_detector.build()
    model.optimizer_factory = lambda params: torch.optim.SGD(params, lr=0.0)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        callbacks=[ThresholdCalibration("target_fpr", target_fpr=0.25)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert float(model.decision_threshold) == pytest.approx(0.4, abs=1e-5)

    from helpers.configs import compose_config

    from pixelproof.validation import ConfigError, validate

    cfg = compose_config("train")
    assert cfg.callbacks.threshold_calibration.method == "target_fpr"
    assert cfg.callbacks.threshold_calibration.target_fpr == 0.05
    bad = compose_config("train", "callbacks.threshold_calibration.target_fpr=1.5")
    with pytest.raises(ConfigError, match="threshold_calibration.target_fpr=1.5: must be a num"):
        validate(bad, "train", run_dir=str(tmp_path))


def test_weight_averaging_keeps_the_calibrated_threshold(tmp_path, train_overrides):
    # callbacks=ema swaps averaged weights in for validation; the threshold calibrated there must
    # reach the checkpoint and the test stage (averaging the buffers too reset it to 0.5 there)
    from helpers.configs import compose_config

    from pixelproof.train import train

    cfg = compose_config("train", *train_overrides, "callbacks=ema", "trainer.max_epochs=2")
    metrics = train(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    stored = float(last["state_dict"]["decision_threshold"])
    assert stored == pytest.approx(metrics["val/threshold"]) and stored != 0.5
    # the test stage scores the best checkpoint: its averaged weights and its threshold
    (best,) = (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")
    best_threshold = float(torch.load(best, weights_only=True)["state_dict"]["decision_threshold"])
    assert metrics["test/dcgan/threshold"] == pytest.approx(best_threshold) != 0.5


def averaging_trainer(callbacks, max_epochs):
    return L.Trainer(
        max_epochs=max_epochs,
        check_val_every_n_epoch=2,  # validated after epoch 2 only
        accelerator="cpu",
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def test_weight_averaging_keeps_the_calibrated_threshold_between_validations(tmp_path):
    # the weight average takes in every buffer of the trained weights after each step, the
    # threshold among them: without care, steps after a validation pull the averaged copy back
    # to the trained weights' stale value, and a checkpoint written before the next validation
    # (mid-epoch, interrupted, or the end of a run whose last epoch is not validated) holds that
    from lightning.pytorch.callbacks import EMAWeightAveraging

    values = t([0.1, 0.2, 0.3, 0.4])  # reals 0.10/0.20, fakes 0.30/0.40: best_acc t = 0.3
    images = values.view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    loader = DataLoader(TensorDataset(images, t([0, 0, 1, 1])), batch_size=1)

    def fit(max_epochs, ckpt_path=None):
        model = known_detector.build()
        model.optimizer_factory = lambda params: torch.optim.SGD(params, lr=0.0)
        callbacks = [ThresholdCalibration("best_acc"), EMAWeightAveraging(decay=0.5)]
        trainer = averaging_trainer(callbacks, max_epochs)
        validation = None if ckpt_path else loader  # the resumed epoch is not validated
        trainer.fit(
            model, train_dataloaders=loader, val_dataloaders=validation, ckpt_path=ckpt_path
        )
        return model, trainer

    model, trainer = fit(3)  # epoch 3's 4 steps follow the validation
    # the end of fit copies the average into the model
    assert float(model.decision_threshold) == pytest.approx(0.3, abs=1e-5)
    # a run resumed from a checkpoint written at the end of a validation, where the trained
    # weights still hold the stale threshold, keeps the calibrated one through a further epoch
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=True)
    checkpoint["current_model_state"]["decision_threshold"].fill_(0.5)
    torch.save(checkpoint, tmp_path / "c.ckpt")
    model, _ = fit(4, ckpt_path=tmp_path / "c.ckpt")
    assert float(model.decision_threshold) == pytest.approx(0.3, abs=1e-5)


def test_calibration_must_come_before_the_weight_averaging():
    from lightning.pytorch.callbacks import EMAWeightAveraging

    loader = DataLoader(TensorDataset(torch.rand(2, 3, 8, 8), t([0, 1])), batch_size=2)
    callbacks = [EMAWeightAveraging(), ThresholdCalibration("best_acc")]
    with pytest.raises(ValueError, match="threshold_calibration must come before the weight"):
        averaging_trainer(callbacks, 1).fit(known_detector.build(), train_dataloaders=loader)
