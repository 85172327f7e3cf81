"""Scoring a detector: per-generator tables (one implementation for training's test stage,
``pixelproof.eval`` and the robustness report), thresholds, perturbations and plots."""
