"""The browser demo: its analysis (the same p(fake) as predict, indices, the robustness gauge,
CLIP artifacts), its command line, and the page itself in a real headless Chromium."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import known_attribution
from helpers.configs import compose_config, subprocess_env
from helpers.image_factory import make_image
from helpers.tiny_models import save_tiny_clip
from PIL import Image

from pixelproof import photographs
from pixelproof.attacks.craft import craft
from pixelproof.attacks.flip_eps import smallest_flip_eps
from pixelproof.attacks.spec import attack_spec
from pixelproof.demo.analysis import DemoAnalysis, assign_indices, task1
from pixelproof.demo.rendering import describe, describe_artifacts, pictures, summary
from pixelproof.predict import predict

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def app_config(tmp_path, ckpt, *extra):
    return compose_config(
        "app",
        f"ckpt_path={ckpt}",
        f"paths.root_dir={tmp_path}",
        "inference.device=cpu",
        "inference.batch_size=2",
        *extra,
    )


def crop(mean_above: float | None = None, mean_below: float | None = None) -> np.ndarray:
    """The first 32x32 photograph crop (fixed seeds) as bright or as dark as asked."""
    rng = np.random.default_rng(0)
    for name in photographs.photo_names("test") * 4:
        pixels = photographs.random_crop(photographs.load_photo(name), rng)
        mean = pixels.mean() / 255
        if (mean_above is None or mean > mean_above) and (mean_below is None or mean < mean_below):
            return pixels
    raise AssertionError("no such crop")


def known_p_fake(pixels: np.ndarray) -> float:
    """BrightnessCNN's p(fake) of a 32x32 image, computed here, not by the demo."""
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return known_attribution.build("BrightnessCNN")(x).sigmoid().item()


