"""The adversarial autoencoder with a categorical code q(y, z|x): Makhzani et al., sections 5 to 7.

https://arxiv.org/abs/1511.05644. The encoder gives a softmax y over n categories and a style code
z; the decoder reconstructs x from (y, z). Two adversarial networks regularize the codes: one pushes
q(y) towards a uniform categorical prior (one-hot samples), the other q(z) towards N(0, I). Every
minibatch runs, each phase with its own optimizer and `GradientTape`, each one short method of
`CategoricalAAE` called by `CategoricalAAE.train_step`:

1. reconstruction (`reconstruction_phase`): encoder and decoder (and the cluster heads) minimise
   the reconstruction loss;
2. regularization: both discriminators learn prior samples against codes
   (`discriminator_phase`), then the encoder, as the generator, learns to fool both
   (`generator_phase`);
3. semi-supervised classification (`classification_phase`, semi_supervised=True): the encoder
   minimises the cross-entropy of q(y|x) on a labeled minibatch.

Without phase 3 the model clusters: y becomes a cluster indicator (section 6). With `head_dim`
set, a learned matrix W_c maps y to a cluster head and the decoder reads the representation
W_c y + z, of head_dim dimensions; a cost keeps the heads apart (section 7).

Semi-supervised batches are dicts {"images", "labeled_images", "labels"}
(`tfaae.data.semi_supervised_dataset` zips an unlabeled stream with a repeated labeled subset);
clustering batches are images or (images, labels), the labels unused for training. Evaluation
batches (images, labels) report the classification error of semi-supervised models.
"""

import keras
import tensorflow as tf

from tfaae import losses, priors, random, validation
from tfaae.models.base import ImageModel, PhaseOptimizers, as_float32, check_output_widths
from tfaae.networks import categorical_aae_networks

NETWORKS = ("encoder", "decoder", "category_discriminator", "style_discriminator")
ADVERSARIAL = ("category_discriminator_loss", "style_discriminator_loss",
               "category_generator_loss", "style_generator_loss")


def _pair_logits(discriminator, prior, codes):
    """A discriminator's logits on prior samples and on codes, in one batched call."""
    return tf.split(as_float32(discriminator(tf.concat([prior, codes], 0))), 2)


