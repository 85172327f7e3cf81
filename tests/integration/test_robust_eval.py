"""Robust evaluation on a detector whose answers are known, the masking checks on a detector
built to mask its gradients, transfer attacks, and the shipped robustness configs."""

import csv
from pathlib import Path

import pytest
import torch
from helpers import known_detector
from helpers.configs import compose_config
from helpers.detectors import MeanIntensityDetector, constant_images
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pixelproof.attacks.module_modes import module_modes
from pixelproof.evaluation.robustness import (
    MaskingChecks,
    masking_checks,
    masking_flags,
    robustness_conditions,
    robustness_report,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "robustness"


def generator_loader(fake: float, real: float, n: int = 4, batch_size: int = 3) -> DataLoader:
    """``n`` flat fakes of brightness ``fake`` and ``n`` flat reals of ``real``."""
    images = constant_images(*[fake] * n, *[real] * n, size=16)
    labels = torch.tensor([1.0] * n + [0.0] * n)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


SMALL = {
    "eps": [0.05, 0.15, 0.25],
    "attacks": [{"name": "fgsm"}, {"name": "pgd", "steps": 5}],
    "perturbations": {"jpeg": [50], "blur": [1.0], "noise": ["5/255"], "crop": [0.1]},
    "seed": 0,
}


def test_table_values_for_a_detector_whose_answers_are_known(tmp_path):
    """Mean-intensity detector; generator ``a`` has a margin of 0.2 around 0.5, ``b`` of 0.1.
    An attack of eps moves every pixel by eps against the label: ``a`` falls at eps > 0.2,
    ``b`` at eps > 0.1. Flat images survive every perturbation."""
    detector = MeanIntensityDetector().train()
    before = module_modes(detector)
    loaders = {"a": generator_loader(0.7, 0.3), "b": generator_loader(0.6, 0.4)}
    rows = robustness_report(detector, loaders, OmegaConf.create(SMALL), tmp_path)

    assert module_modes(detector) == before
    table = {r["condition"]: (r["a/acc"], r["b/acc"], r["acc"], r["ap"]) for r in rows}
    assert list(table)[0] == "clean"
    # fully wrong but tied scores inside a generator: AP is the positive rate, 0.5
    expected_attack = {0.05: (1, 1, 1, 1), 0.15: (1, 0, 0.5, 0.75), 0.25: (0, 0, 0, 0.5)}
    for label in ("fgsm", "pgd-5"):
        for eps, values in expected_attack.items():
            assert table[f"{label} eps={eps}"] == pytest.approx(values)
    perturbed = ["jpeg quality=50", "blur sigma=1.0", "noise std=5/255", "crop fraction=0.1"]
    for label in ["clean", *perturbed]:
        assert table[label] == pytest.approx((1, 1, 1, 1))
    assert [r["kind"] for r in rows] == ["clean"] + ["attack"] * 6 + ["perturbation"] * 4
    assert rows[6]["acc_drop"] == pytest.approx(1.0)


def test_report_files_have_the_right_shape(tmp_path):
    loaders = {"a": generator_loader(0.7, 0.3), "b": generator_loader(0.6, 0.4)}
    rows = robustness_report(MeanIntensityDetector(), loaders, OmegaConf.create(SMALL), tmp_path)
    with (tmp_path / "robustness.csv").open() as file:
        long_rows = list(csv.DictReader(file))
    assert len(long_rows) == len(rows) * 3  # a, b and their mean per condition
    assert list(long_rows[0]) == [
        "condition", "kind", "name", "strength", "generator", "acc", "ap", "images", "flags",
    ]  # fmt: skip
    assert [r["generator"] for r in long_rows[:3]] == ["a", "b", "mean"]
    assert [r["images"] for r in long_rows[:3]] == ["8", "8", "16"]
    fgsm_mean = next(
        r for r in long_rows if r["condition"] == "fgsm eps=0.15" and r["generator"] == "mean"
    )
    assert float(fgsm_mean["acc"]) == pytest.approx(0.5) and float(fgsm_mean["strength"]) == 0.15
    assert all(r["flags"] == "" for r in long_rows)
    markdown = (tmp_path / "robustness.md").read_text().splitlines()
    assert len(markdown) == 2 + len(rows) + 2
    assert markdown[3].startswith("| fgsm eps=0.05 | attack | 1.000 | 1.000 |")
    assert markdown[-1] == "Masking checks: off (robustness.masking_checks)."  # not "passed"
    assert (tmp_path / "robustness.png").read_bytes()[:4] == b"\x89PNG"


def test_max_batches_and_seed_make_a_quick_reproducible_run(tmp_path):
    cfg = OmegaConf.create({**SMALL, "max_batches": 1, "perturbations": {"noise": [0.3]}})
    loaders = {"a": generator_loader(0.55, 0.45)}
    first = robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path / "1")
    second = robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path / "2")
    assert first == second
    assert (tmp_path / "1" / "robustness.csv").read_text().splitlines()[1].endswith(",3,")


