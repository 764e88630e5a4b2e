"""Serving: SavedModels checked against TF Serving's contract without a TF Serving binary.

A trained model goes through save, load and export; a fresh Python process that imports only
TensorFlow and the serving API protos (tests/tf_serving.py) loads the version as the model server
does, replays its warmup requests, and answers gRPC `PredictRequest`s and REST JSON bodies, whose
numbers must be the Keras model's. `saved_model_cli` lists and runs the signatures.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from tensorflow_serving.apis import predict_pb2

import tfaae
from harness import (assert_clear_error, card_images, check_model_card, committed_saved_models,
                     exact_log_px, fit_steps, one_dimensional_vae, run_cli, save_load_roundtrip,
                     small_model)
from tf_serving import serve_in_fresh_process
from tfaae import networks, random, serving

OPTIONS = serving.ExportOptions(log_likelihood_samples=64, chunk_size=24, log_likelihood_seed=5)
SEED = [7, 11]
# Ops that read or write state: none may appear in a served graph (concurrent requests would share
# RNG state, or a request would change the model).
STATEFUL_OPS = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "RngReadAndSkip",
                "RngSkip", "StatefulStandardNormalV2", "StatefulUniform", "RandomStandardNormal",
                "RandomUniform", "RandomUniformInt", "PyFunc", "EagerPyFunc"}
SIGNATURES = {"encode", "decode", "reconstruct", "sample", "log_likelihood"}


def grpc(signature=None, **inputs):
    """A `PredictRequest` built with tensorflow-serving-api, as a gRPC client would send it."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "model"
    if signature:
        request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return "grpc", request


def rest(**body):
    return "rest", json.dumps(body)


def keras_log_likelihood(model, x, options):
    """The `log_likelihood` signature's estimate from the model's log weights, chunk by chunk:
    log (1/k) sum_i w_i over all k = 64 weights at once (24 + 24 + 16, seeds folded per chunk)."""
    seed = tf.constant([options.log_likelihood_seed, 0], tf.int64)
    flat = tf.reshape(x, [len(x), -1])
    sizes = [24, 24, 16]
    log_w = np.concatenate([
        model.log_weights(flat, k, seed=random.fold_in(seed, c), shared_noise=True)["log_w"].numpy()
        for c, k in enumerate(sizes)])
    return logsumexp(log_w, axis=0) - np.log(sum(sizes))


@pytest.fixture(scope="module")
def export_model(binary_train, binary_test, tmp_path_factory):
    """Builds (once per model kind) a model fitted for two steps, saved and loaded (.keras), then
    exported; returns it with Keras's numbers for the requests below."""
    cache = {}

    def build(cls, layers):
        if (cls, layers) not in cache:
            cache[cls, layers] = _export(cls, layers, binary_train, binary_test,
                                         tmp_path_factory.mktemp(cls.__name__))
        return cache[cls, layers]

    return build


def _export(cls, layers, binary_train, binary_test, tmp):
    model = small_model(cls, layers, num_samples=3)
    fit_steps(model, binary_train, steps=2)
    loaded = save_load_roundtrip(model, binary_test[:4], str(tmp / "m.keras"),
                                 lambda m, x: m.reconstruct(x))
    base = tmp / "saved_models" / cls.__name__.lower()
    path = tfaae.export(loaded, base / "1", OPTIONS)
    x = binary_test[:5]
    z = np.random.default_rng(0).normal(size=(3, model.latent_dims[-1])).astype(np.float32)
    encoded = model.encode(x)
    expected = {
        "encode": {"mean": encoded[-1][0], "std": encoded[-1][1],
                   **{f"{s}_{l}": encoded[l - 1][i] for l in range(1, layers)
                      for i, s in enumerate(("mean", "std"))}},
        "decode": {"logits": model.decode(z)},
        "reconstruct": {"logits": model.decode(encoded[-1][0])},
        "log_likelihood": {"log_likelihood": keras_log_likelihood(model, x, OPTIONS)},
    }
    sample_z, sample_logits = model.generate(4, seed=tf.constant(SEED, tf.int64))
    expected["sample"] = {"z": sample_z, "logits": sample_logits}
    for outputs in expected.values():
        if "logits" in outputs:
            outputs["probabilities"] = tf.sigmoid(outputs["logits"])
    expected = {name: {k: np.asarray(v) for k, v in out.items()} for name, out in expected.items()}
    return types.SimpleNamespace(model=model, base=base, path=path, x=x, z=z, layers=layers,
                                 expected=expected, tmp=tmp)


