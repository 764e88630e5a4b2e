"""Helpers shared by the benchmark scripts: machine facts, the matmul peak, FLOP counts, JSON output."""

import datetime
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MNIST_DIR = os.environ.get("TFAAE_BENCH_MNIST", str(ROOT.parent / "shared" / "datasets" / "mnist"))
CPUS = sorted(os.sched_getaffinity(0))  # before `spread_threads` narrows the main thread's set.


def _cpu_ticks(tid):
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return 0


_TICKS = {}  # each thread's CPU ticks at the last `spread_threads` call.


def spread_threads():
    """Pins this process's threads round-robin over the usable CPUs, the busiest since the last
    call first.

    On this workplace's sandboxed 2-core machine the scheduler sometimes keeps the threads of a
    process on one core: a training step then takes exactly its one-core time (e.g. IWAE k=50:
    51.2 ms instead of 27-32 ms), which `taskset -c 0` reproduces. Spreading the busy threads
    measures the hardware instead of that placement. Call it before and after a warm-up: the second
    call ranks threads by the CPU time they used during the warm-up (the thread pools and tf.data
    threads the timed run will use).

    Returns:
        the number of threads pinned (0 where pinning is unsupported or there is one CPU).
    """
    if len(CPUS) < 2 or not hasattr(os, "sched_setaffinity"):
        return 0
    try:
        ticks = {int(t): _cpu_ticks(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return 0
    busiest = sorted(ticks, key=lambda t: ticks[t] - _TICKS.get(t, 0), reverse=True)
    _TICKS.clear()
    _TICKS.update(ticks)
    pinned = 0
    for i, tid in enumerate(busiest):
        try:
            os.sched_setaffinity(tid, {CPUS[i % len(CPUS)]})
            pinned += 1
        except OSError:  # the thread has exited.
            pass
    return pinned


def machine_info():
    """CPU model, usable cores, memory and library versions."""
    import keras
    import tensorflow as tf
    model, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 2 ** 20
    except (OSError, ValueError, IndexError):
        mem_gib = None
    return {"cpu": model, "cores": len(CPUS), "memory_gib": mem_gib and round(mem_gib, 1),
            "avx512_bf16": "avx512_bf16" in flags.split(), "amx": "amx_tile" in flags.split(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__}


def matmul_peak(dtype="float32", n=2048, seconds=3.0):
    """Best observed GFLOP/s of an n x n x n matmul (tf.function, oneDNN) over about `seconds`."""
    import tensorflow as tf
    a = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]), dtype)

    @tf.function
    def product(a, b):
        return tf.matmul(a, b)[0, 0]

    product(a, b).numpy()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        product(a, b).numpy()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def dense_layers(layer):
    """The Dense layers inside a tfaae network layer, in call order."""
    import keras
    return [sub for sub in layer._flatten_layers(include_self=False) if isinstance(sub, keras.layers.Dense)]


def training_flops_per_example(model, num_samples=None):
    """Matmul FLOPs of one training step per example, counted exactly for the VAE/IWAE.

    The first encoder layer runs once per example, everything else on k samples. Forward: 2*m*n per
    Dense and row; backward: 2*m*n for the weight gradient plus 2*m*n for the input gradient,
    except for the very first Dense (x needs no gradient). Element-wise work is not counted.
    """
    k = num_samples or model.num_samples
    total = 0
    for i, layer in enumerate(list(model.encoder) + list(model.decoder)):
        rows = 1 if i == 0 else k
        for j, dense in enumerate(dense_layers(layer)):
            m, n = dense.kernel.shape
            first = i == 0 and j == 0
            total += rows * 2 * m * n * (2 if first else 3)
    return total


def write_result(name, payload, machine=None):
    """Writes benchmarks/results/<name>.json atomically (with command, date and `machine`, by
    default `machine_info()`) and prints it."""
    from tfaae import io
    payload = {"benchmark": name, "date": datetime.date.today().isoformat(),
               "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
               "machine": machine or machine_info(), **payload}
    RESULTS.mkdir(parents=True, exist_ok=True)
    io.write_json(RESULTS / f"{name}.json", payload)
    print(json.dumps(payload, indent=2))
    return payload


def mnist_images(split="train"):
    """MNIST images in [0, 1] from MNIST_DIR (float32 [N, 28, 28, 1])."""
    from tfaae import data
    arrays = data.load_arrays("mnist", MNIST_DIR)
    return data.to_unit_interval(arrays[split][0]), arrays[split][1]


def summarize(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
