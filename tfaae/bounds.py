"""Variational bounds and gradient surrogates, as small pure functions of log importance weights.

Throughout, `log_weights` has shape `[k, batch]`: log w_i = log p(x, h_i) - log q(h_i | x) for k
samples h_i ~ q(h | x) per example.

References:
    Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv 1312.6114.
    Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders", arXiv 1509.00519.
    Tucker, Lawson, Gu & Maddison 2019, "Doubly Reparameterized Gradient Estimators for Monte Carlo
    Objectives", arXiv 1810.04152.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp


def bernoulli_log_likelihood(x, logits):
    """log p(x | logits) of a factorised Bernoulli, summed over the last axis, from logits.

    log p(x) = sum_d x_d l_d - softplus(l_d), the negative sigmoid cross-entropy. It equals
    `tfd.Independent(tfd.Bernoulli(logits=l), 1).log_prob(x)` for binary x (and is the usual
    cross-entropy for x in [0, 1]) with one softplus per pixel where TFP's formula takes two, which
    matters when the decoder runs on k * batch samples.

    Args:
        x: `[batch, D]` targets in [0, 1]; broadcasts against `logits`.
        logits: `[..., batch, D]`, e.g. `[k, batch, D]`.

    Returns:
        `[..., batch]` log-likelihoods.
    """
    return tf.reduce_sum(x * logits - tf.math.softplus(logits), axis=-1)


def _block_size(units, limit=112):
    """The largest divisor of `units` not above `limit` (products of `limit` factors in (1, 2]
    stay below 2^112, far from float32's 3.4e38)."""
    return max(b for b in range(1, min(units, limit) + 1) if units % b == 0)


@tf.custom_gradient
def softplus_sum(logits):
    """sum_d softplus(l_d) over the last axis, with one logarithm per block of pixels.

    softplus(l) = max(l, 0) + log(1 + e^{-|l|}), and a product of b factors 1 + e^{-|l|} in (1, 2]
    cannot overflow for b <= 112, so sum_d log(1 + e^{-|l_d|}) = sum_blocks log prod_block(...):
    one `log` per block instead of one `log1p` per pixel, the costliest element-wise op of the
    Bernoulli likelihood on CPU. The rounding error is that of float32 summation. The gradient is
    sigmoid(l).

    Args:
        logits: `[..., D]` float32.

    Returns:
        `[...]` sums.
    """
    units = logits.shape[-1]
    block = _block_size(units)
    factors = 1.0 + tf.exp(-tf.abs(logits))
    blocks = tf.reshape(factors, tf.concat([tf.shape(logits)[:-1], [units // block, block]], 0))
    value = (tf.reduce_sum(tf.math.log(tf.reduce_prod(blocks, -1)), -1)
             + tf.reduce_sum(tf.nn.relu(logits), -1))

    def grad(upstream):
        return upstream[..., None] * tf.sigmoid(logits)

    return value, grad


def reparameterized_normal_log_prob(noise, log_std):
    """log q(h) of h = mean + exp(log_std) * noise under q = N(mean, exp(log_std)^2), summed over
    the last axis: sum_j -noise_j^2 / 2 - log_std_j - log(2 pi) / 2.

    It equals `tfd.Normal(mean, exp(log_std)).log_prob(h)` summed, since (h - mean) / std = noise,
    and so does its gradient through h, mean and log_std together (the reparameterised VAE/IWAE
    gradient, Kingma & Welling 2014 eq. 10), in three element-wise passes instead of about ten. It
    is not the density with q's parameters stopped that DReG needs.

    Args:
        noise: `[k, batch, d]` (or `[k, 1, d]`) standard-normal draws.
        log_std: `[batch, d]` or `[k, batch, d]`.

    Returns:
        `[k, batch]` log-densities.
    """
    d = tf.cast(tf.shape(noise)[-1], noise.dtype)
    return (-0.5 * tf.reduce_sum(tf.square(noise), -1) - tf.reduce_sum(log_std, -1)
            - 0.5 * d * tf.math.log(2.0 * tf.constant(np.pi, noise.dtype)))


def elbo(log_weights):
    """Monte Carlo ELBO with k samples: (1/k) sum_i log w_i (Burda et al. eq. 2, "VAE with k samples").

    Args:
        log_weights: `[k, batch]` log importance weights.

    Returns:
        `[batch]` ELBO estimates.
    """
    return tf.reduce_mean(log_weights, axis=0)


def iwae_bound(log_weights):
    """The importance weighted bound L_k = log (1/k) sum_i w_i (Burda et al. eq. 8).

    Computed in log space with `reduce_logmeanexp`; L_1 is the ELBO and L_k rises with k in
    expectation (Burda et al. theorem 1). When k = 1 is known when tracing, L_1 = log w_1 is
    returned as it is: the same value and gradient without the ~20 small ops of the log-mean-exp
    and its gradient, which lie on a training step's critical path.

    Args:
        log_weights: `[k, batch]` log importance weights.

    Returns:
        `[batch]` bound values.
    """
    log_weights = tf.convert_to_tensor(log_weights)
    if log_weights.shape[0] == 1:
        return log_weights[0]
    return tfp.math.reduce_logmeanexp(log_weights, axis=0)


def normalized_weights(log_weights):
    """Self-normalised importance weights w~_i = w_i / sum_j w_j, with gradients stopped.

    Args:
        log_weights: `[k, batch]`.

    Returns:
        `[k, batch]` weights summing to one over k.
    """
    return tf.stop_gradient(tf.nn.softmax(log_weights, axis=0))


def dreg_surrogates(log_weights):
    """Surrogate objectives whose gradients are the DReG IWAE estimator (Tucker et al. 2019, eq. 6).

    `log_weights` must be computed with the proposal's parameters stopped in log q (the samples h_i
    keep their reparameterised path). Then:

    * the decoder's gradient is that of sum_i w~_i log w_i (the usual IWAE gradient for theta);
    * the encoder's gradient is that of sum_i w~_i^2 log w_i, which keeps only the pathwise term and
      has lower variance than the standard estimator whose signal-to-noise ratio falls with k.

    Args:
        log_weights: `[k, batch]`, with q's parameters stopped inside log q.

    Returns:
        (decoder_surrogate, encoder_surrogate): each `[batch]`, to be maximised.
    """
    w = normalized_weights(log_weights)
    return (tf.reduce_sum(w * log_weights, axis=0),
            tf.reduce_sum(tf.square(w) * log_weights, axis=0))
