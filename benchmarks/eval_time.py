"""Time and peak memory of the k = 5000 importance-sampled NLL over the 10,000 MNIST test images.

The paper's evaluation (Burda et al. 2016, section 5) for the one- and two-layer presets, in float32
and with bfloat16 matrix products. Timing does not depend on the weights, so the models are the
presets with the decoder bias set from the data; memory is the process's peak resident set while
evaluating (sampled every 50 ms), and its rise over the resident set before. Threads are spread
over the cores after the warm-up (`common.spread_threads`).

    python benchmarks/eval_time.py                # both depths, both precisions (~15 min)
    python benchmarks/eval_time.py --examples 500 # a quick check
"""

import argparse
import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import psutil  # noqa: E402

import common  # noqa: E402
import tfaae  # noqa: E402
from tfaae import data, evaluation  # noqa: E402

TARGET_SECONDS = 120


class PeakMemory:
    """Samples the resident set size of this process in a thread."""

    def __init__(self, interval=0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self.process = psutil.Process()

    def __enter__(self):
        self.before = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10000)
    parser.add_argument("--num-samples", type=int, default=5000)
    args = parser.parse_args()
    images, _ = common.mnist_images("test")
    x = data.binarize_fixed(images[:args.examples], seed=3)
    train_images, _ = common.mnist_images("train")
    cases = []
    for layers in (1, 2):
        for precision in ("float32", "mixed_bfloat16"):
            model = tfaae.IWAE(num_layers=layers, seed=0)
            model.initialize_output_bias(train_images[:10000])
            evaluation.log_likelihood(model, x[:100], num_samples=500, precision=precision)  # trace
            common.spread_threads()
            with PeakMemory() as memory:
                start = time.perf_counter()
                ll = evaluation.log_likelihood(model, x, num_samples=args.num_samples,
                                               precision=precision)
                seconds = time.perf_counter() - start
            case = {"layers": layers, "precision": precision, "seconds": round(seconds, 1),
                    "images_per_second": round(len(x) / seconds, 1),
                    "peak_rss_mib": round(memory.peak / 2 ** 20), "rss_increase_mib":
                        round((memory.peak - memory.before) / 2 ** 20), "mean_log_px": float(ll.mean())}
            if args.examples < 10000:
                case["seconds_for_10000_extrapolated"] = round(seconds * 10000 / args.examples, 1)
            print(case, flush=True)
            cases.append(case)
    full = {}
    for c in cases:
        seconds = c.get("seconds_for_10000_extrapolated", c["seconds"])
        full[c["layers"]] = min(full.get(c["layers"], float("inf")), seconds)
    common.write_result("eval_time" if args.examples == 10000 else "eval_time_quick", {
        "num_samples": args.num_samples, "examples": args.examples, "cases": cases,
        "target_seconds": TARGET_SECONDS, "threads_spread": True,
        "best_seconds_by_layers": full,
        "target_met_by_layers": {k: v <= TARGET_SECONDS for k, v in full.items()}})


if __name__ == "__main__":
    main()
