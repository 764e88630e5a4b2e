"""Helpers of the AAE benchmark scripts: machine facts, the matmul peak, FLOP counts, JSON output.

Every script prints its result and writes it, with the command, the budget and the machine, to
`benchmarks/results/<name>.json` (atomically). Scripts import the `tfaae` of this checkout.
"""

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's tfaae.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
from common import MNIST_DIR, RESULTS  # noqa: E402,F401  (used by the AAE scripts)

# Makhzani et al. 2015, table 1: Parzen-window log-likelihood of the AAE on the MNIST test set.
PAPER_PARZEN = {"mnist": {"log_likelihood": 340.0, "stderr": 2.0}}


def machine_info():
    """`common.machine_info()` and the 1-minute load average (AAE runs share the machine)."""
    return {**common.machine_info(), "load_average_1min": round(os.getloadavg()[0], 2)}


def matmul_peak(dtype="float32", n=2048, seconds=3.0):
    """`common.matmul_peak`, in GFLOP/s rounded to 0.1."""
    return round(common.matmul_peak(dtype, n, seconds), 1)


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
    return common.write_result(name, payload, machine=machine_info())


def mnist_arrays():
    """MNIST from MNIST_DIR: {"train": (uint8 images, labels), "test": ...}."""
    from tfaae import data
    return data.load_arrays("mnist", MNIST_DIR)