def test_report_files_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """Every output goes through the atomic helper; a write that fails leaves the previous
    report as it was and no temporary file behind."""
    from pixelproof.utils import atomic

    loaders = {"a": generator_loader(0.7, 0.3)}
    cfg = OmegaConf.create({**SMALL, "max_batches": 1})
    real_replace, landed = atomic.os.replace, []

    def recording_replace(source, target):
        landed.append(Path(target).name)
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", recording_replace)
    robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path)
    assert sorted(landed) == ["robustness.csv", "robustness.md", "robustness.png"]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_replace(source, target):
        raise OSError("simulated write failure")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated write failure"):
        robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_shipped_configs():
    standard = compose_config("eval", "ckpt_path=x", "robustness=standard").robustness
    conditions = robustness_conditions(standard)
    # clean + (FGSM, PGD) x 4 eps + JPEG 5 + blur 3 + noise 3 + crop 3
    assert len(conditions) == 1 + 2 * 4 + 5 + 3 + 3 + 3
    assert [c.strength for c in conditions[1:5]] == pytest.approx(
        [1 / 255, 2 / 255, 4 / 255, 8 / 255]
    )
    assert conditions[8].label == "pgd-10 eps=8/255"
    assert masking_checks(standard.masking_checks) is None  # off unless enabled
    assert not OmegaConf.load(CONF / "none.yaml")  # robustness=none: nothing to do


def test_strong_config_runs_autoattack_stages_and_the_masking_checks():
    strong = compose_config("eval", "ckpt_path=x", "robustness=strong").robustness
    conditions = robustness_conditions(strong)
    attacks = [c.label for c in conditions if c.kind == "attack"]
    series = list(dict.fromkeys(label.split(" eps=")[0] for label in attacks))
    assert series == ["fgsm", "pgd-10", "apgd-ce-50", "square-1000"]
    assert len(attacks) == 4 * 4
    threats = {c.series: c.threat for c in conditions if c.kind == "attack"}
    assert threats["square-1000"] == "black-box" and threats["apgd-ce-50"] == "white-box"
    checks = [(c.label, c.role) for c in conditions if c.kind == "check"]
    assert checks[0] == ("pgd-10 eps=64/255", "large_eps")
    assert [label for label, _ in checks[1:]] == [f"pgd-50 eps={e}/255" for e in (1, 2, 4, 8)]
    assert masking_checks(strong.masking_checks) == MaskingChecks(
        stronger=({"name": "pgd", "steps": 50},)
    )
    assert sum(c.kind == "perturbation" for c in conditions) == 14  # standard's, inherited
    with_transfer = robustness_conditions(strong, source=MeanIntensityDetector())
    transfer = [c.label for c in with_transfer if c.kind == "transfer"]
    # Square uses no gradients: nothing to transfer
    assert transfer[::4] == ["transfer fgsm eps=1/255", "transfer pgd-10 eps=1/255",
                             "transfer apgd-ce-50 eps=1/255"]  # fmt: skip


