"""Fused element-wise kernels for the MLPs: bias and activation, and the Bernoulli log-likelihood.

On CPU the VAE/IWAE decoder runs on k * batch rows, and the element-wise work after each matmul
(bias add, tanh, the Bernoulli softplus, their gradients, and the casts of a bfloat16 policy) moves
every `[k * batch, units]` tensor through memory several times; with bfloat16 matmuls on AMX it
costs more than the matmuls. The functions here compute that work in float32 inside one XLA
kernel per direction (`tf.function(jit_compile=True)`), reading the matmul's output once:

* `bias_activation(y, bias, activation)`: act(y + b) for y = h @ W in the compute dtype (in
  training, `dense_activation` leaves the forward pass to oneDNN's fused matmul and keeps this
  kernel's gradient);
* `bernoulli_log_prob(y, bias, x)`: sum_d x_d l_d - softplus(l_d) with logits l = y + b;

each with a hand-written gradient that also returns the bias gradient (the column sum), so no
separate `BiasAddGrad` pass runs; the Bernoulli kernel's forward pass keeps the residual
x - sigmoid(l) its gradient needs (without gradients, `enabled(gradients=False)`: `test_step` and
`tfaae.evaluation.log_likelihood`, it keeps nothing). In training the decoder's output layer uses

* `bernoulli_dense_log_prob(h, kernel, bias, x)`: the same log-likelihood of logits h @ kernel + b,
  whose gradient feeds the stored residual straight into the layer's two backward matmuls (the
  upstream gradient scales h and the input gradient's rows instead of the logits).

Two more serve a Gaussian stochastic layer whose mean and log-std heads ran as one matmul:

* `gaussian_sample(y, bias, bits)`: h = mean + std * noise with the noise drawn from uniform bits
  (`tfaae.random.normal_from_bits`), and log q(h) (minus the prior's log N(h; 0, I) on top);
* `gaussian_log_prob(y, bias, target)`: log N(target; mean, std^2), summed over units.

Their gradients are kernels too.

They are used only inside `enabled()` (the VAE/IWAE train and test steps and
`tfaae.evaluation.log_likelihood` enter it): graphs exported for serving keep plain TF ops, since
TF Serving runs XLA-compiled functions only with `--xla_cpu_compilation_enabled`.

Example:
    >>> y, b = tf.zeros([2, 4, 3]), tf.zeros([3])
    >>> float(bernoulli_log_prob(y, b, tf.ones([4, 3]))[0, 0])   # 3 log(1/2)
    -2.0794...
"""

import contextlib
import math
import threading

import tensorflow as tf

from tfaae import random, validation

_STATE = threading.local()
ACTIVATIONS = ("tanh", "relu", "linear")


@contextlib.contextmanager
def enabled(on=True, gradients=True):
    """Within this context (while a function is traced), MLPs use the fused kernels.

    With `gradients=False` (evaluation) the Bernoulli kernel skips the residual its gradient keeps.
    """
    previous = getattr(_STATE, "on", False), getattr(_STATE, "gradients", True)
    _STATE.on, _STATE.gradients = on, gradients
    try:
        yield
    finally:
        _STATE.on, _STATE.gradients = previous


def is_enabled():
    """Whether the innermost `enabled` context is on (False outside any)."""
    return getattr(_STATE, "on", False)


def needs_gradients():
    """Whether the innermost `enabled` context keeps what gradients need (True outside any)."""
    return getattr(_STATE, "gradients", True)


def _check_widths(**tensors):
    """Raises a ValueError when the tensors' static last dimensions differ, naming each."""
    widths = {name: t.shape[-1] for name, t in tensors.items()}
    if len({w for w in widths.values() if w is not None}) > 1:
        raise ValueError("The last dimensions must agree; got " +
                         ", ".join(f"{name} {w}" for name, w in widths.items()) + ".")


def _check_rank3(name, t, layout):
    """Raises a ValueError naming `t`'s shape when its static rank is known and not 3."""
    shape = tf.TensorShape(t.shape)
    if shape.rank not in (None, 3):
        raise ValueError(f"{name} must be {layout} (rank 3); got shape {tuple(shape)}.")


def _activate(z, activation):
    if activation == "tanh":
        return tf.tanh(z)
    if activation == "relu":
        return tf.nn.relu(z)
    return z


def _activation_derivative(a, activation):
    """act'(z) from a = act(z), float32."""
    if activation == "tanh":
        return 1.0 - tf.square(a)
    if activation == "relu":
        return tf.cast(a > 0, tf.float32)
    return tf.ones_like(a)


