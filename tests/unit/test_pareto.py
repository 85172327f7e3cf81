"""experiments/adversarial/pareto.py: the threshold shift the attacks aim at, the front, the
flags it reports and the plan it reads."""

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers.image_factory import write_class_folder

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "adversarial" / "pareto.py"
spec = importlib.util.spec_from_file_location("pareto", SCRIPT)
pareto = importlib.util.module_from_spec(spec)
sys.modules["pareto"] = pareto
spec.loader.exec_module(pareto)


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.87])
def test_at_threshold_calls_fake_exactly_where_p_reaches_the_threshold(threshold):
    logits = torch.linspace(-4, 4, 801)
    shifted = pareto.AtThreshold(Identity(), threshold)(logits)
    away = (logits.sigmoid() - threshold).abs() > 1e-4  # not on the boundary itself
    assert torch.equal((shifted >= 0)[away], (logits.sigmoid() >= threshold)[away])
    assert float(shifted[0] - logits[0]) == pytest.approx(-math.log(threshold / (1 - threshold)))


def row(point: str, clean: float, apgd_2: float, apgd_4: float) -> dict:
    return {"point": point, "clean": clean, "apgd_2": apgd_2, "apgd_4": apgd_4}


def test_front_keeps_the_points_no_other_beats_on_every_axis():
    rows = [
        row("clean", 0.98, 0.00, 0.00),
        row("a", 0.90, 0.60, 0.30),
        row("dominated", 0.85, 0.55, 0.30),
        row("b", 0.80, 0.70, 0.50),
        row("tie_of_a", 0.90, 0.60, 0.30),
        row("only_4", 0.70, 0.50, 0.55),  # beaten at 2/255, best at 4/255: still on the front
    ]
    assert pareto.front(rows) == ["clean", "a", "b", "tie_of_a", "only_4"]


def test_best_point_is_nearest_the_targets_by_its_worst_ratio():
    plan = {
        "base": [], "adversarial": ["callbacks=adversarial"],
        "points": {"clean": [], "even": ["a=1"], "lop": ["a=2"]},
        "targets": {"clean": 0.9, "apgd_2": 0.6, "apgd_4": 0.5},
    }  # fmt: skip
    rows = [row("clean", 0.98, 0.1, 0.0), row("even", 0.81, 0.54, 0.45), row("lop", 0.9, 0.6, 0.3)]
    assert pareto.best_point(rows, plan) == "even"  # 0.9 of every target; lop: 0.6 at 4/255


def test_best_point_judges_a_recipe_by_the_mean_of_its_seeds():
    plan = {
        "base": [], "adversarial": ["callbacks=adversarial"],
        "points": {"a": ["eps=2"], "b": ["eps=4"], "b_seed1": ["eps=4", "seed=1"]},
        "targets": {"clean": 1.0, "apgd_2": 1.0, "apgd_4": 1.0},
    }  # fmt: skip
    rows = [row("a", 0.8, 0.8, 0.7), row("b", 0.8, 0.8, 0.6), row("b_seed1", 0.8, 0.8, 0.75)]
    assert pareto.best_point(rows, plan) == "a"  # b_seed1 alone is best; b's mean is 0.675
    rows[1] = row("b", 0.8, 0.8, 0.66)
    assert pareto.best_point(rows, plan) == "b"  # mean 0.705: the recipe's first point


def test_mean_flags_leaves_out_the_per_generator_findings():
    rows = [
        {"condition": "clean", "dcgan/acc": 1.0, "flags": ""},
        {"condition": "pgd", "dcgan/acc": 0.5, "flags": "large-eps: ACC 0.1; dcgan: large-eps: x"},
        {"condition": "apgd", "dcgan/acc": 0.5, "flags": "dcgan: eps-monotone: y"},
    ]
    assert pareto.mean_flags(rows) == "large-eps"
    assert pareto.mean_flags(rows[:1]) == "none"


