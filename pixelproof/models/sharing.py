"""A trained detector as a shareable folder (what ``Detector.save_pretrained`` writes and
``Detector.from_pretrained`` reads, locally or from the Hugging Face Hub):

    <folder>/model.safetensors   the weights (no pickle: safetensors holds tensors only)
    <folder>/config.json         the card (:mod:`pixelproof.utils.cards`, the generator zoo's
                                 format): the detector's resolved model config, its inference
                                 settings (image size, resize mode, calibrated threshold, ten-crop),
                                 the weights' SHA-256, the training run's command, data and metrics
    <folder>/README.md           the card rendered for people and the Hub (metrics table,
                                 training, intended use and limitations)

The folder is data: its model config is built only through the allow-list of
:mod:`pixelproof.models.registry` (as a checkpoint's is), its weights are checked against the
card's digest before they are read, and nothing else in it is ever called or imported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pixelproof.utils.cards import CardError, check_weights, read_card

if TYPE_CHECKING:
    import torch

    from pixelproof.models.inference import InferenceSettings
    from pixelproof.models.loading import TrainedDetector

log = logging.getLogger(__name__)

FORMAT = "pixelproof-detector/1"
CONFIG_NAME = "config.json"  # huggingface_hub's constants.CONFIG_NAME: the mixin reads it too
WEIGHTS_NAME = "model.safetensors"
#: what a bad path or repo id is told to pass instead
INSTEAD = (
    "pass a folder written by Detector.save_pretrained, a Hub repo id (owner/name) of one, "
    "or a checkpoint (.ckpt) written by pixelproof.train"
)
#: the inference settings a folder records (the rest of conf/inference is the user's machine)
SAVED_SETTINGS = ("image_size", "resize_mode", "threshold", "ten_crop", "crop_size")


class PretrainedError(CardError):
    """A shared detector folder (or Hub repo) that cannot be loaded."""


# ---------------------------------------------------------------------------------- writing


class Shareable(Protocol):
    """What :func:`write_folder` reads from a detector (``pixelproof.Detector`` is one; this
    module names what it needs instead of importing it, which imports this module)."""

    model: torch.nn.Module
    threshold: float
    card: dict
    run_dir: Path | None
    settings: InferenceSettings
    trained: TrainedDetector


def write_folder(detector: Shareable, folder: Path) -> None:
    """Write ``detector``'s weights, card (``config.json``) and ``README.md`` into ``folder``."""
    import torch
    from safetensors.torch import save

    from pixelproof.utils.atomic import write_atomic
    from pixelproof.utils.cards import package_version, provenance, weights_fields, write_card

    folder.mkdir(parents=True, exist_ok=True)
    model = detector.model
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    model.on_save_checkpoint({"state_dict": state})  # e.g. RINE leaves its pretrained tower out
    # the threshold it is run with is the one it is shared with (also the card's)
    state["decision_threshold"] = torch.tensor(detector.threshold, dtype=torch.float32)
    weights = write_atomic(folder / WEIGHTS_NAME, save(state, metadata={"format": FORMAT}))

    previous = dict(detector.card)  # from the folder it was loaded from, if any
    run = run_info(detector.run_dir) if detector.run_dir else {}
    settings = detector.settings
    card = {
        "format": FORMAT,
        "name": folder.resolve().name,
        "command": run.get("command", previous.get("command")),
        "detector": detector.trained.config,
        "inference": {
            "image_size": settings.image_size,
            "resize_mode": settings.resize_mode,
            "threshold": settings.threshold,
            "ten_crop": settings.crop_size is not None,
            "crop_size": settings.crop_size,
        },
        "training": run.get("training", previous.get("training", {})),
        "metrics": run.get("metrics", previous.get("metrics", {})),
        "parameters": sum(p.numel() for p in model.parameters()),
        **weights_fields(weights),  # name, size and SHA-256, checked before every load
        "pixelproof": package_version(),
        **provenance(),  # torch, lightning, python, date
    }
    write_card(folder / CONFIG_NAME, card)
    model_card(card).save(folder / "README.md")
    detector.card = card  # what it was last shared as (generate_model_card renders it)


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """What a training run directory says about the detector it trained: the command
    (``.hydra/overrides.yaml``), the training settings (``.hydra/config.yaml``, plain values only)
    and ``metrics.json``. Read as data (JSON and ``yaml.safe_load``); a missing file leaves its
    part out."""
    import yaml

    run_dir = Path(run_dir)
    info: dict[str, Any] = {}
    overrides = _read(run_dir / ".hydra" / "overrides.yaml", yaml.safe_load)
    if isinstance(overrides, list):
        info["command"] = " ".join(["python -m pixelproof.train", *map(str, overrides)])
    config = _read(run_dir / ".hydra" / "config.yaml", yaml.safe_load)
    hydra = _read(run_dir / ".hydra" / "hydra.yaml", yaml.safe_load)
    if isinstance(config, dict):
        data = config.get("data") or {}
        embedded = data.get("embedded") or {}
        choices = ((hydra or {}).get("hydra") or {}).get("runtime", {}).get("choices") or {}
        training = {
            "model": choices.get("model"),
            "augment": choices.get("data/augment"),
            "recipe": choices.get("recipe"),  # a run from before data/augment and callbacks=ema
            "experiment": choices.get("experiment"),
            "seed": config.get("seed"),
            "max_epochs": (config.get("trainer") or {}).get("max_epochs"),
            "held_out": config.get("held_out"),
            "data_layout": data.get("layout"),
            "image_size": data.get("image_size"),
            "generators": embedded.get("generators"),
            "n_train": embedded.get("n_train"),
            "n_val": embedded.get("n_val"),
            "n_test": embedded.get("n_test"),
        }
        # interpolations are how the run was configured, not values: leave them out
        training = {k: v for k, v in training.items() if v is not None and "${" not in str(v)}
        if isinstance(training.get("held_out"), str):
            training["held_out_generators"] = _held_out_generators(training["held_out"])
        info["training"] = training
    metrics = _read(run_dir / "metrics.json", json.loads)
    if isinstance(metrics, dict):
        info["metrics"] = {
            k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v
        }
    return info