@pytest.fixture
def uploads(tmp_path):
    """What a user drops: images of several sizes and modes, and files that are not images."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    Image.fromarray(crop(mean_above=0.6)).save(folder / "3.png")
    make_image(mode="RGBA", size=(50, 40), seed=1).save(folder / "12.png")
    make_image(mode="I;16", size=(32, 32), seed=2).save(folder / "5.tif")
    make_image(mode="L", size=(64, 64), seed=3).save(folder / "0.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "8.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


def test_the_demo_scores_like_predict(tmp_path, uploads):
    ckpt = known_attribution.save_checkpoint(tmp_path / "bright.ckpt", threshold=0.45)
    demo = DemoAnalysis(app_config(tmp_path, ckpt, "gauge=null"))
    paths = sorted(uploads.iterdir())
    calls = []
    results, notes = demo.analyse(paths, lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    errors = {r.name: r.error for r in results if r.error}
    assert set(errors) == {"notes.txt", "8.png"} and "not an image" in errors["notes.txt"]
    assert "truncated" in errors["8.png"]
    cfg = compose_config(
        "predict",
        f"ckpt_path={ckpt}",
        f"input_dir={uploads}",
        f"output={tmp_path / 'task1.json'}",
        f"paths.root_dir={tmp_path}",
        "inference.device=cpu",
    )
    predict(cfg)
    predicted = {Path(p).name: float(p_fake) for p, p_fake in _csv(tmp_path / "task1.csv")}
    scored = {r.name: r.p_fake for r in results if r.error is None}
    assert scored.keys() == predicted.keys() and len(scored) == 4
    for name, p in scored.items():
        assert p == pytest.approx(predicted[name], abs=1e-6), name
    assert scored["3.png"] == pytest.approx(known_p_fake(crop(mean_above=0.6)), abs=1e-6)
    # the Task-1 JSON is predict's, to the byte, indices from the names
    assert task1(results) == (tmp_path / "task1.json").read_text()
    assert "file names" in notes[-1]
    text = summary(results, notes, demo.detector.threshold)
    assert "Could not read 2 files" in text and "`notes.txt`" in text
    good = next(r for r in results if r.name == "3.png")
    assert good.verdict == "fake" and "FAKE" in describe(good, demo)
    overlay, chart, spectrum = pictures(good)
    assert overlay.size[0] > 3 * 192 and chart is not None and spectrum is not None


def _csv(path):
    import csv

    return [(row["path"], row["p_fake"]) for row in csv.DictReader(path.open())]


def test_a_misnamed_upload_is_left_out_of_the_task1_json_and_renumbers_nothing():
    from pixelproof.demo.analysis import Result

    names = ["7.png", "cat.png", "x.txt", "2.jpg", "007.jpg"]
    results = [Result(i, name, verdict="fake") for i, name in enumerate(names)]
    results[2].error = "not an image"
    note = assign_indices(results)  # predict's rule: N of <N>.<ext>
    assert [r.index for r in results] == [7, None, None, 2, None]
    assert "file names" in note and "`cat.png` (not named <N>.<ext>" in note
    assert "`007.jpg` (index 7 already taken by 7.png)" in note and "x.txt" not in note
    assert json.loads(task1(results)) == [
        {"index": 2, "prediction": "fake"},
        {"index": 7, "prediction": "fake"},
    ]
    assert "upload order" in assign_indices(results, "position")
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [e["index"] for e in json.loads(task1(results))] == [0, 1, 3, 4]


def test_the_gauge_finds_the_smallest_flipping_eps():
    model = known_attribution.build("BrightnessCNN")
    attack = {"name": "pgd", "steps": 10, "random_start": False}
    x = torch.full((1, 3, 32, 32), 0.45)  # p(fake) = sigmoid(8 * (0.45 - 0.5)) < 0.5: real
    eps = smallest_flip_eps(model, x, 0.5, attack, max_eps=16 / 255)
    # brightness must rise by 0.05 = 12.75/255: 13/255 flips it, 12/255 cannot
    assert eps == pytest.approx(13 / 255)
    below = craft(model, attack_spec({**attack, "eps": 12 / 255}), x, torch.zeros(1))
    assert model(below).sigmoid().item() < 0.5
    assert smallest_flip_eps(model, x, 0.5, attack, max_eps=8 / 255) is None


def test_the_demo_shows_clip_artifacts_when_configured(tmp_path, uploads):
    ckpt = known_attribution.save_checkpoint(tmp_path / "bright.ckpt")
    clip = save_tiny_clip(tmp_path / "clip")
    extra = [f"scorer.name_or_path={clip}", "scorer.device=cpu", "scorer.top_k=2", "gauge=null"]
    demo = DemoAnalysis(app_config(tmp_path, ckpt, *extra))
    results, _ = demo.analyse([uploads / "3.png", uploads / "12.png"])
    for result in results:
        assert 1 <= len(result.artifacts) <= 2
        text = describe_artifacts(result)
        assert result.artifacts[0]["name"] in text and result.artifacts[0]["region"] in text


def test_help_is_quick_and_imports_nothing_heavy(tmp_path):
    code = "import sys, pixelproof.app; print('torch' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["False", "False"], out.stderr
    help_out = subprocess.run(
        [sys.executable, "-m", "pixelproof.app", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert help_out.returncode == 0 and "ckpt_path" in help_out.stdout, help_out.stderr


def test_the_analysis_and_its_markdown_need_no_gradio(tmp_path):
    """The analysis is plain data and the Markdown plain text: Gradio loads with the page only."""
    code = "import sys, pixelproof.demo.rendering; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["False"], out.stderr


# ------------------------------------------------------------------------------ in a browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("PIXELPROOF_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served_demo(tmp_path):
    """``python -m pixelproof.app`` on a free localhost port, as a user starts it."""
    ckpt = known_attribution.save_checkpoint(tmp_path / "bright.ckpt")
    port = _free_port()
    env = subprocess_env()
    log = (tmp_path / "app.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",  # as `python -m pixelproof.app`, with the test's net registered first
            "import helpers.known_attribution, runpy; runpy.run_module('pixelproof.app', "
            "run_name='__main__', alter_sys=True)",
            f"ckpt_path={ckpt}",
            f"server_port={port}",
            f"paths.root_dir={tmp_path}",
            "inference.device=cpu",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180  # a cold gradio + torch start on busy cores
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the demo did not start:\n" + (tmp_path / "app.log").read_text())
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.mark.slow
def test_the_demo_in_a_browser(tmp_path, served_demo, browser):
    bright, dark = crop(mean_above=0.6), crop(mean_below=0.4)
    Image.fromarray(bright).save(tmp_path / "3.png")
    Image.fromarray(dark).save(tmp_path / "8.png")
    expected = "FAKE" if known_p_fake(bright) >= 0.5 else "REAL"
    assert expected == "FAKE" and known_p_fake(dark) < 0.5

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(served_demo, wait_until="domcontentloaded")
    upload = "#upload input[type=file]"
    page.wait_for_selector(upload, state="attached", timeout=30_000)
    page.set_input_files(upload, [str(tmp_path / "3.png"), str(tmp_path / "8.png")])
    page.wait_for_function(
        "() => /p\\(fake\\) =/.test(document.querySelector('#verdict')?.innerText || '')",
        timeout=30_000,
    )
    verdict = page.inner_text("#verdict")
    assert verdict.startswith(f"{expected}: p(fake) = {known_p_fake(bright):.3f}"), verdict
    assert "3.png" in verdict and "Robustness" in verdict
    # the batch: a table the user can sort, and the Task-1 JSON to download
    files = (
        "() => Array.from(document.querySelectorAll('#table [role=row]')).slice(1)"
        ".map(r => r.innerText.trim().split(/\\s+/)[1]).join(' ')"
    )
    assert page.evaluate(files) == "3.png 8.png"
    header = page.locator("#table thead th", has_text="p_fake")
    header.hover()
    header.get_by_label("Open cell menu").click()
    page.get_by_text("Sort ascending").click()
    page.wait_for_function(f"() => ({files})() === '8.png 3.png'", timeout=5_000)
    with page.expect_download() as download:
        page.locator("#task1 a").first.click()
    task1 = json.loads(Path(download.value.path()).read_text())
    assert task1 == [{"index": 3, "prediction": "fake"}, {"index": 8, "prediction": "real"}]
    # the overlay has rendered: a decoded picture of several colours
    overlay = page.locator("#overlay img")
    overlay.wait_for(timeout=10_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('#overlay img');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=10_000,
    )
    shot = tmp_path / "overlay.png"
    overlay.screenshot(path=str(shot))
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50
    page.wait_for_timeout(500)  # let the charts settle before the picture of the page
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    if os.environ.get("PIXELPROOF_DEMO_SCREENSHOT"):  # to refresh docs/demo.png
        shutil.copy(tmp_path / "demo.png", os.environ["PIXELPROOF_DEMO_SCREENSHOT"])

    # a file that is not an image: a message, no stack trace
    (tmp_path / "notes.txt").write_text("a shopping list, not a picture")
    page = browser.new_page()
    page.goto(served_demo, wait_until="domcontentloaded")
    page.wait_for_selector(upload, state="attached", timeout=30_000)
    page.set_input_files(upload, str(tmp_path / "notes.txt"))
    page.wait_for_function(
        "() => /Could not read/.test(document.querySelector('#status')?.innerText || '')",
        timeout=30_000,
    )
    status = page.inner_text("#status")
    assert "notes.txt" in status and "not an image" in status
    body = page.inner_text("body")
    assert "Traceback" not in body and "Error" not in body
    assert page.inner_text("#verdict").strip() == ""
