"""experiments/collect.py: a real 2x2 multirun, collected into one table, CSV and plot."""

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_multirun

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "collect.py"
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
    header = "| run | model.xi | trainer.max_epochs | ACC | AP | val ACC | val AP |"
    table = md[md.index(header) :]
    table = table[: table.index("")] if "" in table else table  # the runs' table, not the next
    assert len([line for line in table if line.startswith("| ")]) == 5  # header + 4 runs
    for run, line in zip(runs, table[2:6]):
        m = metrics_of(sweep / run.job)
        expected = [f"{100 * m[k]:.1f}" for k in ["test/acc", "test/ap", "val/acc", "val/ap"]]
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
