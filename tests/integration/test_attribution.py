"""Detector attributions find the evidence where we put it: pixels (Integrated Gradients,
Grad-CAM) and frequency bands; they run on every detector config; explain's detector option
writes them."""

import json

import numpy as np
import pytest
import torch
from helpers import known_attribution
from helpers.configs import compose_config
from helpers.detectors import DETECTORS, build
from helpers.image_factory import make_image
from helpers.tiny_models import save_tiny_clip
from PIL import Image
from torch import nn

from pixelproof.attribution.bands import (
    band_attribution,
    band_edges,
    band_masks,
    band_of,
    remove_band,
)
from pixelproof.attribution.maps import (
    AttributionSettings,
    attribute,
    conv_stage,
    grid,
    integrated_gradients,
)
from pixelproof.attribution.plots import attribution_panels, band_chart, spectrum
from pixelproof.explain import explain

P = known_attribution.PATCH


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def share_in_patch(values: torch.Tensor) -> float:
    """The share of the map's magnitude inside PatchNet's top-left patch (1/16 of the area)."""
    magnitude = values.abs()
    return float(magnitude[:P, :P].sum() / magnitude.sum())


@pytest.mark.parametrize("baseline", ["blur", "black"])
def test_pixel_attributions_find_the_patch_the_detector_reads(baseline):
    model = known_attribution.build("PatchNet")
    found = attribute(model, images(), AttributionSettings(baseline=baseline, ig_steps=16))
    for attribution in found:
        # only the patch reaches the logit, so everything outside is exactly zero
        assert share_in_patch(attribution.integrated_gradients) > 0.999
        assert attribution.gradcam_layer == "net.stage"  # the last conv before the pooling
        # Grad-CAM is coarse (a 16x16 map, up-sampled): most of it, its peak in the patch
        assert share_in_patch(attribution.gradcam) > 0.6
        peak = divmod(int(attribution.gradcam.argmax()), 32)
        assert peak[0] < P and peak[1] < P
        # Integrated Gradients' completeness: attributions sum to logit(x) - logit(baseline)
        assert abs(attribution.ig_delta) < 0.02 * max(1.0, abs(attribution.bands.logit))


def test_band_attribution_finds_the_band_the_detector_responds_to():
    # smooth random images plus the stripes BandNet measures, inside [0, 1] (no clipping)
    smooth = nn.functional.avg_pool2d(images(4, seed=1), 5, stride=1, padding=2)
    pictures = 0.4 + 0.2 * smooth + 0.1 * known_attribution.stripes() / 0.25
    assert pictures.min() >= 0 and pictures.max() <= 1
    edges = band_edges(32, 32, 8)
    expected = band_of(known_attribution.STRIPES / 32, edges)  # 0.375 cycles/pixel
    assert expected == 4
    model = known_attribution.build("BandNet")
    for bands in band_attribution(model, pictures, bands=8):
        assert bands.strongest == expected
        others = max(abs(d) for i, d in enumerate(bands.drops) if i != expected)
        assert bands.drops[expected] > 100 * max(others, 1e-3)
    # no conv at all: Integrated Gradients only
    assert all(a.gradcam is None for a in attribute(model, pictures, AttributionSettings()))


def test_bands_partition_the_spectrum_and_removal_keeps_the_mean():
    masks = band_masks(32, 32, 8)
    assert masks.shape == (8, 32, 32) and torch.equal(masks.sum(0), torch.ones(32, 32).long())
    assert all(m.any() for m in masks)
    x = images(2)
    without_all = remove_band(x, masks.any(0))  # every frequency but the mean colour
    torch.testing.assert_close(without_all, x.mean((-2, -1), keepdim=True).expand_as(x))
    assert band_edges(32, 32, 8)[-1] == pytest.approx(2**0.5 / 2)


def test_grad_cam_falls_back_without_a_conv_stage():
    vit_like = nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.Flatten(), nn.Linear(128, 1))
    assert conv_stage(vit_like, images(1)) is None  # a patch embedding is not a conv stage
    small = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=32), nn.Flatten(), nn.Linear(4, 1)
    )
    name, _ = conv_stage(small, images(1))  # the 1x1 output is skipped: the 32x32 conv is found
    assert name == "0"
    with pytest.raises(ValueError, match="not a module"):
        attribute(small, images(1), AttributionSettings(gradcam_layer="nope"))
    assert attribute(small, images(1), AttributionSettings(gradcam_layer=None))[0].gradcam is None


