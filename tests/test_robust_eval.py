"""Robust evaluation on a detector whose answers are known, and the shipped robustness configs."""

import csv
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_attacks import MeanIntensityDetector, constant_images
from torch.utils.data import DataLoader, TensorDataset

from pixelproof.attacks.module_modes import module_modes
from pixelproof.evaluation.robustness import robustness_conditions, robustness_report

CONF = Path(__file__).resolve().parents[1] / "conf" / "robustness"


def generator_loader(fake: float, real: float, n: int = 4) -> DataLoader:
    """``n`` flat fakes of brightness ``fake`` and ``n`` flat reals of ``real``."""
    images = constant_images(*[fake] * n, *[real] * n, size=16)
    labels = torch.tensor([1.0] * n + [0.0] * n)
    return DataLoader(TensorDataset(images, labels), batch_size=3)


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
        "condition", "kind", "name", "strength", "generator", "acc", "ap", "images",
    ]  # fmt: skip
    assert [r["generator"] for r in long_rows[:3]] == ["a", "b", "mean"]
    assert [r["images"] for r in long_rows[:3]] == ["8", "8", "16"]
    fgsm_mean = next(
        r for r in long_rows if r["condition"] == "fgsm eps=0.15" and r["generator"] == "mean"
    )
    assert float(fgsm_mean["acc"]) == pytest.approx(0.5) and float(fgsm_mean["strength"]) == 0.15
    markdown = (tmp_path / "robustness.md").read_text().splitlines()
    assert len(markdown) == 2 + len(rows)
    assert markdown[3].startswith("| fgsm eps=0.05 | attack | 1.000 | 1.000 |")
    assert (tmp_path / "robustness.png").read_bytes()[:4] == b"\x89PNG"


def test_max_batches_and_seed_make_a_quick_reproducible_run(tmp_path):
    cfg = OmegaConf.create({**SMALL, "max_batches": 1, "perturbations": {"noise": [0.3]}})
    loaders = {"a": generator_loader(0.55, 0.45)}
    first = robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path / "1")
    second = robustness_report(MeanIntensityDetector(), loaders, cfg, tmp_path / "2")
    assert first == second
    assert (tmp_path / "1" / "robustness.csv").read_text().splitlines()[1].endswith(",3")


def test_shipped_configs():
    standard = OmegaConf.load(CONF / "standard.yaml")
    conditions = robustness_conditions(standard)
    # clean + (FGSM, PGD) x 4 eps + JPEG 5 + blur 3 + noise 3 + crop 3
    assert len(conditions) == 1 + 2 * 4 + 5 + 3 + 3 + 3
    assert [c.strength for c in conditions[1:5]] == pytest.approx(
        [1 / 255, 2 / 255, 4 / 255, 8 / 255]
    )
    assert conditions[8].label == "pgd-10 eps=8/255"
    assert not OmegaConf.load(CONF / "none.yaml")  # robustness=none: nothing to do


def test_bad_robustness_configs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="robustness.attacks\\[0\\]: attack name 'cw'"):
        robustness_conditions({"eps": [0.1], "attacks": [{"name": "cw"}]})
    with pytest.raises(ValueError, match="robustness.perturbations.rotate is unknown"):
        robustness_conditions({"perturbations": {"rotate": [10]}})
    with pytest.raises(ValueError, match="at least one test loader"):
        robustness_report(MeanIntensityDetector(), {}, SMALL, tmp_path)
