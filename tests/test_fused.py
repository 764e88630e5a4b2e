"""The fused kernels against plain TF ops in float64, their gradients, and where they are used."""

import numpy as np
import pytest
import tensorflow as tf

import tensorflow_probability as tfp

import tfaae
from tfaae import bounds, evaluation, fused, networks, random
from harness import small_model

tfd = tfp.distributions


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


@pytest.mark.parametrize("activation", fused.ACTIVATIONS)
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_dense_activation_matches_plain_ops(rng, activation, dtype, tol):
    h = rng.normal(0, 1, (16, 12)).astype(np.float32)
    w = rng.normal(0, 0.5, (12, 8)).astype(np.float32)
    b = rng.normal(0, 1, 8).astype(np.float32)
    layer = tf.function(lambda h, w, b: tf.cast(fused.dense_activation(
        tf.cast(h, dtype), tf.cast(w, dtype), b, activation), tf.float32))  # grappler's fusion
    value, (gh, gw, gb) = _values_and_grads(layer, h, w, b)
    plain = {"tanh": tf.tanh, "relu": tf.nn.relu, "linear": tf.identity}[activation]
    expected, (eh, ew, eb) = _values_and_grads(lambda h, w, b: plain(h @ w + b),
                                               *(a.astype(np.float64) for a in (h, w, b)))
    assert value.dtype == tf.float32 and gb.dtype == tf.float32
    for got, want in [(value, expected), (gh, eh), (gw, ew), (gb, eb)]:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_bernoulli_dense_log_prob_matches_plain_ops(rng, dtype, tol):
    h = rng.normal(0, 1, (3, 5, 12)).astype(np.float32)
    w = rng.normal(0, 0.5, (12, 20)).astype(np.float32)
    b = rng.normal(0, 1, 20).astype(np.float32)
    x = (rng.random((5, 20)) < 0.5).astype(np.float32)
    h[0, 0] = 0.0  # a row of zeros: its logits are the bias.
    value, (gh, gw, gb) = _values_and_grads(lambda h, w, b: fused.bernoulli_dense_log_prob(
        tf.cast(h, dtype), tf.cast(w, dtype), b, x), h, w, b)
    # In float64: the logits' gradient (x - sigmoid(l)) * u goes through TF's own gradients.
    expected, (eh, ew, eb) = _values_and_grads(
        lambda h, w, b: bounds.bernoulli_log_likelihood(tf.cast(x, tf.float64), h @ w + b),
        *(a.astype(np.float64) for a in (h, w, b)))
    assert value.dtype == tf.float32 and value.shape == (3, 5) and gb.dtype == tf.float32
    assert gh.dtype == gw.dtype == tf.float32 and gh.shape == h.shape  # cast back by the Variable
    for got, want in [(value, expected), (gh, eh), (gw, ew), (gb, eb)]:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def _plain_normals_from_bits(monkeypatch):
    """Makes the plain path draw its normals from the uniform words the fused kernels use."""
    monkeypatch.setattr(random, "normal", lambda shape, seed, dtype=tf.float32:
                        random.normal_from_bits(random.uniform_bits(shape, seed)))


@pytest.mark.parametrize("layers", [1, 2])
def test_model_log_weights_and_gradients_equal_with_and_without_fusion(binary_test, monkeypatch,
                                                                        layers):
    model = small_model(tfaae.IWAE, layers, num_samples=4)
    x = tf.reshape(binary_test[:6], [6, -1])
    _plain_normals_from_bits(monkeypatch)  # the same noise on both paths.

    def run(on):
        with fused.enabled(on), tf.GradientTape() as tape:
            log_w = model.log_weights(x, 4, seed=tf.constant([5, 0], tf.int64))["log_w"]
            loss = -tf.reduce_mean(bounds.iwae_bound(log_w))
        return log_w, tape.gradient(loss, model.trainable_variables)

    (plain, plain_grads), (fast, fast_grads) = run(False), run(True)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-3)
    for g, h in zip(fast_grads, plain_grads):  # float32 sums in another order: relative to the scale.
        np.testing.assert_allclose(g, h, rtol=1e-3, atol=1e-3 * np.abs(h).max())


