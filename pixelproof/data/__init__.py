"""Data: image decoding, dataset layouts, transforms, the datamodule and the embedded offline
dataset (photographs against samples of the generator zoo)."""
