"""The per-generator table: exact values on hand-made scores, AP against scikit-learn."""

import math

import pytest
import torch
from sklearn.metrics import average_precision_score

from pixelproof.data.layouts import UNSEEN_SOURCES
from pixelproof.evaluation.generator_table import (
    generator_row,
    generator_table,
    mean_row,
    to_markdown,
    write_table,
)


def t(values):
    return torch.tensor(values, dtype=torch.float32)


def test_row_on_hand_computed_scores():
    # reals 0.1, 0.6 ; fakes 0.4, 0.8, 0.9 -> at 0.5: reals 1/2 right, fakes 2/3 right
    row = generator_row("g", t([0.1, 0.6, 0.4, 0.8, 0.9]), t([0, 0, 1, 1, 1]))
    assert row["n_real"] == 2 and row["n_fake"] == 3
    assert row["acc"] == pytest.approx(3 / 5)
    assert row["real_acc"] == pytest.approx(1 / 2)
    assert row["fake_acc"] == pytest.approx(2 / 3)
    # ranking: 0.9 F, 0.8 F, 0.6 R, 0.4 F, 0.1 R -> AP = (1 + 1 + 3/4) / 3
    assert row["ap"] == pytest.approx((1 + 1 + 0.75) / 3)
    # 5 of 6 real-fake pairs are ordered right
    assert row["auroc"] == pytest.approx(5 / 6)
    # best: fake when p >= 0.8 gives 4/5 (and so does p >= 0.4); the one closer to 0.5 wins
    assert row["best_acc"] == pytest.approx(4 / 5)
    assert row["best_threshold"] == pytest.approx(0.4)
    assert "acc_calibrated" not in row


def test_calibrated_column_uses_the_threshold():
    row = generator_row("g", t([0.1, 0.6, 0.4, 0.8, 0.9]), t([0, 0, 1, 1, 1]), threshold=0.3)
    assert row["threshold"] == 0.3
    assert row["acc_calibrated"] == pytest.approx(4 / 5)  # only the 0.6 real is wrong
    assert row["acc"] == pytest.approx(3 / 5)  # ACC@0.5 stays for comparability


@pytest.mark.parametrize("seed", range(5))
def test_ap_equals_sklearn_on_random_scores(seed):
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(200, generator=g) < 0.4).float()
    probs = torch.rand(200, generator=g)
    probs[::7] = 0.5  # ties, which AP implementations treat differently if careless
    row = generator_row("g", probs, labels)
    assert row["ap"] == pytest.approx(average_precision_score(labels.numpy(), probs.numpy()))


def test_mean_row_is_the_unweighted_mean_of_the_rows():
    scores = {
        "big": (t([0.9] * 90 + [0.1] * 10), t([1] * 90 + [0] * 10)),  # all right, 100 images
        "small": (t([0.9, 0.9]), t([0, 1])),  # half right, 2 images
    }
    rows = generator_table(scores)
    assert [r["generator"] for r in rows] == ["big", "small", "mean"]
    mean = rows[-1]
    for key in ("acc", "ap", "real_acc", "fake_acc", "best_acc", "auroc"):
        assert mean[key] == pytest.approx((rows[0][key] + rows[1][key]) / 2), key
    assert mean["acc"] == pytest.approx(0.75)  # not 91/102: generators, not images, are averaged
    assert mean["n_real"] == 11 and mean["n_fake"] == 91


def test_single_class_generator_leaves_undefined_metrics_out_of_the_mean():
    rows = generator_table({"a": (t([0.2, 0.7]), t([0, 1])), "only_fakes": (t([0.7]), t([1]))})
    only = rows[1]
    assert math.isnan(only["ap"]) and math.isnan(only["real_acc"]) and only["fake_acc"] == 1.0
    assert rows[-1]["ap"] == rows[0]["ap"]  # the NaN is skipped, not averaged in
    assert mean_row(rows[:2])["fake_acc"] == 1.0


def test_one_generator_has_no_mean_row():
    assert len(generator_table({"all": (t([0.2, 0.7]), t([0, 1]))})) == 1


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="as many scores as labels"):
        generator_row("g", t([0.1, 0.2]), t([1]))
    with pytest.raises(ValueError, match="no scores"):
        generator_table({})


def test_written_csv_and_markdown(tmp_path):
    rows = generator_table(
        {"a": (t([0.2, 0.7]), t([0, 1])), "b": (t([0.6, 0.4]), t([0, 1]))}, threshold=0.65
    )
    csv_path, md_path = write_table(rows, tmp_path)
    lines = csv_path.read_text().splitlines()
    assert lines[0].split(",")[:4] == ["generator", "n_real", "n_fake", "acc"]
    assert [line.split(",")[0] for line in lines[1:]] == ["a", "b", "mean"]
    md = md_path.read_text()
    assert md == to_markdown(rows)
    assert "| a | 1 | 1 | 100.0 | 100.0 |" in md  # ACC@0.5 and AP in percent
    assert "| b | 1 | 1 | 0.0 | 50.0 |" in md
    assert "| **mean** | 2 | 2 | 50.0 | 75.0 |" in md
    assert "t = 0.6500" in md


def test_calibrated_real_and_fake_accuracy_use_the_threshold():
    # reals 0.1, 0.6 ; fakes 0.4, 0.8, 0.9 -> at 0.7: reals 2/2 right, fakes 2/3 right
    row = generator_row("g", t([0.1, 0.6, 0.4, 0.8, 0.9]), t([0, 0, 1, 1, 1]), threshold=0.7)
    assert row["real_acc_calibrated"] == pytest.approx(1.0)
    assert row["fake_acc_calibrated"] == pytest.approx(2 / 3)
    assert row["real_acc"] == pytest.approx(1 / 2)  # ACC@0.5's columns stay at 0.5


def test_reals_of_unseen_sources_are_a_row_but_not_in_the_mean():
    scores = {
        "a": (t([0.1, 0.9]), t([0, 1])),
        "b": (t([0.2, 0.7]), t([0, 1])),
        UNSEEN_SOURCES: (t([0.8, 0.9]), t([0, 1])),
    }
    rows = generator_table(scores, threshold=0.5)
    assert [r["generator"] for r in rows] == ["a", "b", UNSEEN_SOURCES, "mean"]
    assert rows[-1] == mean_row(rows[:2])
    assert rows[2]["real_acc"] == 0.0


def test_calibrated_columns_follow_the_verdict_rule_at_a_tie():
    # a fake scored exactly at the threshold is called fake (p >= t), as predict calls it
    row = generator_row("g", t([0.2, 0.7]), t([0, 1]), threshold=0.7)
    assert row["fake_acc_calibrated"] == 1.0 and row["acc_calibrated"] == 1.0