@tf.function(jit_compile=True)
def _bias_activation_forward(y, bias, activation):
    return tf.cast(_activate(tf.cast(y, tf.float32) + bias, activation), y.dtype)


@tf.function(jit_compile=True)
def _bias_activation_backward(a, upstream, activation):
    grad = tf.cast(upstream, tf.float32) * _activation_derivative(tf.cast(a, tf.float32), activation)
    return tf.cast(grad, a.dtype), tf.reduce_sum(grad, 0)


def bias_activation(y, bias, activation):
    """act(y + bias) computed in float32, returned in y's dtype.

    Args:
        y: `[rows, units]` matmul output, float32 or bfloat16.
        bias: `[units]` float32.
        activation: "tanh", "relu" or "linear".

    Returns:
        `[rows, units]` in y's dtype.

    Raises:
        ValueError: for another activation, or when y's and bias's widths differ.
    """
    validation.check_choice("activation", activation, ACTIVATIONS)
    _check_widths(y=y, bias=bias)

    @tf.custom_gradient
    def kernel(y, bias):
        a = _bias_activation_forward(y, bias, activation)
        return a, lambda upstream: _bias_activation_backward(a, upstream, activation)

    return kernel(y, tf.cast(bias, tf.float32))


def dense_activation(h, kernel, bias, activation):
    """act(h @ kernel + bias) for training: oneDNN's fused matmul forward, one kernel backward.

    The forward pass is TensorFlow's MatMul, BiasAdd and activation in h's dtype, which grappler's
    remapper rewrites into one oneDNN matmul applying the bias and activation to its float32
    accumulator (`_MklNativeFusedMatMul`), instead of a matmul then an XLA launch; on the small
    matmuls of a VAE/IWAE k=1 step the launch cost more than the work. The backward pass is
    `bias_activation`'s float32 kernel (act'(z) from the output, and the bias gradient as its column
    sum), then the two matmuls of the input and kernel gradients. For evaluation
    (`needs_gradients()` False) `bias_activation` stays faster on its 5000-row batches.

    Args:
        h: `[rows, d_in]` in the compute dtype (float32 or bfloat16).
        kernel: `[d_in, units]` in h's dtype.
        bias: `[units]` float32 (rounded to h's dtype for the forward pass, as Keras's Dense does
            under a mixed policy; its gradient is float32).
        activation: "tanh", "relu" or "linear".

    Returns:
        `[rows, units]` in h's dtype.

    Raises:
        ValueError: for another activation, or when the kernel's and bias's widths differ.

    Example:
        >>> a = dense_activation(tf.ones([2, 3]), tf.zeros([3, 4]), tf.ones([4]), "tanh")
        >>> round(float(a[0, 0]), 4)   # tanh(0 + 1)
        0.7616
    """
    validation.check_choice("activation", activation, ACTIVATIONS)
    _check_widths(kernel=kernel, bias=bias)

    @tf.custom_gradient
    def layer(h, kernel, bias):
        a = _activate(tf.nn.bias_add(tf.matmul(h, kernel), tf.cast(bias, h.dtype)), activation)

        def grad(upstream):
            grad_z, grad_bias = _bias_activation_backward(a, upstream, activation)
            return (tf.matmul(grad_z, kernel, transpose_b=True),
                    tf.matmul(h, grad_z, transpose_a=True), grad_bias)

        return a, grad

    return layer(h, kernel, tf.cast(bias, tf.float32))


def _row_sum(t):
    """t summed over its last axis as a product with ones: XLA's CPU row reduction is slower (over a
    5000x784 batch, the forward Bernoulli kernel took 3.4 ms with `reduce_sum`, 2.3 ms so)."""
    return tf.linalg.matvec(t, tf.ones([t.shape[-1]], t.dtype))


def _bernoulli_terms(y, bias, x):
    """Per-pixel x_d l_d - softplus(l_d), l = y + b, with the logits and e = exp(-|l|).

    softplus(l) = max(l, 0) + log(1 + e): `log` where `log1p` would be exact, as XLA's CPU log1p
    is not vectorised (5.6 vs 3.4 ms over a 5000x784 batch here); the absolute error, at most
    about 1e-7 per pixel, is below the float32 rounding of the sum over pixels.
    """
    logits = tf.cast(y, tf.float32) + bias
    e = tf.exp(-tf.abs(logits))
    return x * logits - tf.nn.relu(logits) - tf.math.log(1.0 + e), logits, e


