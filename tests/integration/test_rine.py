"""RINE end to end: training on the embedded data with a tiny CLIP checkpoint loaded by path."""

import time

import hydra
import pytest
import torch
from helpers.configs import compose_config
from lightning import Callback

from pixelproof.models.loading import load_detector
from pixelproof.train import train


class CheckBackboneFrozen(Callback):
    """Fails the run if the backbone leaves eval mode, gets a gradient, or changes."""

    steps = 0  # on the class: Hydra builds the instance inside train()

    def on_fit_start(self, trainer, pl_module) -> None:
        self.before = {k: v.clone() for k, v in pl_module.backbone.state_dict().items()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        backbone = pl_module.backbone
        assert pl_module.net.head.training and not any(
            m.training for m in backbone.vision.modules()
        )
        assert all(p.grad is None for p in backbone.parameters())
        type(self).steps += 1

    def on_fit_end(self, trainer, pl_module) -> None:
        after = pl_module.backbone.state_dict()
        changed = [k for k, v in self.before.items() if not torch.equal(v, after[k])]
        assert not changed, changed[:5]


def test_fast_dev_run_logs_the_contrastive_term(rine_overrides):
    metrics = train(compose_config("train", *rine_overrides, "++trainer.fast_dev_run=true"))
    assert {"train/loss", "train/bce", "train/supcon", "val/acc", "test/ap"} <= set(metrics)
    expected = metrics["train/bce"] + 0.2 * metrics["train/supcon"]
    assert metrics["train/loss"] == pytest.approx(expected)


def test_backbone_stays_frozen_and_checkpoints_hold_the_head_only(
    rine_overrides, tiny_clip_dir, tmp_path
):
    CheckBackboneFrozen.steps = 0
    watch = "+callbacks.frozen._target_=test_rine.CheckBackboneFrozen"
    metrics = train(compose_config("train", *rine_overrides, "trainer.max_epochs=2", watch))
    assert CheckBackboneFrozen.steps == 12  # 2 epochs x 6 batches (96 training images, 16 each)
    assert "test/acc" in metrics  # testing the best checkpoint needs the backbone put back

    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    kept = set(ckpt["state_dict"]) - {"decision_threshold"}
    assert kept and all(k.startswith("net.head.") for k in kept)
    assert "backbone" not in ckpt["hyper_parameters"]
    assert ckpt["model_config"]["backbone"]["name_or_path"] == str(tiny_clip_dir)
    # ~0.4 M head parameters at proj_dim 256, plus Adam's two moments: a few MB
    assert last.stat().st_size < 6e6


def test_resume_from_a_trimmed_checkpoint(rine_overrides, tmp_path):
    train(compose_config("train", *rine_overrides, "test=false"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resumed = compose_config(
        "train",
        *rine_overrides,
        "trainer.max_epochs=2",
        f"ckpt_path={last}",
        f"paths.output_dir={tmp_path / 'resumed'}",
    )
    metrics = train(resumed)
    final = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == 1 and final["global_step"] == 12 and "test/acc" in metrics


def test_input_size_runs_the_vit_at_a_lower_resolution(rine_overrides):
    short = ["++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1", "test=false"]
    metrics = train(compose_config("train", *rine_overrides, *short, "model.input_size=16"))
    assert "val/acc" in metrics
    with pytest.raises(Exception, match="model.input_size=20 must be a positive multiple"):
        train(compose_config("train", *rine_overrides, *short, "model.input_size=20"))


def test_fast_dev_run_of_the_real_preset_with_random_weights(train_overrides):
    """The 8M/16 architecture at its native 224x224: no download, the real model size."""
    shared = [o for o in train_overrides if not o.startswith(("model.", "model="))]
    preset = [
        "model=rine_tinyclip",
        "model/backbone=tinyclip_8m16",
        "model.backbone.pretrained=false",
    ]
    start = time.perf_counter()
    metrics = train(compose_config("train", *shared, *preset, "++trainer.fast_dev_run=true"))
    print(f"fast_dev_run of tinyclip_8m16 at 224: {time.perf_counter() - start:.1f} s")
    assert "test/acc" in metrics


def test_the_head_learns_a_separable_batch_end_to_end(rine_overrides):
    """Hooks -> head -> BCE + xi*SupCon -> Adam on the trainable part: a fixed batch whose classes
    differ visibly (dark vs bright) is fitted. Guards against a chain that runs but cannot learn."""
    import hydra

    cfg = compose_config("train", *rine_overrides, "model.dropout=0.0")
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = torch.cat([torch.rand(8, 3, 32, 32) * 0.4, 0.6 + torch.rand(8, 3, 32, 32) * 0.4])
    y = torch.cat([torch.zeros(8), torch.ones(8)])
    model.train()
    losses = []
    for step in range(40):
        loss = model.training_step((x, y), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = ((model(x) > 0).float() == y).float().mean().item()
    assert losses[-1] < 0.5 * losses[0] and accuracy == 1.0


def test_a_random_tower_is_saved_in_full_and_reloads_without_the_seed(tmp_path):
    """A pretrained tower is reloaded from its source; a random one exists nowhere else, so
    its checkpoint must hold it (or loading would silently build a different random tower)."""
    arch = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = {
        "_target_": "pixelproof.models.rine_module.RineModule",
        "backbone": {
            "_target_": "pixelproof.models.components.clip_backbone.CLIPBackbone",
            "pretrained": False,
            "architecture": {**arch, "patch_size": 8, "image_size": 32},
        },
        "optimizer": None,
        "proj_dim": 16,
    }
    torch.manual_seed(0)
    model = hydra.utils.instantiate(config).eval()
    checkpoint = {"state_dict": model.state_dict(), "model_config": config}
    model.on_save_checkpoint(checkpoint)
    assert any(k.startswith("net.backbone.") for k in checkpoint["state_dict"])
    torch.save(checkpoint, tmp_path / "random.ckpt")

    torch.manual_seed(123)  # another seed would build another random tower
    loaded = load_detector(tmp_path / "random.ckpt")
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
