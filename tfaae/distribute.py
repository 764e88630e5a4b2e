"""Training under `tf.distribute`: strategies by name, and a multi-worker training loop.

Every model's `train_step` is correct under a strategy: per-example noise is drawn for the global
batch and each replica keeps its rows, and losses are averaged over the global batch
(`tfaae.random.replica_rows`, `tfaae.random.average_loss`). So:

* one machine, several devices: `model.fit` under `tf.distribute.MirroredStrategy` (the models are
  built in `strategy.scope()`);
* several machines: Keras 3.15's `model.fit` fails under `MultiWorkerMirroredStrategy` ("Invalid
  reduction dimension 0", keras#20585, tensorflow#72388), so `fit` here is a small loop that runs
  the model's own `train_step` through `strategy.run` on a distributed dataset, with Keras
  callbacks (checkpoints, backups, the NaN stop) called as `model.fit` calls them.

Workers find each other through the `TF_CONFIG` environment variable (see the README, "Training on
several machines").
"""

import json
import os

import keras
import tensorflow as tf

from tfaae import validation

STRATEGIES = ("default", "mirrored", "multi-worker")


def get_strategy(name="default", timeout_seconds=None):
    """The `tf.distribute` strategy of a name.

    Args:
        name: "default" (no distribution), "mirrored" (`MirroredStrategy` over this machine's
            GPUs, or its CPU) or "multi-worker" (`MultiWorkerMirroredStrategy`, configured by the
            `TF_CONFIG` environment variable).
        timeout_seconds: multi-worker only: how long a collective operation may wait for the
            other workers before it fails (None: forever).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for an unknown name, "multi-worker" without a valid `TF_CONFIG`, or
            "multi-worker" asked for after TensorFlow has run operations in the process.

    Example:
        >>> strategy = get_strategy("mirrored")
        >>> with strategy.scope():
        ...     model = tfaae.VAE(seed=0)
    """
    validation.check_choice("strategy", name, STRATEGIES)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster = check_tf_config()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as error:
        raise ValueError(f"strategy 'multi-worker' must be set up before TensorFlow runs any "
                         f"operation in the process ({error}); call "
                         "tfaae.distribute.get_strategy('multi-worker') first.") from None
    if strategy.extended._num_workers != len(cluster):  # noqa: SLF001 (no public accessor)
        raise ValueError(f"TF_CONFIG names {len(cluster)} workers but the strategy found "
                         f"{strategy.extended._num_workers}.")  # noqa: SLF001
    return strategy


def check_tf_config():
    """Checks the `TF_CONFIG` environment variable of a multi-worker run.

    Returns:
        The list of the cluster's worker (and chief) addresses.

    Raises:
        ValueError: if `TF_CONFIG` is missing, not JSON, or lacks the cluster or this task.
    """
    text = os.environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise ValueError(f"strategy 'multi-worker' needs the TF_CONFIG environment variable on "
                         f"every worker, e.g. {example}.")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}); expected e.g. {example}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs \"cluster\" and \"task\" objects; got {text!r}.")
    workers = [a for kind in ("chief", "worker") for a in cluster.get(kind, [])]
    kind, index = task.get("type"), task.get("index")
    if kind not in ("chief", "worker") or not isinstance(index, int) or not (
            0 <= index < len(cluster.get(kind, []))):
        raise ValueError(f"TF_CONFIG's task must be a chief or worker listed in the cluster; got "
                         f"task {task!r} for cluster {cluster!r}.")
    return workers


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on the non-chief workers of a
    multi-worker strategy (the chief, or else worker 0, writes)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and \
        "chief" not in resolver.cluster_spec().as_dict()


def fit(model, dataset, epochs, callbacks=(), initial_epoch=0, verbose=0):
    """Trains `model` with its own `train_step` under its strategy, one step per replica at a time.

    `model.fit` for strategies where it fails (multi-worker); any strategy works. The model (and
    its optimizers) must have been built in the strategy's scope. The callbacks get the calls of
    `model.fit` (train begin/end, epoch begin/end, batch end with the metrics so far), so
    `keras.callbacks.BackupAndRestore`-like callbacks may set `model._initial_epoch` in
    `on_train_begin`, and any callback may stop training with `model.stop_training = True`.
    There is no validation pass.

    Args:
        model: a compiled tfaae model.
        dataset: a `tf.data.Dataset` of one epoch's global batches, of known length, read once
            per epoch (after `on_epoch_begin`) as `model.fit` reads a finite dataset: e.g. a
            `tfaae.data.EpochBatches`' dataset, with the `EpochBatches` among the callbacks.
        epochs: the index of the last epoch (as `model.fit`'s `epochs`).
        callbacks: Keras callbacks.
        initial_epoch: the epoch to start at (a restoring callback may move it).
        verbose: 1 prints one line per epoch.

    Returns:
        A `keras.callbacks.History`.

    Raises:
        ValueError: for bad epochs or steps, or bad input data (as `model.fit`).
    """
    validation.check_positive_int("epochs", epochs)
    steps_per_epoch = int(dataset.cardinality())
    if steps_per_epoch < 1:
        raise ValueError("dataset must hold one epoch of batches, of known length (e.g. "
                         "tfaae.data.epoch_batches(...).dataset); got a dataset of cardinality "
                         f"{steps_per_epoch} (-1: infinite, -2: unknown).")
    strategy = model.distribute_strategy
    model.build_optimizers()
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, history], model=model, epochs=epochs, steps=steps_per_epoch,
        verbose=verbose)
    model.stop_training = False
    model._initial_epoch = initial_epoch  # noqa: SLF001 (the attribute BackupAndRestore sets)
    callback_list.on_train_begin()
    first = model._initial_epoch  # noqa: SLF001
    distributed = strategy.experimental_distribute_dataset(dataset)

    @tf.function
    def train_step(iterator):
        strategy.run(model.train_step, args=(next(iterator),))

    with validation.translate_input_errors():
        for epoch in range(first, epochs):
            for metric in model.metrics:
                metric.reset_state()
            callback_list.on_epoch_begin(epoch)
            iterator = iter(distributed)
            for step in range(steps_per_epoch):
                callback_list.on_train_batch_begin(step)
                train_step(iterator)
                logs = {m.name: m.result() for m in model.metrics}
                callback_list.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            logs = {name: float(value) for name, value in logs.items()}
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: "
                      + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    callback_list.on_train_end(logs if epochs > first else None)
    return history
