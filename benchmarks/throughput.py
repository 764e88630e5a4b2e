"""Training throughput of the VAE and IWAE on this machine, against its float32 matmul peak.

For each model, k, depth and batch size it trains through `model.fit` on real MNIST with dynamic
binarization (the tf.data pipeline users get) and `tfaae.optimizers.Adam` (as `tfaae train` does),
and reports examples/s, the achieved GFLOP/s of the matrix products (counted exactly,
`common.training_flops_per_example`) and the ratio to the float32 matmul peak measured in the same
run. Each case runs in six execution configurations: float32 graph (the default), float32 XLA
(`jit_compile=True`), bfloat16 matmuls (`mixed_bfloat16`), and the float32 and bfloat16 graphs with
each op on one thread (`-1thread`: `tf.config.threading.set_intra_op_parallelism_threads(1)`, as
`tfaae train --intra-op-threads 1` sets it; the cores then run independent ops side by side, such
as a layer's weight and input gradients, instead of splitting each small matmul over both and
waiting for the slower half); and the bfloat16 one-thread graph with each batch run as two row
blocks (`-2blocks`, `tfaae train --batch-splits 2`), so that the forward pass too has two
independent chains. The best is reported next to all six. Each case and configuration
runs in a fresh worker process, as
one training job would: in one long-lived process the order mattered (the bfloat16 IWAE k=50 ran
at 3,548 ex/s when timed first and 2,114-2,760 after the float32 XLA model). Each is timed over
`--windows` windows of about `--seconds` and the best window counts (as the peak is the best
matmul; the peak is measured again after the cases, and both are saved, since on a shared machine
the speed can change during a run); after the warm-up the worker's threads are spread over the cores
(`common.spread_threads`: this sandbox sometimes keeps a process on one core). Each window also
records the cores the worker used (its CPU seconds over the window's seconds): about 1.0 marks a
window in which the process had one core only.

    python benchmarks/throughput.py            # full grid, ~30 minutes on 2 cores
    python benchmarks/throughput.py --quick    # one case per configuration
    python benchmarks/throughput.py --case iwae,50,1,100 --windows 2 --seconds 5  # chosen cases

`--rounds R` repeats the whole run R times, one round after the other, each with its own peak; each
configuration keeps its best round and the fractions are of the best peak of all rounds. A slow
period of the shared machine (minutes long) then costs a round, not the result: the best of
repeats, as `timeit` takes it, since contention only ever slows a run down.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import common  # noqa: E402
import tfaae  # noqa: E402
from tfaae import cli, data, networks  # noqa: E402

CONFIGS = {
    "float32": {"dtype": "float32", "jit_compile": False},
    "float32-xla": {"dtype": "float32", "jit_compile": True},
    "bfloat16": {"dtype": "mixed_bfloat16", "jit_compile": False},
    "float32-1thread": {"dtype": "float32", "jit_compile": False, "intra_op_threads": 1},
    "bfloat16-1thread": {"dtype": "mixed_bfloat16", "jit_compile": False, "intra_op_threads": 1},
    "bfloat16-1thread-2blocks": {"dtype": "mixed_bfloat16", "jit_compile": False,
                                 "intra_op_threads": 1, "batch_splits": 2},
}
TARGETS = {1: 0.35, 5: 0.50, 50: 0.70}  # fraction of the float32 matmul peak, IWAE, per k.


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start
        self.cores = (time.process_time() - self.cpu_start) / self.seconds


def measure(images, model_name, k, layers, batch, config, seconds, steps_per_execution, windows):
    cls = tfaae.IWAE if model_name == "iwae" else tfaae.VAE
    settings = CONFIGS[config]
    encoder, decoder = networks.burda_networks(layers, dtype=settings["dtype"], seed=0)
    model = cls(encoder=encoder, decoder=decoder, num_samples=k, seed=0, dtype=settings["dtype"],
                batch_splits=settings.get("batch_splits", 1))
    model.initialize_output_bias(images[:1000])
    model.compile(optimizer=tfaae.optimizers.Adam(1e-4, epsilon=1e-4),
                  jit_compile=settings["jit_compile"], steps_per_execution=steps_per_execution)
    ds = data.make_dataset(images, batch_size=batch, binarization="dynamic", shuffle=True,
                           seed=0, drop_remainder=True).repeat()
    timer = _EpochTimer()
    # Warm-up epochs (tracing, compilation; threads spread by their use), then `windows` epochs
    # sized to last about `seconds` each; the best window counts, as the best matmul does.
    warm = 2 * steps_per_execution
    for _ in range(2):
        model.fit(ds, steps_per_epoch=warm, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
    rate = warm * batch / timer.seconds

    def steps_for(duration):
        return max(steps_per_execution,
                   int(duration * rate / batch) // steps_per_execution * steps_per_execution)

    common.spread_threads()  # then rank the threads by their use over a one-second epoch.
    model.fit(ds, steps_per_epoch=steps_for(1.0), epochs=1, verbose=0, shuffle=False)
    common.spread_threads()
    steps = steps_for(seconds)
    rates, cores = [], []
    for _ in range(windows):
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
        rates.append(steps * batch / timer.seconds)
        cores.append(timer.cores)
    examples_per_second = max(rates)
    flops = common.training_flops_per_example(model)
    return {"examples_per_second": round(examples_per_second, 1),
            "gflops": round(examples_per_second * flops / 1e9, 2),
            "flops_per_example": flops, "steps": steps,
            "window_examples_per_second": [round(r, 1) for r in rates],
            "window_cores_used": [round(c, 2) for c in cores]}


def _case(text):
    """"MODEL,K,LAYERS,BATCH", e.g. "iwae,50,1,100", as a tuple."""
    parts = text.split(",")
    numbers_ok = all(p.isdigit() and int(p) > 0 for p in parts[1:])
    if len(parts) != 4 or parts[0] not in ("vae", "iwae") or not numbers_ok:
        raise argparse.ArgumentTypeError(f"expected MODEL,K,LAYERS,BATCH with MODEL vae or iwae "
                                         f"and positive integers, e.g. iwae,50,1,100; got {text!r}")
    return (parts[0], *map(int, parts[1:]))


def run_worker(case, config, args):
    """`measure` for one case and configuration in a fresh Python process; its result dict."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", config,
               "--case", ",".join(map(str, case)), "--seconds", str(args.seconds),
               "--windows", str(args.windows), "--steps-per-execution", str(args.steps_per_execution)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"worker {' '.join(command[2:])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", action="append", type=_case, metavar="MODEL,K,LAYERS,BATCH",
                        help="time only these cases, e.g. iwae,50,1,100 (repeatable)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per timed window")
    parser.add_argument("--windows", type=int, default=3, help="timed windows per case (best counts)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the run this many times; each configuration keeps its best round")
    parser.add_argument("--steps-per-execution", type=int, default=100,
                        help="training steps per compiled call (`tfaae train`'s default, 100: "
                             "IWAE k=1 6-8%% faster than 20)")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.seconds = 1.0
    if args.worker:  # one case, one configuration: its result as the last line of stdout.
        cli.configure_threads(CONFIGS[args.worker].get("intra_op_threads"))  # before the first op.
        images, _ = common.mnist_images()
        print(json.dumps(measure(images, *args.case[0], args.worker, args.seconds,
                                 args.steps_per_execution, args.windows)))
        return
    grid = list(itertools.product(["vae", "iwae"], [1, 5, 50], [1, 2], [20, 100]))
    if args.quick:
        grid = [("iwae", 5, 1, 100)]
    if args.case:
        grid = args.case
    peaks, runs = [], {}  # runs[(case, config)]: one result per round.
    for round_index in range(args.rounds):
        peaks.append({dtype: round(common.matmul_peak(dtype), 1) for dtype in ("float32", "bfloat16")})
        for case, config in itertools.product(grid, CONFIGS):
            runs.setdefault((case, config), []).append(run_worker(case, config, args))
        print(f"round {round_index + 1}/{args.rounds} done (peak before it: "
              f"{peaks[-1]['float32']:.0f} GFLOP/s float32)", flush=True)
    peak = max(p["float32"] for p in peaks)
    cases = []
    for model_name, k, layers, batch in grid:
        best_runs = {}
        for config in CONFIGS:
            rounds = runs[((model_name, k, layers, batch), config)]
            best_runs[config] = max(rounds, key=lambda r: r["examples_per_second"])
            best_runs[config]["fraction_of_peak"] = round(best_runs[config]["gflops"] / peak, 3)
            if args.rounds > 1:
                best_runs[config]["round_examples_per_second"] = [r["examples_per_second"]
                                                                  for r in rounds]
        best = max(best_runs, key=lambda c: best_runs[c]["examples_per_second"])
        case = {"model": model_name, "num_samples": k, "layers": layers, "batch_size": batch,
                "best_config": best, **best_runs[best], "configs": best_runs}
        print(f"{model_name} k={k:<2} layers={layers} batch={batch:<3} best={best:<11} "
              f"{case['examples_per_second']:>9.0f} ex/s {case['gflops']:>7.1f} GFLOP/s "
              f"{case['fraction_of_peak']:.0%} of peak", flush=True)
        cases.append(case)
    targets = {}
    for k, target in TARGETS.items():
        best = max((c for c in cases if c["model"] == "iwae" and c["num_samples"] == k),
                   key=lambda c: c["fraction_of_peak"], default=None)
        if best:
            targets[f"iwae_k{k}"] = {"target_fraction": target, "fraction": best["fraction_of_peak"],
                                     "met": best["fraction_of_peak"] >= target,
                                     "at": {key: best[key] for key in ("layers", "batch_size", "best_config")}}
    # The peak again after the cases: on a shared machine the speed can change during a run, which
    # the fractions (of the best peak before a round) would hide.
    peak_end = {"float32": round(common.matmul_peak("float32"), 1),
                "bfloat16": round(common.matmul_peak("bfloat16"), 1)}
    print(f"matmul peak float32: {peak:.0f} GFLOP/s (best before a round), "
          f"{peak_end['float32']:.0f} after the cases")
    name = "throughput_cases" if args.case else "throughput_quick" if args.quick else "throughput"
    common.write_result(name, {
        "matmul_peak_gflops": {dtype: max(p[dtype] for p in peaks) for dtype in peaks[0]},
        "rounds": args.rounds, "matmul_peak_gflops_per_round": peaks,
        "matmul_peak_gflops_after_cases": peak_end,
        "steps_per_execution": args.steps_per_execution, "threads_spread": True,
        "process_per_configuration": True,
        "seconds_per_window": args.seconds, "windows": args.windows, "cases": cases,
        "targets": targets})


if __name__ == "__main__":
    main()
