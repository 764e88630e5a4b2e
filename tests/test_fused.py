"""The fused kernels against plain TF ops in float64, their gradients, and where they are used."""

import numpy as np
import pytest
import tensorflow as tf

import tfaae
from tfaae import bounds, fused
from harness import small_model


def _values_and_grads(fn, *args):
    """fn(*args) and the gradients of a weighted sum of its outputs (distinct weights per entry)."""
    variables = [tf.Variable(a) for a in args]
    with tf.GradientTape() as tape:
        out = fn(*variables)
        weights = tf.reshape(tf.linspace(0.5, 1.5, tf.size(out)), tf.shape(out))
        loss = tf.reduce_sum(out * tf.cast(weights, out.dtype))
    return out, tape.gradient(loss, variables)


def test_bernoulli_log_prob_matches_the_formula_and_its_gradient(rng):
    y = rng.normal(0, 6, (4, 3, 30)).astype(np.float32)
    y[0, 0, :3] = [-300.0, 300.0, 0.0]  # extreme logits stay finite.
    b = rng.normal(0, 1, 30).astype(np.float32)
    x = (rng.random((3, 30)) < 0.5).astype(np.float32)
    value, (gy, gb) = _values_and_grads(lambda y, b: fused.bernoulli_log_prob(y, b, x), y, b)
    expected, (ey, eb) = _values_and_grads(
        lambda y, b: bounds.bernoulli_log_likelihood(tf.cast(x, tf.float64), y + b),
        y.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(gy, ey, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb, eb, rtol=1e-5, atol=1e-4)
    assert np.isfinite(value.numpy()).all()


@pytest.mark.parametrize("activation", fused.ACTIVATIONS)
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("bfloat16", 2e-2)])
def test_bias_activation_matches_plain_ops(rng, activation, dtype, tol):
    y = rng.normal(0, 2, (16, 8)).astype(np.float32)
    b = rng.normal(0, 1, 8).astype(np.float32)
    value, (gy, gb) = _values_and_grads(
        lambda y, b: tf.cast(fused.bias_activation(tf.cast(y, dtype), b, activation), tf.float32), y, b)
    plain = {"tanh": tf.tanh, "relu": tf.nn.relu, "linear": tf.identity}[activation]
    expected, (ey, eb) = _values_and_grads(lambda y, b: plain(y + b), y.astype(np.float64),
                                           b.astype(np.float64))
    assert value.dtype == tf.float32
    np.testing.assert_allclose(value, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(gy, ey, rtol=tol, atol=tol)
    np.testing.assert_allclose(gb, eb, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("layers", [1, 2])
def test_model_log_weights_and_gradients_equal_with_and_without_fusion(binary_test, layers):
    model = small_model(tfaae.IWAE, layers, num_samples=4)
    x = tf.reshape(binary_test[:6], [6, -1])

    def run(on):
        with fused.enabled(on), tf.GradientTape() as tape:
            log_w = model.log_weights(x, 4, seed=tf.constant([5, 0], tf.int64))["log_w"]
            loss = -tf.reduce_mean(bounds.iwae_bound(log_w))
        return log_w, tape.gradient(loss, model.trainable_variables)

    (plain, plain_grads), (fast, fast_grads) = run(False), run(True)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-3)
    for g, h in zip(fast_grads, plain_grads):  # float32 sums in another order: relative to the scale.
        np.testing.assert_allclose(g, h, rtol=1e-3, atol=1e-3 * np.abs(h).max())


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="activation must be one of 'tanh', 'relu', 'linear'; got 'elu'"):
        fused.bias_activation(tf.zeros([2, 3]), tf.zeros([3]), "elu")
    with pytest.raises(ValueError, match="last dimensions must agree; got y 3, bias 4"):
        fused.bias_activation(tf.zeros([2, 3]), tf.zeros([4]), "tanh")
    with pytest.raises(ValueError, match=r"y must be \[k, batch, units\] \(rank 3\); got shape \(3, 5\)"):
        fused.bernoulli_log_prob(tf.zeros([3, 5]), tf.zeros([5]), tf.zeros([3, 5]))
    with pytest.raises(ValueError, match="got y 5, bias 5, x 6"):
        fused.bernoulli_log_prob(tf.zeros([2, 3, 5]), tf.zeros([5]), tf.zeros([3, 6]))


def test_enabled_is_scoped_and_off_by_default():
    assert not fused.is_enabled() and fused.needs_gradients()
    with fused.enabled():
        assert fused.is_enabled() and fused.needs_gradients()
        with fused.enabled(False, gradients=False):
            assert not fused.is_enabled() and not fused.needs_gradients()
        assert fused.is_enabled() and fused.needs_gradients()
    assert not fused.is_enabled() and fused.needs_gradients()


def test_bernoulli_without_gradients_gives_the_same_values_and_bfloat16_residuals(rng):
    y = rng.normal(0, 4, (3, 5, 20)).astype(np.float32)
    b = rng.normal(0, 1, 20).astype(np.float32)
    x = (rng.random((5, 20)) < 0.5).astype(np.float32)
    with fused.enabled(gradients=False):
        forward_only = fused.bernoulli_log_prob(y, b, x)
    # Two XLA compilations: the pixel sums may round in another order.
    np.testing.assert_allclose(forward_only, fused.bernoulli_log_prob(y, b, x), rtol=1e-6)
    # The residual x - sigmoid(l) is kept in y's dtype: bfloat16 gradients to bfloat16 precision.
    value, (gy, gb) = _values_and_grads(
        lambda y, b: fused.bernoulli_log_prob(tf.cast(y, tf.bfloat16), b, x), y, b)
    expected, (ey, eb) = _values_and_grads(
        lambda y, b: bounds.bernoulli_log_likelihood(tf.cast(x, tf.float64), y + b),
        tf.cast(tf.cast(y, tf.bfloat16), tf.float64), b.astype(np.float64))
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(gy, ey, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(gb, eb, rtol=1e-2, atol=1e-2)


def test_train_step_traces_the_fused_kernels_and_export_does_not(binary_train, tmp_path):
    model = small_model(tfaae.VAE, 1, num_samples=2)
    model.compile(optimizer="adam")
    x = tf.reshape(binary_train[:8], [8, -1])
    graph = tf.function(model.train_step).get_concrete_function(x).graph
    xla = [f for f in graph.as_graph_def().library.function if f.attr["_XlaMustCompile"].b]
    assert xla, "the train step should use the XLA-fused kernels"
    path = tfaae.export(model, tmp_path / "m" / "1")
    loaded = tf.saved_model.load(str(path))
    for name, signature in loaded.signatures.items():
        library = signature.graph.as_graph_def().library.function
        assert not [f.signature.name for f in library if f.attr["_XlaMustCompile"].b], name
