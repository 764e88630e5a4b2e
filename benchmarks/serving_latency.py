"""Serving benchmark: load time, latency and throughput of every signature of an exported model.

Exports the papers' presets (VAE with one stochastic layer, IWAE with two, the AAE with a 2-D code
on the 10-Gaussian mixture; latency does not depend on training) or takes SavedModels given with --saved-model, loads each with `tf.saved_model.load`
(as a Python server would; TF Serving's C++ runtime runs the same graphs), and times every
signature at each batch size (for `sample`, num_samples plays the batch). Prints a table and saves
JSON (machine, command, settings, rows) to benchmarks/results/serving_latency.json.

    python benchmarks/serving_latency.py                       # presets, batch 1 and 256
    python benchmarks/serving_latency.py --saved-model saved_models/vae/1 --batch-sizes 1 64 256

Latency is the median (and 90th percentile) of repeated calls after one warm-up call, whose time is
reported separately (the first call optimizes the graph); throughput is images per second at the
median latency.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the checkout's tfaae, also without `pip install -e .`.

import tfaae  # noqa: E402
from tfaae import io, serving  # noqa: E402

PRESETS = {  # name: (untrained model with the paper's architecture, its description)
    "vae-1-layer": (lambda: tfaae.VAE(num_layers=1, seed=0), "untrained VAE(num_layers=1)"),
    "iwae-2-layers": (lambda: tfaae.IWAE(num_layers=2, seed=0), "untrained IWAE(num_layers=2)"),
    "aae-mixture-2d": (lambda: tfaae.AAE(latent_dim=2, prior="mixture", supervised="discriminator",
                                         seed=0),
                       "untrained AAE(latent_dim=2, prior='mixture', supervised='discriminator')"),
}


def machine_info():
    """Where the numbers come from: CPU, cores, memory, load, versions."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "tfaae": tfaae.__version__,
            "cpu_count": os.cpu_count(),
            "cpus_usable": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else None),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "devices": [d.device_type for d in tf.config.list_physical_devices()]}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        import psutil
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def requests(signature, inputs, batch, rng):
    """Valid inputs for `signature` with `batch` rows (num_samples = batch for sample)."""
    if signature == "sample":
        return {"num_samples": tf.constant(batch, tf.int32), "seed": tf.constant([1, 2], tf.int64)}
    values = {}
    for name, spec in inputs.items():
        shape = [batch] + spec.shape.as_list()[1:]
        data = rng.random(shape) < 0.3 if name == "images" else rng.normal(size=shape)
        values[name] = tf.constant(data.astype(spec.dtype.as_numpy_dtype))
    return values


def time_signature(function, inputs, min_seconds, min_repeats):
    """(first call seconds, list of later call seconds)."""
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), function(**inputs))
    first = time.perf_counter() - start
    times, begin = [], time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - begin < min_seconds:
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), function(**inputs))
        times.append(time.perf_counter() - start)
    return first, times


def benchmark(name, path, batch_sizes, min_seconds, min_repeats):
    start = time.perf_counter()
    loaded = tf.saved_model.load(path)
    load_seconds = time.perf_counter() - start
    with open(os.path.join(path, serving.METADATA_FILE), encoding="utf-8") as f:
        metadata = json.load(f)
    rng, rows = np.random.default_rng(0), []
    for signature in sorted(metadata["signatures"]):
        function = loaded.signatures[signature]
        inputs = function.structured_input_signature[1]
        for batch in batch_sizes:
            first, times = time_signature(function, requests(signature, inputs, batch, rng),
                                          min_seconds, min_repeats)
            median = statistics.median(times)
            row = {"model": name, "signature": signature, "batch": batch,
                   "first_call_ms": round(1e3 * first, 3),
                   "latency_ms_median": round(1e3 * median, 3),
                   "latency_ms_p90": round(1e3 * float(np.percentile(times, 90)), 3),
                   "throughput_per_s": round(batch / median, 1), "calls": len(times)}
            rows.append(row)
            print(f"{name:>14} {signature:>15} batch {batch:>4}: "
                  f"median {row['latency_ms_median']:9.2f} ms"
                  f"  p90 {row['latency_ms_p90']:9.2f} ms  {row['throughput_per_s']:10.1f}/s"
                  f"  (first call {row['first_call_ms']:.0f} ms, {len(times)} calls)", flush=True)
    return {"model": name, "path": path, "load_seconds": round(load_seconds, 3),
            "log_likelihood_samples": (metadata["options"]["log_likelihood_samples"]
                                       if "log_likelihood" in metadata["signatures"] else None),
            "saved_model_mb": round(_size(path) / 2**20, 2)}, rows


def _size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved-model", action="append", default=[],
                        help="a SavedModel version directory (repeatable); default: the presets")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--log-likelihood-samples", type=int, default=1000,
                        help="k of the presets' log_likelihood signature")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="time each signature and batch size at least this long")
    parser.add_argument("--min-repeats", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results",
                                                         "serving_latency.json"))
    args = parser.parse_args(argv)
    info = machine_info()
    print(json.dumps(info))
    loads, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        targets = [(os.path.basename(os.path.dirname(os.path.normpath(p))), p, p)
                   for p in args.saved_model]
        if not targets:
            options = serving.ExportOptions(log_likelihood_samples=args.log_likelihood_samples)
            for name, (build, source) in PRESETS.items():
                path = os.path.join(tmp, name, "1")
                tfaae.export(build(), path, options, warmup=False)
                targets.append((name, path, source))
        for name, path, source in targets:
            load, model_rows = benchmark(name, path, args.batch_sizes, args.min_seconds,
                                         args.min_repeats)
            load["path"] = source
            print(f"{name}: loaded in {load['load_seconds']:.2f} s ({load['saved_model_mb']} MB)")
            loads.append(load)
            rows.extend(model_rows)
    result = {"benchmark": "serving_latency",
              "command": " ".join(["python", os.path.relpath(__file__, ROOT),
                                   *(sys.argv[1:] if argv is None else argv)]),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": info, "settings": vars(args), "loads": loads, "results": rows}
    io.write_json(args.output, result)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
