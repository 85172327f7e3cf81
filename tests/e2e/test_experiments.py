"""Named experiments, the Optuna search and the SLURM launcher: each composes and runs as a
multirun (``python -m pixelproof.train -m ...``) on tiny data, offline."""

import json
from pathlib import Path

import pytest
import yaml
from helpers.configs import CONF_DIR, compose_config, run_multirun, tiny_data_overrides
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
# fine-tunes the explainer VLM on SynArtifact data: tests/integration/test_explainer_lora.py runs it
DETECTOR_EXPERIMENTS = [e for e in EXPERIMENTS if e != "explainer_lora"]


@pytest.fixture
def sweep_overrides(tmp_path, embedded_root) -> list[str]:
    """Overrides that shrink any multirun to the tiny embedded data on CPU, files in tmp_path."""
    return [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *tiny_data_overrides(tmp_path, embedded_root),
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "callbacks.model_summary=null",
    ]


def hydra_config(*overrides: str):
    """The composed config with its ``hydra`` node (which ``compose_config`` drops)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def job_dirs(sweep: Path) -> list[Path]:
    """The sweep's job directories: 0, 1, ... or an experiment's own names (seed_0, ...)."""
    jobs = [p for p in sweep.iterdir() if (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (len(p.name), p.name))


def first_values(grid) -> list[str]:
    """``key=<its first value>`` for each key of a sweeper grid (values may be lists)."""
    parser = OverridesParser.create()
    firsts = []
    for key, values in grid.items():
        override = parser.parse_override(f"{key}={values}")
        if override.is_sweep_override():
            firsts.append(f"{key}={next(override.sweep_string_iterator())}")
        else:
            firsts.append(f"{key}={override.get_value_element_as_str()}")
    return firsts


@pytest.mark.parametrize("experiment", DETECTOR_EXPERIMENTS)
def test_every_experiment_fast_dev_runs_as_a_multirun(
    experiment, sweep_overrides, tiny_clip_dir, tmp_path
):
    """DESIGN: every experiment is smoke-tested by a multirun with ++trainer.fast_dev_run=true.
    An experiment's own grid (hydra.sweeper.params) is cut to its first value per key."""
    grid = hydra_config(f"experiment={experiment}").hydra.sweeper.get("params") or {}
    first = first_values(grid)
    model = compose_config("train", f"experiment={experiment}", *first).model
    if model._target_.endswith("RineModule"):  # the tiny CLIP checkpoint instead of the Hub's
        shrink = [f"model.backbone.name_or_path={tiny_clip_dir}", "model.backbone.pretrained=true"]
    elif model.net.get("backbone") == "resnet50":  # a named timm ResNet: a smaller one
        shrink = ["model.net.backbone=resnet26"]
    else:
        shrink = []
    run_multirun(
        f"experiment={experiment}",
        *sweep_overrides,
        *shrink,
        *first,
        "++trainer.fast_dev_run=true",
    )
    (job,) = job_dirs(tmp_path / "sweep")
    assert {"test/acc", "test/ap", "val/acc"} <= set(json.loads((job / "metrics.json").read_text()))
    assert f"experiment={experiment}" in yaml.safe_load((job / ".hydra/overrides.yaml").read_text())


def test_rine_grid_is_team91s_planned_grid():
    cfg = hydra_config("experiment=rine_grid")
    assert dict(cfg.hydra.sweeper.params) == {
        "model.xi": "0.1,0.2",
        "model/backbone": "tinyclip_8m16,tinyclip_40m32",
        "trainer.max_epochs": "1,3,5,10,15",
    }
    assert cfg.task_name == "rine_grid" and "rine_grid" in cfg.tags  # experiment beats train.yaml
    assert cfg.model.nproj == 2 and cfg.data.batch_size == 64 and cfg.model.optimizer.lr == 1e-4
    # Team 91's projection widths: 256 for ViT-8M/16, 512 for ViT-40M/32
    for backbone, proj_dim in [("tinyclip_8m16", 256), ("tinyclip_40m32", 512)]:
        cfg = compose_config("train", "experiment=rine_grid", f"model/backbone={backbone}")
        assert cfg.model.proj_dim == proj_dim and cfg.model.backbone.pretrained

    offline = hydra_config("experiment=rine_grid_offline")
    assert offline.hydra.sweeper.params["trainer.max_epochs"] == "1,3"
    assert offline.model.input_size == 32 and offline.model.backbone.pretrained is False
    assert offline.trainer.accelerator == "cpu" and offline.data.embedded is not None