def _log_prob_and_sigmoid(y, bias, x):
    """sum_d x_d l_d - softplus(l_d) and sigmoid(l), sharing e = exp(-|l|)."""
    terms, logits, e = _bernoulli_terms(y, bias, x)
    return tf.reduce_sum(terms, -1), tf.where(logits >= 0, 1.0, e) / (1.0 + e)


@tf.function(jit_compile=True)
def _bernoulli_forward(y, bias, x):
    return _row_sum(_bernoulli_terms(y, bias, x)[0])


@tf.function(jit_compile=True)
def _bernoulli_forward_with_residual(y, bias, x):
    """The log-likelihood and the residual x - sigmoid(l) in y's dtype, for the gradient."""
    log_prob, probs = _log_prob_and_sigmoid(y, bias, x)
    return log_prob, tf.cast(x - probs, y.dtype)


@tf.function(jit_compile=True)
def _bernoulli_backward(residual, upstream):
    """The logits' gradient and its sum over samples (XLA's sum over all rows is slower)."""
    grad = upstream[..., None] * tf.cast(residual, tf.float32)
    return tf.cast(grad, residual.dtype), tf.reduce_sum(grad, 0)


@tf.custom_gradient
def _bernoulli_log_prob(y, bias, x):
    log_prob, residual = _bernoulli_forward_with_residual(y, bias, x)

    def grad(upstream):
        grad_y, partial = _bernoulli_backward(residual, upstream)
        return grad_y, tf.reduce_sum(partial, 0), None

    return log_prob, grad


def bernoulli_log_prob(y, bias, x):
    """log p(x | logits = y + bias) of a factorised Bernoulli, summed over pixels, in float32.

    sum_d x_d l_d - softplus(l_d) with l = y + b, as `tfaae.bounds.bernoulli_log_likelihood`, in one
    pass over y. When gradients are kept (`enabled(gradients=True)`, the default) the same pass
    stores the residual x - sigmoid(l) in y's dtype, so the backward pass only scales it.

    Args:
        y: `[k, batch, units]` matmul output (the logits without their bias), float32 or bfloat16.
        bias: `[units]` the logits' bias.
        x: `[batch, units]` float32 targets in [0, 1] (no gradient).

    Returns:
        `[k, batch]` float32 log-likelihoods; the gradient of y is (x - sigmoid(y + b)) times the
        upstream gradient.

    Raises:
        ValueError: when y is not `[k, batch, units]`, or the widths of y, bias and x differ.
    """
    _check_rank3("y", y, "[k, batch, units]")
    _check_widths(y=y, bias=bias, x=x)
    kernel = _bernoulli_log_prob if needs_gradients() else _bernoulli_forward
    return kernel(y, tf.cast(bias, tf.float32), tf.cast(x, tf.float32))