@pytest.mark.slow
@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_gets_attributions(name):
    model, _ = build(name)
    model.train()  # every module's own mode comes back after (RINE's tower stays in eval)
    modes = [m.training for m in model.modules()]
    x = images(1)  # RINE runs its ViT at 224x224: one image is enough here
    found = attribute(model, x, AttributionSettings(ig_steps=4, bands=4))
    assert [m.training for m in model.modules()] == modes and model.training
    for attribution in found:
        assert attribution.integrated_gradients.shape == (32, 32)
        assert torch.isfinite(attribution.integrated_gradients).all()
        assert len(attribution.bands.drops) == 4
        record = attribution.to_dict()
        assert len(record["heatmap"]) == 8 and len(record["bands"]) == 4
        json.dumps(record)
    if name.startswith("rine"):
        assert found[0].gradcam is None  # a ViT: no conv stage
    else:
        assert found[0].gradcam is not None and torch.isfinite(found[0].gradcam).all()
    pictures = [attribution_panels(x[0], found[0]), band_chart(found[0].bands), spectrum(x[0])]
    assert all(isinstance(p, Image.Image) and p.getextrema() != ((0, 0),) * 3 for p in pictures)


def test_attributions_work_inside_inference_mode_and_grids_are_small():
    model = known_attribution.build("PatchNet")
    with torch.inference_mode():
        x = images(1)
        maps, _ = integrated_gradients(model, x, steps=4)
    assert maps.shape == (1, 32, 32)
    cells = grid(maps[0], 8)
    assert len(cells) == 8 and max(max(row) for row in cells) == 1.0
    assert cells[0][0] > 0.5 and cells[7][7] == 0.0  # the patch is the top-left 2x2 cells
    with pytest.raises(ValueError, match="unknown keys"):
        AttributionSettings.from_node({"baseline": "blur", "stepz": 3})
    with pytest.raises(ValueError, match="baseline=white: must be one of blur, black"):
        AttributionSettings(baseline="white")


def test_explain_adds_the_detectors_attributions(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in (0, 4):
        make_image(size=(32, 32), seed=i).save(folder / f"{i}.png")
    make_image(mode="RGBA", size=(48, 40), seed=2).save(folder / "9.png")  # another size, alpha
    ckpt = known_attribution.save_checkpoint(tmp_path / "patch.ckpt", "PatchNet", threshold=0.4)
    output = tmp_path / "out" / "task2.json"
    cfg = compose_config(
        "explain",
        f"input_dir={folder}",
        f"output={output}",
        f"paths.root_dir={tmp_path}",
        f"scorer.name_or_path={save_tiny_clip(tmp_path / 'clip')}",
        "scorer.device=cpu",
        "vlm=none",
        "progress=false",
        f"detector_ckpt_path={ckpt}",
        "inference.device=cpu",
        "attribution.ig_steps=8",
    )
    summary = explain(cfg)
    assert summary["detector"] == str(ckpt)
    details = json.loads((tmp_path / "out" / "task2.details.json").read_text())
    records = {r["index"]: r["detector"] for r in details["images"]}
    assert set(records) == {0, 4, 9}
    model = known_attribution.build("PatchNet")
    for record in records.values():
        assert record["prediction"] == ("fake" if record["p_fake"] >= 0.4 else "real")
        assert len(record["heatmap"]) == 8 and len(record["heatmap"][0]) == 8
        assert record["heatmap"][0][0] > 0.5 and record["heatmap"][7][7] == 0.0
        assert record["gradcam_layer"] == "net.stage" and len(record["bands"]) == 8
        for key in ("overlay", "band_chart"):
            assert Image.open(record[key]).size[0] > 100
    # p(fake) as predict scores it: the 32x32 PNG's pixels straight into the model
    pixels = torch.from_numpy(np.array(Image.open(folder / "0.png")))
    with torch.no_grad():
        expected = model(pixels.permute(2, 0, 1)[None].float() / 255).sigmoid().item()
    assert records[0]["p_fake"] == pytest.approx(expected, abs=1e-5)
    assert (tmp_path / "out" / "task2.attributions" / "9.bands.png").is_file()
