"""A browser demo of a trained detector: drop images, see the verdict and what it rests on.

    python -m pixelproof.app ckpt_path=<ckpt>                      # http://127.0.0.1:7860
    python -m pixelproof.app ckpt_path=<ckpt> server_port=8080 scorer.name_or_path=<clip dir>

For each image: the verdict at the checkpoint's calibrated threshold and p(fake), the detector's
attribution overlay (Integrated Gradients; Grad-CAM where it has a conv stage), the frequency
bands its fake logit rests on, the image's spectrum, and the smallest PGD budget that flips the
verdict. For a batch: a sortable table and the Task-1 JSON to download. With a local CLIP
directory (``scorer.name_or_path``), also the artifacts CLIP finds and where.

What each upload is comes from :mod:`pixelproof.demo.analysis` (read and scored as ``predict``
does: the same p(fake) and Task-1 indices); the page is :mod:`pixelproof.demo.rendering`. Needs
the ``app`` extra (``pip install 'pixelproof[app]'``); heavy imports wait until the app starts,
so ``--help`` answers at once.
"""

import hydra
from omegaconf import DictConfig

from pixelproof.utils.cli import run_entry_point


def app(cfg: DictConfig, **launch_kwargs):
    """Build the demo and serve it (blocks, unless ``prevent_thread_lock=True``)."""
    from pixelproof.demo import rendering
    from pixelproof.demo.analysis import DemoAnalysis

    rendering.gradio()  # the app extra, before any model is loaded
    return rendering.launch(
        DemoAnalysis(cfg),
        server_name=cfg.server_name,
        server_port=cfg.server_port,
        max_file_size=cfg.get("max_file_size"),
        **launch_kwargs,
    )


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg: DictConfig) -> None:
    run_entry_point(app, cfg, "app")


if __name__ == "__main__":
    main()
