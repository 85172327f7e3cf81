"""Helpers the tests share (pytest puts ``tests/`` on ``sys.path``: ``pythonpath`` in
pyproject.toml), imported as ``from helpers.<module> import ...``:

- :mod:`helpers.configs`: the real Hydra configs composed as the entry points compose them,
  the tiny-data overrides, and a multirun in this process;
- :mod:`helpers.image_factory`: image files and dataset folder trees made from a seed;
- :mod:`helpers.known_detector`, :mod:`helpers.known_attribution`: detectors with known
  answers, saved as ``pixelproof.train`` saves a checkpoint;
- :mod:`helpers.tiny_models`: tiny random CLIP, Idefics2 and LLaVA checkpoints laid out like
  Hub ones;
- :mod:`helpers.detectors`: a detector with known answers for the attacks, and every detector
  config built offline;
- :mod:`helpers.embedded`: builds of the embedded dataset that reuse the session's samples;
- :mod:`helpers.faults`: callbacks that inject faults into training runs.

A subprocess that loads a checkpoint naming ``helpers.<module>.<Class>`` needs ``tests/`` on its
``PYTHONPATH`` (:data:`helpers.configs.TESTS`).
"""