def bernoulli_dense_log_prob(h, kernel, bias, x):
    """log p(x | logits = h @ kernel + bias) for training, with no gradient pass over the logits.

    The value is `bernoulli_log_prob(h @ kernel, bias, x)`. Its gradient uses that the logits'
    gradient is the residual r = x - sigmoid(l) scaled by each row's upstream gradient u:
    with H = u * h, d/d(kernel) = H^T r and d/d(bias) = u^T r come from one matmul of [H | u] with
    r, and d/dh = u * (r kernel^T). So the backward pass reads the stored residual only in its two
    matmuls, instead of first writing u * r over the `[k * batch, units]` logits and summing its
    columns (at k = 50 that pass took longer than the smallest matmul). Under bfloat16 u is
    rounded to bfloat16 before scaling, and the bias gradient comes out of the matmul in bfloat16,
    as the kernel's does.

    Args:
        h: `[k, batch, d]` last hidden layer in the compute dtype (float32 or bfloat16).
        kernel: `[d, units]` in h's dtype.
        bias: `[units]` the logits' bias (float32).
        x: `[batch, units]` float32 targets in [0, 1] (no gradient).

    Returns:
        `[k, batch]` float32 log-likelihoods.

    Raises:
        ValueError: when h is not `[k, batch, d]`, or the widths of h and kernel, or of kernel,
            bias and x, differ.

    Example:
        >>> log_p = bernoulli_dense_log_prob(tf.zeros([2, 4, 3]), tf.zeros([3, 5]), tf.zeros([5]),
        ...                                  tf.ones([4, 5]))
        >>> round(float(log_p[0, 0]), 4)   # 5 log(1/2)
        -3.4657
    """
    _check_rank3("h", h, "[k, batch, d]")
    if None not in (h.shape[-1], kernel.shape[0]) and h.shape[-1] != kernel.shape[0]:
        raise ValueError(f"h's last dimension must equal the kernel's first; got h {h.shape[-1]}, "
                         f"kernel {kernel.shape[0]}.")
    _check_widths(kernel=kernel, bias=bias, x=x)

    @tf.custom_gradient
    def layer(h, kernel, bias):
        rows = tf.reshape(h, [-1, h.shape[-1]])
        y = tf.reshape(tf.matmul(rows, kernel), tf.concat([tf.shape(h)[:2], [kernel.shape[-1]]], 0))
        log_prob, residual = _bernoulli_forward_with_residual(y, bias, x)

        def grad(upstream):
            scale = tf.cast(tf.reshape(upstream, [-1, 1]), rows.dtype)
            residual_rows = tf.reshape(residual, [-1, residual.shape[-1]])
            grad_kernel_bias = tf.matmul(tf.concat([rows * scale, scale], 1), residual_rows,
                                         transpose_a=True)
            grad_rows = tf.matmul(residual_rows, kernel, transpose_b=True) * scale
            return (tf.reshape(grad_rows, tf.shape(h)), grad_kernel_bias[:-1],
                    tf.cast(grad_kernel_bias[-1], tf.float32))

        return log_prob, grad

    return layer(h, kernel, tf.cast(bias, tf.float32))


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_heads(y, bias, name, values):
    """Checks that y and bias have 2d columns (mean's and log-std's) and `values` d."""
    _check_widths(y=y, bias=bias)
    width = y.shape[-1]
    if width is not None and (width % 2 or values.shape[-1] not in (None, width // 2)):
        raise ValueError(f"y and bias must hold the mean's and the log-std's d columns each (2d) "
                         f"for {name} of width d; got {width} columns and {name} of width "
                         f"{values.shape[-1]}.")


def _heads(y, bias):
    """(mean, log_std) in float32 from the joined heads' matmul output and biases."""
    return tf.split(tf.cast(y, tf.float32) + bias, 2, -1)


def _standard_log_density(z, log_std):
    """sum_j -z_j^2 / 2 - log_std_j - log(2 pi) / 2: log N(mean + std z; mean, std^2), z's sum
    taken as a product with ones (`tfaae.bounds.reparameterized_normal_log_prob` otherwise)."""
    return _row_sum(-0.5 * tf.square(z) - log_std) - int(z.shape[-1]) * _HALF_LOG_2PI


@tf.function(jit_compile=True)
def _gaussian_sample(y, bias, bits, subtract_prior, keep_noise):
    """(h, h in y's dtype, log q(h) [- log p(h)]) and, if `keep_noise`, the noise for the gradient."""
    mean, log_std = _heads(y, bias)
    noise = random.normal_from_bits(bits)
    h = mean + tf.exp(log_std) * noise
    log_density = _standard_log_density(noise, log_std)
    if subtract_prior:  # log N(h; 0, I)
        log_density -= _standard_log_density(h, 0.0)
    outputs = (h, tf.cast(h, y.dtype), log_density)
    return outputs + (noise,) if keep_noise else outputs


def _reduce_to(grad, y):
    """(grad summed over the samples when y is per example, in y's dtype; its column sums)."""
    if y.shape.rank < grad.shape.rank:  # y [batch, 2d] served every sample [k, batch, 2d].
        grad = tf.reduce_sum(grad, 0)
    return tf.cast(grad, y.dtype), tf.reduce_sum(tf.reshape(grad, [-1, grad.shape[-1]]), 0)


@tf.function(jit_compile=True)
def _gaussian_sample_backward(y, bias, noise, h, grad_h, grad_code, grad_density, subtract_prior):
    """d/d(mean) = g_h (+ g_density h for the prior); d/d(log_std) = that * std * noise - g_density
    (log q's value is -noise^2/2 - log_std with the noise fixed: Kingma & Welling 2014, eq. 10)."""
    _, log_std = _heads(y, bias)
    grad_density = grad_density[..., None]
    grad_mean = grad_h + tf.cast(grad_code, tf.float32)
    if subtract_prior:
        grad_mean += grad_density * h
    grad_log_std = grad_mean * tf.exp(log_std) * noise - grad_density
    return _reduce_to(tf.concat([grad_mean, grad_log_std], -1), y)


def _zeros_if_none(grad, like):
    return tf.zeros_like(like) if grad is None else grad


def gaussian_sample(y, bias, bits, subtract_prior=False):
    """A reparameterised sample of a diagonal Gaussian layer and its log-density, in one kernel.

    mean | log_std = y + bias (the two heads' matmul output, joined), noise = Phi^-1(u) from the
    words `bits` (`tfaae.random.normal_from_bits`), h = mean + exp(log_std) * noise and
    log q(h) = sum_j -noise_j^2 / 2 - log_std_j - log(2 pi) / 2 (Burda et al. 2016,
    arXiv 1509.00519, eq. 8's q, as `tfaae.bounds.reparameterized_normal_log_prob`). Under
    `enabled(gradients=True)` (training) it has the reparameterised gradient (the noise fixed),
    one more kernel, for which the forward kernel also returns the noise.

    Args:
        y: `[batch, 2d]` or `[k, batch, 2d]` matmul output without bias, float32 or bfloat16.
        bias: `[2d]` the heads' biases, the mean's first.
        bits: `[k, batch, d]` (or `[k, 1, d]`) uint32 words (`tfaae.random.uniform_bits`).
        subtract_prior: also subtract log N(h; 0, I), the prior of the top stochastic layer.

    Returns:
        (h, h_in_y_dtype, log_density): `[k, batch, d]` float32 samples, the same in y's dtype (the
        next matmul's input), and `[k, batch]` float32 log q(h) (minus log p(h) if
        `subtract_prior`).

    Raises:
        ValueError: when the widths of y, bias and bits do not agree.
        TypeError: when bits are not uint32.

    Example:
        >>> h, _, log_q = gaussian_sample(tf.zeros([4, 6]), tf.zeros([6]),
        ...                               random.uniform_bits([5, 4, 3], 0))   # N(0, I) samples
    """
    _check_heads(y, bias, "bits", bits)
    subtract_prior = bool(subtract_prior)
    if not needs_gradients():
        return _gaussian_sample(y, tf.cast(bias, tf.float32), bits, subtract_prior, False)

    @tf.custom_gradient
    def kernel(y, bias):
        h, code, log_density, noise = _gaussian_sample(y, bias, bits, subtract_prior, True)

        def grad(grad_h, grad_code, grad_density):
            return _gaussian_sample_backward(
                y, bias, noise, h, _zeros_if_none(grad_h, h), _zeros_if_none(grad_code, code),
                _zeros_if_none(grad_density, log_density), subtract_prior)

        return (h, code, log_density), grad

    return kernel(y, tf.cast(bias, tf.float32))


@tf.function(jit_compile=True)
def _gaussian_log_prob(y, bias, target):
    mean, log_std = _heads(y, bias)
    return _standard_log_density((target - mean) * tf.exp(-log_std), log_std)


@tf.function(jit_compile=True)
def _gaussian_log_prob_backward(y, bias, target, upstream):
    """With z = (t - mean) / std: d/d(mean) = z / std, d/d(log_std) = z^2 - 1, d/dt = -z / std."""
    mean, log_std = _heads(y, bias)
    inverse_std = tf.exp(-log_std)
    z = (target - mean) * inverse_std
    grad_mean = upstream[..., None] * z * inverse_std
    grad_y, grad_bias = _reduce_to(tf.concat([grad_mean, upstream[..., None] * (tf.square(z) - 1.0)],
                                             -1), y)
    return grad_y, grad_bias, -grad_mean


def gaussian_log_prob(y, bias, target):
    """log N(target; mean, exp(log_std)^2) summed over units, mean | log_std = y + bias, one kernel.

    The conditional p(h_{l-1}|h_l) of a Gaussian decoder layer (Burda et al. 2016, arXiv 1509.00519,
    section 5); its gradient (of y, bias and target) recomputes the standardised residual.

    Args:
        y: `[k, batch, 2d]` matmul output of the joined heads without bias, float32 or bfloat16.
        bias: `[2d]` the heads' biases, the mean's first.
        target: `[k, batch, d]` float32 values.

    Returns:
        `[k, batch]` float32 log-densities.

    Raises:
        ValueError: when the widths of y, bias and target do not agree.
    """
    _check_heads(y, bias, "target", target)

    @tf.custom_gradient
    def kernel(y, bias, target):
        return (_gaussian_log_prob(y, bias, target),
                lambda upstream: _gaussian_log_prob_backward(y, bias, target, upstream))

    return kernel(y, tf.cast(bias, tf.float32), tf.cast(target, tf.float32))
