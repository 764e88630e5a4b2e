"""tfaae models, one algorithm per file.

* `vae.py`: `VAE` and `IWAE`. Both compute `log_weights` (log w_i, `[k, batch]`); the VAE trains on
  the k-sample ELBO (`VAE.bound`, `tfaae.bounds.elbo`), the IWAE on L_k (`IWAE.bound`,
  `tfaae.bounds.iwae_bound`), in `compute_gradients`.
* `aae.py`: `AAE`, its phases `reconstruction_phase`, `discriminator_phase` and `generator_phase`.
* `categorical.py`: `CategoricalAAE`, the same phases and the semi-supervised
  `classification_phase`.
* `base.py`: what the models share: input checks, seeded randomness, one optimizer per phase,
  config, row blocks.
"""

from tfaae.models.aae import AAE
from tfaae.models.categorical import CategoricalAAE
from tfaae.models.vae import IWAE, VAE

__all__ = ["VAE", "IWAE", "AAE", "CategoricalAAE"]
