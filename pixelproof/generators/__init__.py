"""A small zoo of real generative models trained on CPU on crops of the training photographs:
DCGAN (gan), DDPM (diffusion), VAE (vae) and PixelCNN (autoregressive). Their samples are the
fakes an offline dataset can use. See :mod:`pixelproof.generators.zoo`.
"""

from pixelproof.generators.zoo import FAMILIES, GENERATOR_NAMES, ZOO, load_generator, sample

__all__ = ["FAMILIES", "GENERATOR_NAMES", "ZOO", "load_generator", "sample"]
