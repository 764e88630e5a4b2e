"""Helpers of the AAE benchmark scripts: machine facts, the matmul peak, FLOP counts, JSON output.

Every script prints its result and writes it, with the command, the budget and the machine, to
`benchmarks/results/<name>.json` (atomically). Scripts import the `tfaae` of this checkout.
"""

import os
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MNIST_DIR = os.environ.get("TFAAE_BENCH_MNIST", str(ROOT.parent / "shared" / "datasets" / "mnist"))
sys.path.insert(0, str(ROOT))  # this checkout's tfaae, whatever is installed.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Makhzani et al. 2015, table 1: Parzen-window log-likelihood of the AAE on the MNIST test set.
PAPER_PARZEN = {"mnist": {"log_likelihood": 340.0, "stderr": 2.0}}


def machine_info():
    """CPU model, usable cores, memory, GPUs and library versions."""
    import keras
    import tensorflow as tf
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                    if line.startswith("MemTotal")), None)
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "memory_gib": mem_kib and round(mem_kib / 2 ** 20, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__}


def _lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.readlines()
    except OSError:
        return []


def matmul_peak(dtype="float32", n=2048, seconds=3.0):
    """Best GFLOP/s of an n x n x n matmul in a `tf.function` over about `seconds` seconds."""
    import tensorflow as tf
    a = tf.cast(tf.random.stateless_uniform([n, n], seed=[0, 1]), dtype)
    b = tf.cast(tf.random.stateless_uniform([n, n], seed=[2, 3]), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)[:1, :1]))
    matmul().numpy()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        matmul().numpy()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return round(best, 1)


def _kernels(network):
    """(fan_in, fan_out) of every Dense kernel of a network, in call order."""
    return [tuple(w.shape) for w in network.weights if w.path.endswith("kernel")]


def aae_flops_per_example(model):
    """Matmul FLOPs of one `AAE.train_step` per example (all three phases), counted from shapes.

    A Dense layer costs 2 m n per row forward; backward 2 m n for the weight gradient and 2 m n for
    the input gradient, the latter skipped for a network's first layer when its input needs no
    gradient. Per example: reconstruction (encoder and decoder forward and backward), discriminator
    phase (encoder forward; discriminator forward and weight/input backward on two rows, a prior
    sample and a code), generator phase (encoder forward and backward; discriminator forward and
    input gradient only). Element-wise work is not counted.
    """
    def forward(network):
        return sum(2 * m * n for m, n in _kernels(network))

    def first(network):
        m, n = _kernels(network)[0]
        return 2 * m * n

    enc, dec, disc = model.encoder, model.decoder, model.discriminator
    reconstruction = (3 * forward(enc) - first(enc)) + 3 * forward(dec)
    discriminator = forward(enc) + 2 * (3 * forward(disc) - first(disc))
    generator = (3 * forward(enc) - first(enc)) + 2 * forward(disc)
    return reconstruction + discriminator + generator


def write_result(name, payload):
    """Writes benchmarks/results/<name>.json atomically (with command, date, machine) and prints it."""
    import common
    return common.write_result(name, payload, machine=machine_info())


def mnist_arrays():
    """MNIST from MNIST_DIR: {"train": (uint8 images, labels), "test": ...}."""
    from tfaae import data
    return data.load_arrays("mnist", MNIST_DIR)
