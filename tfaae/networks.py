"""Networks for the latent-variable models: MLPs that output distribution parameters, and presets.

A stochastic layer is an MLP whose output parameterises a distribution:

* `GaussianMLP` gives (mean, log_std) of a diagonal Gaussian, std = exp(linear), as in
  Burda et al. 2016 (arXiv 1509.00519, appendix C);
* `BernoulliMLP` gives the logits of a factorised Bernoulli.

An encoder is a list of `GaussianMLP`s, bottom-up (x -> h1 -> h2 ...); a decoder is the top-down list
(h_L -> ... -> h1 -> x) ending in a `BernoulliMLP`. `burda_networks` builds the paper's architectures.

The adversarial autoencoder's networks are single layers: an `MLP` (a deterministic map with a linear
output: the deterministic and universal-approximator encoders, the discriminator's logit) or a
`GaussianMLP` encoder, and a `BernoulliMLP` decoder; `aae_networks` builds Makhzani et al.'s.
Every network takes `seed` (its initial weights) and `init_std` (N(0, init_std^2) initial kernels
instead of Glorot-uniform).

Example:
    >>> encoder, decoder = burda_networks(num_layers=2)
    >>> [layer.units for layer in encoder]
    [100, 50]
"""

import keras
import numpy as np
import tensorflow as tf

from tfaae import bounds, fused

PRESETS = {
    # Burda et al. 2016, section 5: 784-200-200-50, and 784-[200,200]-100-[100,100]-50.
    "burda-1": {"latent_dims": (50,), "hidden_units": ((200, 200),), "activation": "tanh"},
    "burda-2": {"latent_dims": (100, 50), "hidden_units": ((200, 200), (100, 100)),
                "activation": "tanh"},
}


def as_float32(outputs):
    """Casts a layer's output(s) to float32: log densities stay float32 under a bfloat16 policy."""
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs)


def _check_units(name, values):
    values = tuple(values)
    if not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
        raise ValueError(f"{name} must be positive integers; got {values!r}.")
    return tuple(int(v) for v in values)


class _MLPHead(keras.layers.Layer):
    """Hidden Dense layers shared by the Gaussian and Bernoulli heads."""

    def __init__(self, hidden_units, units, activation="tanh", seed=None, init_std=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = _check_units("hidden_units", hidden_units)
        self.units = _check_units("units", [units])[0]
        self.activation = activation
        self.seed = seed
        if init_std is not None and not (isinstance(init_std, (int, float)) and init_std > 0):
            raise ValueError(f"init_std must be a number > 0 or None; got {init_std!r}.")
        self.init_std = init_std
        keras.activations.get(activation)  # fails early, naming the activation.
        self._dense_count = 0
        self.hidden = [self._dense(u, activation=activation, name=f"hidden_{i}")
                       for i, u in enumerate(self.hidden_units)]

    def _dense(self, units, **kwargs):
        """A Dense layer whose initial kernel (Glorot-uniform, or N(0, init_std^2) when `init_std`
        is given) is fixed by `seed` when one is given."""
        seed = None if self.seed is None else self.seed * 1009 + self._dense_count
        self._dense_count += 1
        initializer = (keras.initializers.GlorotUniform(seed) if self.init_std is None else
                       keras.initializers.RandomNormal(stddev=self.init_std, seed=seed))
        return keras.layers.Dense(units, kernel_initializer=initializer, dtype=self.dtype_policy,
                                  **kwargs)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = shape[:-1] + (layer.units,)
        for head in self._heads():
            head.build(shape)

    def _heads(self):
        """The output Dense layers, applied to the last hidden layer."""
        raise NotImplementedError

    def _trunk(self, inputs):
        h = inputs
        for layer in self.hidden:
            h = self._apply(layer, h, self.activation)
        return h

    def _apply(self, layer, h, activation):
        """layer(h); inside `fused.enabled()`, on rows `[n, d]`, the matmul in the compute dtype
        with the bias and activation fused (`tfaae.fused`: in training `dense_activation`, in
        evaluation `bias_activation` after the matmul)."""
        if not (fused.is_enabled() and activation in fused.ACTIVATIONS and h.shape.rank == 2):
            return layer(h)
        if fused.needs_gradients():
            return fused.dense_activation(*self._in_compute_dtype(h, layer.kernel), layer.bias,
                                          activation)
        return fused.bias_activation(self._matmul(h, layer.kernel), layer.bias, activation)

    def _in_compute_dtype(self, *tensors):
        return [tf.cast(t, self.compute_dtype) for t in tensors]

    def _matmul(self, h, kernel):
        """h @ kernel (of a Dense layer, without its bias) in the compute dtype."""
        return tf.matmul(*self._in_compute_dtype(h, kernel))

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "units": self.units,
                "activation": self.activation, "seed": self.seed, "init_std": self.init_std}


