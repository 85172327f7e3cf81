"""Explain the artifacts of (fake) images: the Task-2 output and a richer companion file.

    python -m pixelproof.explain input_dir=images/ output=explanations.json
    python -m pixelproof.explain input_dir=images/ output=out.json predictions=task1.json
    python -m pixelproof.explain ... taxonomy=small_image34 vlm=llava scorer.threshold=0.1
    python -m pixelproof.explain ... vlm=none        # CLIP only: fallback sentences, no VLM
    python -m pixelproof.explain ... detector_ckpt_path=<ckpt>   # + the detector's attributions
    python -m pixelproof.explain ... detector_ckpt_path=<ckpt> scorer=null   # those alone

Without a CLIP model (``scorer=null``, or ``scorer.name_or_path=null``) nothing names artifacts
of the taxonomy, and nothing is made up in their place: each Task-2 entry is
``{"index": N, "explanation": {}}`` (the schema's way to name no artifact), the summary records
``scorer: null`` and 0 artifacts, and the details carry the detector's p(fake), verdict and
attributions. The VLM is not loaded: it only explains the artifacts CLIP names.

``explain(cfg)`` is a plain function (tests and notebooks call it); ``main`` only wraps it for
Hydra. Heavy imports happen inside it, so ``--help`` answers at once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from pixelproof.utils.cli import run_entry_point

log = logging.getLogger(__name__)


def attributions_dir(output: Path, details_file: Path) -> Path:
    """Where the detector's overlays and band charts go: ``<output stem>.attributions/`` beside
    the details file."""
    return details_file.parent / f"{output.stem}.attributions"


def detector_details(cfg: DictConfig, items: list, folder: Path) -> dict[int, dict]:
    """``{index: record}`` for ``detector_ckpt_path=<ckpt>``: each image's p(fake) and verdict
    (scored by :class:`pixelproof.Detector`, as ``pixelproof.predict`` scores), its attribution
    heatmaps and frequency-band drops (:mod:`pixelproof.attribution.maps`);
    ``<index>.png`` (overlays) and ``<index>.bands.png`` (band chart) are written to ``folder``."""
    import torch

    from pixelproof.attribution.maps import AttributionSettings, attribute
    from pixelproof.attribution.plots import attribution_panels, band_chart
    from pixelproof.models.detector import Detector

    detector = Detector.load(cfg.detector_ckpt_path, **cfg.inference)
    options = AttributionSettings.from_node(cfg.attribution)
    folder.mkdir(parents=True, exist_ok=True)
    records, ready = {}, []
    for index, image in items:
        try:
            ready.append((index, detector.to_input(image)))
        except ValueError as err:  # resize_mode=none and another size
            records[index] = {"error": str(err)}
    for start in range(0, len(ready), detector.settings.batch_size):
        chunk = ready[start : start + detector.settings.batch_size]
        images = torch.stack([x for _, x in chunk]).to(detector.device)
        probs = detector.score(images).tolist()
        for (index, x), p, found in zip(chunk, probs, attribute(detector.model, images, options)):
            overlay, chart = folder / f"{index}.png", folder / f"{index}.bands.png"
            attribution_panels(x, found).save(overlay)
            band_chart(found.bands, f"image {index}: p(fake) {p:.3f}").save(chart)
            records[index] = {
                "p_fake": round(p, 6),
                "prediction": detector.verdict(p),
                "threshold": detector.threshold,
                **found.to_dict(options.heatmap_cells),
                "overlay": str(overlay),
                "band_chart": str(chart),
            }
    log.info("Detector attributions of %d images written to %s", len(ready), folder)
    return records


def _build(node: DictConfig, **kwargs):
    """``instantiate``, re-raising the constructor's own one-line error (an offline model
    names the option to pass) instead of Hydra's wrapper around it."""
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        raise (err.__cause__ or err) from None


