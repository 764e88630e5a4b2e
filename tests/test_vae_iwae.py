"""VAE and IWAE: training steps, equivalences, reproducibility, save/load, presets, bad input."""

import numpy as np
import pytest
import tensorflow as tf

import tfaae
from harness import (assert_clear_error, assert_weights_equal, fit_steps, save_load_roundtrip,
                     small_model as small)
from tfaae import networks


@pytest.mark.parametrize("cls,layers", [(tfaae.VAE, 1), (tfaae.IWAE, 2)])
def test_fit_reports_every_metric(binary_train, cls, layers):
    history = fit_steps(small(cls, layers, num_samples=3), binary_train, steps=2)
    assert set(history) == {"loss", "bound", "recon_loglik", "kl"}
    (loss,), (bound,), (recon,), (kl,) = (history[k] for k in ("loss", "bound", "recon_loglik", "kl"))
    assert np.isfinite([loss, bound, recon, kl]).all()
    assert loss == pytest.approx(-bound) and bound < 0 and kl > -1e-3
    if cls is tfaae.VAE:  # the ELBO decomposes into reconstruction minus KL.
        assert bound == pytest.approx(recon - kl, abs=1e-3)


def test_log_weights_shapes_and_decomposition(binary_train):
    model = small(layers=2)
    x = tf.reshape(binary_train[:5], [5, -1])
    terms = model.log_weights(x, 7)
    for key in ("log_w", "log_px", "kl"):
        assert terms[key].shape == (7, 5)
    np.testing.assert_allclose(terms["log_w"], terms["log_px"] - terms["kl"], rtol=1e-6)


def test_iwae_with_one_sample_is_the_vae(binary_train):
    vae, iwae = small(tfaae.VAE, num_samples=1), small(tfaae.IWAE, num_samples=1)
    assert_weights_equal(vae, iwae)
    h_vae, h_iwae = fit_steps(vae, binary_train, steps=3), fit_steps(iwae, binary_train, steps=3)
    for key in h_vae:
        np.testing.assert_allclose(h_vae[key], h_iwae[key], rtol=1e-6)
    assert_weights_equal(vae, iwae, atol=1e-6)  # float rounding of logsumexp's gradient.


def test_iwae_with_k_samples_differs_from_vae_with_k_samples(binary_train):
    vae, iwae = small(tfaae.VAE, num_samples=5), small(tfaae.IWAE, num_samples=5)
    h_vae, h_iwae = fit_steps(vae, binary_train), fit_steps(iwae, binary_train)
    assert h_iwae["bound"][0] > h_vae["bound"][0]  # same weights, same samples: L_k >= ELBO.


def test_same_seed_same_run_other_seed_other_run(binary_train):
    runs = [small(tfaae.IWAE, num_samples=4, seed=s) for s in (11, 11, 12)]
    histories = [fit_steps(m, binary_train, steps=2) for m in runs]
    assert histories[0] == histories[1]
    assert_weights_equal(runs[0], runs[1])
    assert histories[0] != histories[2]


@pytest.mark.parametrize("estimator", ["reparam", "dreg"])
def test_batch_splits_change_only_the_speed(binary_train, estimator):
    # Row blocks draw their rows of the whole batch's noise: the same updates, float32 round-off
    # of other sums only. Batches of 21, 20 and 2 (3 blocks: one empty) and a fit epoch.
    models = [small(tfaae.IWAE, layers=2, num_samples=5, gradient_estimator=estimator,
                    batch_splits=splits) for splits in (1, 2, 3)]
    x = tf.reshape(binary_train[:21], [21, -1])
    logs = [[m.train_on_batch(x[:size], return_dict=True) for size in (21, 20, 2)] for m in models]
    histories = [fit_steps(m, binary_train, steps=2) for m in models]
    for model, log, history in zip(models[1:], logs[1:], histories[1:]):
        assert_weights_equal(models[0], model, atol=1e-5)
        for got, want in zip(log, logs[0]):
            assert got == pytest.approx(want, rel=1e-5)
        for key, values in history.items():
            assert values == pytest.approx(histories[0][key], rel=1e-5), key
    assert tfaae.IWAE.from_config(models[2].get_config()).batch_splits == 3