@keras.saving.register_keras_serializable(package="tfaae")
class GaussianMLP(_MLPHead):
    """MLP giving a diagonal Gaussian's (mean, log_std); std = exp(log_std).

    Args:
        hidden_units: sizes of the hidden layers.
        units: dimension of the Gaussian.
        activation: activation of the hidden layers.
        seed: integer seed of the initial weights (None: Keras's global generator).

    Returns (when called on `[..., d_in]`):
        (mean, log_std), each `[..., units]`.
    """

    def __init__(self, hidden_units, units, activation="tanh", seed=None, **kwargs):
        super().__init__(hidden_units, units, activation, seed, **kwargs)
        self.mean = self._dense(self.units, name="mean")
        self.log_std = self._dense(self.units, name="log_std")

    def _heads(self):
        return [self.mean, self.log_std]

    def call(self, inputs):
        h = self._trunk(inputs)
        return self.mean(h), self.log_std(h)

    def joined_heads(self, inputs):
        """Both heads in one matmul, without their biases: (h W, b) with W = [W_mean | W_log_std].

        For the fused kernels `tfaae.fused.gaussian_sample` and `gaussian_log_prob`, which
        add the biases b = [b_mean | b_log_std] and split the columns.

        Args:
            inputs: `[rows, d_in]`.

        Returns:
            (`[rows, 2 * units]` in the compute dtype, `[2 * units]` float32 biases).
        """
        kernel = tf.concat([self.mean.kernel, self.log_std.kernel], 1)
        return (self._matmul(self._trunk(inputs), kernel),
                tf.concat([self.mean.bias, self.log_std.bias], 0))


@keras.saving.register_keras_serializable(package="tfaae")
class BernoulliMLP(_MLPHead):
    """MLP giving the logits of a factorised Bernoulli.

    Args:
        hidden_units: sizes of the hidden layers.
        units: number of Bernoulli variables (784 for MNIST).
        activation: activation of the hidden layers.
        seed: integer seed of the initial weights (None: Keras's global generator).

    Returns (when called on `[..., d_in]`):
        logits `[..., units]`.
    """

    def __init__(self, hidden_units, units, activation="tanh", seed=None, **kwargs):
        super().__init__(hidden_units, units, activation, seed, **kwargs)
        self.logits = self._dense(self.units, name="logits")

    def _heads(self):
        return [self.logits]

    def call(self, inputs):
        return self.logits(self._trunk(inputs))

    def log_prob(self, inputs, x):
        """log p(x | inputs), summed over the Bernoulli variables, for k inputs per example.

        log p(x) = sum_d x_d l_d - softplus(l_d) with logits l = W h + b (h the last hidden layer),
        as in `tfaae.bounds.bernoulli_log_likelihood`. The term sum_d x_d l_d is computed as
        h . (W^T x) + b . x, so the only element-wise work over the `[k, batch, units]` logits is the
        softplus sum (`tfaae.bounds.softplus_sum`, one log per block of pixels): on CPU the
        element-wise work otherwise costs as much as the output matmul. Inside `fused.enabled()`
        the logits' matmul runs without its bias and `tfaae.fused.bernoulli_log_prob` computes
        the whole sum in one kernel; in training `tfaae.fused.bernoulli_dense_log_prob` takes the
        matmul too, so that the gradient needs no pass over the logits.

        Args:
            inputs: `[k, batch, d_in]` codes.
            x: `[batch, units]` float32 targets in [0, 1].

        Returns:
            `[k, batch]` float32 log-likelihoods.
        """
        leading = tf.shape(inputs)[:2]
        h = self._trunk(tf.reshape(inputs, [-1, inputs.shape[-1]]))
        if fused.is_enabled() and fused.needs_gradients():  # training: no backward logits pass.
            h = tf.reshape(h, tf.concat([leading, [h.shape[-1]]], 0))
            return fused.bernoulli_dense_log_prob(*self._in_compute_dtype(h, self.logits.kernel),
                                                  self.logits.bias, x)
        if fused.is_enabled():  # one kernel over the logits, their bias added inside.
            y = tf.reshape(self._matmul(h, self.logits.kernel), tf.concat([leading, [self.units]], 0))
            return fused.bernoulli_log_prob(y, self.logits.bias, x)
        softplus = tf.reshape(bounds.softplus_sum(tf.cast(self.logits(h), tf.float32)), leading)
        kernel, bias = (tf.cast(v, tf.float32) for v in (self.logits.kernel, self.logits.bias))
        h = tf.reshape(tf.cast(h, tf.float32), tf.concat([leading, [h.shape[-1]]], 0))
        linear = tf.reduce_sum(h * tf.matmul(x, kernel, transpose_b=True), -1) + tf.linalg.matvec(x, bias)
        return linear - softplus

    def set_output_bias(self, mean_probabilities, eps=1e-3):
        """Sets the output bias to logit(mean) so an untrained decoder predicts the data's mean.

        Args:
            mean_probabilities: per-pixel mean of the training images, shape `[units]`.
            eps: clipping of the mean away from 0 and 1.
        """
        p = np.clip(np.reshape(np.asarray(mean_probabilities, np.float64), [-1]), eps, 1 - eps)
        if p.shape != (self.units,):
            raise ValueError(f"mean_probabilities must have {self.units} values; got {p.shape[0]}.")
        self.logits.bias.assign((np.log(p) - np.log1p(-p)).astype(self.logits.bias.dtype))


