"""The Variational Autoencoder and the Importance Weighted Autoencoder.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes" (https://arxiv.org/abs/1312.6114);
Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders"
(https://arxiv.org/abs/1509.00519).

Both models share the generative model p(x, h1..hL) = p(hL) p(h_{L-1}|hL) ... p(x|h1) and the
proposal q(h1..hL|x) = q(h1|x) ... q(hL|h_{L-1}); they differ in the objective: the VAE maximises the
k-sample ELBO (1/k) sum_i log w_i, the IWAE the bound log (1/k) sum_i w_i.

The algorithm, in a few lines of each class: `log_weights` (log w_i = log p(x, h_i) - log q(h_i|x),
`[k, batch]`, computed by `tfaae.networks.log_weights` or its fused twin), `bound` (the VAE's
`tfaae.bounds.elbo`, the IWAE's `tfaae.bounds.iwae_bound`), `compute_gradients` (one tape, or
DReG's) and `train_step`/`test_step`.
"""

import keras
import tensorflow as tf

from tfaae import bounds, fused, networks, random, validation
from tfaae.models.base import ImageModel, in_row_blocks
from tfaae.networks import as_float32, burda_networks

GRADIENT_ESTIMATORS = ("reparam", "dreg")


@keras.saving.register_keras_serializable(package="tfaae")
class VAE(ImageModel):
    """Variational Autoencoder trained on the k-sample ELBO ("VAE with k samples", Burda et al.).

    Args:
        encoder: list of layers mapping x (then h1, ...) to (mean, log_std) of q, bottom-up.
            None builds the paper's preset (see `tfaae.networks.burda_networks`).
        decoder: list of layers, top-down; each but the last maps h_l to (mean, log_std) of
            p(h_{l-1}|h_l), the last maps h1 to the logits of p(x|h1).
        num_layers: preset depth when `encoder` is None: 1 or 2 stochastic layers.
        num_samples: k, samples per example in the training objective.
        image_shape: shape of one image.
        seed: seed of the model's randomness (sampling of h); None for nondeterministic.
        batch_splits: a training step runs its batch as this many row blocks, independent
            chains of ops that the cores can run side by side (with one thread per op,
            `tfaae train --intra-op-threads 1 --batch-splits 2`); the noise and the numbers stay
            those of the whole batch (`training_log_weights`).

    Raises:
        ValueError: for k < 1, batch_splits < 1, mismatched networks, or only one of encoder/decoder given.

    Example:
        >>> model = VAE(num_layers=1, num_samples=1, seed=0)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-4))
        >>> x = keras.random.uniform((20, 28, 28, 1), seed=1) > 0.5
        >>> history = model.fit(tf.cast(x, "float32"), epochs=1, batch_size=20, verbose=0)
        >>> sorted(history.history)
        ['bound', 'kl', 'loss', 'recon_loglik']
    """

    network_names = ("encoder", "decoder")

    def __init__(self, encoder=None, decoder=None, num_layers=1, num_samples=1,
                 image_shape=(28, 28, 1), seed=None, batch_splits=1, **kwargs):
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)
        self.num_samples = validation.check_positive_int("num_samples", num_samples)
        self.batch_splits = validation.check_positive_int("batch_splits", batch_splits)
        if (encoder is None) != (decoder is None):
            raise ValueError("Pass both encoder and decoder, or neither to build the preset; got "
                             f"encoder={type(encoder).__name__}, decoder={type(decoder).__name__}.")
        if encoder is None:
            encoder, decoder = burda_networks(num_layers, self.input_dim, dtype=self.dtype_policy,
                                              seed=seed)
        self.encoder, self.decoder = list(encoder), list(decoder)
        self.num_layers = len(self.encoder)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.bound_tracker = keras.metrics.Mean(name="bound")
        self.recon_tracker = keras.metrics.Mean(name="recon_loglik")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.latent_dims = networks.check_stack(self.encoder, self.decoder, self.input_dim)
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.bound_tracker, self.recon_tracker, self.kl_tracker]

    @property
    def encoder_variables(self):
        return [v for layer in self.encoder for v in layer.trainable_variables]

    @property
    def decoder_variables(self):
        return [v for layer in self.decoder for v in layer.trainable_variables]

    # ----------------------------------------------------------------------------------------------
    # The algorithm.

    def log_weights(self, x, num_samples, stop_proposal_gradient=False, seed=None,
                    shared_noise=False):
        """Log importance weights log w = log p(x, h) - log q(h|x) for k samples per example.

        Computed by `tfaae.networks.log_weights` (plain ops, the reference), or inside
        `tfaae.fused.enabled()` by `tfaae.networks.fused_log_weights`, the same contract on the
        fused kernels (`tfaae.networks.takes_fused_path`).

        Args:
            x: `[batch, D]` flat images.
            num_samples: k.
            stop_proposal_gradient: evaluate log q with q's weights stopped (the samples keep
                their reparameterised path), as DReG needs.
            seed: a `keras.random.SeedGenerator` for the noise (None: the model's own), or an int
                or `[2]` integer tensor for stateless noise, one seed per stochastic layer
                (`tfaae.random.fold_in`).
            shared_noise: draw one set of k standard-normal vectors per layer and use it for every
                example (common random numbers), so that an example's weights depend only on the
                example and the seed, not on its position in the batch or the batch's size.

        Returns:
            dict of `[k, batch]` tensors: "log_w", "log_px" (log p(x|h1)) and
            "kl" (log q(h|x) - log p(h), so that log_w = log_px - kl).
        """
        seed = self.seed_generator if seed is None else seed
        fast = networks.takes_fused_path(self.encoder, self.decoder, stop_proposal_gradient)
        compute = networks.fused_log_weights if fast else networks.log_weights
        return compute(self.encoder, self.decoder, x, num_samples, seed, shared_noise,
                       stop_proposal_gradient)

    def training_log_weights(self, x, **kwargs):
        """`log_weights` of a training step: k samples, the batch run as `batch_splits` row blocks.

        One seed is drawn from the model's generator per step; each block draws its rows of the
        noise of the whole batch (`tfaae.models.base.in_row_blocks`), so the number of blocks
        changes which ops can run side by side, not the numbers (up to float32 summation order).

        Args:
            x: `[batch, D]` flat images.
            **kwargs: passed to `log_weights` (e.g. `stop_proposal_gradient`).

        Returns:
            `log_weights`' dict of `[k, batch]` tensors.
        """
        seed = random.draw_seed(self.seed_generator)
        return in_row_blocks(lambda rows: self.log_weights(rows, self.num_samples, seed=seed,
                                                           **kwargs), x, self.batch_splits)

    def bound(self, log_weights):
        """The k-sample ELBO (1/k) sum_i log w_i (Burda et al. eq. 2), `[k, batch]` -> `[batch]`.

        The reported `bound` is this value (`tfaae.bounds.elbo`).
        """
        return bounds.elbo(log_weights)

    def compute_gradients(self, x):
        """Gradients of the negative bound; returns (grads, variables, bound, terms)."""
        # Phase: variational. Encoder q and decoder p ascend the bound together.
        with tf.GradientTape() as tape:
            terms = self.training_log_weights(x)  # log w_i, [k, batch]
            bound = self.bound(terms["log_w"])  # [batch]
            loss = random.average_loss(-bound)
        variables = self.trainable_variables
        return tape.gradient(loss, variables), variables, bound, terms

    def train_step(self, data):
        x = self.images(data)
        with fused.enabled(not self.jit_compile):  # a jit-compiled step fuses by itself.
            grads, variables, bound, terms = self.compute_gradients(x)
        self.optimizer.apply(grads, variables)
        return self._record(bound, terms)

    def test_step(self, data):
        x = self.images(data)
        with fused.enabled(not self.jit_compile, gradients=False):
            terms = self.log_weights(x, self.num_samples)
        return self._record(self.bound(terms["log_w"]), terms)

    def _record(self, bound, terms):
        self.loss_tracker.update_state(-bound)
        self.bound_tracker.update_state(bound)
        self.recon_tracker.update_state(tf.reduce_mean(terms["log_px"], 0))
        self.kl_tracker.update_state(tf.reduce_mean(terms["kl"], 0))
        return {m.name: m.result() for m in self.metrics}

    # ----------------------------------------------------------------------------------------------
    # Inference and generation.

    def encode(self, x):
        """Posterior parameters along the mean path: [(mean, std) of q(h1|x), of q(h2|mean1), ...].

        Args:
            x: images `[batch, *image_shape]` in [0, 1].

        Returns:
            list of (mean, std) pairs, each `[batch, d_l]`.
        """
        h, out = validation.flatten_images(x, self.image_shape), []
        for layer in self.encoder:
            mean, log_std = as_float32(layer(h))
            out.append((mean, tf.exp(log_std)))
            h = mean
        return out

    def decode(self, z, sample_intermediate=False, seed=None):
        """Logits of p(x|h1), image-shaped, from top-level codes z `[batch, d_L]`.

        With more than one stochastic layer, intermediate layers take their mean, or a sample when
        `sample_intermediate` is True, seeded by `seed` (as in `sample`), else by the model's
        generator.
        """
        h = tf.cast(z, tf.float32)  # codes may come in bfloat16 from a mixed-precision encoder.
        if h.shape.rank != 2 or h.shape[-1] != self.latent_dims[-1]:
            raise ValueError(f"z must have shape [batch, {self.latent_dims[-1]}]; got {list(h.shape)}.")
        seed = self.seed_generator if seed is None else seed
        for j, layer in enumerate(self.decoder[:-1]):
            mean, log_std = as_float32(layer(h))
            h = mean
            if sample_intermediate:
                h = mean + tf.exp(log_std) * random.normal(tf.shape(mean), random.fold_in(seed, j + 1))
        logits = as_float32(self.decoder[-1](h))
        return tf.reshape(logits, tf.concat([[-1], self.image_shape], 0))

    def reconstruct(self, x):
        """Bernoulli means of p(x|h) with h the posterior means: image-shaped, in [0, 1]."""
        return tf.sigmoid(self.decode(self.encode(x)[-1][0]))

    def generate(self, num_samples, seed=None):
        """Ancestral sampling: h_L ~ N(0, I), then down through the decoder.

        Args:
            num_samples: number of images, an int or an int32 scalar tensor.
            seed: an int or a `[2]` integer tensor (stateless: the same seed gives the same
                samples in any process, and the first n of N samples are the n samples), or a
                `keras.random.SeedGenerator`; None uses (and advances) the model's generator.

        Returns:
            (z, logits): the top-level codes `[num_samples, d_L]` and the logits of p(x|h1),
            `[num_samples, *image_shape]`.
        """
        seed = self.seed_generator if seed is None else seed
        z = self.prior_samples(num_samples, seed)
        return z, self.decode(z, sample_intermediate=True, seed=seed)

    def sample(self, num_samples, seed=None):
        """Ancestral samples' Bernoulli means (see `generate` for the arguments).

        Returns:
            `[num_samples, *image_shape]` probabilities in [0, 1].

        Example:
            >>> images = VAE(seed=0).sample(4, seed=7)   # the same four images in every run.
        """
        return tf.sigmoid(self.generate(num_samples, seed)[1])

    # Hooks of `tfaae.monitoring` (with `sample` and `reconstruct`): what its figures show.

    def prior_samples(self, num_samples, seed=None):
        """Top-level codes from the prior, h_L ~ N(0, I): `[num_samples, d_L]`.

        Args:
            num_samples: number of codes, an int or an int32 scalar tensor.
            seed: as for `generate`.
        """
        if not isinstance(num_samples, (tf.Tensor, tf.Variable)):
            num_samples = validation.check_positive_int("num_samples", num_samples)
        seed = self.seed_generator if seed is None else seed
        return random.normal(tf.stack([num_samples, self.latent_dims[-1]]), random.fold_in(seed, 0))

    def latent_codes(self, x):
        """Codes of images for the latent map and the projector: the means of q(h_L|x), `[batch, d_L]`."""
        return self.encode(x)[-1][0]

    def posterior_parameters(self, x):
        """q's parameters per stochastic layer, {"layer{l}/mean" and "layer{l}/std": `[batch, d_l]`}."""
        return {f"layer{l}/{name}": value for l, pair in enumerate(self.encode(x), 1)
                for name, value in zip(("mean", "std"), pair)}

    def call(self, inputs, training=False):
        return self.reconstruct(self.images(inputs, "inputs"))  # checked: no silent NaN out.

    def initialize_output_bias(self, images):
        """Sets the decoder's output bias to logit(mean training pixel), as Burda et al. do.

        Args:
            images: training images in [0, 1], any shape with `D` values per example.
        """
        images = validation.check_unit_interval_array(images, "images")
        last = self.decoder[-1]
        if not hasattr(last, "set_output_bias"):
            raise TypeError(f"The last decoder layer ({type(last).__name__}) has no set_output_bias.")
        last.set_output_bias(images.reshape(-1, self.input_dim).mean(axis=0))

    def get_config(self):
        return {**super().get_config(), "num_samples": self.num_samples,
                "batch_splits": self.batch_splits}