def test_dreg_gives_finite_updates_and_differs_from_reparam(binary_train):
    reparam = small(tfaae.IWAE, layers=2, num_samples=5)
    dreg = small(tfaae.IWAE, layers=2, num_samples=5, gradient_estimator="dreg")
    x = tf.reshape(binary_train[:16], [16, -1])
    g_r, v_r, bound_r, _ = reparam.compute_gradients(x)
    g_d, v_d, bound_d, _ = dreg.compute_gradients(x)
    np.testing.assert_allclose(bound_r, bound_d, rtol=1e-5)  # same value of the bound...
    by_path_r = {v.path: g for g, v in zip(g_r, v_r)}
    by_path_d = {v.path: g for g, v in zip(g_d, v_d)}
    assert set(by_path_r) == set(by_path_d) and all(g is not None for g in g_d)
    for path in by_path_r:  # ...the decoder's gradient is the same, the encoder's is not.
        if path.startswith("p_"):
            np.testing.assert_allclose(by_path_r[path], by_path_d[path], rtol=1e-4, atol=1e-5)
    encoder_diff = [np.abs(by_path_r[p] - by_path_d[p]).max() for p in by_path_r if p.startswith("q_")]
    assert max(encoder_diff) > 1e-4
    assert np.isfinite(fit_steps(dreg, binary_train)["loss"][0])


def _tiny_iwae(k=8, seed=0):
    encoder, decoder = networks.burda_networks(latent_dims=(2,), hidden_units=((4,),), input_dim=6,
                                               seed=seed)
    return tfaae.IWAE(encoder=encoder, decoder=decoder, num_samples=k, image_shape=(6,), seed=0)


def _encoder_gradient_draws(model, x, estimator, draws):
    model.gradient_estimator = estimator
    variables = model.compute_gradients(x)[1]
    fn = tf.function(lambda: model.compute_gradients(x)[0])
    keep = [i for i, v in enumerate(variables) if v.path.startswith("q_")]
    return np.stack([np.concatenate([g[i].numpy().ravel() for i in keep]) for g in
                     (fn() for _ in range(draws))])


def test_dreg_is_unbiased():
    """E[DReG encoder gradient] = E[standard IWAE encoder gradient] (Tucker et al. 2019, eq. 6)."""
    model = _tiny_iwae()
    x = tf.constant(np.random.default_rng(0).random((4, 6)) < 0.5, tf.float32)
    a = _encoder_gradient_draws(model, x, "reparam", 400)
    b = _encoder_gradient_draws(model, x, "dreg", 400)
    z = np.abs(a.mean(0) - b.mean(0)) / (np.sqrt(a.var(0) / len(a) + b.var(0) / len(b)) + 1e-9)
    assert z.max() < 5
    assert np.abs(a.mean(0)).max() > 1e-3  # the gradient being compared is not zero.


def test_dreg_has_zero_variance_when_q_is_the_posterior():
    """With q(z|x) = p(z|x), log w is constant in z: DReG's encoder gradient is exactly zero while
    the standard estimator's is noise (the score term that DReG removes)."""
    model = _tiny_iwae(k=16)
    p_x = model.decoder[0]
    p_x.hidden[0].kernel.assign(tf.zeros_like(p_x.hidden[0].kernel))  # p(x|z) ignores z...
    for head in (model.encoder[0].mean, model.encoder[0].log_std):  # ...and q(z|x) = N(0, I).
        head.kernel.assign(tf.zeros_like(head.kernel))
        head.bias.assign(tf.zeros_like(head.bias))
    x = tf.constant(np.random.default_rng(1).random((4, 6)) < 0.5, tf.float32)
    dreg = _encoder_gradient_draws(model, x, "dreg", 20)
    reparam = _encoder_gradient_draws(model, x, "reparam", 20)
    assert np.abs(dreg).max() < 1e-5
    assert reparam.var(0).sum() > 1e-3


def test_presets_have_the_papers_architectures():
    one, two = tfaae.VAE(num_layers=1), tfaae.IWAE(num_layers=2)
    dense = lambda i, o: i * o + o  # noqa: E731
    expected_one = (dense(784, 200) + dense(200, 200) + 2 * dense(200, 50)
                    + dense(50, 200) + dense(200, 200) + dense(200, 784))
    assert one.count_params() == expected_one
    assert one.latent_dims == (50,) and two.latent_dims == (100, 50)
    expected_two = (dense(784, 200) + dense(200, 200) + 2 * dense(200, 100)
                    + dense(100, 100) + dense(100, 100) + 2 * dense(100, 50)
                    + dense(50, 100) + dense(100, 100) + 2 * dense(100, 100)
                    + dense(100, 200) + dense(200, 200) + dense(200, 784))
    assert two.count_params() == expected_two
    assert all(layer.activation == "tanh" for layer in one.encoder + one.decoder)