def test_optuna_search_runs_two_trials(sweep_overrides, tiny_clip_dir, tmp_path):
    cfg = hydra_config("hparams_search=optuna_rine")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert set(sweeper.params) == {
        "model.xi",
        "model.nproj",
        "model.proj_dim",
        "model.optimizer.lr",
    }
    assert sweeper.direction == "maximize"  # from optimized_mode
    assert compose_config("train", "hparams_search=optuna_rine", "optimized_mode=min")
    minimise = hydra_config("hparams_search=optuna_rine", "optimized_mode=min")
    assert minimise.hydra.sweeper.direction == "minimize"

    run_multirun(
        "hparams_search=optuna_rine",
        "hydra.sweeper.n_trials=2",
        *sweep_overrides,
        f"model.backbone.name_or_path={tiny_clip_dir}",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=2",
        "++trainer.limit_val_batches=1",
    )
    sweep = tmp_path / "sweep"
    values = [json.loads((job / "metrics.json").read_text())["val/ap"] for job in job_dirs(sweep)]
    assert len(values) == 2
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(values))  # Optuna saw what train returned
    assert set(result["best_params"]) == set(sweeper.params)


def test_slurm_launcher_submits_one_array_job_per_sweep(sweep_overrides, tmp_path, monkeypatch):
    """The real plugin and submitit, down to the sbatch call: a fake ``sbatch`` records the
    script, and the jobs' results are faked since no SLURM runs them."""
    import submitit
    from hydra.core.utils import JobReturn, JobStatus

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    done = JobReturn(_return_value=0.5, status=JobStatus.COMPLETED)
    monkeypatch.setattr(submitit.SlurmJob, "results", lambda self: [done])

    run_multirun(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
        "model.optimizer.lr=1e-3,1e-4",
        *sweep_overrides,
    )
    script = (tmp_path / "submitted.sh").read_text()
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --array=0-1%2",  # the two jobs of the sweep, both at once (limit 8)
        "#SBATCH --job-name=train",
    ]:
        assert line in script
    assert len(list((tmp_path / "sweep" / ".submitit").rglob("*_submitted.pkl"))) == 2


def test_wandb_groups_a_sweeps_runs_and_logs_their_config(sweep_overrides, tmp_path, monkeypatch):
    import wandb

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    runs = []
    real_init = wandb.init
    monkeypatch.setattr(wandb, "init", lambda **kw: runs.append(real_init(**kw)) or runs[-1])
    run_multirun(
        "logger=wandb",
        "tags=[study,a]",
        "model.optimizer.lr=1e-3,1e-4",
        *sweep_overrides,
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=1",  # not fast_dev_run: it swaps loggers for a dummy
        "++trainer.limit_val_batches=1",
        "test=false",
    )
    jobs = job_dirs(tmp_path / "sweep")
    assert len({run.id for run in runs}) == 2  # one wandb run per job, not one reused
    for run, job, lr in zip(runs, jobs, [1e-3, 1e-4]):
        assert run.group == f"train_{(tmp_path / 'sweep').name}" and run.tags == ("study", "a")
        config = run.config.as_dict()  # the resolved config, as train() logged it
        assert config["model"]["optimizer"]["lr"] == lr
        assert config["paths"]["output_dir"] == str(job)
        assert list((job / "wandb").glob(f"offline-run-*-{run.id}/*.wandb"))  # for `wandb sync`
    # a single run keeps the task name as its group
    assert compose_config("train", "logger=wandb").logger.wandb.group == "train"
