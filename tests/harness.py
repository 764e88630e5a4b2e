"""A shared test harness: short calls that every model's tests reuse.

small models, fit a step, save/load round trips, resuming from `BackupAndRestore`, fresh-process
checks, weight snapshots, clear-error assertions, the check of a committed SavedModel against its
model card, PNG checks, the tags of TensorBoard event files, and a real TensorBoard server to query.
"""

import contextlib
import glob
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import keras
import numpy as np
import pytest
from scipy.special import logsumexp

import tfaae
from tfaae import networks, schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_model(cls=tfaae.VAE, layers=1, optimizer=None, **kwargs):
    """A `cls` with small networks (latent 8, one layer, or 12-6, two layers) compiled with
    `optimizer` (default Keras's Adam at 1e-3)."""
    kwargs = {"seed": 3, **kwargs}
    dims = {1: ((8,), ((32,),)), 2: ((12, 6), ((32,), (16,)))}[layers]
    encoder, decoder = networks.burda_networks(latent_dims=dims[0], hidden_units=dims[1],
                                               seed=kwargs["seed"])
    model = cls(encoder=encoder, decoder=decoder, **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3, epsilon=1e-4))
    return model


def small_aae(posterior="deterministic", latent_dim=2, prior="gaussian", supervised="none", seed=3,
          hidden=(32,), optimizers=None, **kwargs):
    """A small AAE (Glorot-initialised 32-unit networks) compiled with Adam."""
    nets = networks.aae_networks(posterior, latent_dim, hidden_units=hidden, init_std=None,
                                 seed=seed)
    model = tfaae.AAE(**nets, posterior=posterior, latent_dim=latent_dim, prior=prior,
                      supervised=supervised, seed=seed, **kwargs)
    model.compile(**(optimizers or schedules.aae_adam_optimizers(1e-3)))
    return model


def one_dimensional_vae(pixels=10, seed=0):
    """A VAE with a 1-D latent over `pixels`-pixel images, with a decoder strong enough to matter:
    its exact log p(x) is `exact_log_px`."""
    encoder, decoder = networks.burda_networks(latent_dims=(1,), hidden_units=((16,),),
                                               input_dim=pixels, seed=seed)
    model = tfaae.VAE(encoder=encoder, decoder=decoder, image_shape=(pixels,), seed=seed)
    for variable in decoder[0].trainable_variables:
        variable.assign(variable * 3.0)
    return model


def exact_log_px(model, x):
    """log p(x) = log of the integral of N(z; 0, 1) p(x|z) dz, by NumPy quadrature on a fine grid,
    for a `one_dimensional_vae` and binary `x` `[batch, pixels]`."""
    z = np.linspace(-12, 12, 48_001)[:, None]
    hidden, head = model.decoder[0].hidden[0], model.decoder[0].logits
    h = np.tanh(z @ np.asarray(hidden.kernel) + np.asarray(hidden.bias))
    logits = h @ np.asarray(head.kernel) + np.asarray(head.bias)          # [grid, pixels]
    log_p_x_given_z = x @ (-np.logaddexp(0, -logits)).T + (1 - x) @ (-np.logaddexp(0, logits)).T
    log_prior = -0.5 * z[:, 0] ** 2 - 0.5 * np.log(2 * np.pi)
    dz = z[1, 0] - z[0, 0]
    return logsumexp(log_p_x_given_z + log_prior, axis=1) + np.log(dz)


def fit_steps(model, x, steps=1, batch_size=32, y=None, **kwargs):
    """Fits `steps` batches of `x` (and labels `y`) without shuffling; returns the history dict."""
    n = steps * batch_size
    history = model.fit(x[:n], None if y is None else y[:n], batch_size=batch_size, epochs=1,
                        shuffle=False, verbose=0, **kwargs)
    return history.history


def optimizer_state(model):
    """All optimizer variables of a model, as NumPy arrays (every optimizer it has)."""
    optimizers = [getattr(model, name) for name in getattr(model, "optimizer_names", ("optimizer",))]
    return [np.array(v) for opt in optimizers for v in opt.variables]


def snapshot(layer):
    """Copies of all weights of a layer or model, as NumPy arrays."""
    return [np.array(w) for w in layer.weights]


def changed_since(before, layer):
    """Whether any weight of `layer` differs from the snapshot `before`."""
    return any(not np.array_equal(b, np.array(w)) for b, w in zip(before, layer.weights))