class QuantisedDetector(nn.Module):
    """The mean-intensity detector behind an input quantisation (round to quarters): the
    rounding has zero gradient everywhere, so every gradient attack is blind while the
    decision still moves with the image: a model built to mask gradients."""

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(20.0))
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quantised = torch.round(x * self.levels) / self.levels
        return self.weight * (quantised.mean(dim=(1, 2, 3)) - 0.5)


MASKING = {
    "eps": [0.1, 0.5],
    "attacks": [
        {"name": "fgsm"},
        {"name": "pgd", "steps": 5},
        {"name": "square", "n_queries": 300},
    ],
    "masking_checks": {"enabled": True, "stronger": [{"name": "pgd", "steps": 20}]},
    "seed": 0,
}


def masking_loaders() -> dict[str, DataLoader]:
    # margin 0.15 around 0.5, also after quantisation (0.65 -> 0.75, 0.35 -> 0.25); one batch
    # each, as Square's queries are per batch
    return {"a": generator_loader(0.65, 0.35, 2, 4), "b": generator_loader(0.65, 0.35, 2, 4)}


def test_masking_checks_stay_quiet_on_a_plain_detector(tmp_path):
    # a shorter Square run: on this detector no query count beats the white-box attacks (an
    # image's mean moves by at most eps: none is fooled at 0.1, PGD fools all at 0.5)
    square = {"name": "square", "n_queries": 30}
    quick = {**MASKING, "attacks": [a for a in MASKING["attacks"] if a["name"] != "square"]}
    quick["attacks"].append(square)
    rows = robustness_report(
        MeanIntensityDetector(), masking_loaders(), OmegaConf.create(quick), tmp_path
    )
    table = {r["condition"]: r for r in rows}
    assert table["pgd-10 eps=64/255"]["acc"] == 0.0  # 64/255 > the margin: all fooled
    assert table["pgd-20 eps=0.5"]["kind"] == "check"
    assert [r["flags"] for r in rows] == [""] * len(rows)
    markdown = (tmp_path / "robustness.md").read_text()
    assert "| flags |" in markdown and "No flag raised." in markdown


def test_masking_checks_flag_a_detector_that_masks_its_gradients(tmp_path):
    rows = robustness_report(
        QuantisedDetector(), masking_loaders(), OmegaConf.create(MASKING), tmp_path
    )
    table = {r["condition"]: r for r in rows}
    # gradient attacks are blind: every number is still written, next to its flag
    assert table["pgd-10 eps=64/255"]["acc"] == 1.0
    assert table["pgd-10 eps=64/255"]["flags"].startswith("large-eps: ACC 1.000 > 0.05")
    assert table["pgd-5 eps=0.5"]["acc"] == 1.0 and table["square-300 eps=0.5"]["acc"] < 0.5
    square = table["square-300 eps=0.5"]
    assert square["flags"].startswith(
        f"black-box: ACC {square['acc']:.3f} < 1.000, the best white-box (fgsm)"
    )
    assert table["square-300 eps=0.1"]["flags"] == ""  # as strong as the white-box ones there
    with (tmp_path / "robustness.csv").open() as file:
        long_rows = {(r["condition"], r["generator"]): r for r in csv.DictReader(file)}
    # per generator too, and in the mean row
    worst = min("ab", key=lambda g: float(long_rows["square-300 eps=0.5", g]["acc"]))
    worst_flags = long_rows["square-300 eps=0.5", worst]["flags"]
    assert worst_flags.startswith("black-box") and f"{worst}: {worst_flags}" in square["flags"]
    markdown = (tmp_path / "robustness.md").read_text()
    assert f"| square-300 eps=0.5 | attack | {square['acc']:.3f} |" in markdown
    assert "| black-box |" in markdown and "flag(s) raised" in markdown
    assert (tmp_path / "robustness.png").stat().st_size > 1000