def test_the_plan_names_overrides_for_every_point_and_a_clean_reference():
    plan = yaml.safe_load(pareto.PLAN.read_text())
    assert plan["points"]["clean"] == []
    assert all(overrides for name, overrides in plan["points"].items() if name != "clean")
    assert set(plan["targets"]) == set(pareto.AXES)
    assert pareto.margin(0.5, 2000) == pytest.approx(0.0219, abs=1e-3)


def tiny_test_split(root: Path, reals: int) -> list[str]:
    """``test/REAL`` with ``reals`` images, two generators of 3 fakes whose folders share one
    set of reals (as the embedded dataset's do); the overrides that read it."""
    write_class_folder(root / "test" / "REAL", reals, seed=0)
    write_class_folder(root / "test" / "FAKE", 6, seed=100)
    for g, name in enumerate(("gan", "vae")):
        write_class_folder(root / "test_per_generator" / name / "0_real", 3, seed=0)
        write_class_folder(root / "test_per_generator" / name / "1_fake", 3, seed=200 + 10 * g)
    return [f"data.root={root}", "data.embedded=null", "data.cache_images=false"]


def test_distinct_test_images_gives_every_generator_reals_of_its_own(tmp_path):
    loaders = pareto.distinct_test_images(0, *tiny_test_split(tmp_path, reals=8)).loaders
    assert list(loaders) == ["gan", "vae"]
    reals = []
    for name, loader in loaders.items():
        samples = loader.dataset.samples
        fakes = [s.path for s in samples if s.label == 1]
        assert fakes == sorted((tmp_path / "test_per_generator" / name / "1_fake").iterdir())
        reals += [s.path for s in samples if s.label == 0]
        assert len(samples) == 6  # as many reals as fakes
    assert len(set(reals)) == 6  # no real counted for two generators
    assert all(p.parent == tmp_path / "test" / "REAL" for p in reals)


def test_distinct_test_images_refuses_a_split_with_too_few_reals(tmp_path):
    with pytest.raises(SystemExit, match="too few test reals .* vae"):
        pareto.distinct_test_images(0, *tiny_test_split(tmp_path, reals=5))


def test_cache_key_names_the_images_settings_and_weights_not_where_they_lie(tmp_path):
    import shutil

    split = tiny_test_split(tmp_path / "a", reals=12)
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"weights")
    settings = {"eps": ["1/255"], "attacks": [{"name": "apgd", "steps": 50}]}
    key = pareto.cache_key(pareto.distinct_test_images(0, *split), settings, checkpoint)
    assert pareto.cache_key(pareto.distinct_test_images(0, *split), settings, checkpoint) == key
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # the same images in another clone
    moved = [o.replace(str(tmp_path / "a"), str(tmp_path / "b")) for o in split]
    assert pareto.cache_key(pareto.distinct_test_images(0, *moved), settings, checkpoint) == key
    other_reals = pareto.distinct_test_images(1, *split)  # another seed's shares of the reals
    assert pareto.cache_key(other_reals, settings, checkpoint) != key
    sample = pareto.distinct_test_images(0, *split)
    assert pareto.cache_key(sample, {**settings, "eps": ["2/255"]}, checkpoint) != key
    checkpoint.write_bytes(b"weights trained again")
    assert pareto.cache_key(sample, settings, checkpoint) != key
    # the same names with other pictures (a rebuilt dataset)
    write_class_folder(tmp_path / "b" / "test" / "REAL", 12, seed=7)
    checkpoint.write_bytes(b"weights")
    assert pareto.cache_key(pareto.distinct_test_images(0, *moved), settings, checkpoint) != key


def test_distinct_test_images_reads_only_the_embedded_layout(tmp_path):
    split = tiny_test_split(tmp_path, reals=12)
    with pytest.raises(SystemExit, match="data.layout=per_generator: the study reads the embedded"):
        pareto.distinct_test_images(0, *split, "data.layout=per_generator")


