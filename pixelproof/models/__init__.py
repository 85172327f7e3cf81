"""Detectors as LightningModules (one contract: images in [0,1] -> one logit, fake = 1),
rebuilding them from checkpoints, and running them (inference settings, batched scoring, and
:class:`pixelproof.Detector`, which every entry point scores images through)."""