def accuracies(conditions, **acc):
    """``{label: ACC}`` from keyword names like ``pgd_10_8`` for ``pgd-10 eps=8/255``."""
    by_key = {c.label.replace("-", "_").replace(" eps=", "_").replace("/255", ""): c.label
              for c in conditions}  # fmt: skip
    return {by_key[k]: v for k, v in acc.items()}


def test_masking_flags_on_made_up_accuracies():
    cfg = {
        "eps": ["2/255", "8/255"],
        "attacks": [
            {"name": "pgd", "steps": 10},
            {"name": "apgd", "steps": 5},
            {"name": "square", "n_queries": 10},
        ],  # fmt: skip
        "masking_checks": {
            "enabled": True,
            "tolerance": 0.02,
            "large_eps_max_acc": 0.1,
            "stronger": [
                {"name": "pgd", "steps": 50},
                {"name": "apgd", "steps": 5, "n_restarts": 3},
            ],
        },  # fmt: skip
    }
    conditions = robustness_conditions(cfg)
    checks = masking_checks(cfg["masking_checks"])
    fine = dict(
        clean=0.9, pgd_10_2=0.6, pgd_10_8=0.3, apgd_ce_5_2=0.55, apgd_ce_5_8=0.25,
        square_10_2=0.7, square_10_8=0.5, pgd_10_64=0.08, pgd_50_2=0.61, pgd_50_8=0.28,
        apgd_ce_5x3_2=0.55, apgd_ce_5x3_8=0.24,
    )  # fmt: skip
    flags = masking_flags(conditions, accuracies(conditions, **fine), checks)
    assert not any(flags.values())  # within tolerance (PGD-50 0.61 vs PGD-10 0.60) is noise

    bad = dict(fine, pgd_10_64=0.2, pgd_50_8=0.4, apgd_ce_5x3_2=0.6, square_10_8=0.1,
               apgd_ce_5_8=0.7)  # fmt: skip
    flags = masking_flags(conditions, accuracies(conditions, **bad), checks)
    assert {label: found for label, found in flags.items() if found} == {
        "pgd-10 eps=64/255": ["large-eps: ACC 0.200 > 0.1 at eps=64/255"],
        "pgd-50 eps=8/255": ["more-effort: ACC 0.400 > 0.300 under pgd-10"],
        "apgd-ce-5x3 eps=2/255": ["more-effort: ACC 0.600 > 0.550 under apgd-ce-5"],
        "square-10 eps=8/255": ["black-box: ACC 0.100 < 0.240, the best white-box (apgd-ce-5x3)"],
        "apgd-ce-5 eps=8/255": ["eps-monotone: ACC 0.700 > 0.550 at eps=2/255"],
    }
    rising = masking_flags(conditions, accuracies(conditions, **dict(fine, pgd_10_2=0.95)), checks)
    assert rising["pgd-10 eps=2/255"] == ["eps-monotone: ACC 0.950 > 0.900 clean"]


def test_transfer_attacks_are_crafted_on_the_source_and_scored_on_the_target(tmp_path):
    """The source is the mean-intensity detector; targets: the same decision with another
    weight (every perturbation transfers) and a detector that only looks at the red channel's
    contrast (untouched by flat shifts: nothing transfers)."""
    cfg = OmegaConf.create({"eps": [0.05, 0.25], "attacks": [{"name": "pgd", "steps": 5}]})
    loaders = {"a": generator_loader(0.7, 0.3)}
    rows = robustness_report(
        MeanIntensityDetector(5.0), loaders, cfg, tmp_path / "same", source=MeanIntensityDetector()
    )
    table = {r["condition"]: (r["kind"], r["acc"]) for r in rows}
    assert table["transfer pgd-5 eps=0.05"] == ("transfer", 1.0)
    assert table["transfer pgd-5 eps=0.25"] == ("transfer", 0.0)  # as white-box
    assert table["pgd-5 eps=0.25"] == ("attack", 0.0)
    assert (
        "Transfer attacks crafted on a detector passed"
        in (tmp_path / "same" / "robustness.md").read_text()
    )

    class RedContrast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.tensor(1.0))

        def forward(self, x):  # fakes are brighter in red than in green
            return self.weight * (x[:, 0] - x[:, 1]).mean(dim=(1, 2)) * 50

    images = constant_images(0.5, 0.5, 0.5, 0.5, size=8)
    images[:2, 0] += 0.1  # fakes: red 0.6
    other = {"a": DataLoader(TensorDataset(images, torch.tensor([1.0, 1, 0, 0])), batch_size=4)}
    rows = robustness_report(
        RedContrast(), other, cfg, tmp_path / "other", source=MeanIntensityDetector()
    )
    table = {r["condition"]: r["acc"] for r in rows}
    assert table["transfer pgd-5 eps=0.25"] == 1.0 and table["pgd-5 eps=0.25"] == 0.0


