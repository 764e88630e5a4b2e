"""tfaae.optimizers.Adam (one fused kernel per variable) against Kingma & Ba's algorithm in NumPy,
against Keras's Adam, in a traced train step, and through save/load."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfaae
from harness import fit_steps, save_load_roundtrip, small_model
from tfaae import schedules, training

SHAPES = [(5, 3), (3,)]


def _gradients(step):
    rng = np.random.default_rng(step)
    return [rng.normal(0, 1 + step, shape).astype(np.float32) for shape in SHAPES]


def _train(optimizer, steps=6):
    """`steps` updates of two variables with fixed gradients in a tf.function; the variables."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]

    @tf.function
    def apply(grads):
        optimizer.apply(grads, variables)

    for step in range(steps):
        apply([tf.constant(g) for g in _gradients(step)])
    return [v.numpy() for v in variables]


def _numpy_adam(learning_rates, beta_1=0.9, beta_2=0.999, epsilon=1e-4):
    """Kingma & Ba 2015, algorithm 1 with epsilon added to sqrt(v) after the step-size correction
    (Keras's and TensorFlow's form), in float64."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=shape).astype(np.float32).astype(np.float64) for shape in SHAPES]
    m = [np.zeros(shape) for shape in SHAPES]
    v = [np.zeros(shape) for shape in SHAPES]
    for step, rate in enumerate(learning_rates):
        t = step + 1
        for i, g in enumerate(_gradients(step)):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g ** 2
            alpha = rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
            weights[i] = weights[i] - alpha * m[i] / (np.sqrt(v[i]) + epsilon)
    return weights


def test_updates_follow_the_algorithm_and_keras_adam():
    rates = keras.optimizers.schedules.PiecewiseConstantDecay([2], [1e-2, 3e-3])
    fused = _train(tfaae.optimizers.Adam(rates, epsilon=1e-4))
    expected = _numpy_adam([1e-2] * 3 + [3e-3] * 3)
    plain = _train(keras.optimizers.Adam(rates, epsilon=1e-4))
    for f, e, p in zip(fused, expected, plain):
        np.testing.assert_allclose(f, e, rtol=0, atol=2e-6)
        np.testing.assert_allclose(f, p, rtol=0, atol=1e-6)


def test_amsgrad_takes_the_keras_path():
    np.testing.assert_array_equal(
        _train(tfaae.optimizers.Adam(1e-2, amsgrad=True))[0],
        _train(keras.optimizers.Adam(1e-2, amsgrad=True))[0])


def test_the_train_step_runs_one_fused_kernel_per_variable(binary_train):
    model = small_model(tfaae.IWAE, num_samples=2, optimizer=tfaae.optimizers.Adam(1e-3))
    model.build_optimizers()
    x = tf.reshape(binary_train[:8], [8, -1])
    graph = tf.function(model.train_step).get_concrete_function(x).graph
    kinds = [op.type for op in graph.get_operations()]
    assert kinds.count("ResourceApplyAdam") == len(model.trainable_variables)
    assert "AssignSubVariableOp" not in kinds


def test_save_load_keeps_the_optimizer_and_training_continues(binary_train, tmp_path):
    model = small_model(tfaae.VAE, num_samples=2,
                        optimizer=tfaae.optimizers.Adam(1e-3, epsilon=1e-4))
    fit_steps(model, binary_train, steps=2)
    loaded = save_load_roundtrip(model, binary_train[:8], str(tmp_path / "m.keras"),
                                 lambda m, x: m.reconstruct(x))
    assert type(loaded.optimizer) is tfaae.optimizers.Adam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    fit_steps(loaded, binary_train, steps=1)
    assert int(loaded.optimizer.iterations) == 3


@pytest.mark.parametrize("make", [lambda: schedules.burda_optimizer(100),
                                  lambda: training.RECIPES["iwae"].optimizers(
                                      {"schedule": "constant", "learning_rate": 1e-3}, 100, 1)["optimizer"]])
def test_the_papers_and_the_cli_optimizers_are_fused(make):
    optimizer = make()
    assert isinstance(optimizer, tfaae.optimizers.Adam) and optimizer.epsilon == 1e-4
