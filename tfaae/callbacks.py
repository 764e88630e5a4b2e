"""Training callbacks: atomic checkpoints, a clean stop when a reported number stops being finite
or when a time limit nears, periodic evaluation, the history file and the run's clock. TensorBoard's
figures and summaries are in `tfaae.monitoring`."""

import math
import os
import re
import time

import keras

from tfaae import io


def is_due(epoch, every, epochs):
    """Whether a periodic callback acts after `epoch` (counted from 0): every `every` epochs
    (None: never) and after the last of `epochs` (None: unknown)."""
    return epoch + 1 == epochs or (every is not None and (epoch + 1) % every == 0)


def non_finite(logs):
    """The entries of a Keras `logs` dict that are NaN or infinite, as {name: float}.

    Every reported number is checked, not only "loss": the adversarial autoencoder reports one
    loss per phase and no "loss".
    """
    out = {}
    for name, value in (logs or {}).items():
        try:
            value = float(value)
        except (TypeError, ValueError):  # not a number (a tensor of several values, a string).
            continue
        if not math.isfinite(value):
            out[name] = value
    return out


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (weights, optimizer state, config) to `path` after each epoch.

    The file is written beside `path` and renamed over it, so a crash never leaves half a
    checkpoint; epochs with a non-finite metric are not saved, so the file is the last good state.

    Args:
        path: target `.keras` file.
    """

    def __init__(self, path):
        super().__init__()
        if not str(path).endswith(".keras"):
            raise ValueError(f"path must end in .keras; got {path!r}.")
        self.path = os.fspath(path)
        self.last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if non_finite(logs):
            return
        io.save_model(self.model, self.path)
        self.last_epoch = epoch


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch with a NaN or infinite metric, and remembers where.

    Unlike `keras.callbacks.TerminateOnNaN` it watches every reported number, not only "loss", and
    records the epoch, batch and the offending metrics (`self.stopped_at`) so the caller can report
    them and keep the last good checkpoint.
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = non_finite(logs)
        if bad:
            self.stopped_at = {"epoch": self._epoch + 1, "batch": batch + 1, "metrics": bad}
            self.model.stop_training = True


class EvaluationCallback(keras.callbacks.Callback):
    """Every `every` epochs, estimates the NLL (k importance samples) and counts active units on a
    fixed subset, and adds them to the epoch's logs (so `fit`'s history and a TensorBoard callback
    placed after this one record them) as `nll_k{k}` and `active_units` (summed over layers).

    Args:
        data: images in [0, 1] (array or `tf.data.Dataset`), a fixed evaluation subset.
        every: interval in epochs (the last epoch of `fit` is always evaluated).
        num_samples: k of the importance-sampled estimate.
        precision: evaluation precision (see `tfaae.evaluation.log_likelihood`).
        seed: seed of the importance samples (the same at every evaluation).
    """

    def __init__(self, data, every=1, num_samples=1000, precision=None, seed=0):
        super().__init__()
        from tfaae import validation
        self.every = validation.check_positive_int("every", every)
        self.num_samples = validation.check_positive_int("num_samples", num_samples)
        self.data, self.precision, self.seed = data, precision, seed
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        if is_due(epoch, self.every, self.params.get("epochs")):
            self.evaluate(epoch, logs)

    def evaluate(self, epoch, logs=None):
        """Measures the model now; records and returns {"epoch", "nll_k{k}", "active_units"}
        (a list, one count per stochastic layer), and adds both numbers to `logs`."""
        from tfaae import evaluation
        ll = evaluation.log_likelihood(self.model, self.data, self.num_samples, seed=self.seed,
                                       precision=self.precision)
        units = evaluation.active_units(self.model, self.data)["counts"]
        record = {"epoch": epoch + 1, f"nll_k{self.num_samples}": float(-ll.mean()),
                  "active_units": units}
        self.history.append(record)
        if logs is not None:
            logs[f"nll_k{self.num_samples}"] = record[f"nll_k{self.num_samples}"]
            logs["active_units"] = float(sum(units))
        return record


class HistoryFile(keras.callbacks.Callback):
    """Keeps every epoch's logs in a JSON file (atomically rewritten each epoch).

    A resumed run (`BackupAndRestore`) appends to the epochs already recorded, so the file holds
    the whole run's learning curve even across interruptions.

    Args:
        path: the JSON file: a list of {"epoch": n, metric: value, ...}.
    """

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)

    def on_train_begin(self, logs=None):
        import json
        self.records = []
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.records = json.load(f)

    def record(self, epoch, logs):
        """The record of an epoch (counted from 0): its number and every numeric entry of `logs`."""
        record = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            try:
                record[key] = float(value)
            except (TypeError, ValueError):
                continue
        return record

    def on_epoch_end(self, epoch, logs=None):
        self.records = [r for r in self.records if r["epoch"] < epoch + 1] + [self.record(epoch, logs)]
        io.write_json(self.path, self.records)


class RunClock(HistoryFile):
    """Keeps, for every epoch, the training time spent so far, summed over resumptions, in a JSON
    file: {"epoch": n, "wall_seconds": s, "cpu_seconds": c} records (`clock.json` of a run).

    `cpu_seconds` is this process's CPU time (every thread, so two busy cores count twice): the
    "CPU-hours" a learning curve is plotted against. A resumed run adds to the time of the last
    epoch it resumes after; time spent on an epoch that a crash cut short is not counted.

    Args:
        path: the JSON file.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._start = (time.perf_counter(), time.process_time())
        self._resumed = None

    def record(self, epoch, logs):
        if self._resumed is None:  # the last epoch before this process's first one.
            before = [r for r in self.records if r["epoch"] <= epoch]
            self._resumed = before[-1] if before else {"wall_seconds": 0.0, "cpu_seconds": 0.0}
        return {"epoch": epoch + 1,
                "wall_seconds": round(self._resumed["wall_seconds"]
                                      + time.perf_counter() - self._start[0], 3),
                "cpu_seconds": round(self._resumed["cpu_seconds"]
                                     + time.process_time() - self._start[1], 3)}