def test_a_source_checkpoint_without_a_source_model_is_refused(tmp_path):
    cfg = {**SMALL, "source_ckpt_path": "other.ckpt"}
    with pytest.raises(ValueError, match="source_ckpt_path is set but no source detector"):
        robustness_report(MeanIntensityDetector(), {"a": generator_loader(0.7, 0.3)}, cfg, tmp_path)


def test_eval_loads_the_transfer_source_checkpoint(tmp_path):
    """pixelproof.eval robustness=strong with a source checkpoint: transfer rows and flags in
    the files, on grey images scored by the known detector (p(fake) = mean pixel value)."""
    from pixelproof.eval import evaluate

    root = tmp_path / "data"
    for gen, (real, fake) in {"g1": (64, 191), "g2": (89, 166)}.items():
        known_detector.write_grey(root / "test" / gen / "0_real" / "0.png", real, size=16)
        known_detector.write_grey(root / "test" / gen / "1_fake" / "0.png", fake, size=16)
    target = known_detector.save_checkpoint(tmp_path / "target.ckpt")
    source = known_detector.save_checkpoint(tmp_path / "source.ckpt")
    cfg = compose_config(
        "eval", f"ckpt_path={target}", "data=per_generator", f"data.root={root}",
        "data.test_split=test", "data.embedded=null", f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'eval'}", "inference.device=cpu", "plots=false",
        "robustness=strong", "robustness.eps=[8/255,64/255]", "robustness.perturbations=null",
        "robustness.attacks=[{name: pgd, steps: 3}, {name: square, n_queries: 20}]",
        "robustness.masking_checks.stronger=[]", f"robustness.source_ckpt_path={source}",
    )  # fmt: skip
    evaluate(cfg)
    with (tmp_path / "eval" / "robustness.csv").open() as file:
        rows = {(r["condition"], r["generator"]): r for r in csv.DictReader(file)}
    # the same detector on both ends: transfer is white-box here
    for eps in ("8/255", "64/255"):
        assert (
            rows[f"transfer pgd-3 eps={eps}", "mean"]["acc"]
            == (rows[f"pgd-3 eps={eps}", "mean"]["acc"])
        )
    assert float(rows["transfer pgd-3 eps=64/255", "mean"]["acc"]) == 0.0
    assert rows["pgd-10 eps=64/255", "mean"]["kind"] == "check"
    assert str(source) in (tmp_path / "eval" / "robustness.md").read_text()