def explain(cfg: DictConfig) -> dict:
    """Write ``cfg.output`` (Task-2 format, schema-checked) and the details file; return the
    run's summary (counts of images, artifacts, fallbacks, skipped files)."""
    from pixelproof.data.decoding import BadImageError, indexed_images, load_rgb
    from pixelproof.data.task1 import read_predictions
    from pixelproof.explainer.pipeline import ExplainStats, task2_record, unnamed_record
    from pixelproof.explainer.schema import validate_task2
    from pixelproof.explainer.scorer_settings import has_scorer
    from pixelproof.explainer.taxonomy import Taxonomy
    from pixelproof.utils.atomic import write_atomic
    from pixelproof.utils.output_paths import explain_details_path
    from pixelproof.validation import validate

    validate(cfg, "explain")
    output = Path(cfg.output)
    details_file = explain_details_path(output, cfg.get("details_output"))
    files, skipped = indexed_images(cfg.input_dir)
    if skipped:
        log.warning(
            "Skipped %d files of input_dir: %s",
            len(skipped),
            "; ".join(f"{path.name}: {why}" for path, why in skipped[:5]),
        )
    predictions = read_predictions(cfg.predictions) if cfg.get("predictions") else None
    predicted_real = 0
    if predictions is not None:
        unpredicted = [i for i, _ in files if i not in predictions]
        if unpredicted:
            log.warning(
                "%d images have no entry in predictions=%s and are not explained (e.g. %s)",
                len(unpredicted),
                cfg.predictions,
                unpredicted[:5],
            )
        predicted_real = sum(1 for i, _ in files if predictions.get(i) == "real")
        files = [(i, p) for i, p in files if predictions.get(i) == "fake"]
        log.info("%d images predicted fake are explained", len(files))

    taxonomy = Taxonomy.from_config(**OmegaConf.to_container(cfg.taxonomy, resolve=True))
    named = has_scorer(cfg)  # else the detector's attributions alone (validate saw one is set)
    vlm_cfg = cfg.get("vlm") if named else None
    if cfg.get("vlm") and not named:
        log.info("vlm is not used: it explains the artifacts CLIP names, and no scorer is set")
    explainer = _artifact_explainer(cfg, taxonomy, vlm_cfg) if named else None

    items, unreadable = [], []
    for index, path in files:
        try:
            items.append((index, load_rgb(path)))
        except BadImageError as err:
            unreadable.append({"index": index, "file": str(path), "reason": err.reason})
    if unreadable:
        log.warning(
            "Skipped %d unreadable image files: %s",
            len(unreadable),
            "; ".join(f"{u['file']}: {u['reason']}" for u in unreadable[:5]),
        )

    if explainer is not None:
        details = explainer.explain(items, progress=bool(cfg.get("progress", True)))
        stats = explainer.stats
    else:  # no artifact is named: each Task-2 explanation stays empty, and says no more
        details, stats = [unnamed_record(index) for index, _ in items], ExplainStats(len(items))
    names_of = {index: str(path) for index, path in files}
    for record in details:
        record["file"] = names_of[record["index"]]
    if cfg.get("detector_ckpt_path"):
        by_index = detector_details(cfg, items, attributions_dir(output, details_file))
        for record in details:
            record["detector"] = by_index[record["index"]]
    records = [task2_record(d) for d in details]
    validate_task2(records, taxonomy.names)

    summary = {
        **stats.to_dict(),
        "unreadable": len(unreadable),
        "skipped": len(skipped),
        "predicted_real": predicted_real,
        "scorer": cfg.scorer.name_or_path if named else None,
        "vlm": vlm_cfg.name_or_path if vlm_cfg else None,
        "taxonomy": cfg.taxonomy.get("name"),
        "threshold": cfg.scorer.threshold if named else None,
        "detector": str(cfg.detector_ckpt_path) if cfg.get("detector_ckpt_path") else None,
    }
    write_atomic(output, json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    write_atomic(
        details_file,
        json.dumps(
            {
                "summary": summary,
                "images": details,
                "unreadable": unreadable,
                "skipped": [{"file": str(path), "reason": why} for path, why in skipped],
            },
            indent=1,
            ensure_ascii=False,
        )
        + "\n",
    )
    if summary["detector"]:
        print(f"\nDetector attributions: {attributions_dir(output, details_file)}")
    if named:
        done = (
            f"Explained {summary['images']} images ({summary['artifacts']} artifacts: "
            f"{summary['from_model']} from the model, {summary['fallbacks']} fallbacks)"
        )
    else:
        done = (
            f"Explained {summary['images']} images by the detector's attributions alone: with "
            "no CLIP scorer no artifact is named, so every Task-2 explanation is empty"
        )
    print(
        f"\n{done}; {len(unreadable)} unreadable files skipped.\n  Task-2 output: {output}\n"
        f"  details:       {details_file}"
    )
    return summary


def _artifact_explainer(cfg: DictConfig, taxonomy, vlm_cfg):
    """CLIP (``cfg.scorer``) to name and locate the artifacts, and the VLM (``vlm_cfg``, or
    none) to explain them."""
    from pixelproof.explainer.pipeline import ArtifactExplainer
    from pixelproof.explainer.prompt import DEFAULT_INSTRUCTION

    # a partial, so the Taxonomy object is not turned into a config by instantiate
    scorer = _build(cfg.scorer, _partial_=True)(taxonomy=taxonomy)
    vlm = _build(vlm_cfg) if vlm_cfg else None
    return ArtifactExplainer(scorer, vlm, cfg.get("instruction") or DEFAULT_INSTRUCTION)


@hydra.main(version_base="1.3", config_path="conf", config_name="explain")
def main(cfg: DictConfig) -> None:
    run_entry_point(explain, cfg, "explain")


if __name__ == "__main__":
    main()