def test_attacked_reads_back_only_rows_of_its_key(tmp_path, monkeypatch):
    sample = pareto.distinct_test_images(0, *tiny_test_split(tmp_path / "data", reals=12))
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"weights")
    measured = []

    def report(model, loaders, cfg, out, progress):
        measured.append(out)
        assert progress.parent == out and progress.name.startswith("progress-")
        return [{"condition": "clean", "acc": 0.9}]

    monkeypatch.setattr(pareto, "robustness_report", report)
    monkeypatch.setattr(pareto, "best_checkpoint", lambda run_dir: checkpoint)
    detector = SimpleNamespace(scorer=Identity(), threshold=0.4)
    monkeypatch.setattr(pareto, "load_trained", lambda path: detector)
    run, settings = tmp_path / "run", {"attacks": []}
    (run / "robustness").mkdir(parents=True)
    (run / "robustness" / "rows.json").write_text(
        json.dumps({"key": "another", "rows": [{"acc": 0.1}]})
    )
    rows = pareto.attacked(run, "robustness", settings, sample)
    assert rows == [{"condition": "clean", "acc": 0.9}] and len(measured) == 1  # measured again
    assert pareto.attacked(run, "robustness", settings, sample) == rows
    assert len(measured) == 1  # now read back
    cache = json.loads((run / "robustness" / "rows.json").read_text())
    assert cache["key"] == pareto.cache_key(sample, settings, checkpoint)


def test_the_robust_experiment_is_the_studys_best_point():
    """experiment=adversarial_robust composes what the best point of pareto/results.csv trains."""
    import csv

    from helpers.configs import compose_config

    plan = yaml.safe_load(pareto.PLAN.read_text())
    rows = [
        r for r in csv.DictReader((SCRIPT.parent / "pareto" / "results.csv").open()) if r["clean"]
    ]
    for row in rows:
        row.update({axis: float(row[axis]) for axis in plan["targets"]})
    best = pareto.best_point(rows, plan)
    point = compose_config("train", *pareto.point_overrides(best, plan))
    recipe = compose_config("train", "experiment=adversarial_robust")
    for key in ("attack", "callbacks", "data", "model", "trainer", "seed"):
        assert recipe[key] == point[key], (best, key)


def test_runs_table_names_each_run_by_its_overrides(tmp_path):
    run = tmp_path / "ema_0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- callbacks=ema\n- held_out=null\n")
    rows = [{"clean": 0.921, "apgd_1": 0.54, "apgd_2": 0.25, "apgd_4": 0.069}]
    pareto.write_runs_table(rows, [run], 2000, tmp_path / "table.md")
    text = (tmp_path / "table.md").read_text()
    assert "on 2000 distinct test images" in text and "+-2.2 points" in text
    assert "| ema_0 | callbacks=ema held_out=null | 92.1 | 54.0 | 25.0 | 6.9 |" in text


def test_the_robustness_docs_front_table_is_the_studys_results():
    """Every row of docs/robustness.md's front table that names a point (`` `point` ``) shows
    that point's numbers from pareto/results.csv, as results.md rounds them."""
    import csv

    results = SCRIPT.parent / "pareto" / "results.csv"
    points = {row["point"]: row for row in csv.DictReader(results.open())}
    docs = (SCRIPT.parents[2] / "docs" / "robustness.md").read_text()
    table = docs[docs.index("**The clean-vs-robust front**") :].split("\n\n")[1].splitlines()
    pct = lambda key, row: f"{100 * float(row[key]):.1f}"  # noqa: E731
    checked = 0
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        named = [p for p in points if f"`{p}`" in cells[0]]
        if not named:
            continue
        row, clean = points[named[0]], points["clean"]
        cost = float(row["step_s"]) / float(clean["step_s"])
        journey = f"{pct('journey_mean_ap', row)} / {pct('journey_worst_ap', row)}"
        accuracies = [pct(k, row) for k in ("clean", "apgd_1", "apgd_2", "apgd_4")]
        assert cells[1:7] == [f"{cost:.2f}x", *accuracies, journey], named[0]
        checked += 1
    assert checked >= 3, "docs/robustness.md: the front table names fewer than 3 points"