def burda_networks(num_layers=1, input_dim=784, latent_dims=None, hidden_units=None,
                   activation=None, dtype=None, seed=None):
    """Builds the encoder and decoder stacks of Burda et al. 2016 (arXiv 1509.00519, section 5).

    Args:
        num_layers: 1 (784-200-200-50) or 2 (784-[200,200]-100-[100,100]-50), the preset.
        input_dim: number of pixels.
        latent_dims: overrides the preset's latent sizes, bottom-up (one per stochastic layer).
        hidden_units: overrides the preset's hidden sizes, one tuple per stochastic layer; the
            decoder mirrors them.
        activation: overrides the preset's activation ("tanh").
        dtype: Keras dtype policy of the layers, e.g. "mixed_bfloat16" (None: the global one).
        seed: integer seed of the initial weights (None: Keras's global generator).

    Returns:
        (encoder, decoder): lists of layers; the encoder bottom-up, the decoder top-down.

    Raises:
        ValueError: if `num_layers` is not 1 or 2 and no sizes are given, or sizes disagree.
    """
    if latent_dims is None or hidden_units is None:
        if num_layers not in (1, 2):
            raise ValueError(f"num_layers must be 1 or 2 for the paper's presets; got {num_layers!r} "
                             f"(pass latent_dims and hidden_units for other depths).")
        preset = PRESETS[f"burda-{num_layers}"]
        latent_dims = preset["latent_dims"] if latent_dims is None else latent_dims
        hidden_units = preset["hidden_units"] if hidden_units is None else hidden_units
    activation = activation or "tanh"
    latent_dims = _check_units("latent_dims", latent_dims)
    hidden_units = [_check_units("hidden_units", h) for h in hidden_units]
    if len(latent_dims) != len(hidden_units):
        raise ValueError(f"latent_dims and hidden_units need one entry per stochastic layer; got "
                         f"{len(latent_dims)} and {len(hidden_units)}.")
    seeds = [None if seed is None else seed * 31 + i for i in range(2 * len(latent_dims))]
    encoder = [GaussianMLP(h, d, activation, seeds[i], name=f"q_z{i + 1}", dtype=dtype)
               for i, (h, d) in enumerate(zip(hidden_units, latent_dims))]
    targets = (input_dim,) + latent_dims[:-1]  # what each top-down decoder layer generates.
    decoder = []
    for i in reversed(range(len(latent_dims))):
        mirrored = tuple(reversed(hidden_units[i]))
        if i == 0:
            decoder.append(BernoulliMLP(mirrored, input_dim, activation, seeds[-1 - i], name="p_x",
                                        dtype=dtype))
        else:
            decoder.append(GaussianMLP(mirrored, targets[i], activation, seeds[-1 - i],
                                       name=f"p_z{i}", dtype=dtype))
    return encoder, decoder


@keras.saving.register_keras_serializable(package="tfaae")
class MLP(_MLPHead):
    """MLP with a linear output layer: a deterministic map `[..., d_in] -> [..., units]`.

    The adversarial autoencoder uses it as the deterministic encoder z = f(x), the universal
    approximator encoder z = f(x, eta) (the noise eta concatenated to x), and the discriminator
    (units=1: the logit of "this code came from the prior").

    Args:
        hidden_units: sizes of the hidden layers.
        units: output size.
        activation: activation of the hidden layers.
        seed: integer seed of the initial weights (None: Keras's global generator).
        init_std: std of N(0, init_std^2) initial kernels (None: Glorot-uniform).

    Returns (when called on `[..., d_in]`):
        `[..., units]` outputs.
    """

    def __init__(self, hidden_units, units, activation="relu", seed=None, **kwargs):
        super().__init__(hidden_units, units, activation, seed, **kwargs)
        self.output_layer = self._dense(self.units, name="output")

    def _heads(self):
        return [self.output_layer]

    def call(self, inputs):
        return self.output_layer(self._trunk(inputs))


