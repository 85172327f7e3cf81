"""SynArtifact annotations and LoRA fine-tuning of the explainer VLM on tiny local models."""

import json

import pytest
import torch
from helpers.configs import compose_config
from helpers.image_factory import make_image
from helpers.tiny_models import save_tiny_idefics2, save_tiny_llava
from omegaconf import OmegaConf

from pixelproof.explainer.lora.module import ExplainerLoRAModule
from pixelproof.explainer.lora.synartifact import (
    AnnotationError,
    SynArtifactDataModule,
    collate,
    load_annotation,
    training_pair,
)
from pixelproof.explainer.taxonomy import Taxonomy
from pixelproof.explainer.vlm import VisionLanguageModel
from pixelproof.train import train


def full_taxonomy() -> Taxonomy:
    cfg = compose_config("explain", "input_dir=x", "output=y")
    return Taxonomy.from_config(**OmegaConf.to_container(cfg.taxonomy))


NOTES = "Artifacts annotation"


def note(caption, label, **rect):
    return {"artifacts_caption": caption, "artifacts_class": label, **rect}


GOOD = {
    NOTES: [
        note("The  landing gear floats.", "22", rect_start=[40, 4], rect_end=[60, 20]),
        note("Colours band.", "unnatural color transitions"),
        note("Fingers are distorted.", "Distorted and Deformated Components"),
        note("A second gear floats.", 22),
    ],
    "Other artifacts caption": "None",
}


def write(path, content):
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_good_annotation_file_and_its_training_pair(tmp_path):
    note = load_annotation(write(tmp_path / "a.json", GOOD), full_taxonomy())
    gear = "Physically impossible structural elements"  # class 22, 1-based
    assert [n.name for n in note.artifacts] == [
        gear,
        "Unnatural color transitions",
        "Distorted and Deformated Components",  # kept as written (unknown_class=keep)
        gear,
    ]
    assert note.artifacts[0].caption == "The landing gear floats."
    assert note.artifacts[0].box == (40.0, 4.0, 60.0, 20.0) and note.artifacts[1].box is None
    assert note.other is None
    prompt, target = training_pair(note, width=64, height=64)
    assert f"1. {gear} (in the upper right)\n2. Unnatural color transitions\n3. Distorted" in prompt
    assert json.loads(target) == {
        gear: "The landing gear floats. A second gear floats.",
        "Unnatural color transitions": "Colours band.",
        "Distorted and Deformated Components": "Fingers are distorted.",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "not valid JSON"),
        ([1, 2], "the top level is a list"),
        ({"Other artifacts caption": "x"}, f'no "{NOTES}" list'),
        ({NOTES: ["x"]}, "entry 0 is a str"),
        ({NOTES: [{"artifacts_class": "3"}]}, 'entry 0 has no "artifacts_caption"'),
        ({NOTES: [{"artifacts_caption": "c"}]}, 'entry 0 has no "artifacts_class"'),
        ({NOTES: [note("c", "71")]}, "outside 1..70"),
        ({NOTES: [note("c", "1", rect_start=[1, 2])]}, "rect_end must be \\[x, y\\] numbers"),
        ({NOTES: [], "Other artifacts caption": 5}, "must be text, got int"),
    ],
)
def test_malformed_annotation_files_name_the_file(tmp_path, content, message):
    path = write(tmp_path / "17.json", content)
    with pytest.raises(AnnotationError, match=message) as err:
        load_annotation(path, full_taxonomy())
    assert str(err.value).startswith(str(path))


def test_unknown_class_can_be_refused(tmp_path):
    path = write(tmp_path / "5.json", GOOD)
    with pytest.raises(AnnotationError, match="5.json: entry 2: class 'Distorted and"):
        load_annotation(path, full_taxonomy(), unknown_class="error")


def make_synartifact(root, n=8, bad_file=None):
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(n):
        make_image(size=(48, 40), seed=i).save(root / "images" / f"{i}.png")
        write(root / "annotations" / f"{i}.json", GOOD)
    write(root / "annotations" / "orphan.json", GOOD)  # no image: skipped with a warning
    if bad_file:
        write(root / "annotations" / "3.json", bad_file)
    return root


def test_datamodule_splits_and_batches(tmp_path):
    root = make_synartifact(tmp_path / "syn")
    cfg = compose_config("train", "experiment=explainer_lora", f"data.root={root}")
    dm = SynArtifactDataModule(
        **{k: v for k, v in OmegaConf.to_container(cfg.data).items() if not k.startswith("_")}
    )
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"val": 1, "test": 1, "train": 6}
    batch = next(iter(dm.train_dataloader()))
    assert len(batch.images) == 4 and batch.images[0].size == (32, 32)
    assert "Physically impossible structural elements" in batch.answers[0]
    broken = make_synartifact(tmp_path / "broken", bad_file='{"Artifacts annotation": 3}')
    with pytest.raises(AnnotationError, match="broken/annotations/3.json"):
        SynArtifactDataModule(root=str(broken), taxonomy=cfg.data.taxonomy).setup("fit")


@pytest.mark.parametrize("saver", [save_tiny_idefics2, save_tiny_llava])
def test_one_lora_step_changes_only_adapter_weights(tmp_path, saver):
    vlm = VisionLanguageModel(str(saver(tmp_path / "vlm")))
    module = ExplainerLoRAModule(vlm, optimizer=lambda params: torch.optim.SGD(params, lr=0.5))
    trainable = module.trainable_names()
    assert trainable and all("lora_" in n for n in trainable)
    decoder = module.model.get_base_model().get_decoder()
    lm_params = {id(p) for p in decoder.parameters()}
    assert all(id(p) in lm_params for n, p in module.named_parameters() if n in trainable)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    optimizer = module.configure_optimizers()
    samples = [(make_image(size=(32, 32), seed=s), "Explain it.", '{"A": "why"}') for s in range(2)]
    loss = module(collate(samples))
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable  # lora_B starts at zero, so only B moves in step 1
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == trainable
    module.on_load_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == set(module.state_dict())


def test_train_entry_point_writes_adapter_only_checkpoints_and_a_peft_adapter(tmp_path):
    root = make_synartifact(tmp_path / "syn")
    vlm_dir = save_tiny_idefics2(tmp_path / "vlm")
    cfg = compose_config(
        "train",
        "experiment=explainer_lora",
        f"data.root={root}",
        f"vlm.name_or_path={vlm_dir}",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "callbacks.model_summary=null",
        "logger=none",
    )
    assert (cfg.optimized_metric, cfg.optimized_mode) == ("val/loss", "min")
    metrics = train(cfg)
    assert set(metrics) >= {"val/loss", "test/loss"} and metrics["test/loss"] > 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])
    assert ckpt["model_config"]["vlm"]["name_or_path"] == str(vlm_dir)
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    # the saved adapter loads into the explainer
    tuned = VisionLanguageModel(str(vlm_dir), adapter=str(adapter), max_new_tokens=3)
    assert len(tuned.generate([make_image(size=(32, 32))], ["Explain it."])) == 1
