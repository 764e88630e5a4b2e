"""Hostile input (hypothesis): random shapes, dtypes, NaNs, empty data, out-of-range labels and
malformed flags thrown at the public API, the CLI and the exported signatures. Each either works or
raises the documented clear error; nothing crashes, hangs or leaves a half-written file."""

import contextlib
import io as stdio
import os

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfaae
from harness import small_model
from tfaae import cli, serving, training, validation

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))

# What a tfaae error says: what was expected and what came.
CLEAR = ("must", "expected", "got", "needs", "Unknown", "not")

SHAPES = [(28, 28, 1), (784,), (28, 28), (27, 28, 1), (5,), (28, 28, 3), ()]
DTYPES = ["float32", "float64", "float16", "uint8", "int32", "bool"]
VALUES = ["binary", "grey", "nan", "inf", "negative", "above_one"]


def _images(batch, shape, dtype, values, rng):
    x = rng.random((batch, *shape))
    x = {"binary": (x > 0.5) * 1.0, "grey": x, "nan": np.where(x > 0.9, np.nan, x),
         "inf": np.where(x > 0.9, np.inf, x), "negative": x - 0.5, "above_one": x + 0.5}[values]
    with np.errstate(invalid="ignore"):
        return x.astype(dtype)


def _valid(shape, dtype, values, batch):
    return (shape in ((28, 28, 1), (784,), (28, 28)) and dtype.startswith("float")
            and values in ("binary", "grey") and batch > 0)


def _assert_clear(error):
    message = str(error)
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {message[:500]}"
    assert any(word in message for word in CLEAR), message[:500]
    assert "Traceback" not in message and len(message) < 2000, message[:500]


@pytest.fixture(scope="module")
def vae():
    return small_model(tfaae.VAE)


@pytest.fixture(scope="module")
def aae():
    from test_aae import small
    return small(prior="mixture", supervised="discriminator")


@SETTINGS
@given(batch=st.integers(0, 4), shape=st.sampled_from(SHAPES), dtype=st.sampled_from(DTYPES),
       values=st.sampled_from(VALUES), method=st.sampled_from(["fit", "evaluate", "predict"]))
def test_models_take_any_images_or_say_why_not(vae, batch, shape, dtype, values, method):
    x = _images(batch, shape, dtype, values, np.random.default_rng(batch))
    call = getattr(vae, method)
    try:
        out = call(x, batch_size=4, verbose=0, **({"epochs": 1} if method == "fit" else {}))
    except Exception as error:  # noqa: BLE001 (the test is about which errors come out)
        _assert_clear(error)
        assert not _valid(shape, dtype, values, batch), f"valid input refused: {error}"
        return
    assert _valid(shape, dtype, values, batch), \
        f"{method} accepted shape {shape}, dtype {dtype}, values {values}"
    if method == "predict":
        assert np.isfinite(np.asarray(out)).all()


@SETTINGS
@given(labels=st.lists(st.integers(-5, 14), min_size=4, max_size=4),
       dtype=st.sampled_from(["int32", "int64", "float32", "uint8"]),
       shape=st.sampled_from(["flat", "column", "one_hot", "wide"]))
def test_aae_labels_in_range_work_others_say_why_not(aae, labels, dtype, shape):
    y = np.array(labels)
    if shape == "column":
        y = y[:, None]
    elif shape in ("one_hot", "wide"):
        y = np.eye(10 if shape == "one_hot" else 12)[np.clip(y, 0, 9)]
    y = y.astype(dtype) if not (dtype == "uint8" and (y < 0).any()) else y.astype("int32")
    x = _images(4, (28, 28, 1), "float32", "binary", np.random.default_rng(0))
    ok = (shape in ("flat", "column") and y.dtype.kind in "iu" and all(-1 <= v < 10 for v in labels)) \
        or (shape == "one_hot" and y.dtype.kind == "f")
    try:
        aae.fit(x, y, batch_size=4, epochs=1, verbose=0)
    except Exception as error:  # noqa: BLE001
        _assert_clear(error)
        assert not ok, f"valid labels refused: {error}"
        return
    assert ok, f"accepted labels {y!r}"


