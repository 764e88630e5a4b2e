"""Networks for the latent-variable models: MLPs that output distribution parameters, and presets.

A stochastic layer is an MLP whose output parameterises a distribution:

* `GaussianMLP` gives (mean, log_std) of a diagonal Gaussian, std = exp(linear), as in
  Burda et al. 2016 (arXiv 1509.00519, appendix C);
* `BernoulliMLP` gives the logits of a factorised Bernoulli.

An encoder is a list of `GaussianMLP`s, bottom-up (x -> h1 -> h2 ...); a decoder is the top-down list
(h_L -> ... -> h1 -> x) ending in a `BernoulliMLP`. `burda_networks` builds the paper's architectures.
Such a stack gives the VAE/IWAE's log importance weights through one contract with two backends:
`log_weights` (plain ops, the reference) and `fused_log_weights` (`tfaae.fused`'s kernels).

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
import tensorflow_probability as tfp

from tfaae import bounds, fused, random

tfd = tfp.distributions

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



# --------------------------------------------------------------------------------------------------
# Log importance weights of a stack of stochastic layers: one contract, two backends.
#
# `log_weights` (plain TF/TFP ops, any layers: the reference) and `fused_log_weights` (the fused
# kernels, for `GaussianMLP` layers and a decoder ending in a layer with `log_prob`) take the same
# arguments and return the same `[k, batch]` terms; `VAE.log_weights` picks one
# (`takes_fused_path`). They draw their noise differently (normals, or uniform bits turned into
# normals), so their values agree for the same noise, not for the same seed.


def check_stack(encoder, decoder, input_dim):
    """Builds every layer of a VAE/IWAE stack on a dummy input and checks that the sizes chain up.

    Args:
        encoder: list of layers, bottom-up, each mapping its input to (mean, log_std).
        decoder: list of layers, top-down, mirroring the encoder; the last gives D logits.
        input_dim: D, the number of pixels.

    Returns:
        The latent sizes, bottom-up: a tuple of ints.

    Raises:
        ValueError: for an empty stack, stacks of different depths, or sizes that do not chain up.
    """
    if not encoder or len(encoder) != len(decoder):
        raise ValueError(f"encoder and decoder need the same number (>= 1) of stochastic "
                         f"layers; got {len(encoder)} and {len(decoder)}.")
    h, dims = keras.ops.zeros((1, input_dim)), []
    for layer in encoder:
        h, _ = layer(h)
        dims.append(int(h.shape[-1]))
    targets = [input_dim] + dims[:-1]
    for layer, target in zip(decoder, reversed(targets)):
        out = layer(h)
        h = out[0] if isinstance(out, (tuple, list)) else out
        if int(h.shape[-1]) != target:
            raise ValueError(f"Decoder layer {layer.name!r} outputs {int(h.shape[-1])} values; "
                             f"expected {target} to match the encoder.")
    return tuple(dims)


def _diag_normal(mean, log_std):
    return tfd.Independent(tfd.Normal(mean, tf.exp(log_std)), reinterpreted_batch_ndims=1)


def _noise(draw, k, batch, width, seed, shared_noise):
    """`[k, batch, width]` (`[k, 1, width]` if shared) noise from `draw(shape, seed)`."""
    if shared_noise:
        return draw(tf.stack([k, 1, width]), seed)
    # an example's noise is the same on one device as under tf.distribute.
    return random.replica_rows(lambda n: draw(tf.stack([k, n, width]), seed), batch, axis=1)


def _flatten(t, k, batch):
    """`[k, batch, d]` -> `[k * batch, d]`; d is static, so an empty batch keeps its width."""
    return tf.reshape(t, [k * batch, t.shape[-1]])


def _unflatten(t, k, batch):
    return tf.reshape(t, tf.concat([[k, batch], tf.shape(t)[1:]], 0))


def log_weights(encoder, decoder, x, num_samples, seed, shared_noise=False,
                stop_proposal_gradient=False):
    """Log importance weights log w = log p(x, h) - log q(h|x), the reference implementation.

    For k samples h ~ q(h1|x) q(h2|h1) ... per example (Burda et al. 2016, arXiv 1509.00519,
    eq. 8's w), under the prior p(hL) = N(0, I): the first encoder layer runs once per example,
    the layers above and the whole decoder on the k * batch samples in one batched call.

    Args:
        encoder: list of layers, bottom-up, each giving (mean, log_std) of q.
        decoder: list of layers, top-down: (mean, log_std) of p(h_{l-1}|h_l), then the logits of
            p(x|h1) (or a layer with `log_prob(h1, x)`, e.g. `BernoulliMLP`).
        x: `[batch, D]` flat images.
        num_samples: k.
        seed: a `keras.random.SeedGenerator`, an int or a `[2]` integer tensor; layer i draws
            with `tfaae.random.fold_in(seed, i)`.
        shared_noise: one set of k noise vectors per layer for every example (common random
            numbers): an example's weights depend only on the example and the seed.
        stop_proposal_gradient: evaluate log q with q's weights stopped (the samples keep
            their reparameterised path), as DReG needs.

    Returns:
        dict of `[k, batch]` float32 tensors: "log_w", "log_px" (log p(x|h1)) and
        "kl" (log q(h|x) - log p(h), so that log_w = log_px - kl).

    Example:
        >>> encoder, decoder = burda_networks(latent_dims=(2,), hidden_units=((4,),), input_dim=6)
        >>> terms = log_weights(encoder, decoder, tf.ones([3, 6]), 5, seed=0)
        >>> terms["log_w"].shape
        TensorShape([5, 3])
    """
    k, batch, num_layers = num_samples, tf.shape(x)[0], len(encoder)
    samples, log_q = [], 0.0
    for i, layer in enumerate(encoder):
        inputs = x if i == 0 else _flatten(samples[-1], k, batch)
        mean, log_std = as_float32(layer(inputs))
        if i > 0:
            mean, log_std = _unflatten(mean, k, batch), _unflatten(log_std, k, batch)
        noise = _noise(random.normal, k, batch, tf.shape(mean)[-1], random.fold_in(seed, i),
                       shared_noise)
        h = mean + tf.exp(log_std) * noise
        if stop_proposal_gradient:
            if i == 0:
                mean, log_std = tf.stop_gradient(mean), tf.stop_gradient(log_std)
            else:
                stopped = [tf.stop_gradient(v) for v in layer.trainable_variables]
                (mean, log_std), _ = layer.stateless_call(stopped, layer.non_trainable_variables,
                                                          inputs)
                mean, log_std = _unflatten(mean, k, batch), _unflatten(log_std, k, batch)
            log_q += _diag_normal(mean, log_std).log_prob(h)
        else:  # the same value and reparameterised gradient, fewer passes.
            log_q += bounds.reparameterized_normal_log_prob(noise, log_std)
        samples.append(h)
    log_p = tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(samples[-1]), -1)  # the prior N(0, I).
    for j, layer in enumerate(decoder):
        if j < num_layers - 1:
            mean, log_std = as_float32(layer(_flatten(samples[-1 - j], k, batch)))
            mean, log_std = _unflatten(mean, k, batch), _unflatten(log_std, k, batch)
            log_p += _diag_normal(mean, log_std).log_prob(samples[-2 - j])
        elif hasattr(layer, "log_prob"):  # e.g. BernoulliMLP: fewer element-wise passes.
            log_px = layer.log_prob(samples[0], x)
        else:
            logits = _unflatten(as_float32(layer(_flatten(samples[0], k, batch))), k, batch)
            log_px = bounds.bernoulli_log_likelihood(x, logits)
    kl = log_q - log_p
    return {"log_w": log_px - kl, "log_px": log_px, "kl": kl}


def takes_fused_path(encoder, decoder, stop_proposal_gradient=False):
    """Whether log weights of this stack take `fused_log_weights`: inside `fused.enabled()` (the
    VAE/IWAE train and test steps without `jit_compile`, the evaluation), without
    `stop_proposal_gradient`, with `GaussianMLP` layers and a last decoder layer with `log_prob`."""
    return (fused.is_enabled() and not stop_proposal_gradient
            and all(isinstance(l, GaussianMLP) for l in encoder + decoder[:-1])
            and hasattr(decoder[-1], "log_prob"))


def fused_log_weights(encoder, decoder, x, num_samples, seed, shared_noise=False,
                      stop_proposal_gradient=False):
    """`log_weights` in fewer passes: the same estimator and gradient, its own noise stream.

    Each Gaussian layer's two heads run as one matmul (`GaussianMLP.joined_heads`); sampling,
    log q and (top layer) the prior take one kernel, the noise drawn as uniform bits
    (`tfaae.fused.gaussian_sample`); each p(h_{l-1}|h_l) one kernel
    (`tfaae.fused.gaussian_log_prob`); p(x|h1) the decoder's `log_prob`. In training
    (`fused.enabled()`) each has a kernel for its gradient too. For the same noise the values are
    `log_weights`' up to float32 summation order (tests/test_fused.py).

    Args:
        As `log_weights`, for `GaussianMLP` layers and a last decoder layer with `log_prob`
        (`takes_fused_path`).

    Returns:
        `log_weights`' dict of `[k, batch]` tensors.

    Raises:
        ValueError: for `stop_proposal_gradient=True`, which only `log_weights` computes.
    """
    if stop_proposal_gradient:
        raise ValueError("fused_log_weights has no stopped-proposal path (DReG); use log_weights "
                         "for stop_proposal_gradient=True.")
    k, batch, num_layers = num_samples, tf.shape(x)[0], len(encoder)
    samples, codes, kl = [], [x], 0.0  # codes: the samples in the compute dtype, flat.
    for i, layer in enumerate(encoder):
        y, bias = layer.joined_heads(codes[-1])
        bits = _noise(random.uniform_bits, k, batch, layer.units, random.fold_in(seed, i),
                      shared_noise)
        h, code, log_q = fused.gaussian_sample(y if i == 0 else _unflatten(y, k, batch),
                                               bias, bits, i == num_layers - 1)
        samples.append(h)
        codes.append(_flatten(code, k, batch))
        kl += log_q
    for j, layer in enumerate(decoder[:-1]):
        y, bias = layer.joined_heads(codes[-1 - j])
        kl -= fused.gaussian_log_prob(_unflatten(y, k, batch), bias, samples[-2 - j])
    log_px = decoder[-1].log_prob(_unflatten(codes[1], k, batch), x)
    return {"log_w": log_px - kl, "log_px": log_px, "kl": kl}


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
