"""Data: image decoding, dataset layouts, transforms, the datamodule, the embedded offline
dataset (photographs against samples of the generator zoo), what a detector takes as images, and
the competition's Task-1 file."""