FLAG_VALUES = st.sampled_from(["0", "-1", "1", "3", "1e38", "nan", "inf", "x", "", "2.5",
                               "99999999999999999999", "mirrored", "multi-worker", "--"])
FLAGS = st.sampled_from(["--epochs", "--batch-size", "--learning-rate", "--num-samples", "--layers",
                         "--seed", "--validation-size", "--latent-dim", "--prior", "--strategy",
                         "--collective-timeout", "--steps-per-execution", "--hidden-units",
                         "--eval-every", "--labels", "--bogus", "--precision"])


@SETTINGS
@given(model=st.sampled_from(["vae", "iwae", "aae", "gan"]),
       flags=st.lists(st.tuples(FLAGS, FLAG_VALUES), max_size=4))
def test_malformed_flags_get_a_clear_message_and_write_nothing(tmp_path_factory, model, flags):
    run = tmp_path_factory.mktemp("cli") / "run"
    # No data reachable: whatever the flags, the command must end with a clear message.
    argv = ["train", model, "--logdir", str(run), "--data-dir", str(run / "no-data"),
            "--no-download", *[part for flag in flags for part in flag]]
    err = stdio.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdio.StringIO()):
        try:
            status = cli.main(argv)
        except SystemExit as exit_:  # argparse: usage and the error.
            status = exit_.code
    message = err.getvalue()
    assert status == 2, message
    assert "error:" in message and "Traceback" not in message, message
    assert not run.exists(), f"{argv} left {os.listdir(run)}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "vae" / "1")
    serving.export(small_model(tfaae.VAE), path,
                   serving.ExportOptions(log_likelihood_samples=4, max_samples=8), warmup=False)
    return tf.saved_model.load(path).signatures


@SETTINGS
@given(name=st.sampled_from(["encode", "reconstruct", "log_likelihood"]),
       batch=st.integers(0, 3), shape=st.sampled_from(SHAPES),
       dtype=st.sampled_from(["float32", "float64", "int32"]), values=st.sampled_from(VALUES))
def test_signatures_answer_or_refuse_clearly(served, name, batch, shape, dtype, values):
    x = _images(batch, shape, dtype, values, np.random.default_rng(batch))
    ok = shape == (28, 28, 1) and dtype == "float32" and values in ("binary", "grey")
    try:
        outputs = served[name](images=tf.constant(x))
    except (TypeError, ValueError) as error:  # refused against the input signature.
        assert not ok and ("dtype" in str(error) or "shape" in str(error) or "float32" in str(error)
                           or "Tensor" in str(error)), str(error)[:500]
        return
    except tf.errors.InvalidArgumentError as error:  # the documented in-graph refusals.
        assert not ok and (validation.TAG in error.message
                           or "is not compatible with expected shape" in error.message
                           or "was expected to be a float tensor" in error.message), error.message
        return
    assert ok or batch == 0, f"{name} accepted shape {shape}, dtype {dtype}, values {values}"
    for value in outputs.values():
        assert np.isfinite(value.numpy()).all()


@SETTINGS
@given(num_samples=st.integers(-3, 12), seed=st.lists(st.integers(-2**40, 2**40), min_size=2, max_size=2))
def test_sample_signature_range(served, num_samples, seed):
    try:
        out = served["sample"](num_samples=tf.constant(num_samples, tf.int32),
                               seed=tf.constant(seed, tf.int64))
    except tf.errors.InvalidArgumentError as error:
        assert not 1 <= num_samples <= 8 and validation.TAG in error.message, error.message
        return
    assert 1 <= num_samples <= 8
    assert out["probabilities"].shape[0] == num_samples


def test_settings_of_the_library_are_checked_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for settings_, error in [({"strategy": "tpu"}, ValueError), ({"collective_timeout": 10}, ValueError),
                             ({"strategy": "multi-worker", "collective_timeout": 0}, ValueError),
                             ({"seed": -1}, ValueError), ({"batch_size": 2.5}, TypeError),
                             ({"strategy": "multi-worker"}, ValueError)]:  # no TF_CONFIG.
        with pytest.raises(error) as info:
            training.train(str(tmp_path / "run"), **settings_)
        _assert_clear(info.value)
        assert not (tmp_path / "run").exists()
