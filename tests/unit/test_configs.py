"""Every config group composes, instantiates, and rejects typos with a clear error."""

import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from helpers.configs import CONF_DIR, compose_config
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from pixelproof.data.layouts import LAYOUTS
from pixelproof.utils.instantiate import instantiate_named


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


AUGMENTS = choices("data/augment")


# synartifact feeds the explainer, not a detector: composed in test_explainer_lora.py
@pytest.mark.parametrize("data", [c for c in choices("data") if c != "synartifact"])
def test_data_configs_compose(data, tmp_path):
    cfg = compose_config(
        "train",
        f"data={data}",
        f"++data.root={tmp_path}",
        "data.train_split=a.csv",
        "data.test_split=b.csv",
    )
    assert cfg.data._target_.endswith("ImageDataModule")
    dm = hydra.utils.instantiate(cfg.data)  # constructing reads nothing yet
    assert dm.hparams.layout in LAYOUTS


@pytest.mark.parametrize("group", ["callbacks", "logger"])
def test_named_groups_instantiate(group, tmp_path):
    for choice in choices(group):
        attack = ["attack=fgsm"] if choice == "adversarial" else []  # it refuses attack=none
        cfg = compose_config("train", f"{group}={choice}", f"paths.output_dir={tmp_path}", *attack)
        objects = instantiate_named(cfg.get(group), group)
        expected = [k for k, v in (cfg.get(group) or {}).items() if v and "_target_" in v]
        assert len(objects) == len(expected), choice


@pytest.mark.parametrize("trainer", choices("trainer"))
def test_trainer_configs_compose(trainer):
    cfg = compose_config("train", f"trainer={trainer}")
    assert cfg.trainer._target_.endswith("Trainer")


@pytest.mark.parametrize("experiment", choices("experiment"))
def test_experiments_compose(experiment):
    cfg = compose_config("train", f"experiment={experiment}")
    assert OmegaConf.to_container(cfg.model, resolve=False)


def test_default_is_the_small_cnn_on_embedded_data_and_wavefreq_keeps_team57s_recipe():
    cfg = compose_config("train")
    assert cfg.model.net._target_.endswith("SimpleCNN") and cfg.trainer.max_epochs == 16
    # the selection's winner: journey augmentation and an EMA of the weights; the studies
    # measured before it keep the plain callbacks
    assert "ema" in cfg.callbacks and cfg.data.augment.jpeg_prob > 0
    for study in ("cross_family", "selection", "time_to_accuracy", "generalisation"):
        assert "ema" not in compose_config("train", f"experiment={study}").callbacks, study
    assert cfg.model.scheduler._target_.endswith("OneCycleLR")
    assert cfg.data.embedded is not None and cfg.data.layout == "cifake_per_generator"
    wavefreq = compose_config("train", "model=wavefreq_resnet50").model
    assert wavefreq.net._target_.endswith("WaveFreqResNet") and wavefreq.net.backbone == "resnet50"
    assert wavefreq.optimizer.lr == 5e-4 and wavefreq.scheduler.patience == 5


def test_config_typos_are_refused():
    with pytest.raises(ConfigCompositionException, match="lrr"):
        compose_config("train", "model.optimizer.lrr=1e-3")
    with pytest.raises(ConfigCompositionException, match="resnet_50"):
        compose_config("train", "model=resnet_50")


def test_cli_help_and_cfg_job(tmp_path):
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "pixelproof.train", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    help_out = run("--help")
    assert help_out.returncode == 0, help_out.stderr
    assert "wavefreq_resnet50" in help_out.stdout and "SimpleCNN" in help_out.stdout  # default
    job = run("--cfg", "job", "trainer.max_epochs=7", "data.batch_size=128")
    assert job.returncode == 0, job.stderr
    cfg = OmegaConf.create(job.stdout)
    assert cfg.trainer.max_epochs == 7 and cfg.data.batch_size == 128


@pytest.mark.parametrize("augment", choices("data/augment"))
def test_augmentations_compose_into_valid_settings(augment):
    from pixelproof.data.augmentations import BatchAugmentation

    cfg = compose_config("train", f"data/augment={augment}")
    BatchAugmentation(**cfg.data.augment)


def test_augmentations_stack_as_their_names_say():
    augment = {a: compose_config("train", f"data/augment={a}").data.augment for a in AUGMENTS}
    on = {r: {k for k, v in a.items() if k.endswith("_prob") and v > 0} for r, a in augment.items()}
    assert on["no_augment"] == set() and on["flip"] == {"hflip_prob"}
    assert on["blur_jpeg"] == {"blur_prob", "jpeg_prob", "hflip_prob"}
    assert on["blur_jpeg_noise"] == on["blur_jpeg"] | {"noise_prob"}
    assert on["blur_jpeg_noise_rescale"] == on["blur_jpeg_noise"] | {"rescale_prob"}
    assert compose_config("train").data.augment == augment["journey"]  # the default


def test_each_study_of_the_generalisation_sweep_is_one_experiment():
    callbacks = compose_config("train", "callbacks=ema").callbacks
    assert callbacks.ema._target_.endswith("EMAWeightAveraging")
    assert set(callbacks) - {"ema"} == set(compose_config("train", "callbacks=default").callbacks)
    sims = compose_config("train", "data=embedded_simulations").data
    assert len(sims.embedded.simulations) == 4 and sims.root.endswith("embedded_simulations")
    held_out = compose_config("train", "experiment=generalisation_simulations", "held_out=gan")
    assert held_out.data.root.endswith("simulations_without_gan")  # its own build per family
    assert held_out.data.embedded.simulations == sims.embedded.simulations
    bjnr = compose_config("train", "data/augment=blur_jpeg_noise_rescale").data.augment
    assert held_out.data.augment == bjnr
    ema = compose_config("train", "experiment=generalisation_ema")
    assert "ema" in ema.callbacks and ema.data.augment.hflip_prob == 0.5
    assert ema.data.augment.jpeg_prob == 0 and ema.trainer.max_epochs == 8
    branches = compose_config("train", "experiment=generalisation_branches")
    assert (
        branches.model.net._target_.endswith("WaveFreqResNet") and branches.trainer.max_epochs == 3
    )
    for experiment, grid in (
        ("generalisation_branches", "[spatial,frequency],[spatial],[frequency]"),
        ("time_to_accuracy_rine", "2,4"),
    ):
        GlobalHydra.instance().clear()
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            params = compose("train", [f"experiment={experiment}"], return_hydra_config=True)
        assert grid in params.hydra.sweeper.params.values()


def test_only_experiments_and_searches_set_global_keys():
    """A group's config sets its own package; only an experiment or a search changes several
    (and conf/generator: train_generator's experiments, a generator and its training budget)."""
    conf = Path(CONF_DIR)
    global_groups = {
        p.relative_to(conf).parts[0]
        for p in conf.rglob("*.yaml")
        if p.read_text().startswith("# @package _global_")
    }
    assert global_groups <= {"experiment", "hparams_search", "debug", "generator"}
