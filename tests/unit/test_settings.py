"""The components' settings classes (issue 24, item 1): a good value is accepted, each bad value
is refused with one line naming its key, the value and what it allows; the budget parser is one."""

import subprocess
import sys
from dataclasses import asdict

import pytest
from omegaconf import OmegaConf

from pixelproof.attacks.spec import AttackSpec, attack_spec, pixel_value
from pixelproof.attribution.settings import AttributionSettings
from pixelproof.callbacks.threshold_calibration_settings import ThresholdCalibrationSettings
from pixelproof.data.settings import DataSettings
from pixelproof.data.task1 import task1_indices
from pixelproof.evaluation.robustness_settings import RobustnessSettings
from pixelproof.explainer.scorer_settings import ScorerSettings
from pixelproof.models.inference_config import InferenceConfig
from pixelproof.models.optimizer_settings import OptimizerSettings
from pixelproof.run_settings import RunSettings, TrainerSettings
from pixelproof.utils.settings import ConfigError

GOOD = [
    DataSettings(batch_size=8, eval_batch_size=None, num_workers=0, val_fraction=0, image_size=32),
    OptimizerSettings(lr=3e-4, weight_decay=None),
    TrainerSettings(max_epochs=-1, min_epochs=0, max_steps=5),
    RunSettings(seed=None, threads=1, max_pixels=None, task1_index="position"),
    InferenceConfig(threshold=1.0, image_size=None, batch_size=1, num_workers=2, crop_size=1),
    ScorerSettings(threshold=0.0, top_k=1, batch_size=1),
    AttributionSettings(baseline="black", blur_sigma=0.5, ig_steps=1, batch_size=1),
    ThresholdCalibrationSettings(target_fpr=0.0),
    RobustnessSettings(protocol="journey", eps=[0, "8/255"], seed=0, max_batches=None),
]


@pytest.mark.parametrize("good", GOOD, ids=lambda s: type(s).__name__)
def test_good_values_are_accepted_and_read_back_from_a_config_node(good):
    assert type(good).from_node(OmegaConf.create(asdict(good))) == good