def test_the_studys_readme_table_is_results_md():
    """experiments/adversarial/README.md shows the study's table as results.md writes it."""
    results = (SCRIPT.parent / "pareto" / "results.md").read_text().splitlines()
    readme = (SCRIPT.parent / "README.md").read_text()
    table = readme[readme.index("| point | front |") :].split("\n\n")[0].splitlines()
    rows = [line for line in results if line.startswith("| ")]
    assert table == rows


def write_record(path: Path, rows: list[dict]) -> None:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)


def tiny_plan() -> dict:
    return {
        "seed": 0, "epochs": 16, "base": [], "adversarial": ["callbacks=adversarial"],
        "points": {"clean": [], "nfgsm": ["attack.eps=2/255"]},
        "robustness": {"eps": ["2/255"]}, "headline": {"eps": ["4/255"]},
        "targets": {"clean": 0.9, "apgd_2": 0.7, "apgd_4": 0.5},
    }  # fmt: skip


def test_recorded_reads_back_only_rows_measured_under_the_settings_and_images_now(tmp_path):
    sample = pareto.distinct_test_images(0, *tiny_test_split(tmp_path / "data", reals=12))
    plan = tiny_plan()
    longer = {**plan, "epochs": 32}
    now, then = pareto.provenance("clean", plan, sample), pareto.provenance("nfgsm", longer, sample)
    rows = [
        {**row("clean", 0.9, 0.2, 0.1), "strong_apgd_2": "", **now},
        {**row("nfgsm", 0.8, 0.6, 0.4), **then},
        {**row("gone", 0.7, 0.6, 0.5), **now},
    ]
    write_record(tmp_path / "results.csv", rows)
    record = pareto.recorded(tmp_path / "results.csv", plan, sample)
    assert list(record) == ["clean"]  # nfgsm: trained for other epochs; gone: not in the plan
    assert record["clean"]["clean"] == 0.9 and "strong_apgd_2" not in record["clean"]
    assert list(pareto.recorded(tmp_path / "results.csv", longer, sample)) == ["nfgsm"]
    other_images = pareto.distinct_test_images(1, *tiny_test_split(tmp_path / "data", reals=12))
    assert pareto.recorded(tmp_path / "results.csv", plan, other_images) == {}
    assert pareto.recorded(tmp_path / "missing.csv", plan, sample) == {}
    # a step time alone (the point was timed only then) is no measurement of the point
    write_record(tmp_path / "timed.csv", [{"point": "nfgsm", "step_s": 1.2, **then}])
    assert pareto.recorded(tmp_path / "timed.csv", longer, sample) == {}
    timed_only = {**longer, "points": {"clean": []}, "timed_only": longer["points"]}
    assert pareto.recorded(tmp_path / "timed.csv", timed_only, sample)["nfgsm"]["step_s"] == 1.2