def _read(path: Path, parse) -> Any:
    """``parse`` of the file's text; ``None`` (logged unless absent) when it cannot be read."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except Exception as err:  # OSError, JSON's ValueError, yaml.YAMLError: the card goes on
        log.warning("%s is unreadable (%s); the card leaves it out", path, type(err).__name__)
        return None


def _held_out_generators(held_out: str) -> list[str]:
    from pixelproof.data.embedded import held_out_generators

    try:
        return list(held_out_generators(held_out))
    except ValueError:  # a family this version's zoo does not have
        return []


# ---------------------------------------------------------------------------------- reading


def read_folder(folder: Path, overrides: dict[str, Any]) -> tuple[TrainedDetector, dict, dict]:
    """``(trained detector, inference config, card)`` of a folder :func:`write_folder` wrote;
    ``overrides`` (inference settings) win over the card's. Raises :class:`PretrainedError` in
    one line for a missing or damaged file, a card of another format, or a config the registry
    refuses."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from pixelproof.models.inference import inference_config
    from pixelproof.models.loading import CheckpointError, rebuild_trained

    where = folder / CONFIG_NAME
    remedy = f"save the detector again with Detector.save_pretrained, or {INSTEAD}"
    card = read_card(where, remedy)
    if card.get("format") != FORMAT:
        raise PretrainedError(
            f"{where} is not a pixelproof detector card (format {card.get('format')!r}, "
            f"expected {FORMAT!r}); {INSTEAD}"
        )
    config, inference = card.get("detector"), card.get("inference")
    if not isinstance(config, dict) or not isinstance(inference, dict):
        raise PretrainedError(f"{where} records no detector config or inference settings; {remedy}")
    settings = _saved_settings(inference, where, remedy)
    try:
        weights = check_weights(card, folder, str(where), remedy)
        state = load_file(weights)
    except CardError as err:
        raise PretrainedError(str(err)) from None
    except (SafetensorError, OSError, ValueError) as err:
        raise PretrainedError(f"{folder / WEIGHTS_NAME} is unreadable ({err}); {remedy}") from None
    import torch

    # the card's inference settings are the detector's: its threshold is the one it decides at
    state["decision_threshold"] = torch.tensor(settings["threshold"], dtype=torch.float32)
    checkpoint = {
        "state_dict": state,
        "model_config": config,
        "datamodule_hyper_parameters": {
            "image_size": settings["image_size"],
            "resize_mode": settings["resize_mode"],
        },
    }
    try:  # the same allow-list and weight checks as a checkpoint's
        trained = rebuild_trained(checkpoint, folder)
    except CheckpointError as err:
        raise PretrainedError(str(err)) from None
    chosen = {"ten_crop": settings["ten_crop"], "crop_size": settings["crop_size"] or 28}
    return trained, inference_config({**chosen, **overrides}), card


