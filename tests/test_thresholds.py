"""Decision thresholds: best accuracy, equal error, and calibration during training."""

import known_detector
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pixelproof.callbacks.threshold_calibration import ThresholdCalibration
from pixelproof.evaluation.thresholds import (
    best_accuracy,
    choose_threshold,
    equal_error_threshold,
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


def test_choose_threshold_errors():
    assert choose_threshold("fixed", t([0.9]), t([1])) == 0.5
    with pytest.raises(ValueError, match="choose one of fixed, best_acc, eer"):
        choose_threshold("median", t([0.1, 0.9]), t([0, 1]))
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


def test_weight_averaging_keeps_the_calibrated_threshold(tmp_path, embedded_root):
    # recipe=ema swaps averaged weights in for validation; the threshold calibrated there must
    # reach the checkpoint and the test stage (averaging the buffers too reset it to 0.5 there)
    from conftest import compose_config, tiny_data_overrides

    from pixelproof.train import train

    cfg = compose_config(
        "train",
        *tiny_data_overrides(tmp_path, embedded_root),
        f"paths.output_dir={tmp_path / 'run'}",
        "recipe=ema",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
    )
    metrics = train(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    stored = float(last["state_dict"]["decision_threshold"])
    assert stored == pytest.approx(metrics["val/threshold"]) and stored != 0.5
    # the test stage scores the best checkpoint: its averaged weights and its threshold
    (best,) = (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")
    best_threshold = float(torch.load(best, weights_only=True)["state_dict"]["decision_threshold"])
    assert metrics["test/dcgan/threshold"] == pytest.approx(best_threshold) != 0.5
