"""pixelproof.eval end to end: exact tables from a detector with known scores, real checkpoints
of both detectors, and clear errors for bad checkpoints."""

import csv
import json

import pytest
import torch
from helpers import known_detector
from helpers.configs import compose_config

from pixelproof.eval import evaluate
from pixelproof.generators.zoo import GENERATOR_NAMES
from pixelproof.models.loading import CheckpointError, load_detector
from pixelproof.train import train

# generator -> (grey values of its reals, of its fakes); the known detector scores v / 255
GREYS = {
    "sharp": ([25, 51], [204, 230]),  # reals 0.1 / 0.2, fakes 0.8 / 0.9: all right
    "subtle": ([102, 153], [128, 140]),  # reals 0.4 / 0.6, fakes ~0.502 / ~0.549
}


@pytest.fixture
def grey_generators(tmp_path):
    root = tmp_path / "bench"
    for gen, (reals, fakes) in GREYS.items():
        for i, v in enumerate(reals):
            known_detector.write_grey(root / "test" / gen / "0_real" / f"{i}.png", v)
        for i, v in enumerate(fakes):
            known_detector.write_grey(root / "test" / gen / "1_fake" / f"{i}.png", v)
    return root


def eval_config(tmp_path, ckpt, root, *extra):
    return compose_config(
        "eval",
        f"ckpt_path={ckpt}",
        "data=per_generator",
        f"data.root={root}",
        "data.test_split=test",
        "data.embedded=null",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'eval'}",
        "inference.device=cpu",
        *extra,
    )


