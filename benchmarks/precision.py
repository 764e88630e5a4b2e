"""Does bfloat16 change the NLL? Train the same IWAE in float32 and with bfloat16 matrix products,
and evaluate each in both precisions on the full test set (k = 5000).

The bfloat16 policy (`mixed_bfloat16`: bfloat16 matmuls, float32 variables and log-weights) is kept
for training and evaluation only if the NLL it reaches is unchanged: this script measures that.
A short training run is chaotic (a rounding difference in one step grows into another run), so
the script also trains float32 with a second seed: training in bfloat16 is kept when its effect
is within the tolerance or within that seed-to-seed difference.

    python benchmarks/precision.py --epochs 8
"""

import argparse
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
from tfaae import training  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--num-samples", type=int, default=50)
    parser.add_argument("--tolerance", type=float, default=0.1, help="nats")
    args = parser.parse_args()
    runs, nll = {}, {}
    # (training precision, seed, evaluation precisions); the second float32 seed is the reference.
    plan = [("float32", 0, ("float32", "mixed_bfloat16")),
            ("mixed_bfloat16", 0, ("float32", "mixed_bfloat16")), ("float32", 1, ("float32",))]
    for precision, seed, eval_precisions in plan:
        name = precision + (f"_seed{seed}" if seed else "")
        run_dir = str(common.ROOT / "benchmarks" / "runs" / f"precision_{name}")
        shutil.rmtree(run_dir, ignore_errors=True)
        result = training.train(run_dir, verbose=2, model="iwae", layers=1,
                                num_samples=args.num_samples, epochs=args.epochs,
                                precision=precision, data_dir=common.MNIST_DIR, seed=seed)
        runs[name] = {"train_seconds": result["train_seconds"],
                      "final_val_bound": result["final"]["val_bound"]}
        for eval_precision in eval_precisions:
            evaluation = training.evaluate_run(run_dir, num_samples=5000, precision=eval_precision)
            nll[f"train_{name}/eval_{eval_precision}"] = {
                key: evaluation[key] for key in ("nll", "nll_stderr", "seconds")}
    reference = nll["train_float32/eval_float32"]["nll"]
    train_effect = nll["train_mixed_bfloat16/eval_float32"]["nll"] - reference
    eval_effect = nll["train_float32/eval_mixed_bfloat16"]["nll"] - reference
    seed_effect = nll["train_float32_seed1/eval_float32"]["nll"] - reference
    common.write_result("precision", {
        "model": "iwae", "layers": 1, "num_samples": args.num_samples,
        "budget": {"epochs": args.epochs, "batch_size": 20}, "runs": runs, "test_nll": nll,
        "bf16_training_effect_nats": round(train_effect, 3),
        "bf16_evaluation_effect_nats": round(eval_effect, 3),
        "float32_seed_effect_nats": round(seed_effect, 3), "tolerance_nats": args.tolerance,
        "bf16_training_kept": abs(train_effect) <= max(args.tolerance, abs(seed_effect)),
        "bf16_evaluation_kept": abs(eval_effect) <= args.tolerance})


if __name__ == "__main__":
    main()
