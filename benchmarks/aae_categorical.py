"""Learning curves of the categorical AAE on MNIST: test error against training budget.

Makhzani et al. 2015 (arXiv 1511.05644), tables 2 and 3. Semi-supervised classification (100 and
1000 labels: 1.90% and 1.60%; all labels 0.85%), unsupervised clustering (16 and 30 clusters:
9.55% and 4.10%) and dimensionality reduction (2-D map; the error of its semi-supervised version).
Training goes through `tfaae.training.train` (what `tfaae train <task>` runs): grey-level MNIST,
batches of 100, the paper's 784-1000-1000 networks unless `--hidden-units` says otherwise. After
every epoch the test error of all 10,000 test images is recorded with the training seconds and
examples so far (for clustering, the clusters take labels from the first 10,000 training images
during the curve, from all of them at the end); training stops at the first epoch end past
`--minutes`. The result gives examples/s (training only), the curve, the final error
(`tfaae.training.evaluate_run`), and the command of the full schedule.

    python benchmarks/aae_categorical.py semi-supervised --labels 1000 --minutes 8
    python benchmarks/aae_categorical.py clustering --clusters 16 --minutes 8
    python benchmarks/aae_categorical.py dim-reduction --labels 1000 --minutes 5   # + 2-D map PNG
    python benchmarks/aae_categorical.py semi-supervised --labels 100 --quick      # checks the script
"""

import argparse
import os
import shutil
import time

import aae_common
import keras

from tfaae import data, evaluation, training

PAPER = {("semi-supervised", "100"): 1.90, ("semi-supervised", "1000"): 1.60,
         ("semi-supervised", "all"): 0.85, ("clustering", 16): 9.55, ("clustering", 30): 4.10}
FULL_EPOCHS = 1500  # the schedule's rates drop after epochs 50 and 1000 (see tfaae.schedules).


class Curve(keras.callbacks.Callback):
    """Test error after every epoch, with the training time and examples so far; stops the run at
    the first epoch end past `seconds`."""

    def __init__(self, x_test, y_test, x_label, y_label, examples_per_epoch, seconds):
        super().__init__()
        self.x_test, self.y_test, self.x_label, self.y_label = x_test, y_test, x_label, y_label
        self.examples_per_epoch, self.seconds, self.points, self.train_seconds = (
            examples_per_epoch, seconds, [], 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self.start
        result = evaluation.categorical_errors(self.model, self.x_test, self.y_test,
                                               self.x_label, self.y_label)
        error = result.get("error", result.get("cluster_error", {}).get("highest"))
        self.points.append({"epoch": epoch + 1, "train_seconds": round(self.train_seconds, 1),
                            "examples": (epoch + 1) * self.examples_per_epoch,
                            "test_error": round(error, 2)})
        print(f"epoch {epoch + 1}: test error {error:.2f}% after {self.train_seconds:.0f} s",
              flush=True)
        if self.train_seconds > self.seconds:
            self.model.stop_training = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=list(training.CATEGORICAL_TASKS))
    parser.add_argument("--labels", help="N or all (semi-supervised, dim-reduction)")
    parser.add_argument("--clusters", type=int, help="clustering, unsupervised dim-reduction")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget (wall time)")
    parser.add_argument("--epochs", type=int, default=FULL_EPOCHS, help="at most this many epochs")
    parser.add_argument("--schedule", default="adam", choices=["adam", "makhzani"],
                        help="adam (default: converges within short budgets) or the paper's SGD")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--hidden-units", type=int, default=1000)
    parser.add_argument("--run-dir", default=None, help="default: /tmp/tfaae_bench_<name>")
    parser.add_argument("--name", default=None, help="results/<name>.json (default from the task)")
    parser.add_argument("--quick", action="store_true", help="5,000 images, 1 epoch, 64 units")
    args = parser.parse_args()

    labels = args.labels if args.labels in (None, "all") else int(args.labels)
    settings = {"model": args.task, "data_dir": aae_common.MNIST_DIR, "download": False,
                "epochs": 1 if args.quick else args.epochs, "schedule": args.schedule,
                "hidden_units": 64 if args.quick else args.hidden_units, "validation_size": 0,
                "image_every": None, "projector": False, "labels": labels,
                "clusters": args.clusters, "max_train_examples": 5000 if args.quick else None}
    if args.schedule == "adam":
        settings["learning_rate"] = args.learning_rate
    clusters = args.clusters or training.CATEGORICAL_TASKS[args.task]["clusters"]
    suffix = f"labels{labels}" if labels is not None else f"clusters{clusters}"
    name = args.name or f"aae_{args.task.replace('-', '_')}_{suffix}" + ("_quick" if args.quick else "")
    run_dir = args.run_dir or f"/tmp/tfaae_bench_{name}"
    shutil.rmtree(run_dir, ignore_errors=True)

    arrays = aae_common.mnist_arrays()
    x_test, y_test = data.to_unit_interval(arrays["test"][0]), arrays["test"][1]
    x_label = data.to_unit_interval(arrays["train"][0][:10_000])
    y_label = arrays["train"][1][:10_000]
    clustering = labels is None
    examples = 5000 if args.quick else len(arrays["train"][0])
    curve = Curve(x_test, y_test, x_label if clustering else None, y_label if clustering else None,
                  examples, 0 if args.quick else args.minutes * 60)
    result = training.train(run_dir, verbose=0, callbacks=[curve],
                            **{k: v for k, v in settings.items() if v is not None})
    config = training.read_run_config(run_dir)
    final = training.evaluate_run(run_dir)
    figure = None
    if "map" in final:
        figure = f"{name}_map.png"
        shutil.copy(final["map"], aae_common.RESULTS / figure)
    target = PAPER.get((args.task, str(labels)) if labels is not None else
                       (args.task, config["clusters"] or training.CATEGORICAL_TASKS[args.task]["clusters"]))
    full = (f"tfaae train {args.task}" + (f" --labels {labels}" if labels is not None else "")
            + (f" --clusters {args.clusters}" if args.clusters else "")
            + f" --epochs {FULL_EPOCHS} --logdir runs/{name} && tfaae evaluate runs/{name}")
    aae_common.write_result(name, {
        "task": args.task, "labels": labels,
        "clusters": None if labels is not None else (args.clusters or
                                                     training.CATEGORICAL_TASKS[args.task]["clusters"]),
        "settings": {k: config[k] for k in ("schedule", "learning_rate", "hidden_units", "batch_size",
                                            "style_dim", "head_dim", "head_distance")},
        "budget": {"minutes": args.minutes, "epochs": result["epochs"],
                   "train_seconds": round(curve.train_seconds, 1),
                   "examples": result["epochs"] * examples},
        "examples_per_second": round(result["epochs"] * examples / curve.train_seconds, 1),
        "curve": curve.points, "evaluation": final, "paper_error": target, "figure": figure,
        "full_schedule_command": full})
    if args.quick:
        os.remove(aae_common.RESULTS / f"{name}.json")


if __name__ == "__main__":
    main()
