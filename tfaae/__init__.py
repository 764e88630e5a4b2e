"""tfaae: deep latent-variable models (VAE, IWAE, Adversarial Autoencoders) as Keras 3 models.

Importing tfaae registers its Keras classes, so `keras.models.load_model` can load saved models.
"""

__version__ = "0.1.0"

from tfaae import bounds, data, evaluation, losses, networks, optimizers, priors, schedules  # noqa: E402
from tfaae.evaluation import active_units, log_likelihood, parzen_log_likelihood  # noqa: E402
from tfaae.models import AAE, IWAE, VAE, CategoricalAAE  # noqa: E402
from tfaae import serving  # noqa: E402
from tfaae.serving import export  # noqa: E402

__all__ = ["VAE", "IWAE", "AAE", "CategoricalAAE", "log_likelihood", "parzen_log_likelihood", "active_units",
           "export", "bounds", "data", "evaluation", "losses", "networks", "optimizers", "priors",
           "schedules", "serving"]
