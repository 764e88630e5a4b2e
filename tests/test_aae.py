"""The adversarial autoencoder: phases, losses, labels, saving, resuming, regularisation, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfaae
from harness import (assert_clear_error, assert_weights_equal, changed_since, fit_steps,
                     interrupt_and_resume, run_python, save_load_roundtrip, snapshot)
from harness import small_aae as small
from tfaae import callbacks, losses, networks, schedules

tfd = tfp.distributions
METRICS = {"reconstruction_loss", "discriminator_loss", "discriminator_accuracy", "generator_loss"}


@pytest.fixture(scope="module")
def labels(mnist):
    """Labels of the `binary_train` images, int32 [512]."""
    return mnist["train"][1][:512].astype(np.int32)


@pytest.mark.parametrize("posterior,supervised,prior", [
    ("deterministic", "none", "gaussian"), ("gaussian", "discriminator", "mixture"),
    ("universal", "decoder", "swiss_roll")])
def test_fit_and_evaluate_report_the_four_metrics(binary_train, labels, posterior, supervised, prior):
    model = small(posterior, prior=prior, supervised=supervised)
    y = np.where(np.arange(512) % 3 == 0, -1, labels) if supervised == "discriminator" else labels
    history = fit_steps(model, binary_train, steps=2, y=y)
    assert set(history) == METRICS
    values = {k: v[0] for k, v in history.items()}
    assert np.isfinite(list(values.values())).all()
    assert 0 <= values["discriminator_accuracy"] <= 1 and values["discriminator_loss"] > 0
    assert [int(getattr(model, name).iterations) for name in model.optimizer_names] == [2, 2, 2]
    evaluated = model.evaluate(binary_train[:64], y[:64], batch_size=32, verbose=0, return_dict=True)
    assert set(evaluated) == METRICS


@pytest.mark.parametrize("phase,moves", [
    ("reconstruction_phase", {"encoder", "decoder"}),
    ("discriminator_phase", {"discriminator"}),
    ("generator_phase", {"encoder"}),
])
@pytest.mark.parametrize("supervised", ["none", "discriminator"])
def test_each_phase_updates_only_its_own_network(binary_train, labels, phase, moves, supervised):
    model = small("gaussian", prior="mixture", supervised=supervised)
    model.build_optimizers()
    x = tf.reshape(binary_train[:32], [32, -1])
    y = tf.constant(labels[:32]) if supervised != "none" else None
    networks_ = {"encoder": model.encoder, "decoder": model.decoder,
                 "discriminator": model.discriminator}
    before = {name: snapshot(layer) for name, layer in networks_.items()}
    getattr(model, phase)(x, y)
    assert {name for name, layer in networks_.items() if changed_since(before[name], layer)} == moves
    optimizer = {"reconstruction_phase": "reconstruction_optimizer",
                 "discriminator_phase": "discriminator_optimizer",
                 "generator_phase": "generator_optimizer"}[phase]
    assert {name: int(getattr(model, name).iterations) for name in model.optimizer_names} == {
        name: int(name == optimizer) for name in model.optimizer_names}


def test_losses_against_numpy_and_stable_at_extreme_logits():
    rng = np.random.default_rng(0)
    prior_logits, code_logits = rng.normal(0, 3, 50), rng.normal(0, 3, 50)
    prior_logits[:2], code_logits[:2] = [200.0, -200.0], [-200.0, 200.0]
    d = 1 / (1 + np.exp(-prior_logits.astype(np.float64)))
    g = 1 / (1 + np.exp(-code_logits.astype(np.float64)))
    with np.errstate(divide="ignore"):
        expected_d = -np.log(d) - np.log1p(-g)
        expected_g = -np.log(g)
    got_d = losses.discriminator_loss(prior_logits[:, None], code_logits[:, None]).numpy()
    got_g = losses.generator_loss(code_logits).numpy()
    np.testing.assert_allclose(got_d[2:], expected_d[2:], rtol=1e-5)
    np.testing.assert_allclose(got_g[2:], expected_g[2:], rtol=1e-5)
    # Where the probabilities round to 0 or 1 the logits still give the exact loss: l or -l.
    np.testing.assert_allclose(got_d[:2], [0.0, 400.0], atol=1e-4)
    np.testing.assert_allclose(got_g[:2], [200.0, 0.0], atol=1e-4)
    accuracy = losses.discriminator_accuracy(prior_logits, code_logits).numpy()
    np.testing.assert_array_equal(accuracy, ((prior_logits > 0).astype(int) + (code_logits < 0)) / 2)
    x = (rng.random((4, 6)) < 0.5).astype(np.float32)
    logits = rng.normal(0, 2, (4, 6)).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(losses.squared_error(x, logits), ((x - p) ** 2).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(losses.bernoulli(x, logits),
                               -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(-1), rtol=1e-5)


def _moments(z):
    z = np.asarray(z, np.float64)
    return z.mean(0), np.cov(z.T)


def test_prior_samples_have_the_closed_form_moments():
    n = 40_000
    gaussian = tfaae.priors.get({"name": "gaussian", "scale": 5.0}, 8)
    z = tfaae.priors.sample(gaussian, n, seed=1)
    assert z.shape == (n, 8) and z.dtype == tf.float32
    mean, cov = _moments(z)
    np.testing.assert_allclose(mean, 0, atol=5 * 5 / np.sqrt(n))
    np.testing.assert_allclose(cov, 25 * np.eye(8), atol=0.6)  # sd of a sample variance: ~0.18.
    # The radial mixture: mean 0, covariance (r^2 + s_r^2 + s_t^2) / 2 I for equally spaced angles.
    mixture = tfaae.priors.gaussian_mixture(radius=4.0, radial_std=1.0, tangential_std=0.25)
    mean, cov = _moments(tfaae.priors.sample(mixture, n, seed=2))
    np.testing.assert_allclose(mean, 0, atol=0.1)
    np.testing.assert_allclose(cov, (16 + 1 + 0.0625) / 2 * np.eye(2), atol=0.25)
    # Labels pick components: component i is centred at radius 4, angle 2 pi i / 10, and elongated
    # along its radius; label -1 draws from the whole mixture.
    per = 2000
    y = tf.constant(np.repeat(np.arange(-1, 10), per), tf.int32)
    z = tfaae.priors.sample(mixture, len(y), seed=3, labels=y).numpy()
    for i in range(10):
        zi = z[(i + 1) * per:(i + 2) * per]
        angle = 2 * np.pi * i / 10
        radial = np.array([np.cos(angle), np.sin(angle)])
        tangential = np.array([-np.sin(angle), np.cos(angle)])
        np.testing.assert_allclose(zi.mean(0), 4 * radial, atol=0.1)
        assert np.std(zi @ radial) == pytest.approx(1.0, rel=0.08)
        assert np.std(zi @ tangential) == pytest.approx(0.25, rel=0.08)
    np.testing.assert_allclose(z[:per].mean(0), 0, atol=0.25)
    # The swiss roll: the moments of its points plus the blur, computed here from the curve.
    roll = tfaae.priors.swiss_roll()
    points = tfaae.priors.swiss_roll_points().reshape(-1, 2)
    mean, cov = _moments(tfaae.priors.sample(roll, n, seed=4))
    np.testing.assert_allclose(mean, points.mean(0), atol=0.05)
    np.testing.assert_allclose(cov, np.cov(points.T, bias=True) + 0.15 ** 2 * np.eye(2), atol=0.2)
    z = tfaae.priors.sample(roll, 1000, seed=5, labels=tf.fill([1000], 7)).numpy()
    section = tfaae.priors.swiss_roll_points()[7]
    nearest = np.min(np.linalg.norm(z[:, None] - section[None], axis=-1), axis=1)
    assert np.quantile(nearest, 0.99) < 0.6  # every sample lies on section 7 (blur 0.15).
    # The same seed gives the same samples.
    np.testing.assert_array_equal(tfaae.priors.sample(roll, 5, seed=9), tfaae.priors.sample(roll, 5, seed=9))


def test_prior_errors():
    assert_clear_error(lambda: tfaae.priors.get("mixture", 8), ValueError, "event shape [8]", "[2]")
    assert_clear_error(lambda: tfaae.priors.get("uniform", 2), ValueError, "'gaussian'", "'uniform'")
    assert_clear_error(lambda: tfaae.priors.get({"name": "gaussian", "radius": 2}, 2), ValueError,
                       "'gaussian' does not take ['radius']")
    assert_clear_error(lambda: tfaae.priors.get({"name": "gaussian", "scale": 0}, 2), ValueError,
                       "scale", "got 0")
    assert_clear_error(lambda: tfaae.priors.get(3, 2), TypeError, "prior", "int")
    batched = tfd.Normal(tf.zeros([2]), 1.0)
    assert_clear_error(lambda: tfaae.priors.get(batched, 2), ValueError, "event shape [2]",
                       "got event shape [] and batch shape [2]")
    assert_clear_error(lambda: small(supervised="discriminator", prior="gaussian"), ValueError,
                       "mixture component i", "num_classes=10")


def test_regularisation_moves_the_codes_to_a_user_prior(binary_train, tmp_path):
    """Over 160 steps the codes' mean travels to a shifted prior's; without the generator phase
    (its learning rate 0) the codes go elsewhere: the adversarial regularisation does the work."""
    prior = tfd.MultivariateNormalDiag(loc=[3.0, -3.0], scale_diag=[1.0, 0.5], name="shifted")

    def distance_after_training(generator_rate):
        optimizers = schedules.aae_adam_optimizers(1e-3)
        optimizers["generator_optimizer"] = keras.optimizers.SGD(generator_rate)
        if generator_rate:
            optimizers["generator_optimizer"] = keras.optimizers.Adam(1e-3, beta_1=0.5)
        model = small(prior=prior, hidden=(64,), seed=5, optimizers=optimizers)
        before = np.linalg.norm(model.encode(binary_train).numpy().mean(0) - [3.0, -3.0])
        model.fit(binary_train, batch_size=64, epochs=20, verbose=0)
        return before, np.linalg.norm(model.encode(binary_train).numpy().mean(0) - [3.0, -3.0]), model

    before, adversarial, model = distance_after_training(1e-3)
    _, control, _ = distance_after_training(0.0)
    assert before > 3.5 and adversarial < 1.5 and adversarial < control / 3, (before, adversarial, control)
    # A custom prior is saved by name; loading needs the distribution again.
    model.save(tmp_path / "custom.keras")
    assert_clear_error(lambda: keras.models.load_model(tmp_path / "custom.keras"), ValueError,
                       "custom prior, 'shifted'", "custom_objects={'shifted': the_distribution}")
    loaded = keras.models.load_model(tmp_path / "custom.keras", custom_objects={"shifted": prior})
    assert loaded.prior is prior
    np.testing.assert_array_equal(loaded.encode(binary_train[:8]), model.encode(binary_train[:8]))


def test_label_to_the_discriminator_sends_each_class_to_its_component():
    """Three classes of 12-pixel images, all labeled: after 240 steps every class's codes lie on
    its own component of a 3-component radial mixture (the paper's figure 4, in miniature)."""
    rng = np.random.default_rng(0)
    prototypes = (rng.random((3, 12)) < 0.5).astype(np.float32)
    y = rng.integers(0, 3, 600)
    x = np.clip(prototypes[y] + rng.normal(0, 0.1, (600, 12)), 0, 1).astype(np.float32)
    nets = networks.aae_networks("deterministic", 2, input_dim=12, hidden_units=(32,),
                                 init_std=None, seed=1)
    model = tfaae.AAE(**nets, latent_dim=2, prior=tfaae.priors.gaussian_mixture(num_components=3),
                      supervised="discriminator", num_classes=3, image_shape=(12,), seed=1)
    model.compile(**schedules.aae_adam_optimizers(1e-3), steps_per_execution=10)
    # Unshuffled: Keras's shuffle is unseeded, and a rare order left a class between components.
    model.fit(x, y, batch_size=50, epochs=20, verbose=0, shuffle=False)
    log_probs = model.prior.components_distribution.log_prob(model.encode(x)[:, None, :])
    assert np.mean(np.argmax(log_probs, axis=1) == y) > 0.9


def test_save_load_restores_three_optimizers_and_training_continues(binary_train, tmp_path):
    model = small("gaussian", optimizers=schedules.makhzani_optimizers(steps_per_epoch=2))
    fit_steps(model, binary_train, steps=3)
    path = str(tmp_path / "aae.keras")
    loaded = save_load_roundtrip(model, binary_train[:8], path,
                                 lambda m, x: m.reconstruct(x, seed=1))
    for name in model.optimizer_names:
        a, b = getattr(model, name), getattr(loaded, name)
        assert type(a) is type(b) and a.get_config() == b.get_config()
        assert int(b.iterations) == 3
    # The schedule came back too: the rates fall tenfold after epochs 50 and 1000 (2 steps each).
    schedule = loaded.reconstruction_optimizer.get_config()["learning_rate"]["config"]
    assert schedule["boundaries"] == [99, 1999]
    np.testing.assert_allclose(schedule["values"], [0.01, 0.001, 0.0001])
    assert float(loaded.discriminator_optimizer.learning_rate) == pytest.approx(0.1)
    assert loaded.generator_optimizer.momentum == 0.1 and loaded.reconstruction_optimizer.momentum == 0.9
    # Both continue identically from the same state.
    fit_steps(model, binary_train, steps=1)
    fit_steps(loaded, binary_train, steps=1)
    assert [int(getattr(loaded, n).iterations) for n in loaded.optimizer_names] == [4, 4, 4]
    assert_weights_equal(model, loaded, atol=1e-6)
    # A fresh process loads the same model and computes the same reconstructions.
    np.save(tmp_path / "x.npy", binary_train[:8])
    expected = np.asarray(model.reconstruct(binary_train[:8], seed=1))
    out = run_python(f"""
        import json, keras, numpy as np, tfaae
        model = keras.models.load_model({str(tmp_path / 'aae.keras')!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        iterations = [int(getattr(model, n).iterations) for n in model.optimizer_names]
        print(json.dumps({{"r": np.asarray(model.reconstruct(x, seed=1)).tolist(),
                          "iterations": iterations}}))
    """)
    assert out["iterations"] == [3, 3, 3]
    loaded_fresh = np.asarray(out["r"], np.float32)
    np.testing.assert_allclose(loaded_fresh, np.asarray(keras.models.load_model(path).reconstruct(
        binary_train[:8], seed=1)), atol=1e-6)
    assert not np.allclose(loaded_fresh, expected)  # the model trained on after saving.


def test_backup_and_restore_brings_back_all_three_optimizers(binary_train, tmp_path):
    interrupted, restored = interrupt_and_resume(
        lambda: small(optimizers=schedules.makhzani_optimizers(steps_per_epoch=2)),
        binary_train[:64], str(tmp_path / "backup"))
    # Iterations and one momentum per variable: encoder + decoder, discriminator, encoder (4 each).
    assert len(interrupted) == len(restored) == (1 + 8) + (1 + 4) + (1 + 4)
    for a, b in zip(interrupted, restored):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a).max() > 0 for a in interrupted[2:])  # momenta, not a fresh start.


