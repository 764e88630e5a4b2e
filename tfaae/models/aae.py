"""The Adversarial Autoencoder (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2015).

https://arxiv.org/abs/1511.05644. An autoencoder whose codes z = q(x) are pushed towards a prior
p(z) by a GAN: a discriminator learns to tell prior samples from codes, and the encoder, as the
GAN's generator, learns to fool it. Every minibatch runs the paper's phases in order (section 2),
each one short method of `AAE` called by `AAE.train_step`:

1. reconstruction (`reconstruction_phase`): the encoder and decoder minimise the reconstruction
   loss;
2. regularization: the discriminator learns prior samples (positive) against codes (negative)
   (`discriminator_phase`), then the encoder learns to make the discriminator take its codes for
   prior samples (`generator_phase`).

Each phase has its own optimizer (`compile(reconstruction_optimizer=..., discriminator_optimizer=...,
generator_optimizer=...)`) and its own `GradientTape` over its own network's weights.

Labels (supervised variants, section 5) come with the images as `(images, labels)`: integer class
ids `[batch]`, -1 meaning "unlabeled", or one-hot rows `[batch, num_classes]`, all zeros meaning
"unlabeled" (see `tfaae.validation.class_labels`).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfaae import bounds, losses, priors, random, validation
from tfaae.models.base import ImageModel, PhaseOptimizers, as_float32, check_output_widths
from tfaae.networks import POSTERIORS, aae_networks

tfd = tfp.distributions

SUPERVISION = ("none", "discriminator", "decoder")


@keras.saving.register_keras_serializable(package="tfaae")
class AAE(PhaseOptimizers, ImageModel):
    """Adversarial autoencoder: reconstruction, then discriminator and generator, every minibatch.

    Args:
        encoder, decoder, discriminator: Keras layers, or None for all three to build Makhzani et
            al.'s preset (`tfaae.networks.aae_networks`: 1000-1000 ReLU, N(0, 0.01^2) weights).
            The encoder maps x (with noise appended for "universal") to z, or for "gaussian" to
            (mean, log_std); the decoder maps z (with a one-hot label appended for
            supervised="decoder") to pixel logits; the discriminator maps z (with a one-hot label
            of num_classes + 1 slots appended for supervised="discriminator") to one logit.
        posterior: q(z|x) of the paper's section 2: "deterministic", "gaussian" (reparameterised
            sample of N(mean, std^2)) or "universal" (z = f(x, eta), eta ~ N(0, I) of `noise_dim`).
        latent_dim: size of z.
        prior: "gaussian", "mixture" (10 2-D Gaussians laid out radially), "swiss_roll", a dict
            {"name": ..., **options} (e.g. {"name": "gaussian", "scale": 5.0}) or any
            `tfp.distributions.Distribution` with event shape `[latent_dim]` (see `tfaae.priors`).
        supervised: "none"; "discriminator" (the label, plus an "unlabeled" slot, joins the
            discriminator's input and label i draws its prior samples from mixture component i);
            or "decoder" (the label joins the decoder's input: z learns style alone).
        num_classes: number of classes of the labels.
        reconstruction: "squared_error" (the paper's Euclidean cost on MNIST, sigmoid outputs) or
            "bernoulli" (cross-entropy from logits).
        noise_dim: size of the universal encoder's noise (default: latent_dim).
        hidden_units: hidden sizes of the preset networks (default (1000, 1000)).
        observation_std: std sigma of the Gaussian observation model N(x; sigmoid(logits),
            sigma^2 I) that `log_weights` uses with reconstruction="squared_error"; it is the
            non-trainable weight `observation_std`, which `tfaae.evaluation.aae_log_likelihoods`
            sets to the Parzen width chosen on validation data.
        image_shape: shape of one image.
        seed: seed of the initial weights (preset) and of all sampling; None: nondeterministic.

    Raises:
        ValueError: for unknown options, networks whose sizes do not fit, or a prior that does
            not fit (supervised="discriminator" needs a mixture of num_classes components).

    Example:
        >>> model = AAE(latent_dim=2, prior="mixture", hidden_units=(64, 64), seed=0)
        >>> model.compile(**tfaae.schedules.aae_adam_optimizers())
        >>> x = tf.cast(keras.random.uniform((32, 28, 28, 1), seed=1) > 0.5, "float32")
        >>> sorted(model.fit(x, epochs=1, batch_size=16, verbose=0).history)
        ['discriminator_accuracy', 'discriminator_loss', 'generator_loss', 'reconstruction_loss']
    """

    optimizer_names = ("reconstruction_optimizer", "discriminator_optimizer", "generator_optimizer")
    network_names = ("encoder", "decoder", "discriminator")

    def __init__(self, encoder=None, decoder=None, discriminator=None, posterior="deterministic",
                 latent_dim=8, prior="gaussian", supervised="none", num_classes=10,
                 reconstruction="squared_error", noise_dim=None, hidden_units=None,
                 observation_std=0.2, image_shape=(28, 28, 1), seed=None, **kwargs):
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)
        self.posterior = validation.check_choice("posterior", posterior, POSTERIORS)
        self.supervised = validation.check_choice("supervised", supervised, SUPERVISION)
        self.reconstruction = validation.check_choice("reconstruction", reconstruction,
                                                      losses.RECONSTRUCTIONS)
        self.latent_dim = validation.check_positive_int("latent_dim", latent_dim)
        self.num_classes = validation.check_positive_int("num_classes", num_classes, minimum=2)
        self.noise_dim = validation.check_positive_int("noise_dim", noise_dim or latent_dim)
        self.hidden_units = None if hidden_units is None else tuple(hidden_units)
        if not (isinstance(observation_std, (int, float)) and observation_std > 0):
            raise ValueError(f"observation_std must be a number > 0; got {observation_std!r}.")
        self.observation_std_init = float(observation_std)
        self.prior_spec = prior
        self.prior = priors.get(prior, self.latent_dim)
        if supervised == "discriminator" and priors.num_components(self.prior) != num_classes:
            raise ValueError(f"supervised='discriminator' maps label i to mixture component i, so "
                             f"the prior must be a tfd.MixtureSameFamily of num_classes="
                             f"{num_classes} components; got {self.prior.name} with "
                             f"{priors.num_components(self.prior)} components.")
        networks = (encoder, decoder, discriminator)
        if all(n is None for n in networks):
            built = aae_networks(posterior, self.latent_dim, self.input_dim, self.hidden_units,
                                 dtype=self.dtype_policy, seed=seed)
            encoder, decoder, discriminator = built["encoder"], built["decoder"], built["discriminator"]
        elif any(n is None for n in networks):
            raise ValueError("Pass encoder, decoder and discriminator together, or none to build the "
                             "preset; got " + ", ".join(f"{k}={type(n).__name__}" for k, n in zip(
                                 ("encoder", "decoder", "discriminator"), networks)) + ".")
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.observation_std = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.observation_std_init),
            trainable=False, name="observation_std")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in (
            "reconstruction_loss", "discriminator_loss", "discriminator_accuracy", "generator_loss")}
        self.reconstruction_loss = losses.reconstruction(reconstruction)
        self._build_networks()

    def _build_networks(self):
        """Builds the networks on dummy inputs and checks that their sizes fit together."""
        batch = tf.zeros([1], tf.int32)
        x = keras.ops.zeros((1, self.input_dim))
        codes = as_float32(self.encoder(self._encoder_input(x, seed=0)))
        if self.posterior == "gaussian" and not (isinstance(codes, (tuple, list)) and len(codes) == 2):
            raise ValueError("posterior='gaussian' needs an encoder that returns (mean, log_std), e.g. "
                             f"tfaae.networks.GaussianMLP; got {type(self.encoder).__name__}.")
        z = codes[0] if self.posterior == "gaussian" else codes
        if tuple(z.shape) != (1, self.latent_dim):
            raise ValueError(f"The encoder must output codes of latent_dim={self.latent_dim} values; "
                             f"got shape {tuple(z.shape)[1:]}.")
        check_output_widths((("decoder", self.decode_logits(z, batch), self.input_dim),
                             ("discriminator", self.discriminate(z, batch), 1)))
        self.built = True

    # ----------------------------------------------------------------------------------------------
    # Compiling: three optimizers by name, restored by load_model and BackupAndRestore.

    def compile(self, reconstruction_optimizer=None, discriminator_optimizer=None,
                generator_optimizer=None, **kwargs):
        """Takes the three phases' optimizers by name (default: the paper's SGD, constant rates).

        Args:
            reconstruction_optimizer, discriminator_optimizer, generator_optimizer: Keras
                optimizers or their names; None for `tfaae.schedules.makhzani_optimizers()`'s.
            **kwargs: `keras.Model.compile`'s `steps_per_execution`, `jit_compile`, `run_eagerly`.

        Raises:
            TypeError: for `optimizer=`, `loss=` or `metrics=`: the AAE defines its own.
            ValueError: if one optimizer instance is passed for two phases.
        """
        self.compile_phases({"reconstruction_optimizer": reconstruction_optimizer,
                             "discriminator_optimizer": discriminator_optimizer,
                             "generator_optimizer": generator_optimizer}, **kwargs)

    def phase_variables(self):
        """Each optimizer's variables: encoder + decoder, discriminator, encoder."""
        return {"reconstruction_optimizer": self.encoder.trainable_weights + self.decoder.trainable_weights,
                "discriminator_optimizer": self.discriminator.trainable_weights,
                "generator_optimizer": self.encoder.trainable_weights}

    # ----------------------------------------------------------------------------------------------
    # The networks, with their conditioning inputs.

    def _encoder_input(self, x, seed):
        if self.posterior != "universal":
            return x
        noise = random.replica_rows(lambda n: random.normal(tf.stack([n, self.noise_dim]), seed),
                                    tf.shape(x)[0])
        return tf.concat([x, noise], -1)

    def codes(self, x, seed=None):
        """Samples z ~ q(z|x) for flat images `[batch, D]`: `[batch, latent_dim]` float32."""
        seed = self.seed_generator if seed is None else seed
        out = as_float32(self.encoder(self._encoder_input(x, seed)))
        if self.posterior != "gaussian":
            return out
        mean, log_std = out
        noise = random.replica_rows(
            lambda n: random.normal(tf.stack([n, self.latent_dim]), seed), tf.shape(mean)[0])
        return mean + tf.exp(log_std) * noise

    def decode_logits(self, z, labels=None):
        """Pixel logits `[..., D]` from codes `[..., latent_dim]` (and labels, for "decoder")."""
        if self.supervised == "decoder":
            z = tf.concat([z, tf.one_hot(labels, self.num_classes, dtype=z.dtype)], -1)
        return as_float32(self.decoder(z))

    def discriminate(self, z, labels=None):
        """Discriminator logits `[batch, 1]`; for "discriminator", label -1 takes the extra slot."""
        if self.supervised == "discriminator":
            slots = tf.where(labels < 0, self.num_classes, labels)
            z = tf.concat([z, tf.one_hot(slots, self.num_classes + 1, dtype=z.dtype)], -1)
        return as_float32(self.discriminator(z))

    def sample_prior(self, num_samples, labels=None):
        """Prior samples `[n, latent_dim]`; for "discriminator", label i draws from component i."""
        labels = labels if self.supervised == "discriminator" else None
        return priors.sample(self.prior, num_samples, self.seed_generator, labels)

    # ----------------------------------------------------------------------------------------------
    # The algorithm: three phases per minibatch.

    def inputs(self, data):
        """Images `[batch, D]` and labels (int32 `[batch]`, -1: unlabeled; None if unsupervised)."""
        if self.supervised == "none":
            return self.images(data), None
        return self.images_and_labels(data, self.num_classes, self.supervised == "discriminator",
                                      f"supervised={self.supervised!r}")

    def reconstruction_phase(self, x, labels=None):
        """Updates encoder and decoder on the reconstruction loss; returns it, `[batch]`."""
        # Phase: reconstruction. Encoder and decoder minimise the reconstruction loss.
        variables = self.phase_variables()["reconstruction_optimizer"]
        with tf.GradientTape() as tape:
            per_example = self.reconstruction_loss(x, self.decode_logits(self.codes(x), labels))
            loss = random.average_loss(per_example)
        self.reconstruction_optimizer.apply(tape.gradient(loss, variables), variables)
        return per_example

    def discriminator_phase(self, x, labels=None):
        """Updates the discriminator; returns its loss and accuracy, each `[batch]`."""
        z_code = self.codes(x)
        z_prior = self.sample_prior(tf.shape(x)[0], labels)
        # Phase: regularization, discriminator. Prior samples are positives, codes negatives.
        variables = self.phase_variables()["discriminator_optimizer"]
        with tf.GradientTape() as tape:
            prior_logits, code_logits = self._discriminate_pair(z_prior, z_code, labels)
            per_example = losses.discriminator_loss(prior_logits, code_logits)
            loss = random.average_loss(per_example)
        self.discriminator_optimizer.apply(tape.gradient(loss, variables), variables)
        return per_example, losses.discriminator_accuracy(prior_logits, code_logits)

    def generator_phase(self, x, labels=None):
        """Updates the encoder to fool the discriminator; returns the generator loss, `[batch]`."""
        # Phase: regularization, generator. The encoder makes D take its codes for prior samples.
        variables = self.phase_variables()["generator_optimizer"]
        with tf.GradientTape() as tape:
            per_example = losses.generator_loss(self.discriminate(self.codes(x), labels))
            loss = random.average_loss(per_example)
        self.generator_optimizer.apply(tape.gradient(loss, variables), variables)
        return per_example

    def _discriminate_pair(self, z_prior, z_code, labels):
        """D's logits on prior samples and on codes, in one batched call: two `[batch, 1]`."""
        both_labels = None if labels is None else tf.concat([labels, labels], 0)
        logits = self.discriminate(tf.concat([z_prior, z_code], 0), both_labels)
        return tf.split(logits, 2)

    def train_step(self, data):
        x, labels = self.inputs(data)
        reconstruction = self.reconstruction_phase(x, labels)
        discriminator, accuracy = self.discriminator_phase(x, labels)
        generator = self.generator_phase(x, labels)
        return self._record(reconstruction, discriminator, accuracy, generator)

    def test_step(self, data):
        x, labels = self.inputs(data)
        z_code = self.codes(x)
        prior_logits, code_logits = self._discriminate_pair(
            self.sample_prior(tf.shape(x)[0], labels), z_code, labels)
        return self._record(self.reconstruction_loss(x, self.decode_logits(z_code, labels)),
                            losses.discriminator_loss(prior_logits, code_logits),
                            losses.discriminator_accuracy(prior_logits, code_logits),
                            losses.generator_loss(code_logits))

    def _record(self, *values):
        for tracker, value in zip(self.trackers.values(), values):
            tracker.update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # ----------------------------------------------------------------------------------------------
    # Likelihood: importance sampling with the Gaussian encoder as proposal.

    def log_weights(self, x, num_samples, seed=None, shared_noise=False):
        """Log importance weights log w = log p(x|z) + log p(z) - log q(z|x), z ~ q(z|x).

        Defined for posterior="gaussian" (q must have a density). p(x|z) is Bernoulli(logits) for
        reconstruction="bernoulli", else N(x; sigmoid(logits), observation_std^2 I): the model whose
        Parzen estimate `tfaae.evaluation.parzen_log_likelihood` computes with width
        observation_std, so both estimate the same log p(x). With supervised="decoder" the label is
        summed out: p(x|z) = (1/K) sum_y p(x|z, y). `tfaae.evaluation.log_likelihood` uses it.

        Args:
            x: `[batch, D]` flat images.
            num_samples: k.
            seed: a `keras.random.SeedGenerator` for the noise (None: the model's own), or an int
                or `[2]` integer tensor for stateless noise.
            shared_noise: the same k noise vectors for every example (see `VAE.log_weights`).

        Returns:
            dict of `[k, batch]` tensors: "log_w", "log_px" (log p(x|z)) and
            "kl" (log q(z|x) - log p(z), so that log_w = log_px - kl).

        Raises:
            ValueError: for a posterior other than "gaussian".
        """
        if self.posterior != "gaussian":
            raise ValueError(f"log_weights needs an encoder with a density, posterior='gaussian'; "
                             f"this AAE's posterior is {self.posterior!r} (use the Parzen estimate).")
        seed = self.seed_generator if seed is None else seed
        mean, log_std = as_float32(self.encoder(x))
        q = tfd.MultivariateNormalDiag(mean, tf.exp(log_std))
        noise_shape = tf.stack([num_samples, 1 if shared_noise else tf.shape(mean)[0],
                                tf.shape(mean)[-1]])
        z = mean + tf.exp(log_std) * random.normal(noise_shape, seed)  # [k, batch, d]
        kl = q.log_prob(z) - self.prior.log_prob(z)
        if self.supervised != "decoder":
            log_px = self._observation_log_prob(x, self.decode_logits(z))
        else:
            per_class = [self._observation_log_prob(x, self.decode_logits(z, tf.fill(tf.shape(z)[:-1], c)))
                         for c in range(self.num_classes)]
            log_px = tfp.math.reduce_logmeanexp(tf.stack(per_class), axis=0)
        return {"log_w": log_px - kl, "log_px": log_px, "kl": kl}

    def _observation_log_prob(self, x, logits):
        if self.reconstruction == "bernoulli":
            return bounds.bernoulli_log_likelihood(x, logits)
        observation = tfd.Normal(tf.sigmoid(logits), tf.cast(self.observation_std, tf.float32))
        return tf.reduce_sum(observation.log_prob(x), -1)

    # ----------------------------------------------------------------------------------------------
    # Inference and generation.

    def _check_labels(self, labels, batch):
        if self.supervised != "decoder":
            return None
        if labels is None:
            raise ValueError("supervised='decoder': the decoder needs labels (class ids [batch] or "
                             "one-hot rows); got none.")
        labels = validation.class_labels(labels, self.num_classes, allow_unlabeled=False)
        if labels.shape[0] != batch:
            raise ValueError(f"Got {batch} codes or images but {labels.shape[0]} labels.")
        return labels

    def encode(self, x, seed=None):
        """Codes z ~ q(z|x) of images `[batch, *image_shape]`: `[batch, latent_dim]`.

        Args:
            x: images in [0, 1].
            seed: an integer for reproducible codes (Gaussian and universal posteriors); None uses
                the model's seed generator.
        """
        x = validation.flatten_images(x, self.image_shape)
        return self.codes(x, None if seed is None else keras.random.SeedGenerator(seed))

    def decode(self, z, labels=None):
        """Bernoulli means (sigmoid of the logits) of codes `[batch, latent_dim]`, image-shaped.

        Args:
            z: codes.
            labels: class ids or one-hot rows, for supervised="decoder".
        """
        z = tf.convert_to_tensor(z, tf.float32)
        if z.shape.rank != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape [batch, {self.latent_dim}]; got {list(z.shape)}.")
        logits = self.decode_logits(z, self._check_labels(labels, z.shape[0]))
        return tf.reshape(tf.sigmoid(logits), tf.concat([[-1], self.image_shape], 0))

    def reconstruct(self, x, labels=None, seed=None):
        """decode(encode(x)): reconstructions in [0, 1], image-shaped."""
        return self.decode(self.encode(x, seed), labels)

    def generate(self, num_samples, seed=None, labels=None):
        """Generation's pieces: codes z ~ p(z), the decoder's logits and the classes used.

        Args:
            num_samples: number of images, an int or an int32 scalar tensor.
            seed: an int or a `[2]` integer tensor (stateless: the same seed gives the same
                samples in any process), or a `keras.random.SeedGenerator`; None uses (and
                advances) the model's generator.
            labels: optional int `[num_samples]` class ids: for "discriminator" they pick the
                prior's components (-1: the whole prior), for "decoder" the decoder's class
                (default: uniformly random classes).

        Returns:
            (z, logits, labels): codes `[num_samples, latent_dim]`, logits `[num_samples, D]` and
            the decoder's int32 classes `[num_samples]` (None unless supervised="decoder").
        """
        seed = self.seed_generator if seed is None else seed
        if labels is None and self.supervised == "decoder":
            labels = tf.random.stateless_uniform([num_samples], random.draw_seed(random.fold_in(seed, 1)),
                                                 0, self.num_classes, tf.int32, alg="philox")
        z = priors.sample(self.prior, num_samples, random.fold_in(seed, 0),
                          labels if self.supervised == "discriminator" else None)
        labels = labels if self.supervised == "decoder" else None
        return z, self.decode_logits(z, labels), labels

    def sample(self, num_samples, seed=None, labels=None):
        """Generated images: z ~ p(z), then the decoder's Bernoulli means (see `generate`).

        Returns:
            `[num_samples, *image_shape]` values in [0, 1].

        Example:
            >>> images = AAE(prior="mixture", latent_dim=2, seed=0).sample(4, seed=7)
        """
        num_samples = validation.check_positive_int("num_samples", num_samples)
        if labels is not None:
            labels = validation.class_labels(labels, self.num_classes, allow_unlabeled=True)
            if labels.shape[0] != num_samples:
                raise ValueError(f"Got num_samples={num_samples} but {labels.shape[0]} labels.")
            if self.supervised == "decoder":
                labels = self._check_labels(labels, num_samples)
        _, logits, _ = self.generate(num_samples, seed, labels)
        return tf.reshape(tf.sigmoid(logits), [num_samples, *self.image_shape])

    def style_grid(self, num_styles=10, seed=None):
        """The paper's figure 6 (supervised="decoder"): row i one style z_i ~ p(z), column c class c.

        Returns:
            `[num_styles, num_classes, *image_shape]` images in [0, 1].
        """
        if self.supervised != "decoder":
            raise ValueError(f"style_grid needs supervised='decoder'; this AAE has "
                             f"supervised={self.supervised!r}.")
        num_styles = validation.check_positive_int("num_styles", num_styles)
        gen = self.seed_generator if seed is None else keras.random.SeedGenerator(seed)
        z = tf.repeat(priors.sample(self.prior, num_styles, gen), self.num_classes, axis=0)
        images = self.decode(z, tf.tile(tf.range(self.num_classes), [num_styles]))
        return tf.reshape(images, [num_styles, self.num_classes, *self.image_shape])

    # ----------------------------------------------------------------------------------------------
    # Monitoring hooks (tfaae.monitoring, tfaae.report).

    def latent_codes(self, x):
        """Codes of images for the latent map and the projector: q's mean for a Gaussian
        posterior, else a code drawn with a fixed seed, `[batch, latent_dim]`."""
        x = validation.flatten_images(x, self.image_shape)
        if self.posterior == "gaussian":
            return as_float32(self.encoder(x))[0]
        return self.codes(x, keras.random.SeedGenerator(0))

    def prior_samples(self, num_samples, seed=None):
        """Codes z ~ p(z) (the whole prior, every component): `[num_samples, latent_dim]`."""
        num_samples = validation.check_positive_int("num_samples", num_samples)
        gen = self.seed_generator if seed is None else keras.random.SeedGenerator(seed)
        return priors.sample(self.prior, num_samples, gen)

    def posterior_parameters(self, x):
        """q's parameters, {"mean", "std"} (Gaussian posterior) or {"code"}: `[batch, latent_dim]`."""
        x = validation.flatten_images(x, self.image_shape)
        if self.posterior == "gaussian":
            mean, log_std = as_float32(self.encoder(x))
            return {"mean": mean, "std": tf.exp(log_std)}
        return {"code": self.codes(x, keras.random.SeedGenerator(0))}

    def monitoring_figures(self, images, labels=None, seed=0):
        """The supervised AAE's style grid (rows: style, columns: class); {} for the others."""
        if self.supervised != "decoder":
            return {}
        from tfaae import figures
        styles = np.asarray(self.prior_samples(10, seed=seed))
        return {"style_grid": figures.style_grid(
            lambda z, classes: np.asarray(self.decode(z, classes)), styles, self.num_classes)}

    def call(self, inputs, training=False):
        return self.reconstruct(self.images(inputs, "inputs"))  # checked: no silent NaN out.

    def get_config(self):
        prior = self.prior_spec
        if isinstance(prior, tfd.Distribution):
            prior = {"custom": prior.name}
        return {**super().get_config(), "posterior": self.posterior, "latent_dim": self.latent_dim,
                "prior": prior, "supervised": self.supervised, "num_classes": self.num_classes,
                "reconstruction": self.reconstruction, "noise_dim": self.noise_dim,
                "hidden_units": self.hidden_units, "observation_std": self.observation_std_init}

    @classmethod
    def from_config(cls, config):
        if isinstance(config["prior"], dict) and "custom" in config["prior"]:
            name = config["prior"]["custom"]
            config = {**config, "prior": keras.saving.get_registered_object(name)}
            if config["prior"] is None:
                raise ValueError(f"This AAE was saved with a custom prior, {name!r}; load it with "
                                 f"keras.models.load_model(path, custom_objects={{{name!r}: "
                                 "the_distribution}).")
        return super().from_config(config)
