"""The contract every detector keeps, checked for every detector config in ``conf/model/``.

``[B,3,32,32]`` in [0,1] -> ``[B]`` logits; gradients reach the input (attacks need them); an
attack runs and stays in its budget; ``load_detector`` rebuilds it from a checkpoint; its ONNX
export scores like it. A new ``conf/model/<name>.yaml`` is picked up here without a test edit.
"""

import json

import pytest
import torch
from helpers.detectors import DETECTORS, build

from pixelproof.attacks.craft import craft
from pixelproof.attacks.spec import attack_spec
from pixelproof.deploy.exporter import compare, example_images, export_net
from pixelproof.models.loading import load_detector


def test_the_detectors_are_found():
    assert {"rine_tinyclip", "wavefreq_resnet50"} <= set(DETECTORS)
    assert "explainer_lora" not in DETECTORS


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_contract(name, tmp_path):
    model, config = build(name)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0.0, 1.0, 1.0])

    x = images.clone().requires_grad_(True)
    logits = model(x)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input"

    eps = 8 / 255
    adversarial = craft(model, attack_spec({"name": "pgd", "eps": eps, "steps": 2}), images, labels)
    assert adversarial.shape == images.shape and not torch.equal(adversarial, images)
    assert (adversarial - images).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert not model.training  # the attack gave the model its mode back

    path = tmp_path / "detector.ckpt"
    checkpoint = {"state_dict": model.state_dict(), "model_config": config}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    with torch.no_grad():
        torch.testing.assert_close(load_detector(path)(images), model(images))

    export_net(model.net, tmp_path / "model.onnx", "onnx")
    settings = {"format": "onnx", "model_file": "model.onnx", "image_size": 32}
    settings |= {"resize_mode": "resize", "threshold": 0.5}
    (tmp_path / "preprocess.json").write_text(json.dumps(settings))
    check = compare(model.net, tmp_path, example_images(4, 32, seed=2), threshold=0.5)
    assert check["max_abs_logit_diff"] <= 1e-4
