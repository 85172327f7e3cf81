"""pixelproof: detect AI-generated 32x32 images robustly, and explain their artifacts."""

from pixelproof.utils import resolvers
from pixelproof.utils.cards import package_version

resolvers.register()

__version__ = package_version()
__all__ = ["Detector", "__version__"]


def __getattr__(name: str):
    """``pixelproof.Detector``, imported on first use, so ``import pixelproof`` stays light."""
    if name == "Detector":
        from pixelproof.models.detector import Detector

        return Detector
    raise AttributeError(f"module 'pixelproof' has no attribute {name!r}")