@keras.saving.register_keras_serializable(package="tfaae")
class CategoricalAAE(PhaseOptimizers, ImageModel):
    """Semi-supervised classification, clustering and dimensionality reduction with an AAE.

    Args:
        encoder, decoder, category_discriminator, style_discriminator: Keras layers, or None for
            all four to build the preset (`tfaae.networks.categorical_aae_networks`: 1000-1000
            ReLU, N(0, 0.01^2) weights). The encoder maps x to num_categories + style_dim values
            (y logits, then z); the decoder maps [y, z] (or W_c y + z) to pixel logits; the
            discriminators map y, respectively z, to one logit.
        num_categories: classes (semi-supervised) or clusters (the paper: 16 or 30; 20 for its
            unsupervised 2-D map).
        style_dim: size of z (the paper: 10 semi-supervised, 5 clustering); with `head_dim` it
            must equal head_dim.
        semi_supervised: run the classification phase on labeled minibatches (section 5); False
            for clustering (section 6).
        head_dim: m, the size of the cluster heads W_c y (section 7); None: no heads, the decoder
            reads [y, z].
        head_distance: eta, the distance below which two heads are penalised (our choice, 6.0: three
            standard deviations of the style prior on either side, so the clusters' styles barely
            overlap; the paper does not give its value).
        reconstruction: "squared_error" (the paper's) or "bernoulli".
        hidden_units: hidden sizes of the preset networks (default (1000, 1000)).
        image_shape: shape of one image.
        seed: seed of the initial weights (preset, heads) and of all sampling.

    Raises:
        ValueError: for bad sizes, networks that do not fit, or a style_dim unequal to head_dim.

    Example:
        >>> model = CategoricalAAE(num_categories=16, style_dim=5, semi_supervised=False,
        ...                        hidden_units=(64,), seed=0)
        >>> model.compile(**tfaae.schedules.aae_adam_optimizers(1e-3, names=model.optimizer_names))
        >>> x = tf.cast(keras.random.uniform((32, 28, 28, 1), seed=1) > 0.5, "float32")
        >>> sorted(model.fit(x, epochs=1, batch_size=16, verbose=0).history)[:2]
        ['category_discriminator_loss', 'category_generator_loss']
    """

    network_names = NETWORKS

    def __init__(self, encoder=None, decoder=None, category_discriminator=None,
                 style_discriminator=None, num_categories=10, style_dim=10, semi_supervised=True,
                 head_dim=None, head_distance=6.0, reconstruction="squared_error",
                 hidden_units=None, image_shape=(28, 28, 1), seed=None, **kwargs):
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)
        self.num_categories = validation.check_positive_int("num_categories", num_categories, 2)
        self.style_dim = validation.check_positive_int("style_dim", style_dim)
        if not isinstance(semi_supervised, bool):
            raise TypeError(f"semi_supervised must be True or False; got {semi_supervised!r}.")
        self.semi_supervised = semi_supervised
        self.head_dim = None if head_dim is None else validation.check_positive_int("head_dim", head_dim)
        if self.head_dim is not None and self.head_dim != self.style_dim:
            raise ValueError(f"With cluster heads the representation W_c y + z adds z to a head, so "
                             f"style_dim must equal head_dim={self.head_dim}; got {style_dim}.")
        if not (isinstance(head_distance, (int, float)) and head_distance > 0):
            raise ValueError(f"head_distance must be a number > 0; got {head_distance!r}.")
        self.head_distance = float(head_distance)
        self.reconstruction = validation.check_choice("reconstruction", reconstruction,
                                                      losses.RECONSTRUCTIONS)
        self.hidden_units = None if hidden_units is None else tuple(hidden_units)
        self.optimizer_names = ("reconstruction_optimizer", "discriminator_optimizer",
                                "generator_optimizer") + (("classification_optimizer",)
                                                          if semi_supervised else ())
        networks = dict(zip(NETWORKS, (encoder, decoder, category_discriminator, style_discriminator)))
        if all(n is None for n in networks.values()):
            networks = categorical_aae_networks(self.num_categories, self.style_dim, self.input_dim,
                                                self.hidden_units, dtype=self.dtype_policy, seed=seed)
        elif any(n is None for n in networks.values()):
            raise ValueError("Pass all four networks or none to build the preset; got "
                             + ", ".join(f"{k}={type(n).__name__}" for k, n in networks.items()) + ".")
        for name, network in networks.items():
            setattr(self, name, network)
        self.heads = None if self.head_dim is None else self.add_weight(
            shape=(self.num_categories, self.head_dim), name="cluster_heads",
            # Spread from the start: n heads eta apart need an area of about n eta^2.
            initializer=keras.initializers.RandomNormal(
                stddev=self.head_distance * self.num_categories ** 0.5 / 2, seed=seed))
        self.style_prior = priors.gaussian(self.style_dim)
        names = ("reconstruction_loss",) + ADVERSARIAL + (("head_cost",) if self.heads is not None
                                                          else ()) + (
            ("classification_loss", "error") if semi_supervised else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.reconstruction_loss = losses.reconstruction(reconstruction)
        self._check_networks()

    def _check_networks(self):
        """Runs the networks on a dummy input and checks that their sizes fit together."""
        x = keras.ops.zeros((1, self.input_dim))
        out = as_float32(self.encoder(x))
        width = self.num_categories + self.style_dim
        if tuple(out.shape) != (1, width):
            raise ValueError(f"The encoder must output num_categories + style_dim = {width} values "
                             f"(y logits, then z); got shape {tuple(out.shape)[1:]}.")
        logits, z = self.split_code(out)
        check_output_widths((
            ("decoder", self.decode_logits(tf.nn.softmax(logits), z), self.input_dim),
            ("category_discriminator", as_float32(self.category_discriminator(logits)), 1),
            ("style_discriminator", as_float32(self.style_discriminator(z)), 1)))
        self.built = True

    def compile(self, reconstruction_optimizer=None, discriminator_optimizer=None,
                generator_optimizer=None, classification_optimizer=None, **kwargs):
        """Takes each phase's optimizer by name (default: `tfaae.schedules.categorical_optimizers`).

        Args:
            reconstruction_optimizer, discriminator_optimizer (both discriminators),
                generator_optimizer, classification_optimizer (semi-supervised only): Keras
                optimizers or their names.
            **kwargs: `keras.Model.compile`'s `steps_per_execution`, `jit_compile`, `run_eagerly`.

        Raises:
            TypeError: for `optimizer=`, `loss=`, `metrics=`, or a classification optimizer given
                to a clustering model.
            ValueError: if one optimizer instance is passed for two phases.
        """
        if classification_optimizer is not None and not self.semi_supervised:
            raise TypeError("classification_optimizer: this model clusters (semi_supervised=False) "
                            "and has no classification phase.")
        self.compile_phases({"reconstruction_optimizer": reconstruction_optimizer,
                             "discriminator_optimizer": discriminator_optimizer,
                             "generator_optimizer": generator_optimizer,
                             "classification_optimizer": classification_optimizer}, **kwargs)

    def default_optimizers(self):
        from tfaae import schedules
        return schedules.categorical_optimizers(names=self.optimizer_names)

    def phase_variables(self):
        """Each optimizer's variables: encoder + decoder (+ heads), both discriminators, encoder."""
        heads = [] if self.heads is None else [self.heads]
        phases = {"reconstruction_optimizer": (self.encoder.trainable_weights
                                               + self.decoder.trainable_weights + heads),
                  "discriminator_optimizer": (self.category_discriminator.trainable_weights
                                              + self.style_discriminator.trainable_weights),
                  "generator_optimizer": self.encoder.trainable_weights}
        if self.semi_supervised:
            phases["classification_optimizer"] = self.encoder.trainable_weights
        return phases

    # ----------------------------------------------------------------------------------------------
    # The networks.

    def split_code(self, outputs):
        """The encoder's outputs `[batch, n + d]` as (y logits `[batch, n]`, z `[batch, d]`)."""
        return outputs[:, :self.num_categories], outputs[:, self.num_categories:]

    def encode_parts(self, x):
        """(logits of q(y|x), style z) of flat images `[batch, D]`, float32."""
        return self.split_code(as_float32(self.encoder(x)))

    def representation(self, y, z):
        """The decoder's input: W_c y + z with cluster heads, else [y, z]."""
        if self.heads is None:
            return tf.concat([y, z], -1)
        return tf.matmul(y, tf.cast(self.heads, y.dtype)) + z

    def decode_logits(self, y, z):
        """Pixel logits `[batch, D]` of categories y `[batch, n]` (one-hot or soft) and styles z."""
        return as_float32(self.decoder(self.representation(y, z)))

    def head_cost(self):
        """`losses.cluster_head_cost` of the heads (0 without heads)."""
        if self.heads is None:
            return tf.constant(0.0)
        return losses.cluster_head_cost(self.heads, self.head_distance)

    def sample_prior(self, num_samples, seed=None):
        """(one-hot y ~ uniform Cat(n) `[num, n]`, z ~ N(0, I) `[num, d]`)."""
        seed = self.seed_generator if seed is None else seed
        classes = tf.random.stateless_uniform([num_samples], random.draw_seed(seed), 0,
                                              self.num_categories, tf.int32, alg="philox")
        return (tf.one_hot(classes, self.num_categories),
                priors.sample(self.style_prior, num_samples, seed))

    # ----------------------------------------------------------------------------------------------
    # The algorithm: three phases per minibatch.

    def inputs(self, data):
        """Unlabeled images `[batch, D]` and the labeled minibatch (images, int32 labels) or None."""
        if isinstance(data, (tuple, list)) and data and isinstance(data[0], dict):
            data = data[0]  # train_on_batch(batch) hands over (batch,).
        if isinstance(data, dict):
            missing = {"images"} | ({"labeled_images", "labels"} if self.semi_supervised else set())
            missing -= set(data)
            if missing:
                raise ValueError(f"Batches must hold {sorted(missing)}; got keys {sorted(data)}.")
            x = self.images(data["images"])
        else:
            x = self.images(data)
        if not self.semi_supervised:
            return x, None
        if not isinstance(data, dict):
            raise ValueError("semi_supervised=True trains on batches {'images', 'labeled_images', "
                             "'labels'} (see tfaae.data.semi_supervised_dataset); got "
                             f"{type(data).__name__} batches.")
        labeled = self.images(data["labeled_images"], "labeled_images")
        labels = validation.class_labels(data["labels"], self.num_categories,
                                         allow_unlabeled=False)
        return x, (labeled, labels)

    def reconstruction_phase(self, x):
        """Updates encoder, decoder (and heads); returns the loss `[batch]` and the heads' cost."""
        # Phase: reconstruction. Encoder and decoder minimise the reconstruction loss, the cluster
        # heads (if any) also their spacing cost.
        variables = self.phase_variables()["reconstruction_optimizer"]
        with tf.GradientTape() as tape:
            logits, z = self.encode_parts(x)
            per_example = self.reconstruction_loss(x, self.decode_logits(tf.nn.softmax(logits), z))
            head_cost = self.head_cost()
            loss = tf.nn.compute_average_loss(per_example) + head_cost
        self.reconstruction_optimizer.apply(tape.gradient(loss, variables), variables)
        return per_example, head_cost

    def discriminator_phase(self, x):
        """Updates both discriminators; returns their losses, each `[batch]`."""
        logits, z = self.encode_parts(x)
        # Phase: regularization, discriminators. Prior samples are positives, codes negatives.
        variables = self.phase_variables()["discriminator_optimizer"]
        with tf.GradientTape() as tape:
            category, style = self._discriminator_losses(logits, z)
            loss = tf.nn.compute_average_loss(category + style)
        self.discriminator_optimizer.apply(tape.gradient(loss, variables), variables)
        return category, style

    def generator_phase(self, x):
        """Updates the encoder to fool both discriminators; returns both losses, `[batch]` each."""
        # Phase: regularization, generator. The encoder makes both take its codes for prior samples.
        variables = self.phase_variables()["generator_optimizer"]
        with tf.GradientTape() as tape:
            category, style = self._generator_losses(*self.encode_parts(x))
            loss = tf.nn.compute_average_loss(category + style)
        self.generator_optimizer.apply(tape.gradient(loss, variables), variables)
        return category, style

    def classification_phase(self, images, labels):
        """Updates the encoder on the cross-entropy of q(y|x) for a labeled minibatch."""
        # Phase: semi-supervised classification. The encoder's q(y|x) learns the labels.
        variables = self.phase_variables()["classification_optimizer"]
        with tf.GradientTape() as tape:
            per_example = losses.classification_loss(labels, self.encode_parts(images)[0])
            loss = tf.nn.compute_average_loss(per_example)
        self.classification_optimizer.apply(tape.gradient(loss, variables), variables)
        return per_example

    def _discriminator_losses(self, logits, z):
        y_prior, z_prior = self.sample_prior(tf.shape(z)[0])
        return (losses.discriminator_loss(*_pair_logits(self.category_discriminator, y_prior,
                                                        tf.nn.softmax(logits))),
                losses.discriminator_loss(*_pair_logits(self.style_discriminator, z_prior, z)))

    def _generator_losses(self, logits, z):
        return (losses.generator_loss(self.category_discriminator(tf.nn.softmax(logits))),
                losses.generator_loss(self.style_discriminator(z)))

    def train_step(self, data):
        x, labeled = self.inputs(data)
        reconstruction, head_cost = self.reconstruction_phase(x)
        values = {"reconstruction_loss": reconstruction, "head_cost": head_cost}
        values.update(zip(ADVERSARIAL[:2], self.discriminator_phase(x)))
        values.update(zip(ADVERSARIAL[2:], self.generator_phase(x)))
        if labeled is not None:
            values["classification_loss"] = self.classification_phase(*labeled)
        return self._record(values)

    def test_step(self, data):
        x = self.images(data)
        logits, z = self.encode_parts(x)
        values = {"reconstruction_loss": self.reconstruction_loss(
            x, self.decode_logits(tf.nn.softmax(logits), z)), "head_cost": self.head_cost()}
        values.update(zip(ADVERSARIAL, self._discriminator_losses(logits, z)
                          + self._generator_losses(logits, z)))
        if self.semi_supervised and isinstance(data, (tuple, list)) and len(data) > 1:
            labels = validation.class_labels(data[1], self.num_categories, allow_unlabeled=False)
            values["classification_loss"] = losses.classification_loss(labels, logits)
            values["error"] = 100.0 * tf.cast(
                tf.argmax(logits, -1, output_type=tf.int32) != labels, tf.float32)
        return self._record(values)

    def _record(self, values):
        for name, value in values.items():
            if name in self.trackers:
                self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values if name in self.trackers}

    # ----------------------------------------------------------------------------------------------
    # Inference (the serving signatures classify, cluster and embed use these) and generation.

    def classify(self, x):
        """q(y|x), the class (or cluster) probabilities of images: `[batch, num_categories]`."""
        logits, _ = self.encode_parts(validation.flatten_images(x, self.image_shape))
        return tf.nn.softmax(logits)

    def cluster(self, x):
        """(the most probable cluster, int32 `[batch]`; q(y|x) `[batch, num_categories]`)."""
        probabilities = self.classify(x)
        return tf.argmax(probabilities, -1, output_type=tf.int32), probabilities

    def embed(self, x):
        """The representation: W_c y + z `[batch, head_dim]` with heads, else [y, z]."""
        logits, z = self.encode_parts(validation.flatten_images(x, self.image_shape))
        return self.representation(tf.nn.softmax(logits), z)

    def reconstruct(self, x):
        """The decoder's means (sigmoid of its logits) of the images' codes, image-shaped."""
        logits, z = self.encode_parts(validation.flatten_images(x, self.image_shape))
        return self._images(self.decode_logits(tf.nn.softmax(logits), z))

    def sample(self, num_samples, seed=None):
        """Images decoded from prior samples (uniform category, Gaussian style), `[n, *shape]`."""
        num_samples = validation.check_positive_int("num_samples", num_samples)
        gen = self.seed_generator if seed is None else keras.random.SeedGenerator(seed)
        return self._images(self.decode_logits(*self.sample_prior(num_samples, gen)))

    def _images(self, logits):
        return tf.reshape(tf.sigmoid(logits), tf.concat([[-1], self.image_shape], 0))

    latent_codes = embed  # the monitoring's latent map and projector show the representation.

    def posterior_parameters(self, x):
        """q's outputs for histograms: {"probabilities" `[batch, n]`, "style" `[batch, d]`}."""
        logits, z = self.encode_parts(validation.flatten_images(x, self.image_shape))
        return {"probabilities": tf.nn.softmax(logits), "style": z}

    def monitoring_figures(self, images, labels=None, seed=0):
        """The paper's figure of test images per cluster (rows: clusters)."""
        from tfaae import figures
        clusters = self.cluster(images)[0].numpy()
        return {"clusters": figures.cluster_examples(images, clusters, self.num_categories)}

    def call(self, inputs, training=False):
        return self.classify(inputs)

    def get_config(self):
        return {**super().get_config(), "num_categories": self.num_categories,
                "style_dim": self.style_dim, "semi_supervised": self.semi_supervised,
                "head_dim": self.head_dim, "head_distance": self.head_distance,
                "reconstruction": self.reconstruction, "hidden_units": self.hidden_units}
