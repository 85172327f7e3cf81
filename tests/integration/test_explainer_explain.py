"""CLIP artifact scoring and ``python -m pixelproof.explain`` end to end on tiny local models."""

import json

import pytest
import torch
from helpers.configs import compose_config
from helpers.image_factory import make_image
from helpers.tiny_models import save_tiny_clip, save_tiny_idefics2, save_tiny_llava
from omegaconf import OmegaConf

from pixelproof.explain import explain
from pixelproof.explainer.artifact_scorer import ArtifactScorer
from pixelproof.explainer.schema import validate_task2
from pixelproof.explainer.taxonomy import Taxonomy
from pixelproof.explainer.vlm import VisionLanguageModel


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def idefics2_dir(tmp_path_factory):
    return save_tiny_idefics2(tmp_path_factory.mktemp("idefics2"))


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in (0, 1, 2, 5):
        make_image(size=(32, 32), seed=i).save(folder / f"{i}.png")
    (folder / "7.png").write_bytes(b"not an image")
    make_image(seed=9).save(folder / "cover.png")
    return folder


def full_taxonomy() -> Taxonomy:
    cfg = compose_config("explain", "input_dir=x", "output=y")
    return Taxonomy.from_config(**OmegaConf.to_container(cfg.taxonomy))


def test_scorer_keeps_by_threshold_topk_and_min_and_caches_text(clip_dir):
    scorer = ArtifactScorer(str(clip_dir), full_taxonomy(), threshold=0.0, top_k=3)
    imgs = [make_image(size=(32, 32), seed=s) for s in range(3)]
    found = scorer.score(imgs)
    assert [len(f) for f in found] == [3, 3, 3]
    assert all(f[0].score >= f[1].score >= f[2].score for f in found)
    scorer.score(imgs[:1])
    assert scorer.text_passes == 1  # class embeddings computed once per taxonomy
    assert scorer.text_embeddings().shape == (70, 16)
    assert torch.allclose(scorer.text_embeddings().norm(dim=-1), torch.ones(70), atol=1e-5)
    # nothing reaches a threshold of 1: only min_artifacts (the best) are kept
    scorer.threshold = 1.0
    again = scorer.score(imgs)
    assert [[a.name for a in f] for f in again] == [[f[0].name] for f in found]
    box = again[0][0].location.box
    assert 0 <= box[0] < box[2] <= 32 and 0 <= box[1] < box[3] <= 32
    assert len(again[0][0].location.heatmap) == 4  # 32 / patch 8


def test_scorer_subset_scores_only_the_subset(clip_dir):
    small = Taxonomy.from_config(
        [{"name": n} for n in full_taxonomy().names],
        subset=["Artificial smoothness", "Fake depth of field"],
    )
    scorer = ArtifactScorer(str(clip_dir), small, threshold=0.0, top_k=5)
    found = scorer.score([make_image(size=(32, 32))])[0]
    assert {a.name for a in found} == {"Artificial smoothness", "Fake depth of field"}
    assert sum(a.score for a in found) == pytest.approx(1.0, abs=1e-3)


def test_offline_hub_id_and_wrong_directory_fail_in_one_line(tmp_path):
    with pytest.raises(OSError) as err:
        ArtifactScorer("openai/clip-vit-base-patch32", full_taxonomy())
    message = str(err.value)
    assert "\n" not in message and "scorer.name_or_path=/local/dir" in message
    with pytest.raises((OSError, ValueError), match="vlm.name_or_path=/local/dir"):
        VisionLanguageModel(str(tmp_path))  # an empty directory is no VLM
    with pytest.raises(FileNotFoundError, match="scorer.name_or_path=/nope: no such directory"):
        ArtifactScorer("/nope", full_taxonomy())


@pytest.mark.parametrize("vlm", ["idefics2", "llava"])
def test_vlm_generates_and_builds_masked_training_batches(vlm, idefics2_dir, llava_dir):
    model = VisionLanguageModel(
        str(idefics2_dir if vlm == "idefics2" else llava_dir), max_new_tokens=5, batch_size=2
    )
    assert not model.quantized and model.dtype == torch.float32  # CPU: plain weights
    imgs = [make_image(size=(32, 32), seed=s) for s in range(3)]
    answers = model.generate(imgs, ["Explain a.", "Explain b.", "Explain c."])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    targets = ['{"A": "x"}', '{"B": "a longer one"}']
    batch = model.training_batch(imgs[:2], ["Explain a.", "Explain the b artifact now."], targets)
    labels, ids = batch["labels"], batch["input_ids"]
    assert labels.shape == ids.shape and (labels[batch["attention_mask"] == 0] == -100).all()
    for row, target in enumerate(targets):
        # the loss sees exactly the answer and the template's end of turn, nothing of the prompt
        kept = model.tokenizer.decode(ids[row][labels[row] != -100])
        assert kept == model._answer_prefix + target + model._answer_suffix
    assert model._answer_suffix == ("<end_of_utterance>\n" if vlm == "idefics2" else "</s>")


def run_explain(tmp_path, images, clip_dir, *overrides):
    cfg = compose_config(
        "explain",
        f"input_dir={images}",
        f"output={tmp_path / 'out' / 'task2.json'}",
        f"scorer.name_or_path={clip_dir}",
        f"paths.root_dir={tmp_path}",
        "progress=false",
        *overrides,
    )
    summary = explain(cfg)
    records = json.loads((tmp_path / "out" / "task2.json").read_text())
    details = json.loads((tmp_path / "out" / "task2.details.json").read_text())
    validate_task2(records, full_taxonomy().names)
    return summary, records, details


