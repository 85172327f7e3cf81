"""The Hydra configs of every entry point, shipped as package data: one folder per config group,
one file per choice. Hydra reads them as ``pkg://pixelproof.conf`` when an entry point runs as an
installed command (it wants this ``__init__.py``); a checkout links ``conf/`` here."""
