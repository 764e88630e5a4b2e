"""The `tfaae` command: a thin layer that parses flags and calls `tfaae.training`.

    tfaae train vae|iwae --dataset mnist --num-samples 50 --layers 2 --epochs N --logdir runs/x
    tfaae train aae --prior mixture --latent-dim 2 --supervised discriminator --labels 10000 \
        --epochs N --logdir runs/y
    tfaae train semi-supervised --labels 1000 --epochs N --logdir runs/ss
    tfaae train clustering --clusters 16 --epochs N --logdir runs/c16
    tfaae train dim-reduction [--labels 1000] --head-dim 2 --epochs N --logdir runs/map
    tfaae evaluate runs/x --num-samples 5000
    tfaae export runs/x saved_models/<name>/<version>
    tfaae report runs/x
    tfaae train iwae --strategy mirrored|multi-worker ... (multi-worker: TF_CONFIG on each worker)
    tfaae train iwae --num-samples 1 --intra-op-threads 1 ...   (TensorFlow's thread pools)

Flags a model does not take are refused with a message naming the model they belong to; flags
left out take the model's defaults (`tfaae.training.RECIPES`).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported.


def _number(text, cast, ok, expected):
    """`cast(text)` when it converts and `ok` holds, else an argparse error naming `expected`."""
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text):
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def _label_count(text):
    """A positive number of labels, or "all"."""
    return "all" if text == "all" else _positive_int(text)


def _interval(text):
    """A positive number of epochs, or "auto"."""
    return "auto" if text == "auto" else _positive_int(text)


def _non_negative_int(text):
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def _duration(text):
    """Seconds of a duration (`tfaae.callbacks.parse_duration`), or an argparse error."""
    from tfaae.callbacks import parse_duration
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_float(text):
    return _number(text, float, lambda v: v > 0, "a positive number")


def _add_thread_flags(parser):
    """--intra-op-threads and --inter-op-threads: TensorFlow's two thread pools for this process."""
    parser.add_argument("--intra-op-threads", type=_positive_int, default=None,
                        help="threads that share one op, e.g. one matmul (default: TensorFlow's, "
                             "the cores); 1 runs each op on one core and the cores side by side on "
                             "independent ops, faster for the small VAE/IWAE networks on few cores "
                             "(see the README's throughput table)")
    parser.add_argument("--inter-op-threads", type=_positive_int, default=None,
                        help="ops run side by side (default: TensorFlow's, the cores)")