@pytest.mark.parametrize("vlm", ["idefics2", "llava"])
def test_explain_end_to_end_with_tiny_vlms(
    tmp_path, images, clip_dir, idefics2_dir, llava_dir, vlm
):
    path = idefics2_dir if vlm == "idefics2" else llava_dir
    overrides = [f"vlm={vlm}", f"vlm.name_or_path={path}", "vlm.max_new_tokens=8"]
    overrides += ["scorer.top_k=2", "scorer.threshold=0.0"]
    summary, records, details = run_explain(tmp_path, images, clip_dir, *overrides)
    assert [r["index"] for r in records] == [0, 1, 2, 5]
    assert all(len(r["explanation"]) == 2 for r in records)
    assert summary["images"] == 4 and summary["artifacts"] == 8 and summary["unreadable"] == 1
    # a random tiny model writes no usable explanation: every one is the counted fallback
    assert summary["fallbacks"] + summary["from_model"] == 8
    assert details["unreadable"][0]["index"] == 7
    first = details["images"][0]
    assert first["file"].endswith("0.png") and isinstance(first["model_answer"], str)
    assert {"name", "score", "location", "explanation", "source"} <= set(first["artifacts"][0])
    assert (
        records[0]["explanation"][first["artifacts"][0]["name"]]
        == first["artifacts"][0]["explanation"]
    )


def test_explain_uses_the_models_answer_and_predictions(
    tmp_path, images, clip_dir, idefics2_dir, monkeypatch
):
    def answer(self, imgs, prompts):  # a well-behaved model: explains the first artifact asked
        out = []
        for prompt in prompts:
            first = prompt.split("\n1. ", 1)[1].split(" (", 1)[0].split("\n", 1)[0]
            out.append(f'{{"{first}": "it is plain to see", "Made up": "x"}}')
        return out

    monkeypatch.setattr(VisionLanguageModel, "generate", answer)
    predictions = tmp_path / "task1.json"
    predictions.write_text(
        json.dumps([{"index": i, "prediction": "fake" if i != 1 else "real"} for i in (0, 1, 2)])
    )
    overrides = [f"vlm.name_or_path={idefics2_dir}", f"predictions={predictions}"]
    overrides += ["scorer.top_k=3", "scorer.threshold=0.0", "taxonomy=small_image34"]
    summary, records, details = run_explain(tmp_path, images, clip_dir, *overrides)
    assert [r["index"] for r in records] == [0, 2]  # 1 is real, 5 has no prediction
    assert summary["predicted_real"] == 1 and summary["unreadable"] == 0
    assert summary["from_model"] == 2 and summary["fallbacks"] == 4 and summary["ignored_keys"] == 2
    for record, detail in zip(records, details["images"]):
        sources = [a["source"] for a in detail["artifacts"]]
        assert sources == ["model", "fallback", "fallback"]
        assert list(record["explanation"].values())[0] == "It is plain to see."


def test_explain_without_a_vlm(tmp_path, images, clip_dir):
    summary, records, _ = run_explain(tmp_path, images, clip_dir, "vlm=none", "scorer.top_k=1")
    assert summary["vlm"] is None and summary["fallbacks"] == summary["artifacts"] == 4
    text = next(iter(records[0]["explanation"].values()))
    assert text.startswith("The artifact detector found ") and "CLIP score" in text


def test_explain_with_the_detector_alone_names_no_artifact(tmp_path, images):
    """No CLIP (scorer=null): the detector's attributions, and an empty Task-2 explanation per
    image, not a made-up artifact; the VLM (idefics2 by default, not on disk) is not loaded."""
    from helpers import known_detector

    ckpt = known_detector.save_checkpoint(tmp_path / "known.ckpt", threshold=0.5)
    known_detector.write_grey(images / "9.png", 204)  # p(fake) 0.8
    cfg = compose_config(
        "explain",
        f"input_dir={images}",
        f"output={tmp_path / 'out' / 'task2.json'}",
        f"paths.root_dir={tmp_path}",
        "progress=false",
        "scorer=null",
        f"detector_ckpt_path={ckpt}",
        "inference.device=cpu",
        "attribution.ig_steps=4",
    )
    summary = explain(cfg)
    records = json.loads((tmp_path / "out" / "task2.json").read_text())
    details = json.loads((tmp_path / "out" / "task2.details.json").read_text())
    validate_task2(records, full_taxonomy().names)
    assert records == [{"index": i, "explanation": {}} for i in (0, 1, 2, 5, 9)]
    assert summary["scorer"] is None and summary["vlm"] is None and summary["artifacts"] == 0
    assert summary["images"] == 5 and summary["unreadable"] == 1
    detector = {d["index"]: d["detector"] for d in details["images"]}
    assert detector[9]["p_fake"] == pytest.approx(0.8, abs=1e-5)
    assert detector[9]["prediction"] == "fake" and len(detector[9]["bands"]) == 8
    assert all(d["artifacts"] == [] for d in details["images"])
    assert (tmp_path / "out" / "task2.attributions" / "9.png").is_file()


def test_explain_with_nothing_to_explain_is_refused_in_one_line(tmp_path, images):
    from pixelproof.validation import ConfigError

    for no_clip in ("scorer=null", "scorer.name_or_path=null"):
        cfg = compose_config(
            "explain", f"input_dir={images}", f"output={tmp_path / 'o.json'}", no_clip
        )
        with pytest.raises(ConfigError, match="scorer=null and no detector_ckpt_path"):
            explain(cfg)