POSTERIORS = ("deterministic", "gaussian", "universal")
AAE_PRESET = {
    # Makhzani et al. 2015 (arXiv 1511.05644), appendix A, MNIST: encoder, decoder and
    # discriminator each have two hidden layers of 1000 ReLU units; weights start N(0, 0.01^2).
    "hidden_units": (1000, 1000), "activation": "relu", "init_std": 0.01,
}


def aae_networks(posterior="deterministic", latent_dim=8, input_dim=784, hidden_units=None,
                 activation=None, init_std="preset", dtype=None, seed=None):
    """Builds an adversarial autoencoder's encoder, decoder and discriminator (Makhzani et al.).

    The preset is the paper's MNIST architecture: 784-1000-1000-z encoder, z-1000-1000-784 decoder
    (its sigmoid applied by the model to the logits), z-1000-1000-1 discriminator, ReLU, initial
    weights N(0, 0.01^2). Conditioning inputs (labels, the universal encoder's noise) are
    concatenated by the model, so the layers take their input width when first called.

    Args:
        posterior: "deterministic" (z = f(x), an `MLP`), "gaussian" (a `GaussianMLP` giving the mean
            and log std of q(z|x)) or "universal" (z = f(x, eta), an `MLP`; the paper's section 2).
        latent_dim: size of z.
        input_dim: number of pixels.
        hidden_units: hidden sizes of every network (default: the preset's (1000, 1000)).
        activation: hidden activation (default: "relu").
        init_std: std of the initial kernels; None for Glorot-uniform (default: the preset's 0.01).
        dtype: Keras dtype policy of the layers, e.g. "mixed_bfloat16" (None: the global one).
        seed: integer seed of the initial weights (None: Keras's global generator).

    Returns:
        dict with "encoder", "decoder" (a `BernoulliMLP` giving logits) and "discriminator".

    Raises:
        ValueError: for an unknown posterior or bad sizes.

    Example:
        >>> nets = aae_networks("gaussian", latent_dim=2, hidden_units=(64, 64), seed=0)
        >>> type(nets["encoder"]).__name__, nets["discriminator"].units
        ('GaussianMLP', 1)
    """
    if posterior not in POSTERIORS:
        raise ValueError(f"posterior must be one of {', '.join(map(repr, POSTERIORS))}; "
                         f"got {posterior!r}.")
    latent_dim = _check_units("latent_dim", [latent_dim])[0]
    hidden = _check_units("hidden_units", AAE_PRESET["hidden_units"] if hidden_units is None
                          else hidden_units)
    common = {"activation": activation or AAE_PRESET["activation"], "dtype": dtype,
              "init_std": AAE_PRESET["init_std"] if init_std == "preset" else init_std}
    seeds = [None if seed is None else seed * 31 + i for i in range(3)]
    encoder_class = GaussianMLP if posterior == "gaussian" else MLP
    return {
        "encoder": encoder_class(hidden, latent_dim, seed=seeds[0], name="encoder", **common),
        "decoder": BernoulliMLP(tuple(reversed(hidden)), input_dim, seed=seeds[1], name="decoder",
                                **common),
        "discriminator": MLP(hidden, 1, seed=seeds[2], name="discriminator", **common),
    }


def categorical_aae_networks(num_categories=10, style_dim=10, input_dim=784, hidden_units=None,
                             activation=None, init_std="preset", dtype=None, seed=None):
    """The networks of the AAE with a categorical code q(y, z|x) (Makhzani et al., sections 5-7).

    The encoder is one `MLP` x -> [y logits (num_categories), style z (style_dim)]: q(y|x) is the
    softmax of the first num_categories outputs, z the rest (the paper's two heads on one trunk).
    The decoder maps (y, z) (or W_c y + z, built by the model) to pixel logits; two discriminators
    take y and z. Sizes, activation and initial weights are the AAE preset's (1000-1000 ReLU,
    N(0, 0.01^2)); the paper's semi-supervised MNIST network is the same 784-1000-1000 trunk.

    Returns:
        dict with "encoder", "decoder", "category_discriminator", "style_discriminator".

    Example:
        >>> nets = categorical_aae_networks(16, 5, hidden_units=(64,), seed=0)
        >>> nets["encoder"].units, nets["style_discriminator"].units
        (21, 1)
    """
    nets = aae_networks("deterministic", _check_units("num_categories", [num_categories])[0]
                        + _check_units("style_dim", [style_dim])[0], input_dim, hidden_units,
                        activation, init_std, dtype, seed)
    discriminator = nets["discriminator"]
    style = MLP(discriminator.hidden_units, 1, activation=discriminator.activation,
                seed=None if seed is None else seed * 31 + 3, init_std=discriminator.init_std,
                dtype=dtype, name="style_discriminator")
    return {"encoder": nets["encoder"], "decoder": nets["decoder"],
            "category_discriminator": discriminator, "style_discriminator": style}
