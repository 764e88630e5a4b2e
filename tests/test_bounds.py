"""The bounds against independent NumPy/SciPy computations, and their invariants."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from tfaae import bounds


def test_bernoulli_log_likelihood_matches_tfp(rng):
    logits = rng.normal(0, 4, (3, 5, 7)).astype(np.float32)
    x = (rng.random((5, 7)) < 0.5).astype(np.float32)
    expected = tfp.distributions.Independent(
        tfp.distributions.Bernoulli(logits=logits, dtype=tf.float32), 1).log_prob(x)
    np.testing.assert_allclose(bounds.bernoulli_log_likelihood(x, logits), expected, rtol=1e-5, atol=1e-4)
    # And against the textbook formula with probabilities, in float64.
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    direct = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(-1)
    np.testing.assert_allclose(bounds.bernoulli_log_likelihood(x, logits), direct, rtol=1e-5, atol=1e-4)


def test_bernoulli_log_likelihood_is_finite_for_extreme_logits():
    logits = tf.constant([[-200.0, 200.0, 0.0]])
    value = bounds.bernoulli_log_likelihood(tf.constant([[0.0, 1.0, 1.0]]), logits)
    np.testing.assert_allclose(value, [np.log(0.5)], rtol=1e-6)


def test_iwae_bound_and_elbo_match_scipy(rng):
    log_w = rng.normal(-90, 5, (50, 8))
    np.testing.assert_allclose(bounds.iwae_bound(log_w), logsumexp(log_w, 0) - np.log(50), rtol=1e-10)
    np.testing.assert_allclose(bounds.elbo(log_w), log_w.mean(0), rtol=1e-10)


def test_iwae_bound_is_stable_in_log_space():
    log_w = tf.constant([[-5000.0], [-5001.0]])
    expected = -5000.0 + np.log1p(np.exp(-1.0)) - np.log(2)
    np.testing.assert_allclose(bounds.iwae_bound(log_w), [expected], rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 20), st.integers(1, 5), st.floats(0.1, 50.0))
def test_elbo_never_exceeds_iwae_bound(k, batch, scale):
    log_w = np.random.default_rng(k * 7 + batch).normal(-100, scale, (k, batch))
    assert np.all(bounds.elbo(log_w).numpy() <= bounds.iwae_bound(log_w).numpy() + 1e-9)
    if k == 1:
        np.testing.assert_allclose(bounds.elbo(log_w), bounds.iwae_bound(log_w))


def test_iwae_bound_with_one_sample_is_the_log_weight_without_logsumexp_ops(rng):
    log_w = tf.constant(rng.normal(-90, 5, (1, 6)), tf.float32)

    def value_and_grad(bound, log_w):
        with tf.GradientTape() as tape:
            tape.watch(log_w)
            value = bound(log_w)
            loss = tf.reduce_sum(value * tf.linspace(0.5, 1.5, 6))
        return value, tape.gradient(loss, log_w)

    value, grad = value_and_grad(bounds.iwae_bound, log_w)
    expected, expected_grad = value_and_grad(lambda w: tfp.math.reduce_logmeanexp(w, 0), log_w)
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(grad, expected_grad)
    graph = tf.function(bounds.iwae_bound).get_concrete_function(tf.TensorSpec([1, None])).graph
    assert not {op.type for op in graph.get_operations()} & {"Exp", "Log", "Max"}
    graph = tf.function(bounds.iwae_bound).get_concrete_function(tf.TensorSpec([None, None])).graph
    assert {"Exp", "Log"} <= {op.type for op in graph.get_operations()}  # k unknown: log-mean-exp.


def test_iwae_bound_rises_with_k_on_average(rng):
    # log w = log p(x) + noise with E[w] = p(x): L_k -> log p(x) from below as k grows.
    sigma, log_px, trials = 2.0, -80.0, 4000
    means = []
    for k in (1, 5, 50):
        log_w = log_px - sigma ** 2 / 2 + sigma * rng.standard_normal((k, trials))
        means.append(float(np.mean(bounds.iwae_bound(log_w))))
    assert means[0] < means[1] < means[2] < log_px
    np.testing.assert_allclose(means[0], log_px - sigma ** 2 / 2, atol=0.1)


def test_normalized_weights_and_dreg_surrogates(rng):
    log_w = rng.normal(0, 3, (6, 4))
    w = np.exp(log_w - logsumexp(log_w, 0))
    np.testing.assert_allclose(bounds.normalized_weights(log_w), w, rtol=1e-10)
    dec, enc = bounds.dreg_surrogates(log_w)
    np.testing.assert_allclose(dec, (w * log_w).sum(0), rtol=1e-10)
    np.testing.assert_allclose(enc, (w ** 2 * log_w).sum(0), rtol=1e-10)
    log_w_var = tf.Variable(log_w)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(bounds.dreg_surrogates(log_w_var)[0])
    np.testing.assert_allclose(tape.gradient(total, log_w_var), w, rtol=1e-10)


@pytest.mark.parametrize("units", [784, 6, 113, 1])
def test_softplus_sum_matches_float64_softplus_and_its_gradient(rng, units):
    logits = rng.normal(0, 8, (3, 4, units)).astype(np.float32)
    logits[0, 0, 0] = 90.0  # large positive and negative logits stay exact.
    logits[0, 1, -1] = -90.0
    expected = np.logaddexp(0, logits.astype(np.float64)).sum(-1)
    np.testing.assert_allclose(bounds.softplus_sum(tf.constant(logits)), expected, rtol=2e-6, atol=1e-4)
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(bounds.softplus_sum(variable) * tf.constant([[1.0], [2.0], [3.0]]))
    weights = np.array([1.0, 2.0, 3.0])[:, None, None]
    np.testing.assert_allclose(tape.gradient(total, variable), weights / (1 + np.exp(-logits)),
                               rtol=1e-5, atol=1e-7)


def test_bernoulli_mlp_log_prob_matches_the_logits_formula(rng):
    from tfaae import networks
    layer = networks.BernoulliMLP((16,), 12, seed=0)
    z = tf.constant(rng.normal(size=(5, 3, 4)), tf.float32)
    x = tf.constant(rng.random((3, 12)) < 0.5, tf.float32)
    logits = layer(tf.reshape(z, [15, 4]))
    expected = bounds.bernoulli_log_likelihood(x, tf.reshape(logits, [5, 3, 12]))
    np.testing.assert_allclose(layer.log_prob(z, x), expected, rtol=1e-5, atol=1e-5)


def test_reparameterized_normal_log_prob_matches_tfp_in_value_and_gradient(rng):
    mean = tf.Variable(rng.normal(0, 1, (4, 3)).astype(np.float32))
    log_std = tf.Variable(rng.normal(0, 0.5, (4, 3)).astype(np.float32))
    noise = tf.constant(rng.normal(0, 1, (5, 4, 3)).astype(np.float32))
    results = []
    for formula in ("tfp", "ours"):
        with tf.GradientTape() as tape:
            h = mean + tf.exp(log_std) * noise
            if formula == "tfp":
                value = tf.reduce_sum(tfp.distributions.Normal(mean, tf.exp(log_std)).log_prob(h), -1)
            else:
                value = bounds.reparameterized_normal_log_prob(noise, log_std)
            loss = tf.reduce_sum(value * tf.range(1.0, 6.0)[:, None])  # distinct weights per sample.
        results.append((value, tape.gradient(loss, [mean, log_std])))
    (v1, (m1, s1)), (v2, (m2, s2)) = results
    np.testing.assert_allclose(v2, v1, rtol=1e-5, atol=1e-5)
    assert m2 is None  # the mean cancels out of log q(mean + std * noise) ...
    np.testing.assert_allclose(m1, 0.0, atol=1e-4)  # ... and TFP's gradient for it is zero.
    np.testing.assert_allclose(s2, s1, rtol=1e-5, atol=1e-4)