def test_the_model_picks_one_log_weights_backend(binary_test):
    # networks.fused_log_weights inside fused.enabled(), networks.log_weights (the reference, the
    # one with DReG's stopped proposal) otherwise: the same contract, the model adds nothing.
    model = small_model(tfaae.IWAE, 2, num_samples=4)
    x = tf.reshape(binary_test[:6], [6, -1])
    seed = tf.constant([5, 0], tf.int64)
    stack = (model.encoder, model.decoder, x, 3, seed)
    cases = [(True, False, networks.fused_log_weights), (True, True, networks.log_weights),
             (False, False, networks.log_weights), (False, True, networks.log_weights)]
    for on, stopped, backend in cases:
        with fused.enabled(on):
            assert networks.takes_fused_path(model.encoder, model.decoder, stopped) == (
                backend is networks.fused_log_weights)
            got = model.log_weights(x, 3, stopped, seed=seed, shared_noise=True)
            want = backend(*stack, True, stopped)
        for name in ("log_w", "log_px", "kl"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{on} {stopped} {name}")
    plain_output = model.decoder[:-1] + [networks.MLP((8,), 784, seed=0)]  # no log_prob.
    with fused.enabled():
        assert not networks.takes_fused_path(model.encoder, plain_output)
    with pytest.raises(ValueError, match="no stopped-proposal path"):
        networks.fused_log_weights(*stack, stop_proposal_gradient=True)


def _bits(rng, shape):
    bits = rng.integers(0, 2 ** 32, shape, dtype=np.uint64).astype(np.uint32)
    bits.flat[:2] = [0, 2 ** 32 - 1]  # the extreme cells.
    return bits


def _normal_from_bits_float64(bits):
    """Phi^-1 at the midpoints of 2^23 cells, in float64 (tfp's quantile)."""
    u = ((bits.astype(np.uint64) >> 9).astype(np.float64) + 0.5) * 2.0 ** -23
    return tfd.Normal(np.float64(0), np.float64(1)).quantile(u).numpy()


def test_normal_from_bits_is_the_inverse_cdf_at_cell_midpoints(rng):
    bits = _bits(rng, [1000])
    expected = _normal_from_bits_float64(bits)
    np.testing.assert_allclose(random.normal_from_bits(bits), expected, rtol=1e-5, atol=1e-5)
    in_xla = tf.function(random.normal_from_bits, jit_compile=True)(bits)  # as in the kernels.
    np.testing.assert_allclose(in_xla, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected).max() == pytest.approx(5.2947, abs=1e-4)
    # The seeded draws are standard normal: Kolmogorov-Smirnov distance to Phi over 200,000.
    z = np.sort(random.normal_from_bits(random.uniform_bits([200_000], 11)).numpy().astype(np.float64))
    cdf = tfd.Normal(np.float64(0), np.float64(1)).cdf(z).numpy()
    n = len(z)
    distance = max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max())
    assert distance < 1.36 / np.sqrt(n), distance  # the 5% critical value.