@pytest.fixture(scope="module", params=[(tfaae.VAE, 1), (tfaae.IWAE, 2)], ids=["vae", "iwae"])
def exported(request, export_model):
    return export_model(*request.param)


@pytest.fixture(scope="module")
def iwae_exported(export_model):
    """The two-layer IWAE alone, for checks that need one model."""
    return export_model(tfaae.IWAE, 2)


@pytest.fixture(scope="module")
def served(exported):
    """The answers of a fresh-process model server to every request below."""
    x, z = exported.x, exported.z
    requests = {
        "encode": grpc("encode", images=x), "decode": grpc("decode", z=z),
        "reconstruct": grpc("reconstruct", images=x),
        "log_likelihood": grpc("log_likelihood", images=x),
        "sample": grpc("sample", num_samples=np.int32(4), seed=np.array(SEED, np.int64)),
        "default": grpc(images=x),
        "filtered": grpc("reconstruct", images=x),
        # REST: row format (instances) and columnar format (inputs).
        "rest_encode_rows": rest(signature_name="encode", instances=x.tolist()),
        "rest_ll_rows": rest(signature_name="log_likelihood",
                             instances=[{"images": image} for image in x.tolist()]),
        "rest_sample_columns": rest(signature_name="sample",
                                    inputs={"num_samples": 4, "seed": SEED}),
        "rest_decode_columns": rest(signature_name="decode", inputs={"z": z.tolist()}),
        "rest_reconstruct_columns": rest(signature_name="reconstruct", inputs=x.tolist()),
        # Bad requests.
        "out_of_range": grpc("reconstruct", images=x * 3),
        "nan": grpc("encode", images=np.where(x > 0, np.nan, x).astype(np.float32)),
        "wrong_shape": grpc("encode", images=x[:, :27]),
        "flat": grpc("encode", images=x.reshape(5, -1)),
        "float64": grpc("encode", images=x.astype(np.float64)),
        "zero_samples": grpc("sample", num_samples=np.int32(0), seed=np.array(SEED, np.int64)),
        "too_many_samples": grpc("sample", num_samples=np.int32(10**6),
                                 seed=np.array(SEED, np.int64)),
        "long_seed": grpc("sample", num_samples=np.int32(2), seed=np.array([1, 2, 3], np.int64)),
        "nan_z": grpc("decode", z=np.full_like(z, np.nan)),
        "unknown_signature": grpc("classify", images=x),
        "missing_input": grpc("sample", num_samples=np.int32(2)),
        "rest_out_of_range": rest(signature_name="encode", instances=(x * 3).tolist()),
        "rest_sample_rows": rest(signature_name="sample",
                                 instances=[{"num_samples": 4, "seed": SEED}]),
    }
    requests["filtered"][1].output_filter.append("probabilities")
    return serve_in_fresh_process(exported.base, requests, exported.tmp)


def outputs(response):
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def assert_outputs_close(actual, expected):
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-4, err_msg=key)


def test_fresh_process_loads_without_tfaae_and_replays_warmup(served):
    assert served["modules"]["tfaae"] is False
    assert served["modules"]["tensorflow_probability"] is False
    assert served["version"] == 1
    assert served["warmup_count"] == len(SIGNATURES)  # one request per signature, all served.
    assert set(served["op_types"]) == SIGNATURES | {"serving_default"}
    for name, op_types in served["op_types"].items():
        assert not STATEFUL_OPS & set(op_types), name
        assert {"EnsureShape", "ReadVariableOp"} <= set(op_types), name
    assert "StatelessRandomNormalV2" in served["op_types"]["sample"]
    assert "StatelessRandomNormalV2" in served["op_types"]["log_likelihood"]


