"""A small zoo of real generative models trained on CPU on crops of the training photographs:
DCGAN (gan), DDPM (diffusion), VAE (vae), PixelCNN (autoregressive) and two latent-diffusion
models whose decoders up-sample differently (latent_diffusion: ldm, ldm_tconv). Their weights
ship in the package; their samples are the fakes an offline dataset uses. See
:mod:`pixelproof.generators.zoo`.
"""

from pixelproof.generators.zoo import FAMILIES, GENERATOR_NAMES, ZOO, load_generator, sample

__all__ = ["FAMILIES", "GENERATOR_NAMES", "ZOO", "load_generator", "sample"]