@pytest.mark.parametrize("leading", [(3, 5), (5,)])  # y per sample, or per example (first layer).
@pytest.mark.parametrize("subtract_prior", [False, True])
def test_gaussian_sample_matches_the_formulas(rng, leading, subtract_prior):
    y = rng.normal(0, 1, leading + (8,)).astype(np.float32)
    b = rng.normal(0, 0.5, 8).astype(np.float32)
    bits = _bits(rng, (3, 5, 4))
    h, code, log_q = fused.gaussian_sample(tf.cast(y, tf.bfloat16), b, bits, subtract_prior)
    z = tf.cast(tf.cast(y, tf.bfloat16), tf.float64) + b.astype(np.float64)
    mean, std = z[..., :4], tf.exp(z[..., 4:])
    expected_h = mean + std * _normal_from_bits_float64(bits)
    expected = tf.reduce_sum(tfd.Normal(mean, std).log_prob(expected_h), -1)
    if subtract_prior:
        expected -= tf.reduce_sum(tfd.Normal(np.float64(0), np.float64(1)).log_prob(expected_h), -1)
    assert h.dtype == tf.float32 and code.dtype == tf.bfloat16 and log_q.shape == (3, 5)
    np.testing.assert_allclose(h, expected_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(code, tf.cast(tf.cast(expected_h, tf.bfloat16), tf.float64))
    np.testing.assert_allclose(log_q, expected, rtol=1e-5, atol=1e-4)


def _weighted_sum(outputs):
    """A scalar with a distinct weight per entry of each output (so every gradient entry counts)."""
    return sum(tf.reduce_sum(tf.cast(t, tf.float64) * tf.reshape(
        tf.linspace(tf.constant(0.5 + i, tf.float64), 1.5 + i, tf.size(t)), tf.shape(t)))
               for i, t in enumerate(outputs))


@pytest.mark.parametrize("leading", [(3, 5), (5,)])
@pytest.mark.parametrize("subtract_prior", [False, True])
def test_gaussian_sample_gradient_is_the_reparameterised_one(rng, leading, subtract_prior):
    y = rng.normal(0, 1, leading + (8,)).astype(np.float32)
    b = rng.normal(0, 0.5, 8).astype(np.float32)
    bits = _bits(rng, (3, 5, 4))
    noise = _normal_from_bits_float64(bits)

    def reference(y, b):  # h = mean + std * noise through tfp's densities, in float64.
        z = y + b
        mean, std = z[..., :4], tf.exp(z[..., 4:])
        h = mean + std * noise
        log_q = tf.reduce_sum(tfd.Normal(mean, std).log_prob(h), -1)
        if subtract_prior:
            log_q -= tf.reduce_sum(tfd.Normal(np.float64(0), np.float64(1)).log_prob(h), -1)
        return h, h, log_q

    grads = {}
    for name, fn, dtype in [("fused", lambda y, b: fused.gaussian_sample(y, b, bits, subtract_prior),
                             np.float32), ("reference", reference, np.float64)]:
        variables = [tf.Variable(y.astype(dtype)), tf.Variable(b.astype(dtype))]
        with fused.enabled(), tf.GradientTape() as tape:
            loss = _weighted_sum(fn(*variables))
        grads[name] = tape.gradient(loss, variables)
    for got, expected in zip(grads["fused"], grads["reference"]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Outputs left unused get no gradient of their own (zeros, not an error).
    variables = [tf.Variable(y), tf.Variable(b)]
    with fused.enabled(), tf.GradientTape() as tape:
        loss = tf.reduce_sum(fused.gaussian_sample(*variables, bits, subtract_prior)[2])
    assert all(np.isfinite(g.numpy()).all() for g in tape.gradient(loss, variables))


def test_gaussian_log_prob_gradient_matches_tfp(rng):
    y = rng.normal(0, 1, (3, 5, 12)).astype(np.float32)
    b = rng.normal(0, 0.5, 12).astype(np.float32)
    target = rng.normal(0, 2, (3, 5, 6)).astype(np.float32)

    def reference(y, b, target):
        z = y + b
        return tf.reduce_sum(tfd.Normal(z[..., :6], tf.exp(z[..., 6:])).log_prob(target), -1)

    value, grads = _values_and_grads(fused.gaussian_log_prob, y, b, target)
    expected, expected_grads = _values_and_grads(reference, *(a.astype(np.float64)
                                                              for a in (y, b, target)))
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-4)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gaussian_log_prob_matches_tfp(rng):
    y = rng.normal(0, 1, (3, 5, 12)).astype(np.float32)
    b = rng.normal(0, 0.5, 12).astype(np.float32)
    target = rng.normal(0, 2, (3, 5, 6)).astype(np.float32)
    z = y.astype(np.float64) + b
    expected = tfd.Normal(z[..., :6], np.exp(z[..., 6:])).log_prob(target.astype(np.float64))
    np.testing.assert_allclose(fused.gaussian_log_prob(y, b, target),
                               tf.reduce_sum(expected, -1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("shared_noise", [False, True])
def test_the_evaluation_path_gives_the_plain_log_weights_for_the_same_noise(
        binary_test, monkeypatch, layers, shared_noise):
    model = small_model(tfaae.IWAE, layers, num_samples=4)
    x = tf.reshape(binary_test[:6], [6, -1])
    seed = tf.constant([5, 0], tf.int64)
    with fused.enabled(gradients=False):
        fast = model.log_weights(x, 7, seed=seed, shared_noise=shared_noise)
    _plain_normals_from_bits(monkeypatch)  # the plain path (tfp's Normal for p(h1|h2)).
    plain = model.log_weights(x, 7, seed=seed, shared_noise=shared_noise)
    for name in ("log_w", "log_px", "kl"):
        assert fast[name].shape == (7, 6)
        np.testing.assert_allclose(fast[name], plain[name], rtol=1e-5, atol=1e-3, err_msg=name)


def test_the_estimator_draws_uniform_bits_not_normals():
    model = small_model(tfaae.IWAE, 2, num_samples=4)
    estimate, _ = evaluation._estimator(model)
    graph = estimate.get_concrete_function(tf.TensorSpec([None, 784]), 3, tf.constant(2), 0).graph
    ops = {node.op for f in graph.as_graph_def().library.function for node in f.node_def}
    assert "StatelessRandomUniformFullIntV2" in ops and "StatelessRandomNormalV2" not in ops


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="activation must be one of 'tanh', 'relu', 'linear'; got 'elu'"):
        fused.bias_activation(tf.zeros([2, 3]), tf.zeros([3]), "elu")
    with pytest.raises(ValueError, match="last dimensions must agree; got y 3, bias 4"):
        fused.bias_activation(tf.zeros([2, 3]), tf.zeros([4]), "tanh")
    with pytest.raises(ValueError, match="activation must be one of"):
        fused.dense_activation(tf.zeros([2, 3]), tf.zeros([3, 4]), tf.zeros([4]), "elu")
    with pytest.raises(ValueError, match="kernel 4, bias 5"):
        fused.dense_activation(tf.zeros([2, 3]), tf.zeros([3, 4]), tf.zeros([5]), "tanh")
    with pytest.raises(ValueError, match=r"y must be \[k, batch, units\] \(rank 3\); got shape \(3, 5\)"):
        fused.bernoulli_log_prob(tf.zeros([3, 5]), tf.zeros([5]), tf.zeros([3, 5]))
    with pytest.raises(ValueError, match="got y 5, bias 5, x 6"):
        fused.bernoulli_log_prob(tf.zeros([2, 3, 5]), tf.zeros([5]), tf.zeros([3, 6]))
    with pytest.raises(ValueError, match=r"h must be \[k, batch, d\] \(rank 3\); got shape \(3, 4\)"):
        fused.bernoulli_dense_log_prob(tf.zeros([3, 4]), tf.zeros([4, 5]), tf.zeros([5]),
                                       tf.zeros([3, 5]))
    with pytest.raises(ValueError, match="h's last dimension must equal the kernel's first; got h 4, kernel 6"):
        fused.bernoulli_dense_log_prob(tf.zeros([1, 3, 4]), tf.zeros([6, 5]), tf.zeros([5]),
                                       tf.zeros([3, 5]))
    with pytest.raises(ValueError, match="got kernel 5, bias 5, x 7"):
        fused.bernoulli_dense_log_prob(tf.zeros([1, 3, 4]), tf.zeros([4, 5]), tf.zeros([5]),
                                       tf.zeros([3, 7]))
    with pytest.raises(ValueError, match="2d.* for bits of width d; got 8 columns and bits of width 3"):
        fused.gaussian_sample(tf.zeros([2, 8]), tf.zeros([8]), tf.zeros([1, 2, 3], tf.uint32))
    with pytest.raises(TypeError, match="bits must be uint32 words .*; got int32"):
        random.normal_from_bits(tf.constant([1, 2]))
    with pytest.raises(TypeError, match="bits must be uint32 words .*; got float32"):
        fused.gaussian_sample(tf.zeros([2, 6]), tf.zeros([6]), tf.zeros([1, 2, 3]))
    with pytest.raises(ValueError, match="got 7 columns and target of width 3"):
        fused.gaussian_log_prob(tf.zeros([1, 2, 7]), tf.zeros([7]), tf.zeros([1, 2, 3]))


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
    # Two kernels summing the pixels in another order (a product with ones without gradients).
    np.testing.assert_allclose(forward_only, fused.bernoulli_log_prob(y, b, x), rtol=1e-5)
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
    library = graph.as_graph_def().library.function
    xla = [f for f in library if f.attr["_XlaMustCompile"].b]
    assert xla, "the train step should use the XLA-fused kernels"
    # The logits' gradient goes straight into the output layer's matmuls (bernoulli_dense_log_prob).
    assert not [f for f in xla if "_bernoulli_backward" in f.signature.name]
    ops = {n.op for n in graph.as_graph_def().node} | {n.op for f in library for n in f.node_def}
    assert "StatelessRandomUniformFullIntV2" in ops and "StatelessRandomNormalV2" not in ops
    path = tfaae.export(model, tmp_path / "m" / "1")
    loaded = tf.saved_model.load(str(path))
    for name, signature in loaded.signatures.items():
        library = signature.graph.as_graph_def().library.function
        assert not [f.signature.name for f in library if f.attr["_XlaMustCompile"].b], name