def test_table_of_a_detector_with_known_scores(tmp_path, grey_generators):
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.52)
    metrics = evaluate(eval_config(tmp_path, ckpt, grey_generators))
    out = tmp_path / "eval"
    rows = {r["generator"]: r for r in csv.DictReader((out / "generators.csv").open())}
    assert list(rows) == ["sharp", "subtle", "mean"]
    sharp, subtle, mean = rows["sharp"], rows["subtle"], rows["mean"]
    assert float(sharp["acc"]) == 1.0 and float(sharp["ap"]) == 1.0
    # subtle at 0.5: real 0.4 right, real 0.6 wrong, both fakes right -> 3/4
    assert float(subtle["acc"]) == 0.75
    assert float(subtle["real_acc"]) == 0.5 and float(subtle["fake_acc"]) == 1.0
    # ranking 0.6 R, 0.549 F, 0.502 F, 0.4 R -> AP = (1/2 + 2/3) / 2
    assert float(subtle["ap"]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # best: fake when p >= 0.502 still calls the 0.6 real fake -> 3/4; no threshold does better
    assert float(subtle["best_acc"]) == 0.75
    # the checkpoint's threshold 0.52 calls 0.502 real: 2/4
    assert float(subtle["acc_calibrated"]) == 0.5 and float(sharp["acc_calibrated"]) == 1.0
    assert float(mean["acc"]) == pytest.approx(0.875)
    assert float(mean["ap"]) == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2)
    assert metrics["eval/acc"] == pytest.approx(0.875)
    assert metrics["eval/subtle/real_acc"] == 0.5
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics, nan_ok=True)
    assert "| **mean** | 4 | 4 | 87.5 |" in (out / "generators.md").read_text()

    scores = list(csv.DictReader((out / "scores.csv").open()))
    assert len(scores) == 8
    by_name = {(s["generator"], s["path"].split("/test/")[1]): float(s["p_fake"]) for s in scores}
    assert by_name[("subtle", "subtle/0_real/1.png")] == pytest.approx(153 / 255, abs=1e-5)
    for name in ("acc", "ap", "real_acc", "fake_acc", "best_acc", "curves"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000


def test_ten_crop_and_threshold_override(tmp_path, grey_generators):
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt")
    cfg = eval_config(
        tmp_path,
        ckpt,
        grey_generators,
        "inference.ten_crop=true",
        "inference.crop_size=24",
        "inference.threshold=0.1",
        "plots=false",
    )
    metrics = evaluate(cfg)
    # uniform images: every crop scores like the whole image, so the table is unchanged
    assert metrics["eval/acc"] == pytest.approx(0.875)
    assert metrics["eval/subtle/acc_calibrated"] == 0.5  # everything called fake at 0.1
    assert not (tmp_path / "eval" / "plots").exists()


def test_wandb_gets_the_table_and_the_figures(tmp_path, grey_generators):
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt")
    evaluate(eval_config(tmp_path, ckpt, grey_generators, "logger=wandb"))
    (run,) = (tmp_path / "eval" / "wandb").glob("offline-run-*")
    (table,) = (run / "files" / "media" / "table" / "eval").glob("generators_*.table.json")
    data = json.loads(table.read_text())
    assert [r[0] for r in data["data"]] == ["sharp", "subtle", "mean"]
    assert len(list((run / "files" / "media" / "images" / "eval").glob("plots_*.png"))) == 6


def test_crop_larger_than_the_images_is_refused(tmp_path, grey_generators):
    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt")
    cfg = eval_config(
        tmp_path, ckpt, grey_generators, "inference.ten_crop=true", "inference.crop_size=40"
    )
    with pytest.raises(ValueError, match="crop_size=40 is larger than the images"):
        evaluate(cfg)


def test_bad_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*missing.ckpt does not exist"):
        load_detector(tmp_path / "missing.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        load_detector(corrupt)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="records no model config"):
        load_detector(foreign)
    other = tmp_path / "other.ckpt"
    config = {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 1}
    torch.save({"state_dict": {}, "model_config": config}, other)
    with pytest.raises(CheckpointError, match="holds a torch.nn.Linear, not a real/fake detector"):
        load_detector(other)
    mismatched = tmp_path / "mismatched.ckpt"
    state = known_detector.build().state_dict() | {"net.extra": torch.zeros(2)}
    torch.save({"state_dict": state, "model_config": known_detector.CONFIG}, mismatched)
    with pytest.raises(CheckpointError, match="weights do not fit .*unexpected net.extra"):
        load_detector(mismatched)


@pytest.mark.parametrize("detector", ["wavefreq", "rine"])
def test_eval_a_trained_checkpoint_on_the_embedded_per_generator_layout(
    detector, request, tmp_path, embedded_root
):
    overrides = request.getfixturevalue(
        "wavefreq_overrides" if detector == "wavefreq" else "rine_overrides"
    )
    train(compose_config("train", *overrides, "test=false"))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    model = load_detector(ckpt)
    assert not model.training
    cfg = compose_config(
        "eval",
        f"ckpt_path={ckpt}",
        f"data.root={embedded_root}",
        "data.embedded=null",
        f"paths.output_dir={tmp_path / 'eval'}",
        "inference.device=cpu",
        "plots=false",
    )
    metrics = evaluate(cfg)
    generators = list(GENERATOR_NAMES)
    for gen in generators:
        assert 0.0 <= metrics[f"eval/{gen}/acc"] <= 1.0
    assert metrics["eval/acc"] == pytest.approx(
        sum(metrics[f"eval/{g}/acc"] for g in generators) / len(generators)
    )
    # the checkpoint's calibrated threshold is what ACC@t uses
    if float(model.decision_threshold) != 0.5:
        assert metrics["eval/threshold"] == pytest.approx(float(model.decision_threshold))


def test_training_test_stage_and_eval_report_the_same_numbers(tmp_path, train_overrides):
    """One table builder: training's ``test/*`` on its best checkpoint equal ``pixelproof.eval``'s
    ``eval/*`` for that checkpoint on the same test data."""
    metrics = train(compose_config("train", *train_overrides))
    (best,) = (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")
    data = [o for o in train_overrides if o.startswith(("data.", "paths.root_dir"))]
    evaluated = evaluate(
        compose_config(
            "eval",
            f"ckpt_path={best}",
            "data=embedded",
            *data,
            f"paths.output_dir={tmp_path / 'eval'}",
            "inference.device=cpu",
            "plots=false",
        )
    )
    tested = {k.removeprefix("test/"): v for k, v in metrics.items() if k.startswith("test/")}
    assert {"acc", "ap", "auroc", "real_acc", "fake_acc", "best_acc"} <= set(tested)
    assert tested == pytest.approx(
        {k.removeprefix("eval/"): v for k, v in evaluated.items()}, nan_ok=True, abs=1e-6
    )