def test_every_signature_gives_the_keras_models_numbers(exported, served):
    responses = served["responses"]
    for name in SIGNATURES:
        assert responses[name].model_spec.signature_name == name
        assert responses[name].model_spec.version.value == 1
        assert_outputs_close(outputs(responses[name]), exported.expected[name])
    assert responses["default"].model_spec.signature_name == "serving_default"
    assert_outputs_close(outputs(responses["default"]), exported.expected["encode"])
    assert set(outputs(responses["filtered"])) == {"probabilities"}
    expected_keys = {"mean", "std"} | ({"mean_1", "std_1"} if exported.layers == 2 else set())
    assert set(exported.expected["encode"]) == expected_keys


def test_rest_row_and_columnar_formats(exported, served):
    responses, expected = served["responses"], exported.expected

    def body(name):
        status, text = responses[name][1:]
        assert status == 200, text
        return json.loads(text)

    rows = body("rest_encode_rows")["predictions"]  # several outputs: one object per row.
    assert len(rows) == 5 and set(rows[0]) == set(expected["encode"])
    for key, value in expected["encode"].items():
        np.testing.assert_allclose([row[key] for row in rows], value, rtol=1e-5, atol=1e-5)
    scores = body("rest_ll_rows")["predictions"]  # one output: a plain list.
    np.testing.assert_allclose(scores, expected["log_likelihood"]["log_likelihood"], rtol=1e-5)
    for name, signature in [("rest_sample_columns", "sample"), ("rest_decode_columns", "decode"),
                            ("rest_reconstruct_columns", "reconstruct")]:
        columns = body(name)["outputs"]
        assert_outputs_close({k: np.asarray(v, np.float32) for k, v in columns.items()},
                             expected[signature])


@pytest.mark.parametrize("name,code,fragments", [
    ("out_of_range", "INVALID_ARGUMENT", ["images must hold finite values in [0, 1]", "[max] [3]"]),
    ("nan", "INVALID_ARGUMENT", ["images must hold finite values in [0, 1]",
                                 "[non-finite values]"]),
    ("wrong_shape", "INVALID_ARGUMENT", ["images [5,27,28,1] is not compatible with expected "
                                         "shape [?,28,28,1]"]),
    ("flat", "INVALID_ARGUMENT", ["images [5,784] is not compatible with expected shape "
                                  "[?,28,28,1]"]),
    ("float64", "INVALID_ARGUMENT", ["expected to be a float tensor but is a double tensor"]),
    ("zero_samples", "INVALID_ARGUMENT", ["num_samples must be between 1 and 10000; got] [0]"]),
    ("too_many_samples", "INVALID_ARGUMENT", ["num_samples must be between 1 and 10000"]),
    ("long_seed", "INVALID_ARGUMENT", ["seed [3] is not compatible with expected shape [2]"]),
    ("nan_z", "INVALID_ARGUMENT", ["z must hold finite values"]),
    ("unknown_signature", "FAILED_PRECONDITION", ['Serving signature key "classify" not found']),
    ("missing_input", "INVALID_ARGUMENT", ["Missing but required: {seed}"]),
])
def test_bad_requests_get_clear_errors(served, name, code, fragments):
    kind, actual_code, message = served["responses"][name]
    assert (kind, actual_code) == ("error", code)
    for fragment in fragments:
        assert fragment in message, message


def test_bad_rest_requests_get_json_errors(served):
    for name, fragment in [("rest_out_of_range", "images must hold finite values in [0, 1]"),
                           ("rest_sample_rows", "num_samples [1] is not compatible with expected "
                                                "shape []")]:
        _, status, text = served["responses"][name]
        assert status == 400 and fragment in json.loads(text)["error"]


