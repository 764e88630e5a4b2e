"""Does bfloat16 change the NLL? Train the same IWAE in float32 and with bfloat16 matrix products
over several seeds, and evaluate on the full test set (k = 5000), in float32 and in bfloat16.

The bfloat16 policy (`mixed_bfloat16`: bfloat16 matmuls, float32 variables and log-weights) is kept
for training and evaluation only if the NLL it reaches is unchanged: this script measures that.
A short training run is chaotic (a rounding difference in one step grows into another run), so one
pair of runs cannot tell a precision's effect from a seed's: both precisions train with seeds
0..S-1. The training effect is the difference of the mean NLLs, its standard error comes from the
seed-to-seed spread pooled over both precisions, and bfloat16 training is kept when the effect is
within the tolerance or within two standard errors (no difference detectable at about 95%).
The evaluation effect is that of evaluating the float32 seed-0 model in bfloat16.

    python benchmarks/precision.py --epochs 8 --seeds 3
"""

import argparse
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import common  # noqa: E402
from tfaae import training  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


def training_effect(nll_by_precision):
    """(effect, standard error, pooled seed std) of bfloat16 training on the NLL, in nats.

    effect = mean(bfloat16 NLLs) - mean(float32 NLLs); the standard error is
    s * sqrt(1/n_f + 1/n_b) with s the seed-to-seed standard deviation pooled over both precisions.
    """
    f32, bf16 = (np.asarray(nll_by_precision[p], np.float64) for p in PRECISIONS)
    dof = len(f32) + len(bf16) - 2
    pooled = np.sqrt((((f32 - f32.mean()) ** 2).sum() + ((bf16 - bf16.mean()) ** 2).sum()) / dof)
    return bf16.mean() - f32.mean(), pooled * np.sqrt(1 / len(f32) + 1 / len(bf16)), pooled


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per precision (>= 2)")
    parser.add_argument("--num-samples", type=int, default=50)
    parser.add_argument("--tolerance", type=float, default=0.1, help="nats")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (a seed-to-seed spread); got {args.seeds}")
    runs, nll, by_precision = {}, {}, {p: [] for p in PRECISIONS}
    for seed in range(args.seeds):
        for precision in PRECISIONS:
            name = f"{precision}_seed{seed}"
            run_dir = str(common.ROOT / "benchmarks" / "runs" / f"precision_{name}")
            shutil.rmtree(run_dir, ignore_errors=True)
            result = training.train(run_dir, verbose=2, model="iwae", layers=1,
                                    num_samples=args.num_samples, epochs=args.epochs,
                                    precision=precision, data_dir=common.MNIST_DIR, seed=seed)
            runs[name] = {"train_seconds": result["train_seconds"],
                          "final_val_bound": result["final"]["val_bound"]}
            evals = ("float32", "mixed_bfloat16") if (seed, precision) == (0, "float32") else ("float32",)
            for eval_precision in evals:
                evaluation = training.evaluate_run(run_dir, num_samples=5000, precision=eval_precision)
                nll[f"train_{name}/eval_{eval_precision}"] = {
                    key: evaluation[key] for key in ("nll", "nll_stderr", "seconds")}
            by_precision[precision].append(nll[f"train_{name}/eval_float32"]["nll"])
    effect, stderr, spread = training_effect(by_precision)
    eval_effect = (nll["train_float32_seed0/eval_mixed_bfloat16"]["nll"]
                   - nll["train_float32_seed0/eval_float32"]["nll"])
    common.write_result("precision", {
        "model": "iwae", "layers": 1, "num_samples": args.num_samples, "seeds": args.seeds,
        "budget": {"epochs": args.epochs, "batch_size": 20}, "runs": runs, "test_nll": nll,
        "nll_by_training_precision": {p: [round(v, 3) for v in by_precision[p]] for p in PRECISIONS},
        "seed_std_nats": round(spread, 3),
        "bf16_training_effect_nats": round(effect, 3),
        "bf16_training_effect_stderr_nats": round(stderr, 3),
        "bf16_evaluation_effect_nats": round(eval_effect, 3), "tolerance_nats": args.tolerance,
        "rule": "training kept when |effect| <= max(tolerance, 2 standard errors); evaluation "
                "kept when |effect| <= tolerance",
        "bf16_training_kept": bool(abs(effect) <= max(args.tolerance, 2 * stderr)),
        "bf16_evaluation_kept": bool(abs(eval_effect) <= args.tolerance)})


if __name__ == "__main__":
    main()
