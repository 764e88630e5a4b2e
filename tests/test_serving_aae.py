"""Serving the adversarial autoencoder: its signatures, answered by a fresh TensorFlow-only process.

Three configurations cover the AAE's branches: a Gaussian posterior (which also serves
`log_likelihood`), a deterministic encoder with the label given to the decoder (a `labels` input),
and a universal-approximator encoder on the 10-Gaussian mixture with labels to the discriminator.
"""

import types

import numpy as np
import pytest
import tensorflow as tf

import tfaae
from harness import CARD_METRICS, fit_steps, save_load_roundtrip, small_aae
from test_serving import (OPTIONS, SEED, STATEFUL_OPS, assert_outputs_close, grpc,
                          keras_log_likelihood, outputs)
from tf_serving import serve_in_fresh_process

CONFIGS = {
    "gaussian": dict(posterior="gaussian", latent_dim=3),
    "decoder": dict(posterior="deterministic", latent_dim=3, supervised="decoder"),
    "universal": dict(posterior="universal", latent_dim=2, prior="mixture",
                      supervised="discriminator"),
}
LABELS = np.array([3, 0, 9, 1, 5], np.int32)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def exported(request, binary_train, binary_test, tmp_path_factory):
    """A small AAE fitted for two steps, saved and loaded (.keras), exported, with its answers."""
    tmp = tmp_path_factory.mktemp(request.param)
    model = small_aae(**CONFIGS[request.param])
    labeled = model.supervised != "none"
    fit_steps(model, binary_train, steps=2, y=np.arange(len(binary_train)) % 10 if labeled else None)
    model = save_load_roundtrip(model, binary_test[:4], str(tmp / "m.keras"),
                                lambda m, x: m.latent_codes(x))
    base = tmp / "saved_models" / "aae"
    tfaae.export(model, base / "1", OPTIONS)
    x = binary_test[:5]
    flat = tf.reshape(x, [5, -1])
    z = np.random.default_rng(0).normal(size=(5, model.latent_dim)).astype(np.float32)
    label_input = {"labels": LABELS} if model.supervised == "decoder" else {}
    decoder_labels = LABELS if label_input else None
    if model.posterior == "gaussian":
        mean, log_std = model.encoder(flat)
        code = {"code": mean, "mean": mean, "std": tf.exp(log_std)}
    else:  # the served code draws the encoder's noise from seed [0, 0].
        code = {"code": model.codes(flat, tf.constant([0, 0], tf.int64))}
    sample_z, sample_logits, sample_labels = model.generate(4, seed=tf.constant(SEED, tf.int64))
    expected = {
        "encode": code,
        "decode": {"logits": model.decode_logits(z, decoder_labels)},
        "reconstruct": {"logits": model.decode_logits(code["code"], decoder_labels)},
        "sample": {"z": sample_z, "logits": sample_logits,
                   **({"labels": sample_labels} if sample_labels is not None else {})},
    }
    if model.posterior == "gaussian":
        expected["log_likelihood"] = {"log_likelihood": keras_log_likelihood(model, x, OPTIONS)}
    for name in ("decode", "reconstruct", "sample"):
        logits = tf.reshape(expected[name]["logits"], [-1, *model.image_shape])
        expected[name].update(logits=logits, probabilities=tf.sigmoid(logits))
    expected = {name: {k: np.asarray(v) for k, v in out.items()} for name, out in expected.items()}
    requests = {
        "encode": grpc("encode", images=x), "default": grpc(images=x),
        "decode": grpc("decode", z=z, **label_input),
        "reconstruct": grpc("reconstruct", images=x, **label_input),
        "sample": grpc("sample", num_samples=np.int32(4), seed=np.array(SEED, np.int64)),
        "log_likelihood": grpc("log_likelihood", images=x),
        "out_of_range": grpc("reconstruct", images=x * 3, **label_input),
    }
    if label_input:
        requests["bad_label"] = grpc("decode", z=z, labels=np.array([0, 1, 2, 3, 10], np.int32))
        requests["few_labels"] = grpc("decode", z=z, labels=LABELS[:2])
    served = serve_in_fresh_process(base, requests, tmp)
    return types.SimpleNamespace(model=model, expected=expected, served=served)


def test_signatures_and_graph(exported):
    served, expected = exported.served, exported.expected
    assert not served["modules"]["tfaae"] and not served["modules"]["tensorflow_probability"]
    assert set(served["op_types"]) == set(expected) | {"serving_default"}
    assert served["warmup_count"] == len(expected)
    for name, op_types in served["op_types"].items():
        assert not STATEFUL_OPS & set(op_types), name


def test_every_signature_gives_the_keras_models_numbers(exported):
    responses = exported.served["responses"]
    for name, values in exported.expected.items():
        assert_outputs_close(outputs(responses[name]), values)
    assert_outputs_close(outputs(responses["default"]), exported.expected["encode"])
    if exported.model.posterior != "gaussian":  # no density: no importance-sampled likelihood.
        assert responses["log_likelihood"][:2] == ("error", "FAILED_PRECONDITION")


def test_bad_requests_get_clear_errors(exported):
    responses = exported.served["responses"]
    assert responses["out_of_range"][:2] == ("error", "INVALID_ARGUMENT")
    assert "images must hold finite values in [0, 1]" in responses["out_of_range"][2]
    if exported.model.supervised == "decoder":
        for name, fragment in [("bad_label", "labels must be between 0 and 9"),
                               ("few_labels", "labels must have one class per row")]:
            kind, code, message = responses[name]
            assert (kind, code) == ("error", "INVALID_ARGUMENT") and fragment in message, message


def test_component_error_card_metric_by_hand():
    """Codes nearest to component 0, 1, 1, 2 for classes 0, 1, 2, 2: one of four is wrong."""
    check = {"components": [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]}
    codes = np.array([[0.5, 0.1], [3.0, 1.0], [2.9, 0.2], [-0.5, 3.5]], np.float32)
    assert CARD_METRICS["component_error"]({"code": codes}, np.array([0, 1, 2, 2]), check) == 25.0