def configure_threads(intra_op_threads=None, inter_op_threads=None):
    """Sets TensorFlow's thread pools (None keeps its default) and returns both sizes.

    They must be set before TensorFlow runs its first op; `main` calls this first.

    Returns:
        {"intra_op": n, "inter_op": m}, 0 meaning TensorFlow's default (the cores).

    Raises:
        TypeError, ValueError: for a size that is not a positive integer (or None).
    """
    import tensorflow as tf

    from tfaae import validation
    for name, value in (("intra_op_threads", intra_op_threads), ("inter_op_threads", inter_op_threads)):
        if value is not None:
            validation.check_positive_int(name, value)
    if intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    if inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def build_parser():
    """The argument parser of the `tfaae` command."""
    parser = argparse.ArgumentParser(prog="tfaae", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model into a run directory (resumable)",
                                argument_default=argparse.SUPPRESS)
    train.add_argument("model", choices=["vae", "iwae", "aae", "semi-supervised", "clustering",
                                                "dim-reduction"], help="which model")
    train.add_argument("--logdir", required=True, help="run directory (logs, checkpoints, model)")
    train.add_argument("--dataset", help="mnist, fashion_mnist, or any name with --data-dir of IDX "
                                         "files (default: mnist)")
    train.add_argument("--data-dir", help="directory of IDX files (or TFAAE_DATA_DIR)")
    train.add_argument("--no-download", dest="download", action="store_false",
                       help="never download through TFDS")
    train.add_argument("--epochs", type=_positive_int,
                       help="passes over the data (vae/iwae default: the paper's 3280; aae: required)")
    train.add_argument("--batch-size", type=_positive_int, help="default: 20 (vae/iwae), 100 (aae)")
    train.add_argument("--learning-rate", type=_positive_float,
                       help="default 1e-3 (vae/iwae); with --schedule adam: 2e-4 for aae, "
                            "semi-supervised and dim-reduction, 1e-3 for clustering")
    train.add_argument("--schedule", choices=["burda", "constant", "makhzani", "adam"],
                       help="vae/iwae: burda (default: 3^i epochs at lr*10^(-i/7), compressed into "
                            "--epochs) or constant; aae: makhzani (default: the paper's SGD with "
                            "momentum, rates / 10 at epochs 50 and 1000) or adam")
    train.add_argument("--binarization", choices=["dynamic", "fixed", "none"],
                       help="default: dynamic (vae/iwae), none (aae: grey levels, as the paper)")
    train.add_argument("--validation-size", type=_non_negative_int, help="default 400")
    train.add_argument("--seed", type=_non_negative_int, help="default 0")
    train.add_argument("--precision", choices=["float32", "mixed_bfloat16"])
    train.add_argument("--xla", dest="jit_compile", action="store_true",
                       help="compile steps with XLA (in-graph input checks are then skipped)")
    train.add_argument("--steps-per-execution", type=_positive_int,
                       help="training steps per call of the compiled step (default 100; an "
                            "epoch's last call runs the steps left)")
    train.add_argument("--init-from", help="start from this run's final weights")
    train.add_argument("--max-train-examples", type=_positive_int,
                       help="train on the first N training images only")
    train.add_argument("--eval-every", type=_interval, default="auto",
                       help="vae/iwae: every N epochs, log the NLL and active units of 1000 test "
                            "images (default: about 10 times per run, and after the last epoch)")
    train.add_argument("--no-eval", dest="eval_every", action="store_const", const=None,
                       help="no periodic evaluation")
    train.add_argument("--eval-num-samples", type=_positive_int, default=1000,
                       help="k, importance samples of the periodic NLL estimate")
    train.add_argument("--image-every", type=_interval, default="auto",
                       help="every N epochs, send figures (samples, reconstructions, latent map) and "
                            "posterior histograms to TensorBoard (default: about 20 times per run, "
                            "and after the last epoch)")
    train.add_argument("--no-images", dest="image_every", action="store_const", const=None,
                       help="no figures or histograms")
    train.add_argument("--no-projector", dest="projector", action="store_false", default=True,
                       help="do not write test codes for TensorBoard's embedding projector")
    train.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"],
                       help="tf.distribute strategy: default (one device), mirrored (this "
                            "machine's devices) or multi-worker (several machines, configured by "
                            "TF_CONFIG; see the README)")
    train.add_argument("--collective-timeout", type=_positive_int,
                       help="multi-worker: seconds a worker waits for the others before failing")
    train.add_argument("--time-limit", type=_duration, default=None,
                       help="stop at the last epoch boundary before this much time has passed "
                            "(e.g. 150m, 2.5h, 90s, 1:30:00; a Slurm or preemptible job's limit), "
                            "the backup written, and exit with status 3; the same command "
                            "continues the run (at least one epoch per call)")
    train.add_argument("--quiet", action="store_true", default=False, help="no progress bar")
    _add_thread_flags(train)
    vae = train.add_argument_group("vae and iwae")
    vae.add_argument("--num-samples", type=_positive_int,
                     help="k, samples per example (default: 1 for vae, 50 for iwae)")
    vae.add_argument("--layers", type=int, choices=[1, 2], help="stochastic layers (default 1)")
    vae.add_argument("--gradient-estimator", choices=["reparam", "dreg"], help="iwae only")
    vae.add_argument("--batch-splits", type=_positive_int,
                     help="run each training batch as this many row blocks the cores can work on "
                          "side by side, the same numbers (default 1; 2 with --intra-op-threads 1)")
    aae = train.add_argument_group("aae")
    aae.add_argument("--latent-dim", type=_positive_int, help="size of z (default 8)")
    aae.add_argument("--prior", choices=["gaussian", "mixture", "swiss_roll"],
                     help="p(z) (default gaussian; mixture and swiss_roll are 2-D)")
    aae.add_argument("--prior-scale", type=_positive_float, help="std of the gaussian prior (default 1)")
    aae.add_argument("--posterior", choices=["deterministic", "gaussian", "universal"],
                     help="q(z|x) (default deterministic)")
    aae.add_argument("--supervised", choices=["none", "discriminator", "decoder"],
                     help="label to the discriminator or to the decoder (default none)")
    aae.add_argument("--labels", type=_label_count,
                     help="aae with --supervised discriminator: keep N training labels "
                          "(class-balanced), the rest unlabeled (default: all labeled); "
                          "semi-supervised and dim-reduction: N (default 1000 for semi-supervised; "
                          "dim-reduction without it is unsupervised) or all")
    aae.add_argument("--reconstruction", choices=["squared_error", "bernoulli"],
                     help="reconstruction loss (default squared_error, the paper's)")
    aae.add_argument("--hidden-units", type=_positive_int,
                     help="width of the two hidden layers of every network (default 1000)")

    categorical = train.add_argument_group("semi-supervised, clustering and dim-reduction")
    categorical.add_argument("--clusters", type=_positive_int,
                             help="clusters of clustering (default 16) and unsupervised "
                                  "dim-reduction (default 20)")
    categorical.add_argument("--style-dim", type=_positive_int,
                             help="size of the style z (default 10 semi-supervised, 5 clustering, "
                                  "the head dimension for dim-reduction)")
    categorical.add_argument("--head-dim", type=_positive_int,
                             help="dim-reduction: dimension m of the cluster heads W_c y (default 2)")
    categorical.add_argument("--head-distance", type=_positive_float,
                             help="dim-reduction: eta, heads closer than it are penalised (default 6)")
    categorical.add_argument("--labeled-batch-size", type=_positive_int,
                             help="labeled images per batch (default: --batch-size)")

    evaluate = commands.add_parser("evaluate", help="evaluate a run (vae/iwae: NLL and active units; aae: "
                                                    "Parzen and importance-sampled log-likelihood; "
                                                    "semi-supervised, clustering, dim-reduction: "
                                                    "test error rates)")
    evaluate.add_argument("run", help="a run directory written by `tfaae train`")
    evaluate.add_argument("--num-samples", type=_positive_int, default=5000,
                          help="importance samples per image")
    evaluate.add_argument("--parzen-samples", type=_positive_int, default=10_000,
                          help="aae: generated samples of the Parzen density")
    evaluate.add_argument("--split", choices=["test", "validation"], default="test")
    evaluate.add_argument("--max-examples", type=_positive_int, default=None)
    evaluate.add_argument("--data-dir", default=None, help="override the run's data directory")
    evaluate.add_argument("--seed", type=_non_negative_int, default=0)
    evaluate.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default=None,
                          help="evaluation precision (default: the model's own)")
    _add_thread_flags(evaluate)

    export = commands.add_parser("export", help="write a run's model as a SavedModel for TF Serving")
    export.add_argument("run", help="a run directory written by `tfaae train`")
    export.add_argument("path", help="version directory: saved_models/<model_name>/<integer version>")
    # Unset options keep the defaults of tfaae.serving.ExportOptions.
    export.add_argument("--log-likelihood-samples", type=_positive_int,
                        help="k of the log_likelihood signature (default 1000)")
    export.add_argument("--chunk-size", type=_positive_int,
                        help="importance samples drawn at once by log_likelihood (default 100)")
    export.add_argument("--log-likelihood-seed", type=_non_negative_int,
                        help="seed of log_likelihood's noise (default 0)")
    export.add_argument("--max-samples", type=_positive_int,
                        help="the largest num_samples the sample signature accepts (default 10000)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing version")
    export.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="write no TF Serving warmup requests")
    report = commands.add_parser("report", help="figures (PNG) and a Markdown summary of a run")
    report.add_argument("run", help="a run directory written by `tfaae train`")
    report.add_argument("--num-examples", type=_positive_int, default=1000,
                        help="test images in the figures")
    report.add_argument("--data-dir", default=None, help="override the run's data directory")
    report.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the prior samples")
    return parser