class TimeLimit(keras.callbacks.Callback):
    """Stops training at an epoch boundary when the next epoch might not end before a deadline.

    After each epoch it compares the time left with the longest epoch seen so far (the periodic
    evaluations and backups included) times `margin`; when that does not fit, it sets
    `model.stop_training`, and `stopped` is True. Every epoch's callbacks (the backup among them)
    still run, so re-running the same `tfaae.training.train` call continues from there, with the
    learning-rate schedule and the data order of an uninterrupted run. At least one epoch is
    trained per `fit`, so a loop of re-runs always moves forward.

    Args:
        deadline: a `time.monotonic()` value: when the limit is reached.
        margin: the multiple of the longest epoch that must still fit (default 1.1).

    Example:
        >>> limit = TimeLimit(time.monotonic() + 3600)  # one hour from now.
        >>> model.fit(x, epochs=100, callbacks=[limit, backup])  # limit.stopped: re-run later.
    """

    def __init__(self, deadline, margin=1.1):
        super().__init__()
        if not isinstance(deadline, (int, float)) or isinstance(deadline, bool):
            raise TypeError(f"deadline must be a time.monotonic() value; got {deadline!r}.")
        if not (isinstance(margin, (int, float)) and margin >= 1):
            raise ValueError(f"margin must be a number >= 1; got {margin!r}.")
        self.deadline, self.margin = float(deadline), float(margin)
        self.stopped = False

    def on_train_begin(self, logs=None):
        self._last, self.longest = time.monotonic(), 0.0

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.longest, self._last = max(self.longest, now - self._last), now
        if now + self.margin * self.longest > self.deadline and epoch + 1 < (self.params or {}).get(
                "epochs", math.inf):
            self.stopped = True
            self.model.stop_training = True


