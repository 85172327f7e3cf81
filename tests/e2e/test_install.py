"""pixelproof as an installed package: the built wheel carries its configs and commands, and runs
from any directory; a missing extra is one line naming it."""

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from helpers.configs import compose_config
from omegaconf import OmegaConf
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["train", "eval", "predict", "explain", "export", "app", "train-generator"]
# arbitrary names: spaces, no digits, digits inside, upper case (predict scores any name)
NAMES = ["cat.png", "IMG 2.png", "photo_10.png", "b.PNG"]


def save_checkpoint(path: Path, threshold: float = 0.5) -> Path:
    """The default detector, untrained, saved as pixelproof.train saves it."""
    cfg = compose_config("train")
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model)
    model.decision_threshold.fill_(threshold)
    checkpoint = {
        "state_dict": model.state_dict(),
        "model_config": OmegaConf.to_container(cfg.model, resolve=True),
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a copy of the checkout (setuptools writes build/ into the source tree)."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "pixelproof", src / "pixelproof", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + [str(src), "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("pixelproof-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new venv holding the wheel and nothing of the checkout. Its dependencies (torch ...)
    come from this interpreter's site-packages, on its path through a .pth (whose own .pth
    files, the checkout's editable install among them, are not read): nothing is downloaded."""
    env = tmp_path / "env"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env)],
        check=True,
    )
    python = env / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return env


@pytest.mark.slow  # ~20 s on 2 busy cores: a wheel build, a venv, a command's start-up
def test_the_built_wheel_predicts_a_folder_from_another_directory(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pixelproof" / "conf").rglob("*")}
    assert {c for c in configs if c.endswith(".yaml")} <= names  # every config ships
    assert "pixelproof/conf/__init__.py" in names
    assert any(n.startswith("pixelproof/generators/weights/") for n in names)  # package data

    env = fresh_venv(tmp_path, wheel)
    assert {f"pixelproof-{c}" for c in COMMANDS} <= {p.name for p in (env / "bin").iterdir()}

    ckpt = save_checkpoint(tmp_path / "detector.ckpt")
    images = tmp_path / "my images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name, format="PNG")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [
            env / "bin" / "pixelproof-predict",
            f"ckpt_path={ckpt}",
            f"input_dir={images}",
            "output=out/preds.json",
            "task1_index=position",
            "inference.device=cpu",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=clean,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Predicted 4 images" in done.stdout
    # the wheel's own package ran, with the wheel's configs: the run directory is in the cwd
    where = subprocess.run(
        [env / "bin" / "python", "-c", "import pixelproof; print(pixelproof.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=clean,
    ).stdout
    assert where.startswith(str(env)), where
    assert (elsewhere / "logs" / "predict" / "runs").is_dir()

    rows = list(csv.DictReader((elsewhere / "out" / "preds.csv").open()))
    assert [Path(r["path"]).name for r in rows] == ["b.PNG", "cat.png", "IMG 2.png", "photo_10.png"]
    from pixelproof.models.detector import Detector

    expected = Detector.load(ckpt, device="cpu").predict([images / r["path"] for r in rows])
    assert [float(r["p_fake"]) for r in rows] == pytest.approx(
        [p.p_fake for p in expected], abs=1e-5
    )
    assert [r["prediction"] for r in rows] == [p.verdict for p in expected]
    task1 = json.loads((elsewhere / "out" / "preds.json").read_text())
    assert [e["index"] for e in task1] == [0, 1, 2, 3]


# an entry point run as the installed command runs it (Hydra finds pkg://pixelproof.conf), with
# the extra's modules made unimportable
WITHOUT = (
    "import sys; sys.modules.update(dict.fromkeys({modules})); sys.argv[0] = 'pixelproof-{name}'; "
    "from pixelproof.{name} import main; main()"
)


@pytest.mark.parametrize(
    "name, modules, line",
    [
        (
            "export",
            ["onnx", "onnxscript", "onnxruntime"],
            "pixelproof.export: format=onnx needs onnx, onnxscript, onnxruntime: "
            "pip install 'pixelproof[export]' (or format=torchscript)",
        ),
        ("app", ["gradio"], "pixelproof.app: the demo needs gradio: pip install 'pixelproof[app]'"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, name, modules, line):
    ckpt = save_checkpoint(tmp_path / "detector.ckpt")
    code = WITHOUT.format(modules=modules, name=name)
    done = subprocess.run(
        [sys.executable, "-c", code, f"ckpt_path={ckpt}", f"paths.root_dir={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.strip() == line