def test_output_bias_is_the_logit_of_the_pixel_mean(binary_train):
    model = small()
    model.initialize_output_bias(binary_train)
    p = np.clip(binary_train.reshape(len(binary_train), -1).mean(0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(model.decoder[-1].logits.bias.numpy(), np.log(p / (1 - p)), rtol=1e-5)


def test_save_load_round_trip_and_training_continues(binary_train, tmp_path):
    model = small(tfaae.IWAE, layers=2, num_samples=3, gradient_estimator="dreg")
    fit_steps(model, binary_train, steps=2)
    loaded = save_load_roundtrip(model, binary_train[:8], str(tmp_path / "m.keras"),
                                 lambda m, x: m.reconstruct(x))
    assert loaded.gradient_estimator == "dreg" and loaded.num_samples == 3
    assert int(loaded.optimizer.iterations) == 2
    fit_steps(loaded, binary_train, steps=1)
    assert int(loaded.optimizer.iterations) == 3


def test_sampling_encoding_and_decoding(binary_train):
    model = small(layers=2)
    samples = model.sample(6, seed=4)
    assert samples.shape == (6, 28, 28, 1)
    np.testing.assert_array_equal(samples, model.sample(6, seed=4))
    assert float(tf.reduce_min(samples)) >= 0 and float(tf.reduce_max(samples)) <= 1
    (m1, s1), (m2, s2) = model.encode(binary_train[:3])
    assert m1.shape == (3, 12) and m2.shape == (3, 6) and float(tf.reduce_min(s2)) > 0
    assert model.decode(m2).shape == (3, 28, 28, 1)
    assert model.predict(binary_train[:4], verbose=0).shape == (4, 28, 28, 1)


def test_mixed_bfloat16_keeps_log_weights_in_float32(binary_train):
    encoder, decoder = networks.burda_networks(latent_dims=(8,), hidden_units=((32,),),
                                               dtype="mixed_bfloat16")
    model = tfaae.IWAE(encoder=encoder, decoder=decoder, num_samples=4, seed=1)
    model.compile(optimizer="adam")
    assert model.log_weights(tf.reshape(binary_train[:4], [4, -1]), 4)["log_w"].dtype == tf.float32
    assert np.isfinite(fit_steps(model, binary_train)["loss"][0])


def test_bad_input_gets_clear_errors(binary_train):
    model = small()
    assert_clear_error(lambda: model.fit((binary_train * 255).astype(np.uint8), verbose=0),
                       TypeError, "floating-point images in [0, 1]", "uint8", "divide by 255")
    assert_clear_error(lambda: model.fit(np.zeros((8, 27, 28), np.float32), verbose=0),
                       ValueError, "[batch, 28, 28, 1]", "[None, 27, 28]")
    assert_clear_error(lambda: model.fit(binary_train[:32] * 255, verbose=0, batch_size=32),
                       ValueError, "finite values in [0, 1]", "max 255")
    with_nan = binary_train[:32].copy()
    with_nan[3, 4, 5, 0] = np.nan
    assert_clear_error(lambda: model.evaluate(with_nan, verbose=0, batch_size=32),
                       ValueError, "non-finite values 1")
    assert_clear_error(lambda: tfaae.IWAE(num_samples=0), ValueError, "num_samples", "got 0")
    assert_clear_error(lambda: tfaae.IWAE(num_samples=2.5), TypeError, "num_samples", "2.5")
    assert_clear_error(lambda: tfaae.IWAE(batch_splits=0), ValueError, "batch_splits", "got 0")
    assert_clear_error(lambda: tfaae.IWAE(gradient_estimator="rws"), ValueError,
                       "gradient_estimator", "'rws'")
    assert_clear_error(lambda: tfaae.VAE(num_layers=3), ValueError, "num_layers", "got 3")
    encoder, _ = networks.burda_networks(latent_dims=(8,), hidden_units=((32,),))
    assert_clear_error(lambda: tfaae.VAE(encoder=encoder), ValueError, "both encoder and decoder")
    assert_clear_error(lambda: model.decode(np.zeros((2, 5))), ValueError, "[batch, 8]", "[2, 5]")


def test_with_precision_copies_weights_into_a_bfloat16_model(binary_test):
    from tfaae.models.base import with_precision
    model = tfaae.IWAE(num_layers=2, num_samples=7, seed=5)
    fast = with_precision(model, "mixed_bfloat16")
    assert type(fast) is tfaae.IWAE and fast.num_samples == 7
    assert fast.decoder[-1].logits.compute_dtype == "bfloat16"
    assert_weights_equal(model, fast)
    assert with_precision(model, "float32") is model
    a = tfaae.log_likelihood(model, binary_test[:20], num_samples=200, seed=1)
    b = tfaae.log_likelihood(model, binary_test[:20], num_samples=200, seed=1,
                             precision="mixed_bfloat16")
    assert np.abs(a - b).mean() < 0.5  # bfloat16 products: close, not equal.
    assert_clear_error(lambda: with_precision(model, "float16"), ValueError, "precision", "float16")