def test_same_seed_same_samples_across_loads_and_threads(exported, served):
    """The fresh process's samples equal this process's load's; concurrent calls share no state."""
    signature = tf.saved_model.load(exported.path).signatures["sample"]

    def draw(seed, n=4):
        return signature(num_samples=tf.constant(n), seed=tf.constant(seed, tf.int64))

    np.testing.assert_array_equal(draw(SEED)["probabilities"],
                                  outputs(served["responses"]["sample"])["probabilities"])
    assert not np.allclose(draw([7, 12])["z"], draw(SEED)["z"])
    nine, four = draw(SEED, 9), draw(SEED)  # the first n of N samples are the n samples.
    np.testing.assert_array_equal(nine["z"][:4], four["z"])
    np.testing.assert_allclose(nine["probabilities"][:4], four["probabilities"], atol=1e-6)
    seeds = [[s, 1] for s in range(8)]
    sequential = [draw(s)["z"].numpy() for s in seeds]
    concurrent = [None] * len(seeds)

    def worker(i):
        concurrent[i] = draw(seeds[i])["z"].numpy()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(sequential, concurrent):
        np.testing.assert_array_equal(a, b)


def test_log_likelihood_score_of_an_image_ignores_the_rest_of_the_batch(exported):
    signature = tf.saved_model.load(exported.path).signatures["log_likelihood"]
    batch = signature(images=tf.constant(exported.x))["log_likelihood"].numpy()
    alone = [signature(images=tf.constant(exported.x[i:i + 1]))["log_likelihood"].numpy()[0]
             for i in (0, 3)]
    np.testing.assert_allclose(alone, batch[[0, 3]], rtol=1e-6)
    assert signature(images=tf.zeros([0, 28, 28, 1]))["log_likelihood"].shape == (0,)


def test_log_likelihood_signature_matches_the_exact_log_likelihood(tmp_path):
    """Against NumPy quadrature of log p(x) for a 1-D latent: the served estimate with k = 5000."""
    model = one_dimensional_vae(pixels=10)
    x = (np.random.default_rng(0).random((40, 10)) < 0.4).astype(np.float32)
    path = tfaae.export(model, tmp_path / "one_d" / "1", serving.ExportOptions(
        log_likelihood_samples=5000, chunk_size=1000), warmup=False)
    served = tf.saved_model.load(path).signatures["log_likelihood"](images=tf.constant(x))
    exact = exact_log_px(model, x.astype(np.float64))
    error = served["log_likelihood"].numpy() - exact
    assert abs(error.mean()) < 0.05 and np.abs(error).max() < 0.2


def test_saved_model_cli_shows_and_runs_the_signatures(iwae_exported, tmp_path):
    exported = iwae_exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", exported.path, "--all"], capture_output=True,
                           text=True, check=True).stdout
    listed = parse_saved_model_cli(shown)
    image = ("DT_FLOAT", "(-1, 28, 28, 1)")
    assert listed["encode"] == {"inputs": {"images": image},
                                "outputs": {"mean": ("DT_FLOAT", "(-1, 6)"),
                                            "std": ("DT_FLOAT", "(-1, 6)"),
                                            "mean_1": ("DT_FLOAT", "(-1, 12)"),
                                            "std_1": ("DT_FLOAT", "(-1, 12)")}}
    assert listed["serving_default"] == listed["encode"]
    assert listed["decode"] == {"inputs": {"z": ("DT_FLOAT", "(-1, 6)")},
                                "outputs": {"logits": image, "probabilities": image}}
    assert listed["reconstruct"] == {"inputs": {"images": image},
                                     "outputs": {"logits": image, "probabilities": image}}
    assert listed["sample"] == {"inputs": {"num_samples": ("DT_INT32", "()"),
                                           "seed": ("DT_INT64", "(2)")},
                                "outputs": {"logits": image, "probabilities": image,
                                            "z": ("DT_FLOAT", "(-1, 6)")}}
    assert listed["log_likelihood"] == {"inputs": {"images": image},
                                        "outputs": {"log_likelihood": ("DT_FLOAT", "(-1)")}}
    np.save(tmp_path / "x.npy", exported.x)
    for signature, args in [("sample", ["--input_exprs", f"num_samples=4;seed={SEED}"]),
                            ("encode", ["--inputs", f"images={tmp_path / 'x.npy'}"])]:
        outdir = tmp_path / signature
        subprocess.run([cli, "run", "--dir", exported.path, "--tag_set", "serve", "--signature_def",
                        signature, *args, "--outdir", str(outdir)], capture_output=True, check=True)
        assert_outputs_close({f[:-4]: np.load(outdir / f) for f in os.listdir(outdir)},
                             exported.expected[signature])


