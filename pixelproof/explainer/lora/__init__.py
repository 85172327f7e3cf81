"""LoRA fine-tuning of the explainer's VLM: the SynArtifact-style data it learns from
(:mod:`~pixelproof.explainer.lora.synartifact`, a LightningDataModule) and the LightningModule that
trains the adapters (:mod:`~pixelproof.explainer.lora.module`); ``python -m pixelproof.train
model=explainer_lora data=synartifact`` runs them."""
