"""tfaae models."""

from tfaae.models.aae import AAE
from tfaae.models.categorical import CategoricalAAE
from tfaae.models.vae import IWAE, VAE

__all__ = ["VAE", "IWAE", "AAE", "CategoricalAAE"]
