"""pixelproof: detect AI-generated 32x32 images robustly, and explain their artifacts."""

from pixelproof.utils import resolvers

resolvers.register()

__version__ = "0.1.0"