def test_bad_robustness_configs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="robustness.attacks\\[0\\]: attack name 'cw'"):
        robustness_conditions({"eps": [0.1], "attacks": [{"name": "cw"}]})
    with pytest.raises(ValueError, match="robustness.perturbations.rotate is unknown"):
        robustness_conditions({"perturbations": {"rotate": [10]}})
    with pytest.raises(ValueError, match="at least one test loader"):
        robustness_report(MeanIntensityDetector(), {}, SMALL, tmp_path)
    with pytest.raises(ValueError, match="more than once: \\['pgd-5 eps=0.1'\\]"):
        robustness_conditions({"eps": [0.1], "attacks": [{"name": "pgd", "steps": 5}] * 2})
    with pytest.raises(ValueError, match="masking_checks has unknown keys \\['eps'\\]"):
        robustness_conditions({"masking_checks": {"eps": 0.1}})
    with pytest.raises(ValueError, match="stronger\\[0\\]: attack name 'cw'"):
        robustness_conditions({"eps": [0.1], "masking_checks": {"stronger": [{"name": "cw"}]}})
    with pytest.raises(ValueError, match="transfer_attacks\\[0\\]: square uses no gradients"):
        robustness_conditions(
            {"eps": [0.1], "transfer_attacks": [{"name": "square"}]}, MeanIntensityDetector()
        )


class StopsOnceKept(MeanIntensityDetector):
    """Stands for a run killed part-way: fails on its first call after ``progress`` exists."""

    def __init__(self, progress: Path) -> None:
        super().__init__()
        self.progress = progress

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.progress.exists():
            raise RuntimeError("killed")
        return super().forward(x)


def test_an_interrupted_report_resumes_to_the_scores_of_an_uninterrupted_one(tmp_path):
    """Random starts and noise make every score depend on the random state; the run killed
    during generator ``b`` keeps ``a``'s scores and the state after them, and the second call
    gives the uninterrupted run's scores, rows and files, then removes its progress file."""
    from pixelproof.evaluation.robustness import score_conditions

    cfg = OmegaConf.create(
        {
            "eps": [0.1],
            "attacks": [{"name": "pgd", "steps": 1, "alpha": 0.02, "random_start": True}],
            "perturbations": {"noise": [0.3]},
            "seed": 3,
        }
    )
    loaders = {g: generator_loader(0.55, 0.45) for g in ("a", "b", "c")}
    conditions = robustness_conditions(cfg)
    whole, images = score_conditions(MeanIntensityDetector(), loaders, conditions, seed=3)
    rows = robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path / "whole")

    progress = tmp_path / "resumed" / "progress.pt"
    with pytest.raises(RuntimeError, match="killed"):
        robustness_report(
            StopsOnceKept(progress), loaders, cfg, tmp_path / "resumed", None, progress
        )
    kept = torch.load(progress, weights_only=True)
    assert kept["finished"] == ["a"]
    resumed, resumed_images = score_conditions(
        MeanIntensityDetector(), loaders, conditions, 3, None, progress
    )
    assert resumed_images == images
    for label, per_generator in whole.items():
        for g, (probs, labels) in per_generator.items():
            assert torch.equal(resumed[label][g][0], probs), (label, g)
            assert torch.equal(resumed[label][g][1], labels)
    assert len({tuple(whole[c.label]["b"][0].tolist()) for c in conditions}) > 1  # not flat

    again = robustness_report(
        MeanIntensityDetector(), loaders, cfg, tmp_path / "resumed", None, progress
    )
    assert again == rows and not progress.exists()
    for name in ("robustness.csv", "robustness.md"):
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_a_progress_file_of_another_run_is_refused(tmp_path):
    cfg = OmegaConf.create({"eps": [0.1], "attacks": [{"name": "fgsm"}], "seed": 0})
    loaders = {g: generator_loader(0.55, 0.45) for g in ("a", "b")}
    progress = tmp_path / "progress.pt"
    with pytest.raises(RuntimeError, match="killed"):
        robustness_report(StopsOnceKept(progress), loaders, cfg, tmp_path, None, progress)
    other = OmegaConf.create({**cfg, "seed": 1})
    with pytest.raises(ValueError, match="progress.pt: scores of another robustness run"):
        robustness_report(MeanIntensityDetector(), loaders, other, tmp_path, None, progress)
    progress.write_bytes(b"not a pickle")  # a file damaged some other way
    with pytest.raises(ValueError, match="progress.pt: not a progress file"):
        robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path, None, progress)