def test_study_measures_only_the_points_the_record_lacks(tmp_path, monkeypatch):
    sample = pareto.distinct_test_images(0, *tiny_test_split(tmp_path / "data", reals=12))
    plan, trained, attacked = tiny_plan(), [], []

    def train(name, plan, output):
        trained.append(name)
        return output / name

    def summary(name, run_dir, rows, strong):
        accuracy = {"clean": 0.95, "apgd_2": 0.1, "apgd_4": 0.0}
        if name == "nfgsm":
            accuracy = {"clean": 0.9, "apgd_2": 0.7, "apgd_4": 0.5}
        return {"point": name, **accuracy, **({"strong_apgd_2": 0.69} if strong else {})}

    monkeypatch.setattr(pareto, "trained", train)
    monkeypatch.setattr(
        pareto, "attacked", lambda run, stage, *a: attacked.append(stage) or [stage]
    )
    monkeypatch.setattr(pareto, "summary", summary)
    clean = {**summary("clean", None, [], None), **pareto.provenance("clean", plan, sample)}
    rows = pareto.study(["clean", "nfgsm"], plan, sample, {"clean": clean}, tmp_path, True)
    assert trained == ["nfgsm", "nfgsm"] and attacked == ["robustness", "robustness", "headline"]
    assert rows[0] == clean and rows[1]["strong_apgd_2"] == 0.69  # nfgsm: the best point
    assert rows[1]["settings"] == pareto.settings_digest("nfgsm", plan)
    trained.clear()  # the best point read back without its strong pass: measured again
    nfgsm = {**summary("nfgsm", None, [], None), **pareto.provenance("nfgsm", plan, sample)}
    rows = pareto.study(["clean", "nfgsm"], plan, sample, {"clean": clean, "nfgsm": nfgsm},
                        tmp_path, True)  # fmt: skip
    assert trained == ["nfgsm"] and rows[1]["strong_apgd_2"] == 0.69
    trained.clear()  # and with it: nothing measured
    nfgsm["strong_apgd_2"] = 0.6
    rows = pareto.study(["clean", "nfgsm"], plan, sample, {"clean": clean, "nfgsm": nfgsm},
                        tmp_path, True)  # fmt: skip
    assert trained == [] and rows == [clean, nfgsm]
    (tmp_path / "clean").mkdir()  # a run under the output wins over the record
    (tmp_path / "clean" / "metrics.json").write_text("{}")
    pareto.study(["clean", "nfgsm"], plan, sample, {"clean": clean, "nfgsm": nfgsm}, tmp_path, True)
    assert trained == ["clean"]


def test_trained_reuses_only_a_run_of_the_points_overrides_now(tmp_path):
    plan = tiny_plan()
    run = tmp_path / "nfgsm"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit, match="nfgsm: trained with other overrides"):
        pareto.trained("nfgsm", plan, tmp_path)  # no record of its overrides
    overrides = ["trainer.max_epochs=16", "callbacks=adversarial", "attack.eps=2/255"]
    (run / "overrides.json").write_text(json.dumps(overrides))
    assert pareto.trained("nfgsm", plan, tmp_path) == run
    with pytest.raises(SystemExit, match="move it away"):
        pareto.trained("nfgsm", {**plan, "epochs": 32}, tmp_path)


def test_the_record_holds_every_point_as_the_plan_trains_it_now():
    """pareto/results.csv has a row for every point of pareto.yaml (and a step time for every
    one timed only), measured under the point's settings as they are: a point added or changed
    in the plan fails here until it is run."""
    import csv

    plan = yaml.safe_load(pareto.PLAN.read_text())
    rows = {
        r["point"]: r for r in csv.DictReader((SCRIPT.parent / "pareto" / "results.csv").open())
    }
    assert list(rows) == [*plan["points"], *plan.get("timed_only", {})]
    for name, row in rows.items():
        assert row["settings"] == pareto.settings_digest(name, plan), name


def test_write_results_gives_timed_only_points_their_step_cost_alone(tmp_path):
    rows = [
        {**row("clean", 0.92, 0.25, 0.06), "apgd_1": 0.5, "step_s": 0.3},
        {**row("nfgsm", 0.8, 0.6, 0.4), "apgd_1": 0.7, "step_s": 0.45},
    ]
    for r in rows:
        r.update(test_ap=0.9, journey_mean_ap=0.9, journey_worst_ap=0.7, unseen_fpr=0.05)
        r.update(collapsed=0.0)
    wide = [{"point": "wide", "step_s": 3.9, "settings": "s", "images": "i"}]
    targets = {"clean": 0.93, "apgd_2": 0.75, "apgd_4": 0.6}
    pareto.write_results(rows, wide, ["clean", "nfgsm"], "nfgsm", targets, 2000, "apgd", tmp_path)
    table = (tmp_path / "results.md").read_text()
    assert "| nfgsm | best | 80.0 | 70.0 | 60.0 | 40.0 |" in table and "| 1.50 |" in table
    assert table.endswith("Timed only, not trained (step cost x clean): wide 13.00x.\n")
    assert "| wide |" not in table
    import csv

    record = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [r["point"] for r in record] == ["clean", "nfgsm", "wide"] and record[2]["clean"] == ""