@keras.saving.register_keras_serializable(package="tfaae")
class IWAE(VAE):
    """Importance Weighted Autoencoder: trains on L_k = log (1/k) sum_i w_i (Burda et al. eq. 8).

    The reported `bound` is the value of L_k, not a gradient surrogate. With k = 1 the IWAE is the
    VAE. Gradients are the standard reparameterised ones, or DReG (Tucker et al. 2019,
    arXiv 1810.04152) with `gradient_estimator="dreg"`, which is beyond the paper.

    Args:
        num_samples: k (default 50, the paper's largest).
        gradient_estimator: "reparam" or "dreg".
        **kwargs: as for `VAE`.

    Raises:
        ValueError: for an unknown gradient estimator, or as `VAE`.

    Example:
        >>> model = IWAE(num_layers=1, num_samples=5, seed=0)
        >>> model.compile(optimizer="adam")
        >>> x = tf.cast(keras.random.uniform((8, 784), seed=1) > 0.5, "float32")
        >>> logs = model.train_on_batch(x, return_dict=True)
        >>> bool(logs["bound"] <= 0.0)
        True
    """

    def __init__(self, *args, num_samples=50, gradient_estimator="reparam", **kwargs):
        super().__init__(*args, num_samples=num_samples, **kwargs)
        self.gradient_estimator = validation.check_choice(
            "gradient_estimator", gradient_estimator, GRADIENT_ESTIMATORS)

    def bound(self, log_weights):
        """The IWAE bound L_k = log (1/k) sum_i w_i (Burda et al. eq. 8), `[k, batch]` -> `[batch]`.

        The reported `bound` is this value (`tfaae.bounds.iwae_bound`, in log space).
        """
        return bounds.iwae_bound(log_weights)

    def compute_gradients(self, x):
        if self.gradient_estimator == "reparam":
            return super().compute_gradients(x)
        # Phase: variational, DReG. One forward pass; the decoder follows sum w~ log w, the
        # encoder sum w~^2 log w with q's weights stopped inside log q.
        with tf.GradientTape(persistent=True) as tape:
            terms = self.training_log_weights(x, stop_proposal_gradient=True)
            bound = self.bound(terms["log_w"])
            decoder_surrogate, encoder_surrogate = bounds.dreg_surrogates(terms["log_w"])
            decoder_loss = random.average_loss(-decoder_surrogate)
            encoder_loss = random.average_loss(-encoder_surrogate)
        encoder_vars, decoder_vars = self.encoder_variables, self.decoder_variables
        grads = (tape.gradient(encoder_loss, encoder_vars) + tape.gradient(decoder_loss, decoder_vars))
        del tape
        return grads, encoder_vars + decoder_vars, bound, terms

    def get_config(self):
        return {**super().get_config(), "gradient_estimator": self.gradient_estimator}