def main(argv=None):
    """Entry point of the `tfaae` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = vars(args)  # the thread pools are the process's, not settings of the run.
    threads = configure_threads(options.pop("intra_op_threads", None),  # before the first op.
                                options.pop("inter_op_threads", None))
    from tfaae import training

    try:
        if args.command == "train":
            settings = {k: v for k, v in vars(args).items()
                        if k not in ("command", "logdir", "quiet", "time_limit")}
            result = training.train(args.logdir, verbose=0 if args.quiet else 1,
                                    time_limit=args.time_limit, **settings)
            print(json.dumps({**result, "threads": threads}, indent=2))
            if result["status"] == "stopped_time_limit":
                print(f"tfaae: time limit: stopped after epoch {result['epochs']} of "
                      f"{result['of_epochs']}, backed up; run the same command to continue",
                      file=sys.stderr)
                return 3
            if result["status"] != "completed":
                stop = result["stopped_at"]
                kept = (f"the last good checkpoint is {result['last_good_checkpoint']}"
                        if result["last_good_checkpoint"] else
                        "no epoch ended with finite metrics, so there is no checkpoint")
                print(f"tfaae: training stopped: non-finite {', '.join(stop['metrics'])} at epoch "
                      f"{stop['epoch']}, batch {stop['batch']}; {kept} (try a lower learning rate)",
                      file=sys.stderr)
                return 1
        elif args.command == "export":
            options = {k: v for k, v in vars(args).items()
                       if k not in ("command", "run", "path") and v is not None}
            result = training.export_run(args.run, args.path, **options)
            print(f"exported {result['source']} ({result['model']}) to {result['path']}; "
                  f"signatures: {', '.join(result['signatures'])} "
                  f"(serving_default: {result['serving_default']})")
            print(json.dumps(result, indent=2))
        elif args.command == "report":
            from tfaae import report
            written = report.write_report(args.run, num_examples=args.num_examples,
                                          data_dir=args.data_dir, seed=args.seed)
            print(f"wrote {written['markdown']} and {len(written['figures'])} figures: "
                  + ", ".join(sorted(written["figures"])))
        else:
            result = training.evaluate_run(args.run, num_samples=args.num_samples, split=args.split,
                                           max_examples=args.max_examples, data_dir=args.data_dir,
                                           seed=args.seed, parzen_samples=args.parzen_samples,
                                           precision=args.precision)
            print("\n".join(training.describe_evaluation(result)))
            print(json.dumps({**result, "threads": threads}, indent=2))
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        print(f"tfaae: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
