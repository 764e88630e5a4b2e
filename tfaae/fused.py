"""Fused element-wise kernels for the MLPs: bias and activation, and the Bernoulli log-likelihood.

On CPU the VAE/IWAE decoder runs on k * batch rows, and the element-wise work after each matmul
(bias add, tanh, the Bernoulli softplus, their gradients, and the casts of a bfloat16 policy) moves
every `[k * batch, units]` tensor through memory several times; with bfloat16 matmuls on AMX it
costs more than the matmuls. The functions here compute that work in float32 inside one XLA
kernel per direction (`tf.function(jit_compile=True)`), reading the matmul's output once:

* `bias_activation(y, bias, activation)`: act(y + b) for y = h @ W in the compute dtype;
* `bernoulli_log_prob(y, bias, x)`: sum_d x_d l_d - softplus(l_d) with logits l = y + b;

each with a hand-written gradient that also returns the bias gradient (the column sum), so no
separate `BiasAddGrad` pass runs.

They are used only inside `enabled()` (the VAE/IWAE train and test steps and
`tfaae.evaluation.log_likelihood` enter it): graphs exported for serving keep plain TF ops, since
TF Serving runs XLA-compiled functions only with `--xla_cpu_compilation_enabled`.

Example:
    >>> y, b = tf.zeros([2, 4, 3]), tf.zeros([3])
    >>> float(bernoulli_log_prob(y, b, tf.ones([4, 3]))[0, 0])   # 3 log(1/2)
    -2.0794...
"""

import contextlib
import threading

import tensorflow as tf

from tfaae import validation

_STATE = threading.local()
ACTIVATIONS = ("tanh", "relu", "linear")


@contextlib.contextmanager
def enabled(on=True):
    """Within this context (while a function is traced), MLPs use the fused kernels."""
    previous = getattr(_STATE, "on", False)
    _STATE.on = on
    try:
        yield
    finally:
        _STATE.on = previous


def is_enabled():
    """Whether the innermost `enabled` context is on (False outside any)."""
    return getattr(_STATE, "on", False)


def _check_widths(**tensors):
    """Raises a ValueError when the tensors' static last dimensions differ, naming each."""
    widths = {name: t.shape[-1] for name, t in tensors.items()}
    if len({w for w in widths.values() if w is not None}) > 1:
        raise ValueError("The last dimensions must agree; got " +
                         ", ".join(f"{name} {w}" for name, w in widths.items()) + ".")


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


@tf.function(jit_compile=True)
def _bernoulli_forward(y, bias, x):
    logits = tf.cast(y, tf.float32) + bias
    return tf.reduce_sum(x * logits - tf.nn.softplus(logits), -1)


@tf.function(jit_compile=True)
def _bernoulli_backward(y, bias, x, upstream):
    grad = upstream[..., None] * (x - tf.sigmoid(tf.cast(y, tf.float32) + bias))
    return tf.cast(grad, y.dtype), tf.reduce_sum(grad, [0, 1])


@tf.custom_gradient
def _bernoulli_log_prob(y, bias, x):
    def grad(upstream):
        return _bernoulli_backward(y, bias, x, upstream) + (None,)

    return _bernoulli_forward(y, bias, x), grad


def bernoulli_log_prob(y, bias, x):
    """log p(x | logits = y + bias) of a factorised Bernoulli, summed over pixels, in float32.

    sum_d x_d l_d - softplus(l_d) with l = y + b, as `tfaae.bounds.bernoulli_log_likelihood`, in one
    pass over y (XLA's softplus, measured faster here than `bounds.softplus_sum`'s block products).

    Args:
        y: `[k, batch, units]` matmul output (the logits without their bias), float32 or bfloat16.
        bias: `[units]` the logits' bias.
        x: `[batch, units]` float32 targets in [0, 1] (no gradient).

    Returns:
        `[k, batch]` float32 log-likelihoods; the gradient of y is (x - sigmoid(y + b)) times the
        upstream gradient.

    Raises:
        ValueError: when the widths of y, bias and x differ.
    """
    _check_widths(y=y, bias=bias, x=x)
    return _bernoulli_log_prob(y, tf.cast(bias, tf.float32), tf.cast(x, tf.float32))
