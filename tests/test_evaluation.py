"""Evaluation against independent computations: exact log p(x) by quadrature, active units by NumPy."""

import numpy as np
import tensorflow as tf

import tfaae
from harness import assert_clear_error, exact_log_px, one_dimensional_vae
from tfaae import evaluation

PIXELS = 10


def test_importance_sampled_log_likelihood_matches_quadrature():
    model = one_dimensional_vae(PIXELS)
    x = (np.random.default_rng(0).random((40, PIXELS)) < 0.4).astype(np.float64)
    exact = exact_log_px(model, x)
    estimate = evaluation.log_likelihood(model, x.astype(np.float32), num_samples=5000,
                                         chunk_size=700, batch_size=16)
    assert estimate.shape == (40,)
    # The posterior is far from Gaussian (the ELBO misses by nats), yet k = 5000 samples recover
    # log p(x) to a few hundredths of a nat on average.
    assert abs(estimate.mean() - exact.mean()) < 0.02
    assert np.abs(estimate - exact).max() < 0.15
    # A single-sample estimate (the ELBO) is clearly worse: the test can tell them apart.
    elbo = evaluation.log_likelihood(model, x.astype(np.float32), num_samples=1)
    assert (exact - elbo).mean() > 1.0


def test_bound_rises_with_k_towards_log_px(binary_test):
    model = tfaae.IWAE(num_layers=1, num_samples=5, seed=0)
    model.initialize_output_bias(binary_test)
    x = binary_test[:100]
    means = [evaluation.log_likelihood(model, x, num_samples=k, seed=k).mean() for k in (1, 5, 50, 500)]
    assert means == sorted(means), means
    assert means[-1] - means[0] > 1.0


def test_chunking_does_not_change_the_estimate(binary_test):
    model = tfaae.VAE(num_layers=2, seed=1)
    x = binary_test[:30]
    a = evaluation.log_likelihood(model, x, num_samples=600, chunk_size=600, seed=3)
    b = evaluation.log_likelihood(model, x, num_samples=600, chunk_size=7, seed=4)  # 85 chunks + 5
    standard_error = np.sqrt(np.var(a - b) / len(a))
    assert abs(a.mean() - b.mean()) < 4 * standard_error + 0.5


def test_dataset_input_and_errors(binary_test):
    model = tfaae.VAE(num_layers=1, seed=1)
    ds = tf.data.Dataset.from_tensor_slices((binary_test[:20], np.zeros(20, np.int32))).batch(8)
    from_ds = evaluation.log_likelihood(model, ds, num_samples=10, seed=2)
    from_array = evaluation.log_likelihood(model, binary_test[:20], num_samples=10, seed=2,
                                           batch_size=8)
    np.testing.assert_allclose(from_ds, from_array, rtol=1e-6)
    assert_clear_error(lambda: evaluation.log_likelihood(model, binary_test[:2], num_samples=0),
                       ValueError, "num_samples", "got 0")
    assert_clear_error(lambda: evaluation.log_likelihood(model, binary_test[:0]), ValueError,
                       "at least one image")
    assert_clear_error(lambda: evaluation.log_likelihood(model, binary_test[:4] * 3), ValueError,
                       "[0, 1]", "max 3")


def test_active_units_one_layer_against_numpy(binary_test):
    model = tfaae.VAE(num_layers=1, seed=2)
    q = model.encoder[0]
    # Silence 20 of the 50 units: their posterior mean no longer depends on x.
    kernel = q.mean.kernel.numpy()
    kernel[:, :20] = 0.0
    q.mean.kernel.assign(kernel)
    result = evaluation.active_units(model, binary_test, batch_size=64)
    means = model.encode(binary_test)[0][0].numpy().astype(np.float64)
    np.testing.assert_allclose(result["variances"][0], means.var(0), rtol=1e-4, atol=1e-9)
    assert result["counts"] == [int((means.var(0) > 0.01).sum())]
    assert result["counts"][0] <= 30 and result["variances"][0][:20].max() < 1e-12


def test_active_units_two_layers(binary_test):
    model = tfaae.IWAE(num_layers=2, seed=3)
    result = evaluation.active_units(model, binary_test[:64], num_samples=20)
    assert [len(v) for v in result["variances"]] == [100, 50]
    assert all(0 <= c <= d for c, d in zip(result["counts"], (100, 50)))
    assert_clear_error(lambda: evaluation.active_units(model, binary_test[:4], threshold=-1),
                       ValueError, "threshold")
