"""callbacks=consistency: the Jensen-Shannon term's known values, the two views the datamodule
makes while it fits, the loss the detector trains on, and what it refuses."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from helpers.image_factory import make_cifake_tree
from lightning import Callback, Trainer
from torch import nn

from pixelproof.attacks.spec import AttackSpec
from pixelproof.callbacks.adversarial_augmentation import AdversarialAugmentation
from pixelproof.callbacks.view_consistency import ViewConsistency, bernoulli_js
from pixelproof.data.datamodule import ImageDataModule
from pixelproof.models.detector_module import DetectorModule
from pixelproof.utils.settings import ConfigError

LN3 = math.log(3)  # sigmoid(ln 3) = 0.75


def test_bernoulli_js_known_values():
    js = bernoulli_js(torch.tensor([0.0, 1.5, 60.0, 0.0]), torch.tensor([LN3, 1.5, -60.0, 0.0]))
    # JS(0.5 || 0.75): the mixture is 0.625; 0.5 KL(0.5 || 0.625) + 0.5 KL(0.75 || 0.625)
    kl = lambda p, q: p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))  # noqa: E731
    assert js[0].item() == pytest.approx(0.5 * kl(0.5, 0.625) + 0.5 * kl(0.75, 0.625), rel=1e-5)
    assert js[1].item() == pytest.approx(0.0, abs=1e-7)
    assert js[2].item() == pytest.approx(math.log(2), rel=1e-4)  # certain and opposite: ln 2
    assert js[3].item() == pytest.approx(0.0, abs=1e-7)
    # symmetric, unlike KL
    a, b = torch.randn(8), torch.randn(8)
    assert torch.allclose(bernoulli_js(a, b), bernoulli_js(b, a), atol=1e-6)


class SpyDetector(DetectorModule):
    """A linear detector that does not learn (lr 0) and keeps every training batch and loss."""

    def __init__(self) -> None:
        net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1), nn.Flatten(0))
        super().__init__(net, partial(torch.optim.SGD, lr=0.0))
        self.seen: list[tuple[torch.Tensor, torch.Tensor, float]] = []

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.seen.append((batch[0].clone(), batch[1].clone(), float(loss.detach())))
        return loss


def fit(tmp_path, callbacks: list[Callback]) -> tuple[SpyDetector, ImageDataModule]:
    make_cifake_tree(tmp_path, n_per_class=8)
    noise = {"noise_prob": 1.0, "noise_std": [0.1, 0.1]}
    datamodule = ImageDataModule(tmp_path, batch_size=4, val_fraction=0.25, augment=noise)
    model = SpyDetector()
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        callbacks=callbacks,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule)
    return model, datamodule


def test_two_views_of_every_image_and_the_consistency_loss(tmp_path):
    model, datamodule = fit(tmp_path, [ViewConsistency(weight=5.0)])
    assert model.seen and datamodule.views == 1  # back to one view once the fit ends
    assert model.paired_objective is None
    for images, labels, loss in model.seen:
        assert images.shape == (8, 3, 32, 32)  # 4 images, 2 views each
        first, second = images.chunk(2)
        assert not torch.equal(first, second)  # two independent draws of the noise ...
        # ... of the same images: noise of std 0.1 moves a pixel by ~0.14 between the views
        assert (first - second).abs().mean() < 0.2
        assert torch.equal(labels[:4], labels[4:])
        with torch.no_grad():
            logits = model(images)
        js = bernoulli_js(*logits.chunk(2)).mean()
        want = F.binary_cross_entropy_with_logits(logits, labels) + 5.0 * js
        assert loss == pytest.approx(float(want), rel=1e-5)
        assert js > 0


def test_one_view_without_the_callback(tmp_path):
    model, _ = fit(tmp_path, [])
    assert all(images.shape[0] == 4 for images, _, _ in model.seen)


def test_consistency_and_a_paired_adversarial_loss_are_refused_together(tmp_path):
    trades = AdversarialAugmentation(AttackSpec("fgsm", 2 / 255), fraction=1.0, loss="trades")
    with pytest.raises(ValueError, match="callbacks.consistency and callbacks.adversarial"):
        fit(tmp_path, [trades, ViewConsistency()])


def test_a_bad_weight_is_named():
    with pytest.raises(ConfigError, match=r"callbacks.consistency.weight=-1"):
        ViewConsistency(weight=-1)