def test_budgets_are_parsed_once_where_they_are_declared():
    assert RobustnessSettings(eps=["8/255", 0.5]).eps == (8 / 255, 0.5)
    assert AttackSpec("pgd", "8 / 255", alpha="2/255").eps == pytest.approx(8 / 255)
    assert AttackSpec("pgd", "8 / 255", alpha="2/255").alpha == pytest.approx(2 / 255)
    assert pixel_value("64/255", "x") == pytest.approx(64 / 255)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DataSettings(batch_size=0), "data.batch_size=0: must be a whole number >= 1"),
        (lambda: DataSettings(batch_size="abc"), "data.batch_size=abc: must be a whole number"),
        (
            lambda: DataSettings(eval_batch_size=0),
            "data.eval_batch_size=0: must be a whole number >= 1, or null",
        ),
        (lambda: DataSettings(num_workers=-1), "data.num_workers=-1: must be a whole number >= 0"),
        (lambda: DataSettings(val_fraction=1), "data.val_fraction=1: must be a number in [0, 1)"),
        (lambda: DataSettings(image_size=True), "data.image_size=True: must be a whole number"),
        (lambda: OptimizerSettings(lr=0), "model.optimizer.lr=0: must be a number > 0"),
        (
            lambda: OptimizerSettings(weight_decay=-1),
            "model.optimizer.weight_decay=-1: must be a number >= 0, or null",
        ),
        (
            lambda: TrainerSettings(max_epochs=0),
            "trainer.max_epochs=0: must be a whole number >= 1 (or -1: no limit)",
        ),
        (lambda: TrainerSettings(max_steps=2.5), "trainer.max_steps=2.5: must be a whole number"),
        (lambda: TrainerSettings(min_epochs=-1), "trainer.min_epochs=-1: must be a whole number"),
        (lambda: RunSettings(seed="abc"), "seed=abc: must be a whole number, or null"),
        (lambda: RunSettings(threads=0), "threads=0: must be a whole number >= 1"),
        (lambda: RunSettings(max_pixels=0), "max_pixels=0: must be a whole number >= 1, or null"),
        (lambda: RunSettings(task1_index="x"), "task1_index=x: must be one of name, position"),
        (
            lambda: InferenceConfig(threshold=1.5),
            "inference.threshold=1.5: must be a number in [0, 1], or null",
        ),
        (lambda: InferenceConfig(image_size=0), "inference.image_size=0: must be a whole number"),
        (lambda: InferenceConfig(batch_size=0), "inference.batch_size=0: must be a whole number"),
        (lambda: InferenceConfig(num_workers=-1), "inference.num_workers=-1: must be a whole"),
        (lambda: InferenceConfig(crop_size=None), "inference.crop_size=null: must be a whole"),
        (lambda: ScorerSettings(threshold=2), "scorer.threshold=2: must be a number in [0, 1]"),
        (lambda: ScorerSettings(top_k=0), "scorer.top_k=0: must be a whole number >= 1"),
        (lambda: ScorerSettings(batch_size=0), "scorer.batch_size=0: must be a whole number"),
        (
            lambda: AttributionSettings(baseline="grey"),
            "attribution.baseline=grey: must be one of blur, black",
        ),
        (lambda: AttributionSettings(batch_size=0), "attribution.batch_size=0: must be a whole"),
        (lambda: AttributionSettings(blur_sigma=0), "attribution.blur_sigma=0: must be a number"),
        (
            lambda: AttributionSettings.from_node({"ig_step": 8}),
            "attribution has unknown keys ['ig_step']",
        ),
        (
            lambda: ThresholdCalibrationSettings(target_fpr=1),
            "callbacks.threshold_calibration.target_fpr=1: must be a number in [0, 1)",
        ),
        (
            lambda: RobustnessSettings(protocol="all"),
            "robustness.protocol=all: must be one of attacks, journey",
        ),
        (lambda: RobustnessSettings(eps="8/255"), "robustness.eps=8/255: must be a list"),
        (
            lambda: RobustnessSettings(eps=[0.1, "lots"]),
            "robustness.eps[1]=lots: must be a number >= 0 or a fraction a/b",
        ),
        (lambda: RobustnessSettings(seed=-1), "robustness.seed=-1: must be a whole number >= 0"),
        (lambda: RobustnessSettings(max_batches=0), "robustness.max_batches=0: must be a whole"),
        (lambda: AttackSpec("pgd", "lots"), "attack.eps=lots: must be a number >= 0"),
        (lambda: AttackSpec("pgd", "-8/255"), "attack.eps=-8/255: must be a number >= 0"),
        (lambda: AttackSpec("pgd", 8), "attack.eps=8: must be at most 1"),
        (lambda: AttackSpec("pgd", 0.1, alpha=0), "attack.alpha=0.0: must be a number > 0"),
        (lambda: AttackSpec("pgd", 0.1, steps=0), "attack.steps=0: must be a whole number >= 1"),
        (
            lambda: attack_spec({"name": "pgd", "eps": 0.1, "steps": 0}, "robustness.attacks[1]"),
            "robustness.attacks[1].steps=0: must be a whole number >= 1",
        ),
        (lambda: task1_indices([], "index"), "task1_index=index: must be one of name, position"),
    ],
)
def test_each_bad_value_is_one_line_naming_its_key(build, message):
    with pytest.raises(ConfigError) as raised:
        build()
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_message_ends_with_an_example_of_a_good_value():
    with pytest.raises(ConfigError, match=r"\(e\.g\. data\.batch_size=64\)$"):
        DataSettings(batch_size=0)


def test_from_node_reads_the_keys_it_declares_and_leaves_the_rest():
    node = OmegaConf.create({"_target_": "x.Y", "root": "/d", "batch_size": 4, "size": "${b}"})
    assert DataSettings.from_node(node) == DataSettings(batch_size=4)  # root: the layout's
    bad = OmegaConf.create({"batch_size": "${oops}"})  # not resolvable yet: left to the owner
    assert DataSettings.from_node(bad) == DataSettings()


def test_the_settings_import_no_torch():
    code = (
        "import sys, pixelproof.validation, pixelproof.attacks.spec; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
