"""experiments/collect.py: a real 2x2 multirun, collected into one table, CSV and plot."""

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.configs import run_multirun

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "collect.py"
spec = importlib.util.spec_from_file_location("collect", SCRIPT)
collect = importlib.util.module_from_spec(spec)
spec.loader.exec_module(collect)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, embedded_root, tiny_clip_dir) -> Path:
    """A finished 2 (xi) x 2 (epochs) RINE multirun on the tiny data and CLIP checkpoint."""
    root = tmp_path_factory.mktemp("multirun")
    run_multirun(
        "model=rine_tinyclip",
        "model.xi=0.1,0.2",
        "trainer.max_epochs=1,2",
        f"hydra.sweep.dir={root / 'sweep'}",
        f"paths.root_dir={root}",
        f"data.root={embedded_root}",
        "data.embedded=null",
        "data.batch_size=16",
        "data.eval_batch_size=32",
        f"model.backbone.name_or_path={tiny_clip_dir}",
        "trainer.accelerator=cpu",
        "++trainer.limit_train_batches=2",
        "++trainer.limit_val_batches=1",
        "callbacks.model_summary=null",
    )
    return root / "sweep"


def metrics_of(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_a_2x2_multirun_collects_into_one_row_per_run(sweep, tmp_path):
    runs = collect.collect(sweep, out=tmp_path)
    assert [(r.job, r.overrides["model.xi"], r.overrides["trainer.max_epochs"]) for r in runs] == [
        ("0", "0.1", "1"),
        ("1", "0.1", "2"),
        ("2", "0.2", "1"),
        ("3", "0.2", "2"),
    ]
    md = (tmp_path / "results.md").read_text().splitlines()
    header = (
        "| run | model.xi | trainer.max_epochs | ACC | ACC@t | AP | val ACC | val AP | train s |"
    )
    table = md[md.index(header) :]
    table = table[: table.index("")] if "" in table else table  # the runs' table, not the next
    assert len([line for line in table if line.startswith("| ")]) == 5  # header + 4 runs
    for run, line in zip(runs, table[2:6]):
        m = metrics_of(sweep / run.job)
        keys = ["test/acc", "test/acc_calibrated", "test/ap", "val/acc", "val/ap"]
        expected = [*(f"{100 * m[k]:.1f}" for k in keys), f"{m['train/seconds']:.0f}"]
        assert (
            line
            == "| "
            + " | ".join(
                [run.job, run.overrides["model.xi"], run.overrides["trainer.max_epochs"], *expected]
            )
            + " |"
        )
    best = max(runs, key=lambda r: r.metrics["val/acc"])  # optimized_metric val/acc, mode max
    assert any(line.startswith(f"Best by val/acc (max): run {best.job} ") for line in md)
    assert "`model=rine_tinyclip`" in md[3]  # common overrides listed once, not as columns

    with (tmp_path / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [float(r["test/ap"]) for r in rows] == [
        metrics_of(sweep / r["run"])["test/ap"] for r in rows
    ]
    png = (tmp_path / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_unfinished_jobs_are_skipped_and_named(sweep, tmp_path, caplog):
    partial = tmp_path / "sweep"
    shutil.copytree(sweep, partial)
    (partial / "2" / "metrics.json").unlink()  # a job that failed or still runs
    runs = collect.collect(partial, out=tmp_path / "out")
    assert [r.job for r in runs] == ["0", "1", "3"]
    assert "skipped job 2: no metrics.json" in caplog.text
    assert (
        "Skipped (no metrics.json: failed or unfinished): jobs 2."
        in (tmp_path / "out" / "results.md").read_text()
    )


def test_per_generator_metrics_give_team91s_table(tmp_path):
    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- model.xi=0.1\n")
    metrics = {
        "test/acc": 0.6,
        "test/ap": 0.7,
        "test/gan/acc": 0.5,
        "test/gan/ap": 0.55,
        "test/sd/acc": 0.7,
        "test/sd/ap": 0.85,
    }
    (job / "metrics.json").write_text(json.dumps(metrics))
    collect.collect(tmp_path / "sweep", out=tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| Generator | run 0 ACC | run 0 AP |\n|---|---|---|\n| gan | 50.0 | 55.0 |\n" in md
    assert "| sd | 70.0 | 85.0 |\n| Mean | 60.0 | 70.0 |\n" in md


def fake_job(sweep: Path, job: str, overrides: list[str], metrics: dict) -> None:
    (sweep / job / ".hydra").mkdir(parents=True)
    (sweep / job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (sweep / job / "metrics.json").write_text(json.dumps(metrics))


def test_cross_family_table_separates_held_out_from_seen_generators(tmp_path):
    # the zoo's families: gan=(dcgan,), diffusion=(ddpm,), vae=(vae,), autoregressive=(pixelcnn,)
    scores = {"dcgan": 0.9, "ddpm": 0.8, "vae": 1.0, "pixelcnn": 0.7}
    for job, (held, blur) in enumerate([("gan", 0), ("diffusion", 0), ("gan", 0.5)]):
        metrics = {"test/acc": 0.5, "test/ap": 0.5}
        for g, ap in scores.items():
            metrics |= {f"test/{g}/ap": ap - 0.1 * job, f"test/{g}/acc": 0.5}
        fake_job(tmp_path / "sweep", str(job), [f"held_out={held}", f"blur={blur}"], metrics)
    collect.collect(tmp_path / "sweep", out=tmp_path)
    md = (tmp_path / "results.md").read_text()
    # run 0 held out the GAN: held-out AP is dcgan's, seen AP the mean of the other three
    assert "| blur=0 | gan | 90.0 | 50.0 | 83.3 | 50.0 |" in md
    assert "| blur=0 | diffusion | 70.0 | 50.0 | 76.7 | 50.0 |" in md
    # per recipe: the mean over its held-out families, and the worst one
    assert "| blur=0 | 2 | 80.0 | 50.0 | 80.0 | 50.0 | 70.0 |" in md
    assert "| blur=0.5 | 1 | 70.0 | 50.0 | 63.3 | 50.0 | 70.0 |" in md
    png = (tmp_path / "held_out.png").read_bytes()  # held-out AP per recipe and family
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_a_study_of_several_experiments_names_each_run_by_its_choices(tmp_path):
    """make generalisation runs several experiments into one sweep; each grid names its choices,
    so a recipe is those choices (the experiment's name left out), and a sweep from before the
    recipe group was split still collects under its old names."""
    metrics = {"test/acc": 0.5, "test/ap": 0.5, "test/dcgan/ap": 0.6, "test/dcgan/acc": 0.5}
    metrics |= {"test/vae/ap": 0.9, "test/vae/acc": 0.5}
    jobs = {
        "0": ["experiment=generalisation", "data/augment=flip", "held_out=gan"],
        "ema_0": [
            "experiment=generalisation_ema",
            "data/augment=flip",
            "held_out=gan",
            "callbacks=ema",
        ],
        "old": ["experiment=generalisation", "recipe=wavefreq_full", "held_out=gan"],
        # an old augmentation choice is read as its new name, so it groups with the new runs
        "old_flip": ["experiment=generalisation", "recipe=flip", "held_out=vae"],
    }
    for job, overrides in jobs.items():
        fake_job(tmp_path / "sweep", job, overrides, metrics)
    collect.collect(tmp_path / "sweep", out=tmp_path)
    md = (tmp_path / "results.md").read_text()
    for recipe in ("data/augment=flip, callbacks=ema", "recipe=wavefreq_full"):
        assert f"| {recipe} | 1 | 60.0 | 50.0 | 90.0 | 50.0 | 60.0 |" in md
    # flip: gan held out (AP 60) by a new run, vae (AP 90) by an old one: two families
    assert "| data/augment=flip | 2 | 75.0 | 50.0 | 75.0 | 50.0 | 60.0 |" in md
    assert "recipe=flip" not in md
    assert collect._values("data/augment=flip, callbacks=ema") == "flip, ema"


def test_plot_against_a_logged_metric(tmp_path):
    for job, (model, epochs) in enumerate([("a", 1), ("a", 2), ("b", 1), ("b", 2)]):
        metrics = {"test/acc": 0.5 + 0.1 * epochs, "test/ap": 0.6, "train/seconds": 10.0 * epochs}
        fake_job(tmp_path / "sweep", str(job), [f"model={model}", f"epochs={epochs}"], metrics)
    collect.main([str(tmp_path / "sweep"), "--out", str(tmp_path), "--x", "train/seconds"])
    md = (tmp_path / "results.md").read_text()
    assert "| 3 | b | 2 | 70.0 |  | 60.0 |  |  | 20 |" in md
    png = (tmp_path / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_cli_errors_name_the_directory(tmp_path):
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )
    missing = run(str(tmp_path / "nowhere"))
    assert missing.returncode != 0
    assert f"collect: {tmp_path / 'nowhere'} is not a directory" in missing.stderr
    empty = run(str(tmp_path))
    assert empty.returncode != 0 and f"collect: no runs in {tmp_path}" in empty.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_selection_rule_ranks_recipes_by_their_worst_criterion():
    """Two recipes: 'sharp' peaks on clean held-out AP but breaks on the journey, 'steady' is
    lower everywhere but holds; the worst criterion puts 'steady' first."""

    def run(job, recipe, held_out, **metrics):
        overrides = {"experiment": "selection", "data/augment": recipe, "held_out": held_out}
        return collect.Run(job, overrides, metrics)

    def held(ap):  # the held-out VAE's AP; DCGAN was seen
        return {"test/vae/ap": ap, "test/vae/acc": ap, "test/dcgan/ap": 0.99, "test/dcgan/acc": 0.9}

    full = {"test/ap": 0.99, "test/unseen_sources/real_acc_calibrated": 0.95}
    runs = [
        run("0", "sharp", "null", **full, **{"journey/mean_ap": 0.80, "journey/worst_ap": 0.60}),
        run("1", "sharp", "vae", **held(0.97)),
        run("2", "steady", "null", **full, **{"journey/mean_ap": 0.93, "journey/worst_ap": 0.88}),
        run("3", "steady", "vae", **held(0.90)),
        run(
            "4",
            "steady",
            "null",
            **full,
            **{"journey/mean_ap": 0.95, "journey/worst_ap": 0.86},
        ),
    ]
    runs[4].overrides |= {"seed": "1", "experiment": "selection_seeds"}  # make selection's seeds
    swept = ["experiment", "data/augment", "held_out", "seed"]
    table = collect.selection_scores(runs, swept)
    assert list(table) == ["data/augment=steady", "data/augment=sharp"]
    steady, sharp = table["data/augment=steady"], table["data/augment=sharp"]
    assert sharp["score"] == pytest.approx(0.60)  # its journey worst
    assert steady["score"] == pytest.approx(0.87)  # mean journey worst over its two seeds
    assert steady["held-out AP"] == pytest.approx(0.90) and steady["seeds"] == 2
    assert steady["spread"] == pytest.approx(0.01)
    lines = collect.selection_table(runs, swept)
    assert any("**87.0**" in line for line in lines)
    # a recipe never trained with a family held out has no score, and ranks last
    runs.append(
        run("5", "unheld", "null", **full, **{"journey/mean_ap": 0.99, "journey/worst_ap": 0.98})
    )
    assert list(collect.selection_scores(runs, swept))[-1] == "data/augment=unheld"
    row = next(line for line in collect.selection_table(runs, swept) if "unheld" in line)
    assert "| – (no run) |" in row and row.endswith("| – | 1 |")


def test_journey_cells_give_each_generator_its_mean_and_worst_ap(tmp_path):
    """collect reads a run's journey/journey.csv: per generator, the mean and the lowest AP over
    the processed cells (the clean cell and the mean row left out), into results.csv."""
    from pixelproof.evaluation.journey_report import CSV_COLUMNS

    fake_job(tmp_path / "sweep", "0", ["data/augment=journey"], {"test/ap": 0.9})
    fake_job(tmp_path / "sweep", "1", ["data/augment=flip"], {"test/ap": 0.8})  # no journey
    rows = [  # cell, generator, ap, steps
        ("none", "ldm", 0.99, "as it is"),
        ("jpeg q90", "ldm", 0.90, "jpeg 90"),
        ("blur 1.0", "ldm", 0.70, "blur 1.0"),
        ("jpeg q90", "dcgan", 0.95, "jpeg 90"),
        ("jpeg q90", "mean", 0.10, "jpeg 90"),
    ]
    (tmp_path / "sweep" / "0" / "journey").mkdir()
    with open(tmp_path / "sweep" / "0" / "journey" / "journey.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        for cell, generator, ap, steps in rows:
            numbers = dict.fromkeys(CSV_COLUMNS[2:-1], 0.5)
            writer.writerow(
                numbers | {"cell": cell, "generator": generator, "ap": ap, "steps": steps}
            )
    collect.collect(tmp_path / "sweep", out=tmp_path)
    with open(tmp_path / "results.csv", newline="") as handle:
        by_run = {row["run"]: row for row in csv.DictReader(handle)}
    assert float(by_run["0"]["journey/ldm/mean_ap"]) == pytest.approx(0.80)
    assert float(by_run["0"]["journey/ldm/worst_ap"]) == pytest.approx(0.70)
    assert float(by_run["0"]["journey/dcgan/worst_ap"]) == pytest.approx(0.95)
    assert "journey/mean/mean_ap" not in by_run["0"] and by_run["1"]["journey/ldm/mean_ap"] == ""