def parse_duration(text):
    """Seconds of a duration: "90s", "150m", "2.5h", "1d", "3h50m", a bare number of minutes (as
    Slurm's --time), "MM:SS" or "HH:MM:SS".

    Raises:
        ValueError: for anything else, or a duration that is not positive.
    """
    value = None
    text_ = str(text).strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    number = r"(?:\d+\.?\d*|\.\d+)"
    if re.fullmatch(number, text_):
        value = float(text_) * 60
    elif re.fullmatch(rf"{number}(?::{number}){{1,2}}", text_):
        value = sum(float(p) * 60 ** i for i, p in enumerate(reversed(text_.split(":"))))
    elif re.fullmatch(rf"(?:{number}[dhms])+", text_):
        parts = re.findall(rf"({number})([dhms])", text_)
        if len({unit for _, unit in parts}) == len(parts):  # each unit once.
            value = sum(float(amount) * units[unit] for amount, unit in parts)
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a positive duration such as 90s, 150m, 2.5h, 3h50m, 1d, a "
                         f"number of minutes or HH:MM:SS; got {text!r}")
    return value


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup survives a kill at any moment.

    Keras writes the backup's weights and its epoch counter in place, one after the other, so a
    process killed while writing (`kill -9`, a preempted machine) leaves a torn weights file, or
    the weights of one epoch with the counter of another. Here each epoch's weights go to their own
    file, written beside it and renamed; then the counter, which names that file, is replaced
    atomically; only then are older weights removed. A crash at any point leaves a consistent
    backup: the previous one or the new one.

    Before restoring, every optimizer of the model is built (`ImageModel.build_optimizers`: the
    AAE has three), so that all their states come back (keras#19389). Epochs with a non-finite
    metric are not backed up, so a resumed run never starts from NaN weights.

    Args:
        backup_dir: the backup directory (removed when training completes).
        save_dir: where this process writes its backups, if not `backup_dir`: the non-chief
            workers of a multi-worker run restore the chief's backup but write their own (which
            `tf.distribute` may need for its collective reads) to a directory of their own.

    Example:
        >>> backup = AtomicBackupAndRestore("runs/x/backup")
        >>> model.fit(x, epochs=10, callbacks=[backup])   # run again after a crash: it resumes.
    """

    METADATA = "training_metadata.json"

    def __init__(self, backup_dir, save_dir=None):
        super().__init__(os.fspath(backup_dir), save_freq="epoch")
        self.save_dir = os.fspath(save_dir or backup_dir)
        self._finished = False

    def on_train_end(self, logs=None):
        """Removes the backup once the run has trained its last epoch or stopped on a non-finite
        number; a run stopped early otherwise (`TimeLimit`) keeps it, to continue from."""
        import shutil
        if self._finished:
            shutil.rmtree(self.save_dir, ignore_errors=True)

    @classmethod
    def saved_epoch(cls, backup_dir):
        """The number of epochs a backup in `backup_dir` holds (0 without a backup)."""
        metadata = cls._metadata(backup_dir)
        return 0 if metadata is None else int(metadata["epoch"])

    @classmethod
    def _metadata(cls, backup_dir):
        import json
        path = os.path.join(backup_dir, cls.METADATA)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
        if "weights" not in metadata:  # a backup of keras.callbacks.BackupAndRestore itself.
            metadata["weights"] = "latest.weights.h5"
        return metadata

    def on_train_begin(self, logs=None):
        epochs = (self.params or {}).get("epochs")
        self._finished = epochs is not None and self.saved_epoch(self.backup_dir) >= epochs
        self._load_model()

    def _load_model(self):
        if os.path.isdir(self.backup_dir):  # temporary files of a write that a crash cut short.
            for name in os.listdir(self.backup_dir):
                if name.startswith(".") and ".tmp-" in name:
                    os.remove(os.path.join(self.backup_dir, name))
        metadata = self._metadata(self.backup_dir)
        if metadata is None:
            return
        build = getattr(self.model, "build_optimizers", None)
        if build is not None:
            build()
        elif self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = int(metadata["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        if non_finite(logs):
            self._finished = True
            return
        if epoch + 1 == (self.params or {}).get("epochs"):
            self._finished = True
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        name = f"epoch-{self._current_epoch}.weights.h5"
        with io.atomic_path(os.path.join(self.save_dir, name)) as tmp:
            self.model.save_weights(tmp)
        io.write_json(os.path.join(self.save_dir, self.METADATA),
                      {"epoch": self._current_epoch, "batch": 0, "weights": name})
        for old in os.listdir(self.save_dir):
            if old.endswith(".weights.h5") and old != name and not old.startswith("."):
                os.remove(os.path.join(self.save_dir, old))