def parse_saved_model_cli(text):
    """{signature: {"inputs": {alias: (dtype, shape)}, "outputs": {...}}} from `show --all`."""
    listed, current, side, alias = {}, None, None, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("signature_def['"):
            current = listed.setdefault(line.split("'")[1], {"inputs": {}, "outputs": {}})
        elif current is not None and line.startswith(("inputs['", "outputs['")):
            side, alias = line.split("[")[0], line.split("'")[1]
        elif current is not None and line.startswith("dtype:"):
            dtype = line.split()[1]
        elif current is not None and line.startswith("shape:") and alias:
            current[side][alias] = (dtype, line.split(":", 1)[1].strip())
            alias = None
    listed.pop("__saved_model_init_op", None)
    return listed


def test_export_layout_metadata_and_atomic_writes(iwae_exported, tmp_path, monkeypatch):
    exported, path = iwae_exported, iwae_exported.path
    assert sorted(os.listdir(path)) == ["assets", "assets.extra", "fingerprint.pb",
                                        "saved_model.pb", "variables"]
    assert sorted(os.listdir(os.path.join(path, "assets.extra"))) == [
        "tf_serving_warmup_requests", "tfaae_export.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o777 & ~umask  # not a temporary dir's 0o700.
    metadata = json.loads(open(os.path.join(path, serving.METADATA_FILE)).read())
    assert metadata["serving_default"] == "encode" and set(metadata["signatures"]) == SIGNATURES
    assert metadata["options"]["log_likelihood_samples"] == 64
    assert metadata["signatures"]["sample"]["inputs"] == {
        "num_samples": {"dtype": "int32", "shape": []}, "seed": {"dtype": "int64", "shape": [2]}}
    model = exported.model
    via_keras = model.export(str(tmp_path / "via_keras" / "1"), options=OPTIONS, warmup=False)
    assert tf.saved_model.load(via_keras).signatures.keys() == SIGNATURES | {"serving_default"}
    assert_clear_error(lambda: tfaae.export(model, path), ValueError, "exists",
                       "new version number")
    assert_clear_error(lambda: tfaae.export(model, tmp_path / "vae"), ValueError,
                       "<base>/<model_name>/<integer version>", "vae")
    assert_clear_error(lambda: tfaae.export(keras.Sequential(), tmp_path / "m" / "1"), TypeError,
                       "No serving signatures are declared for Sequential")
    assert_clear_error(lambda: serving.ExportOptions(log_likelihood_samples=0), ValueError,
                       "log_likelihood_samples", "got 0")
    # A failure half-way leaves nothing a server could pick up, and the old version intact.
    base = tmp_path / "atomic" / "vae"
    tfaae.export(model, base / "1", OPTIONS, warmup=False)
    before = open(base / "1" / "saved_model.pb", "rb").read()

    def fail(archive, directory, **kwargs):
        open(os.path.join(directory, "saved_model.pb"), "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", fail)
    for version, overwrite in (("2", False), ("1", True)):
        with pytest.raises(OSError, match="disk full"):
            tfaae.export(model, base / version, OPTIONS, overwrite=overwrite)
    assert os.listdir(base) == ["1"]
    assert open(base / "1" / "saved_model.pb", "rb").read() == before


def test_cli_exports_a_run_directory(iwae_exported, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    iwae_exported.model.save(run / "model.keras")
    proc = run_cli("export", run, tmp_path / "saved_models" / "iwae" / "3",
                   "--log-likelihood-samples", 10, "--no-warmup")
    assert proc.returncode == 0, proc.stderr
    assert "(IWAE) to" in proc.stdout and "signatures: decode, encode, log_likelihood, " \
           "reconstruct, sample (serving_default: encode)" in proc.stdout
    path = tmp_path / "saved_models" / "iwae" / "3"
    assert os.listdir(path / "assets.extra") == ["tfaae_export.json"]
    metadata = json.loads((path / serving.METADATA_FILE).read_text())
    assert metadata["options"]["log_likelihood_samples"] == 10
    assert metadata["options"]["chunk_size"] == serving.ExportOptions().chunk_size
    proc = run_cli("export", run, tmp_path / "flat")
    assert proc.returncode == 2 and "integer version" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_model_card_check(iwae_exported, mnist, tmp_path):
    """The helper that checks committed models passes an honest card and fails a wrong one; the
    card's value here comes from `tfaae.log_likelihood` on the Keras model (independent noise)."""
    base = tmp_path / "saved_models" / "card"
    exported = iwae_exported
    shutil.copytree(exported.path, base / "1")
    check = {"signature": "log_likelihood", "metric": "nll", "images": 150,
             "binarization_seed": 4, "tolerance": 1.0}
    nll = -tfaae.log_likelihood(exported.model, card_images(mnist, check)[0], num_samples=64,
                                seed=3).mean()
    card = base / "README.md"
    for value, honest in ((nll, True), (nll + 3, False)):
        card.write_text(f"# card\n\n## Check\n\n```json\n{json.dumps({**check, 'value': value})}"
                        f"\n```\n")
        if honest:
            assert abs(check_model_card(base, mnist, batch_size=64) - nll) < 1.0
        else:
            with pytest.raises(AssertionError, match="the model card says"):
                check_model_card(base, mnist)


@pytest.mark.parametrize("model_dir", committed_saved_models())
def test_committed_saved_models_match_their_model_cards(model_dir, mnist):
    check_model_card(model_dir, mnist)


def test_seeds_give_every_draw_its_own_noise(binary_train, monkeypatch):
    """Stateless seeds: one seed per stochastic layer and per chunk, reproducible; generators
    still advance."""
    model = small_model(tfaae.IWAE, 2)
    seeds = []
    normal = random.normal
    monkeypatch.setattr(random, "normal",
                        lambda shape, seed: seeds.append(seed) or normal(shape, seed))
    x = tf.reshape(binary_train[:3], [3, -1])
    def log_w(seed):
        return model.log_weights(x, 4, seed=tf.constant(seed, tf.int64))["log_w"]

    first = log_w([1, 2])
    assert len(seeds) == 2 and not np.array_equal(seeds[0], seeds[1])
    np.testing.assert_array_equal(first, log_w([1, 2]))
    assert not np.allclose(first, log_w([1, 3]))
    np.testing.assert_array_equal(model.sample(3, seed=5), model.sample(3, seed=tf.constant([5, 0])))
    assert not np.allclose(model.sample(3), model.sample(3))  # the model's generator advances.


def test_mixed_precision_model_serves_float32(binary_test, tmp_path):
    encoder, decoder = networks.burda_networks(latent_dims=(12, 6), hidden_units=((32,), (16,)),
                                               dtype="mixed_bfloat16", seed=1)
    model = tfaae.IWAE(encoder=encoder, decoder=decoder, num_samples=2, seed=1)
    path = tfaae.export(model, tmp_path / "mixed" / "1", OPTIONS, warmup=False)
    signatures = tf.saved_model.load(path).signatures
    x = tf.constant(binary_test[:3])
    answers = [signatures[name](images=x) for name in ("encode", "reconstruct", "log_likelihood")]
    answers += [signatures["decode"](z=tf.zeros([3, 6])),
                signatures["sample"](num_samples=tf.constant(3), seed=tf.constant(SEED, tf.int64))]
    for outputs in answers:
        for key, value in outputs.items():
            assert value.dtype == tf.float32 and np.isfinite(value.numpy()).all(), key
    np.testing.assert_allclose(answers[1]["probabilities"], model.reconstruct(x), atol=2e-2)