def test_training_stops_cleanly_when_a_phase_loss_is_not_finite(binary_train):
    class Poison(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                kernel = self.model.decoder.logits.kernel
                kernel.assign(np.full(kernel.shape, np.nan, np.float32))

    guard = callbacks.StopOnNonFinite()
    small().fit(binary_train[:160], batch_size=32, epochs=3, verbose=0, callbacks=[Poison(), guard])
    assert guard.stopped_at["epoch"] == 1 and guard.stopped_at["batch"] == 3
    assert "reconstruction_loss" in guard.stopped_at["metrics"]


def test_same_seed_same_run(binary_train):
    runs = [small("universal", seed=s) for s in (7, 7, 8)]
    histories = [fit_steps(m, binary_train, steps=2) for m in runs]
    assert histories[0] == histories[1]
    assert_weights_equal(runs[0], runs[1])
    assert histories[0] != histories[2]


def test_one_hot_and_integer_labels_train_identically(binary_train, labels):
    y = np.where(np.arange(512) % 4 == 0, -1, labels)
    one_hot = np.zeros((512, 10), np.float32)
    one_hot[y >= 0, y[y >= 0]] = 1  # unlabeled examples: all-zero rows.
    a, b = (small(prior="mixture", supervised="discriminator") for _ in range(2))
    assert fit_steps(a, binary_train, steps=2, y=y) == fit_steps(b, binary_train, steps=2, y=one_hot)
    assert_weights_equal(a, b)


def test_label_errors(binary_train, labels):
    model = small(prior="mixture", supervised="discriminator")
    x = binary_train[:32]
    fit = lambda y, m=model: m.fit(x, y, batch_size=32, verbose=0)  # noqa: E731
    assert_clear_error(lambda: fit(np.full(32, 10)), ValueError, "[-1, 10) (-1: unlabeled)",
                       "got values from 10 to 10")
    assert_clear_error(lambda: fit(np.full(32, -2)), ValueError, "got values from -2 to -2")
    assert_clear_error(lambda: fit(np.zeros((32, 11), np.float32)), ValueError,
                       "one-hot rows [batch, 10]", "width 11")
    assert_clear_error(lambda: fit(np.full((32, 10), 0.5, np.float32)), ValueError,
                       "not one-hot", "row sums from 5 to 5")
    assert_clear_error(lambda: fit(labels[:32].astype(np.float32),
                                   small(prior="mixture", supervised="discriminator")),
                       TypeError, "floating-point labels must be one-hot rows")
    # A step retraced for labels of another shape sees their rank only when it runs.
    assert_clear_error(lambda: fit(labels[:32].astype(np.float32)), ValueError,
                       "one-hot rows [batch, 10]", "got float32 labels of shape 32")
    assert_clear_error(lambda: fit(np.zeros((32, 2, 5), np.int32)), ValueError, "shape [32, 2, 5]")
    assert_clear_error(lambda: model.fit(x, batch_size=32, verbose=0), ValueError,
                       "supervised='discriminator' needs labels", "images alone")
    decoder = small(supervised="decoder")
    assert_clear_error(lambda: fit(np.full(32, -1), decoder), ValueError, "[0, 10)",
                       "got values from -1 to -1")
    assert_clear_error(lambda: decoder.decode(np.zeros((2, 2))), ValueError, "needs labels")
    assert_clear_error(lambda: decoder.decode(np.zeros((2, 2)), labels=[1, 2, 3]), ValueError,
                       "2 codes", "3 labels")
    # Unlabeled examples are fine for the discriminator variant, and labels are ignored without
    # supervision.
    assert np.isfinite(fit(np.full(32, -1)).history["generator_loss"][0])
    assert np.isfinite(fit(np.full(32, 99), small()).history["generator_loss"][0])


def test_bad_input_and_arguments(binary_train):
    model = small()
    assert_clear_error(lambda: model.fit((binary_train * 255).astype(np.uint8), verbose=0),
                       TypeError, "floating-point images in [0, 1]", "uint8")
    assert_clear_error(lambda: model.fit(np.zeros((8, 27, 28), np.float32), verbose=0),
                       ValueError, "[batch, 28, 28, 1]", "[None, 27, 28]")
    with_nan = binary_train[:32].copy()
    with_nan[0, 0, 0, 0] = np.nan
    assert_clear_error(lambda: model.fit(with_nan, batch_size=32, verbose=0), ValueError,
                       "non-finite values 1")
    assert_clear_error(lambda: model.compile(optimizer="adam"), TypeError,
                       "reconstruction_optimizer, discriminator_optimizer, generator_optimizer",
                       "['optimizer']")
    shared = keras.optimizers.Adam()
    assert_clear_error(lambda: model.compile(reconstruction_optimizer=shared, generator_optimizer=shared),
                       ValueError, "its own optimizer instance")
    assert_clear_error(lambda: small(posterior="flow"), ValueError, "posterior", "'flow'")
    assert_clear_error(lambda: tfaae.AAE(supervised="labels"), ValueError, "supervised", "'labels'")
    assert_clear_error(lambda: tfaae.AAE(reconstruction="l1"), ValueError, "reconstruction", "'l1'")
    assert_clear_error(lambda: tfaae.AAE(latent_dim=0), ValueError, "latent_dim", "got 0")
    assert_clear_error(lambda: tfaae.AAE(observation_std=-1), ValueError, "observation_std")
    nets = networks.aae_networks("deterministic", 3, hidden_units=(8,))
    assert_clear_error(lambda: tfaae.AAE(encoder=nets["encoder"]), ValueError,
                       "encoder, decoder and discriminator together", "decoder=NoneType")
    assert_clear_error(lambda: tfaae.AAE(**nets, latent_dim=2), ValueError,
                       "latent_dim=2", "shape (3,)")
    assert_clear_error(lambda: tfaae.AAE(**nets, latent_dim=3, posterior="gaussian"), ValueError,
                       "returns (mean, log_std)", "MLP")
    assert_clear_error(lambda: model.decode(np.zeros((2, 5))), ValueError, "[batch, 2]", "[2, 5]")
    assert_clear_error(lambda: model.style_grid(), ValueError, "supervised='decoder'")
    assert_clear_error(lambda: model.log_weights(tf.zeros([2, 784]), 3), ValueError,
                       "posterior='gaussian'", "'deterministic'")
    # Images of another rank retrace the step with shapes relaxed to unknown rank: flat images
    # still work, and bad ones are caught when the step runs.
    fresh = small()
    fit_steps(fresh, binary_train)
    assert np.isfinite(fit_steps(fresh, binary_train.reshape(512, 784))["reconstruction_loss"][0])
    assert_clear_error(lambda: fresh.fit(np.zeros((32, 27, 28), np.float32), batch_size=32, verbose=0),
                       ValueError, "[batch, 28, 28, 1] (or [batch, 784])", "got shape 32 27 28")


def test_sampling_style_grid_and_reconstruction(binary_train, labels):
    model = small("gaussian", supervised="decoder")
    fit_steps(model, binary_train, steps=1, y=labels)
    grid = model.style_grid(num_styles=3, seed=2).numpy()
    assert grid.shape == (3, 10, 28, 28, 1) and 0 <= grid.min() and grid.max() <= 1
    # Each row is one style code decoded with every class; the columns differ.
    z = tfaae.priors.sample(model.prior, 3, keras.random.SeedGenerator(2))
    row = model.decode(tf.repeat(z[1:2], 10, 0), labels=np.arange(10)).numpy()
    np.testing.assert_allclose(grid[1], row, atol=1e-6)
    assert np.abs(grid[1, 0] - grid[1, 1]).max() > 1e-3
    samples = model.sample(5, seed=4)
    assert samples.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(samples, model.sample(5, seed=4))
    assert model.reconstruct(binary_train[:3], labels=labels[:3], seed=0).shape == (3, 28, 28, 1)
    # The discriminator variant's labeled samples come from the label's component.
    mixture_model = small(prior="mixture", supervised="discriminator")
    z = mixture_model.encode(binary_train[:4])
    assert z.shape == (4, 2)
    assert mixture_model.sample(4, seed=1, labels=[0, 1, 2, 3]).shape == (4, 28, 28, 1)


def test_mixed_bfloat16_keeps_losses_in_float32(binary_train):
    nets = networks.aae_networks("gaussian", 2, hidden_units=(32,), init_std=None,
                                 dtype="mixed_bfloat16", seed=0)
    model = tfaae.AAE(**nets, posterior="gaussian", latent_dim=2, seed=0, dtype="mixed_bfloat16")
    model.compile(**schedules.aae_adam_optimizers(1e-3))
    history = fit_steps(model, binary_train)
    assert np.isfinite([v[0] for v in history.values()]).all()
    assert model.log_weights(tf.reshape(binary_train[:2], [2, -1]), 3)["log_w"].dtype == tf.float32


def test_preset_is_the_papers_architecture():
    model = tfaae.AAE(latent_dim=8)
    dense = lambda i, o: i * o + o  # noqa: E731
    mlp = lambda i, o: dense(i, 1000) + dense(1000, 1000) + dense(1000, o)  # noqa: E731
    assert model.encoder.count_params() == mlp(784, 8)
    assert model.decoder.count_params() == mlp(8, 784)
    assert model.discriminator.count_params() == mlp(8, 1)
    assert all(layer.activation == "relu" for layer in (model.encoder, model.decoder, model.discriminator))
    kernel = np.asarray(model.encoder.hidden[1].kernel)
    assert kernel.std() == pytest.approx(0.01, rel=0.02) and abs(kernel.mean()) < 1e-4
    conditioned = tfaae.AAE(latent_dim=2, prior="mixture", supervised="discriminator", hidden_units=(16,))
    assert conditioned.discriminator.hidden[0].kernel.shape == (2 + 11, 16)
    decoder = tfaae.AAE(latent_dim=2, supervised="decoder", hidden_units=(16,)).decoder
    assert decoder.hidden[0].kernel.shape == (2 + 10, 16)
    assert tfaae.AAE(latent_dim=2, posterior="universal", noise_dim=5,
                     hidden_units=(16,)).encoder.hidden[0].kernel.shape == (789, 16)


@pytest.mark.parametrize("posterior,supervised", [("gaussian", "decoder"), ("deterministic", "none")])
def test_monitoring_hooks_give_the_aae_figures(binary_test, mnist, posterior, supervised):
    from tfaae import monitoring
    model = small(posterior=posterior, supervised=supervised)
    x, y = binary_test[:40], mnist["test"][1][:40]
    codes = np.asarray(model.latent_codes(x))
    assert codes.shape == (40, 2)
    np.testing.assert_array_equal(codes, model.latent_codes(x))  # deterministic for the map.
    params = model.posterior_parameters(x)
    assert sorted(params) == (["mean", "std"] if posterior == "gaussian" else ["code"])
    if posterior == "gaussian":
        np.testing.assert_allclose(params["mean"], codes)
    prior = np.asarray(model.prior_samples(4000, seed=1))
    assert prior.shape == (4000, 2) and abs(prior.std() - 1) < 0.05
    found = monitoring.model_figures(model, x, y, num_samples=20, num_reconstructions=10)
    expected = {"samples", "reconstructions", "latent_map"} | (
        {"style_grid"} if supervised == "decoder" else set())
    assert set(found) == expected