def _saved_settings(inference: dict, where: Path, remedy: str) -> dict[str, Any]:
    """The card's inference settings, each checked for its type (a card is edited by hand)."""
    from pixelproof.data.transforms import check_resize

    missing = [k for k in SAVED_SETTINGS if k not in inference]
    if missing:
        raise PretrainedError(f"{where}: inference.{missing[0]} is missing; {remedy}")
    values = {k: inference[k] for k in SAVED_SETTINGS}
    try:
        check_resize(values["image_size"], values["resize_mode"])
        threshold = values["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError(f"threshold must be a number, got {threshold!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold={threshold} must be a probability in [0, 1]")
        if not isinstance(values["ten_crop"], bool):
            raise ValueError(f"ten_crop must be true or false, got {values['ten_crop']!r}")
        crop = values["crop_size"]
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 1):
            raise ValueError(f"crop_size must be a positive integer or null, got {crop!r}")
    except ValueError as err:
        raise PretrainedError(f"{where}: inference: {err}".rstrip(".") + f"; {remedy}") from None
    return values


def resolve_source(source: str | Path) -> tuple[str, Path | None]:
    """``("folder", path)``, ``("checkpoint", path)`` or ``("hub", None)`` for what
    ``Detector.from_pretrained`` was given; a path that is not there, a folder without the
    files, or a string that is neither a path nor a valid repo id raise one line naming
    what to pass instead."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return "checkpoint", path
    if path.is_dir():
        absent = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (path / n).is_file()]
        if absent:
            raise FileNotFoundError(
                f"{path} holds no {' or '.join(absent)}, so it is not a shared detector; {INSTEAD}"
            )
        return "folder", path
    # a repo id is "name" or "owner/name": anything with more parts, a leading "." or "~",
    # or a file extension is a path that does not exist
    looks_like_path = (
        isinstance(source, Path)
        or text.startswith(("/", ".", "~"))
        or text.count("/") > 1
        or "\\" in text
        or Path(text).suffix in {".ckpt", ".safetensors", ".json", ".pt", ".pth"}
    )
    if looks_like_path:
        raise FileNotFoundError(f"{text}: no such file or folder; {INSTEAD}")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        raise ValueError(
            f"{text!r} is neither a local folder nor a Hub repo id; {INSTEAD}"
        ) from None
    return "hub", None


# ------------------------------------------------------------------------------ the card


def model_card(card: dict[str, Any]):
    """The folder's ``README.md`` (a ``huggingface_hub.ModelCard``), rendered from its card."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        library_name="pixelproof",
        license="mit",
        pipeline_tag="image-classification",
        tags=["pixelproof", "ai-generated-image-detection", "model_hub_mixin"],
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_markdown(card)}")


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown: what it is and how to use it, its results (the test split per
    generator, held-out family, journey), its training and its limits."""
    name, inference = card.get("name", "detector"), card.get("inference", {})
    metrics, training = card.get("metrics") or {}, card.get("training") or {}
    net = _net_name(card.get("detector") or {})
    size, crop = inference.get("image_size"), inference.get("crop_size")
    ten_crop = f", scored ten-crop at {crop}" if inference.get("ten_crop") else ""
    t = inference.get("threshold", 0.5)
    lines = [
        f"# {name}: a pixelproof detector of AI-generated images",
        "",
        f"A `{net}` real/fake detector ({card.get('parameters', 0):,} parameters) trained with "
        "pixelproof on 32x32 images. It gives each image p(fake) and "
        f"calls it fake when p(fake) >= t = {t:.4f} (the threshold calibrated on validation data).",
        "",
        "## Use",
        "",
        "```python",
        "from pixelproof import Detector",
        "",
        f'detector = Detector.from_pretrained("{name}")  # this folder, or its Hub repo id',
        'for p in detector(["a.jpg", "b.png", "more_images/"]):',
        "    print(p.path, p.p_fake, p.verdict)",
        "```",
        "",
        f"Images are brought to {size}x{size} by `resize_mode={inference.get('resize_mode')}` as "
        f"its training images were{ten_crop}. `Detector.from_pretrained(..., threshold=0.5)` "
        "overrides a setting.",
        "",
        "## Results",
        "",
        *_results(metrics, training),
        "## Training",
        "",
        *_training(card, training),
        "## Intended use and limitations",
        "",
        "- Intended for research and triage of small images (32x32, or larger ones brought to "
        "that size): p(fake) is evidence, not proof, and a verdict should not be the only basis "
        "of a decision about a person or their work.",
        "- It knows the generators it was trained on (see Training). A generator family it never "
        "saw is its weakest point"
        + (
            f" (held-out AP {_pct(_held_out_ap(metrics, training))} here)"
            if _held_out_ap(metrics, training) is not None
            else " (not measured for this detector: train with `experiment=cross_family`)"
        )
        + "; modern large-image generators are far from its training data.",
        "- The threshold was calibrated on validation data like the training data: on other "
        "sources the share of reals called fake can differ; recalibrate on data of your own.",
        "- Processing an image meets on its way (JPEG, resizing, blur, noise, crops) changes the "
        "scores"
        + (
            "; see the journey numbers above."
            if "journey/mean_ap" in metrics
            else "; not measured for this detector (train with `robustness=journey`)."
        ),
        "- Not hardened against adversarial perturbations unless trained with "
        "`callbacks=adversarial`.",
        "",
        "## Files",
        "",
        f"- `{card.get('weights_file', WEIGHTS_NAME)}`: the weights (SHA-256 "
        f"`{card.get('weights_sha256', '')}`, checked before they are loaded).",
        "- `config.json`: the card: the model config (rebuilt only from pixelproof's own "
        "classes), the inference settings, the training command and metrics, the versions "
        f"(pixelproof {card.get('pixelproof')}, torch {card.get('torch')}, {card.get('date')}).",
        "",
        'Shared with `detector.push_to_hub("<user>/<name>")` (huggingface_hub\'s '
        "`ModelHubMixin`; needs `hf auth login`).",
        "",
    ]
    return "\n".join(lines)


def _results(metrics: dict[str, float], training: dict[str, Any]) -> list[str]:
    generators = sorted(
        {k.split("/")[1] for k in metrics if k.startswith("test/") and k.count("/") == 2}
    )
    if not generators:
        return ["No test metrics recorded for this detector.", ""]
    held = set(training.get("held_out_generators") or [])
    lines = [
        "On the test split of its data, in % (ACC@t, reals called real and fakes caught at the "
        "calibrated threshold):",
        "",
        "| test set | AP | ACC@t | reals called real at t | fakes caught at t |",
        "| --- | --- | --- | --- | --- |",
    ]
    for gen in [*generators, None]:
        prefix = f"test/{gen}/" if gen else "test/"
        label = f"`{gen}`" + (" (held out)" if gen in held else "") if gen else "**mean**"
        cells = [
            _pct(metrics.get(prefix + k))
            for k in ("ap", "acc_calibrated", "real_acc_calibrated", "fake_acc_calibrated")
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    held_out = training.get("held_out")
    if held_out:
        lines += [
            f"Held out: the `{held_out}` family was left out of training and validation; its "
            f"test AP is {_pct(_held_out_ap(metrics, training))} %.",
            "",
        ]
    else:
        lines += ["Held out: no family was held out (trained on every generator above).", ""]
    if "journey/mean_ap" in metrics:
        lines += [
            "Journey (the test images after JPEG, resizes, blur, noise, crops and chains of them, "
            f"reals and fakes alike): mean AP {_pct(metrics['journey/mean_ap'])} %, worst "
            f"(processing, generator) AP {_pct(metrics.get('journey/worst_ap'))} %; at most "
            f"{_pct(metrics.get('journey/max_fpr'))} % of reals called fake in any processing.",
            "",
        ]
    else:
        lines += ["Journey: not measured (train with `robustness=journey`).", ""]
    return lines


def _training(card: dict[str, Any], training: dict[str, Any]) -> list[str]:
    lines = []
    if card.get("command"):
        lines += ["```bash", card["command"], "```", ""]
    if training:
        shown = ", ".join(f"{k}={v}" for k, v in training.items() if k != "held_out_generators")
        lines += [f"Settings: {shown}.", ""]
    if not lines:
        lines = ["Not recorded (saved from a checkpoint outside its run directory).", ""]
    return lines


def _held_out_ap(metrics: dict[str, float], training: dict[str, Any]) -> float | None:
    held = training.get("held_out_generators") or []
    values = [metrics[f"test/{g}/ap"] for g in held if f"test/{g}/ap" in metrics]
    return sum(values) / len(values) if values else None


def _net_name(config: dict) -> str:
    net = config.get("net")
    target = net.get("_target_") if isinstance(net, dict) else config.get("_target_")
    return str(target or "detector").rsplit(".", 1)[-1]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"