class Interrupted(RuntimeError):
    """Raised by the harness to simulate a crash in the middle of `fit`."""


class _Interrupt(keras.callbacks.Callback):
    """Records the optimizer state at the start of the second epoch, then stops the run."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.state = optimizer_state(self.model)
            raise Interrupted("interrupted by the test")


class _StateAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.state = optimizer_state(self.model)


def interrupt_and_resume(build, x, backup_dir, batch_size=32, **fit_kwargs):
    """Fits `build()` for two epochs with `BackupAndRestore`, interrupting it after the first; then
    fits a fresh `build()` from the backup.

    Returns:
        (optimizer state when interrupted, optimizer state of the fresh model once restored).
    """
    interrupt = _Interrupt()
    with pytest.raises(Interrupted):
        build().fit(x, batch_size=batch_size, epochs=2, shuffle=False, verbose=0,
                    callbacks=[keras.callbacks.BackupAndRestore(backup_dir), interrupt], **fit_kwargs)
    restored = _StateAtStart()
    build().fit(x, batch_size=batch_size, epochs=2, shuffle=False, verbose=0,
                callbacks=[keras.callbacks.BackupAndRestore(backup_dir), restored], **fit_kwargs)
    return interrupt.state, restored.state


def assert_weights_equal(a, b, atol=0.0):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def save_load_roundtrip(model, x, path, output_fn):
    """Saves `model` to `path` (.keras), loads it, and checks weights, outputs and optimizer state.

    Returns the loaded model.
    """
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert_weights_equal(model, loaded)
    np.testing.assert_array_equal(np.asarray(output_fn(model, x)), np.asarray(output_fn(loaded, x)))
    state, loaded_state = optimizer_state(model), optimizer_state(loaded)
    assert len(state) == len(loaded_state) and len(state) > 0
    for s, t in zip(state, loaded_state):
        np.testing.assert_array_equal(s, t)
    # The noise goes on where it was: the seed generator's state comes back too.
    np.testing.assert_array_equal(model.seed_generator.state, loaded.seed_generator.state)
    return loaded


def run_python(code, env=None, timeout=600):
    """Runs `code` in a fresh Python process; returns its stdout parsed as JSON (last line)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout,
                          env={**cli_env(), **(env or {})})
    if proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(*args, timeout=900):
    """Runs the `tfaae` command; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "tfaae.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env=cli_env())


def assert_clear_error(fn, error_type, *fragments):
    """Calls `fn` and checks that it raises `error_type` whose message holds every fragment."""
    with pytest.raises(error_type) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in error message {message!r}"
    return message


# --------------------------------------------------------------------------------------------------
# Committed SavedModels and their model cards.

SAVED_MODELS = os.path.join(ROOT, "saved_models")

def _component_error(outputs, labels, check):
    """Percent of codes whose nearest mixture component (the card's `components`) is not their
    class's: the label-to-discriminator AAE sends class i to component i."""
    means = np.asarray(check["components"], np.float32)
    nearest = np.argmin(((outputs["code"][:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    return 100.0 * float(np.mean(nearest != labels))


# A card's metric from a signature's outputs over the check's images, their labels and the check.
CARD_METRICS = {
    "nll": lambda outputs, labels, check: -float(np.mean(outputs["log_likelihood"])),
    "component_error": _component_error,
    # Classification error in percent: argmax of the class probabilities against the labels.
    "error": lambda outputs, labels, check: float(100 * np.mean(
        np.argmax(outputs["probabilities"], axis=-1) != np.asarray(labels))),
}


def committed_saved_models():
    """The model directories under saved_models/ that hold an integer version and a model card."""
    if not os.path.isdir(SAVED_MODELS):
        return []
    return sorted(os.path.join(SAVED_MODELS, d) for d in os.listdir(SAVED_MODELS)
                  if os.path.exists(os.path.join(SAVED_MODELS, d, "README.md"))
                  and any(v.isdigit() for v in os.listdir(os.path.join(SAVED_MODELS, d))))


def model_card_check(model_dir):
    """The JSON block under the "## Check" heading of `model_dir/README.md`, e.g.

        {"signature": "log_likelihood", "metric": "nll", "images": 500, "binarization_seed": 1,
         "value": 87.9, "tolerance": 0.5}

    meaning: the signature's metric over the first `images` MNIST test images, binarized once with
    `binarization_seed`, is `value` within `tolerance`.
    """
    text = open(os.path.join(model_dir, "README.md"), encoding="utf-8").read()
    section = text.split("## Check", 1)[1]
    return json.loads(section.split("```json", 1)[1].split("```", 1)[0])


def card_images(mnist, check):
    """The check's images ([N, 28, 28, 1], binarized once with `binarization_seed`, grey levels
    when it is null) and labels from the MNIST test split."""
    from tfaae import data
    images, labels = (a[:check["images"]] for a in mnist["test"])
    images = data.to_unit_interval(images)
    if check.get("binarization_seed") is None:
        return images, labels
    return data.binarize_fixed(images, seed=check["binarization_seed"]), labels


def measure_model_card(model_dir, mnist, check=None, batch_size=100):
    """The card's metric, measured on the latest version of a SavedModel (loaded with TensorFlow
    only); `check` defaults to the card's own (a new card's value comes from here)."""
    import tensorflow as tf

    check = model_card_check(model_dir) if check is None else check
    version = max((v for v in os.listdir(model_dir) if v.isdigit()), key=int)
    signature = tf.saved_model.load(os.path.join(model_dir, version)).signatures[check["signature"]]
    images, labels = card_images(mnist, check)
    (key,) = signature.structured_input_signature[1]
    batches = [signature(**{key: tf.constant(images[i:i + batch_size])})
               for i in range(0, len(images), batch_size)]
    outputs = {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}
    return CARD_METRICS[check["metric"]](outputs, labels, check)


def check_model_card(model_dir, mnist, batch_size=100):
    """Checks a committed SavedModel's card: its metric, measured, within the card's tolerance.

    Returns:
        The measured value.

    Raises:
        AssertionError: naming the card, the value measured and the value claimed.
    """
    check = model_card_check(model_dir)
    measured = measure_model_card(model_dir, mnist, check, batch_size)
    assert abs(measured - check["value"]) <= check["tolerance"], (
        f"{model_dir}: {check['metric']} measured {measured:.4f}, the model card says "
        f"{check['value']} +/- {check['tolerance']}")
    return measured


def png_pixels(source):
    """Decodes a PNG (a path or bytes) to a uint8 array `[height, width, channels]`."""
    from PIL import Image
    data = source if isinstance(source, bytes) else open(source, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return np.asarray(Image.open(io.BytesIO(data)))


def assert_png(source, width, height, min_std=20.0):
    """Checks that a PNG has the given size and is not blank (pixel standard deviation above
    `min_std` grey levels); returns its pixels."""
    pixels = png_pixels(source)
    assert pixels.shape[:2] == (height, width), f"PNG is {pixels.shape[1]}x{pixels.shape[0]}, " \
                                                f"expected {width}x{height}"
    assert pixels[..., :3].std() > min_std, f"PNG looks blank (std {pixels[..., :3].std():.2f})"
    return pixels


def summary_tags(directory):
    """{tag: number of values} of every summary in the event files of one directory."""
    import tensorflow as tf
    tags = {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    return tags


@contextlib.contextmanager
def tensorboard_server(logdir, timeout=120):
    """Runs `tensorboard --logdir` on 127.0.0.1 at a port the OS picks free; yields the base URL
    once the server answers, and always stops the server (and its children) afterwards."""
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                             "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline, url = time.monotonic() + timeout, None
        while url is None:
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/", "".join(lines))
            url = found and found.group(1)
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("tensorboard did not start:\n" + "".join(lines)[-3000:])
            time.sleep(0.2)
        poll(lambda: http_json(url + "/data/runs"), lambda runs: runs is not None, timeout)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        reader.join(5)


def http_bytes(url, payload=None):
    """GETs `url` (POSTs `payload` as JSON when given) and returns the body."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def http_json(url, payload=None):
    return json.loads(http_bytes(url, payload))


def poll(fetch, ready, timeout=90, interval=0.5):
    """Calls `fetch()` until `ready(result)` holds (connection errors count as not ready);
    returns the result, or fails after `timeout` seconds with the last result."""
    deadline, result = time.monotonic() + timeout, None
    while True:
        try:
            result = fetch()
        except OSError as error:
            result = error
        if not isinstance(result, Exception) and ready(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last answer: {str(result)[:2000]}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# tf.distribute: the same training on one device and on several logical CPU devices.

_DEVICES_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * {devices})
import keras
sys.path.insert(0, "tests")
import tfaae
from harness import small_model

def build():
    model = {build}
    return model

rng = np.random.default_rng(0)
x = (rng.random(({examples}, 28, 28, 1)) > 0.5).astype("float32")
y = rng.integers(-1, 10, {examples}).astype("int32")
runs = {{}}
for name, strategy in (("one", tf.distribute.get_strategy()),
                       ("many", tf.distribute.MirroredStrategy(
                           [f"/cpu:{{i}}" for i in range({devices})]))):
    with strategy.scope():
        model = build()
    history = model.fit(x, y if {labels} else None, batch_size={batch_size}, epochs={epochs},
                        shuffle=False, verbose=0)
    names = getattr(model, "optimizer_names", ("optimizer",))
    runs[name] = {{"weights": [w.tolist() for w in model.get_weights()],
                  "history": history.history, "replicas": strategy.num_replicas_in_sync,
                  "iterations": [int(np.asarray(getattr(model, n).iterations.value)) for n in names],
                  "seed_state": np.asarray(model.seed_generator.state.value).tolist()}}
print(json.dumps(runs))
"""


def one_device_and_mirrored(build, examples=71, batch_size=32, epochs=1, devices=2, labels=False):
    """Trains the model that the Python expression `build` makes (in a fresh process: logical
    devices must be set before TensorFlow starts) once on the default device and once under
    `tf.distribute.MirroredStrategy` over `devices` logical CPU devices, on the same data.

    Returns:
        {"one": run, "many": run}, each run holding "weights" (lists), "history", "replicas",
        "iterations" (per optimizer) and "seed_state".
    """
    return run_python(_DEVICES_SCRIPT.format(build=build, examples=examples, batch_size=batch_size,
                                             epochs=epochs, devices=devices, labels=labels))


def max_weight_difference(a, b):
    """The largest absolute difference between two lists of weights (lists or arrays)."""
    assert len(a) == len(b)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)), initial=0.0)) for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------------
# Crashes: a `tfaae` command killed with SIGKILL at a chosen moment.

def cli_env():
    """The environment of `tfaae` subprocesses: this checkout's package first on the path."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path}


def kill_cli_when(args, ready, timeout=300, delay=0.0):
    """Starts `tfaae *args`, waits until `ready()` is true (polled), waits `delay` seconds more
    and kills the process with SIGKILL (no clean-up of any kind runs).

    Returns:
        The killed process's stderr.

    Raises:
        AssertionError: if the process ends by itself, or `ready()` stays false for `timeout` s.
    """
    import signal
    import tempfile
    stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would block the run.
    proc = subprocess.Popen([sys.executable, "-m", "tfaae.cli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=cli_env())

    def output():
        stderr.seek(0)
        return stderr.read()[-4000:]

    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"the command ended before it was killed ({proc.returncode}):\n"
                                     + output())
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout} s")
            time.sleep(0.05)
        time.sleep(delay)
        assert proc.poll() is None, "the command ended before it was killed"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return output()


def free_ports(count):
    """`count` TCP ports on 127.0.0.1 that were free a moment ago."""
    import socket
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_cli_workers(args, num_workers=2, timeout=420):
    """Runs `tfaae *args` as the `num_workers` workers of a multi-worker cluster on 127.0.0.1
    (`TF_CONFIG`, free ports, CPU only), and waits for all of them.

    Returns:
        A list of (returncode, stdout, stderr), worker 0 (the chief) first.

    Raises:
        AssertionError: after `timeout` seconds (the workers are killed first), with their stderr.
    """
    import signal
    import tempfile
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(num_workers)]}
    procs, outputs = [], []
    try:
        for index in range(num_workers):
            out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
            env = {**cli_env(), "CUDA_VISIBLE_DEVICES": "",
                   "TF_CONFIG": json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": index}})}
            procs.append(subprocess.Popen([sys.executable, "-m", "tfaae.cli", *map(str, args)],
                                          cwd=ROOT, stdout=out, stderr=err, text=True, env=env,
                                          start_new_session=True))
            outputs.append((out, err))
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        hung = [p for p in procs if p.poll() is None]
        for p in hung:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    results = []
    for proc, (out, err) in zip(procs, outputs):
        out.seek(0)
        err.seek(0)
        results.append((proc.returncode, out.read(), err.read()))
    if hung:
        raise AssertionError(f"the workers did not finish in {timeout} s:\n" + "\n".join(
            f"worker {i} stderr:\n{r[2][-3000:]}" for i, r in enumerate(results)))
    return results
