"""Behaviour shared by every tfaae model: image checks, seeded randomness, clear input errors."""

import math

import keras
import tensorflow as tf

from tfaae import random, validation
from tfaae.networks import as_float32  # noqa: F401  (re-exported for the models)

PRECISIONS = ("float32", "mixed_bfloat16")


def _replace_policies(config, policy):
    """Returns `config` with every serialized DTypePolicy set to `policy` (nested layers too)."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and "config" in config:
            return {**config, "config": {**config["config"], "name": policy}}
        return {k: _replace_policies(v, policy) for k, v in config.items()}
    if isinstance(config, list):
        return [_replace_policies(v, policy) for v in config]
    return config


def with_precision(model, precision):
    """A copy of `model` computing in `precision` ("float32" or "mixed_bfloat16"), same weights.

    Variables stay float32 under both policies, so the copy shares the trained values exactly;
    only the matrix products change precision. Returns `model` itself when it already matches.

    Raises:
        ValueError: for an unknown precision.
    """
    validation.check_choice("precision", precision, PRECISIONS)
    if model.dtype_policy.name == precision:
        return model
    config = _replace_policies(keras.saving.serialize_keras_object(model), precision)
    clone = keras.saving.deserialize_keras_object(config)
    clone.set_weights(model.get_weights())
    return clone


SEED_STATE = "seed_generator_state"
_EXPORT = {"write": None}


def register_export(write):
    """Registers `write(model, path, **kwargs)` as the SavedModel writer of `ImageModel.export`.

    `tfaae.serving` registers `tfaae.serving.export` when imported, so that the models, which
    serving imports, never import serving.
    """
    _EXPORT["write"] = write


def in_row_blocks(compute, x, num_blocks):
    """`compute(x)`, a dict of `[k, batch]` tensors, run as `num_blocks` row blocks of x.

    Each block runs within `tfaae.random.row_block`, so it draws its rows of the whole batch's
    noise: the blocks are independent chains of ops that the cores can run side by side, with the
    numbers of one call (up to float32 summation order). One block is `compute(x)` itself.

    Args:
        compute: a function of `[rows, D]` images returning a dict of `[k, rows]` tensors.
        x: `[batch, D]` images.
        num_blocks: the number of row blocks (some are empty when batch < num_blocks).

    Returns:
        The blocks' dicts joined along the batch axis (axis 1).

    Example:
        >>> terms = in_row_blocks(lambda rows: {"log_w": tf.zeros([3, tf.shape(rows)[0]])},
        ...                       tf.zeros([5, 4]), 2)
        >>> terms["log_w"].shape
        TensorShape([3, 5])
    """
    if num_blocks == 1:
        return compute(x)
    batch = tf.shape(x)[0]
    ends = [batch * i // num_blocks for i in range(num_blocks + 1)]
    blocks = []
    for start, end in zip(ends[:-1], ends[1:]):
        with random.row_block(start, batch):
            blocks.append(compute(x[start:end]))
    return {key: tf.concat([block[key] for block in blocks], 1) for key in blocks[0]}


def _check_not_empty(method, x):
    """Raises a ValueError when `fit`/`evaluate`/`predict` get no examples (Keras would train on
    nothing, with a warning, report metrics of zero examples, or fail deep inside `predict`)."""
    if isinstance(x, tf.data.Dataset):
        if int(x.cardinality()) == 0:
            raise ValueError(f"{method} got an empty dataset: expected at least one batch of "
                             "images.")
        return
    x = x[0] if isinstance(x, (tuple, list)) and x else x
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) and shape[0] == 0:
        raise ValueError(f"{method} got no images: expected at least one, got shape {list(shape)}.")


class ImageModel(keras.Model):
    """A `keras.Model` over images in [0, 1] with a seeded `SeedGenerator`.

    Subclasses call `self.images(data)` at the top of `train_step`/`test_step`: it takes the images
    out of `x` or `(x, ...)`, checks them and flattens them to `[batch, D]`. Bad input raises a
    `ValueError`/`TypeError` from `fit`, `evaluate` and `predict`, not a TensorFlow traceback.

    Args:
        image_shape: shape of one image, e.g. (28, 28, 1).
        seed: integer seed of the model's randomness (None: nondeterministic).
    """

    network_names = ()  # the constructor's network arguments (layers or lists of layers).

    def __init__(self, image_shape=(28, 28, 1), seed=None, **kwargs):
        super().__init__(**kwargs)
        image_shape = tuple(image_shape)
        for d in image_shape:
            validation.check_positive_int("image_shape entries", d)
        if seed is not None:
            validation.check_positive_int("seed", seed, minimum=0)
        self.image_shape = image_shape
        self.input_dim = math.prod(image_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def images(self, data, name="x"):
        """Checks and flattens the images of a batch `x` or `(x, ...)` to float32 `[batch, D]`."""
        x = data[0] if isinstance(data, (tuple, list)) else data
        return validation.assert_unit_interval(
            validation.flatten_images(x, self.image_shape, name), name)

    def images_and_labels(self, data, num_classes, allow_unlabeled, needed_by):
        """Checked images `[batch, D]` and int32 labels `[batch]` of a batch `(images, labels)`.

        Args:
            data: `(images, labels)`; labels are class ids `[batch]` (-1: unlabeled) or one-hot
                rows (`tfaae.validation.class_labels`).
            num_classes: the number of classes.
            allow_unlabeled: whether -1 (all-zero rows) may mark an unlabeled example.
            needed_by: what needs the labels, for the error message (e.g. "supervised='decoder'").

        Raises:
            ValueError: for missing or bad labels, or not as many labels as images.
        """
        x = self.images(data)
        y = data[1] if isinstance(data, (tuple, list)) and len(data) > 1 else None
        if y is None:
            raise ValueError(f"{needed_by} needs labels: pass (images, labels), labels being class "
                             "ids [batch] (-1: unlabeled) or one-hot rows; got images alone.")
        labels = validation.class_labels(y, num_classes, allow_unlabeled=allow_unlabeled)
        if x.shape[0] is not None and labels.shape[0] is not None and x.shape[0] != labels.shape[0]:
            raise ValueError(f"Got {x.shape[0]} images but {labels.shape[0]} labels.")
        return x, labels

    def get_config(self):
        """The constructor's arguments, the networks (`network_names`) serialized."""
        return {**super().get_config(), "image_shape": self.image_shape, "seed": self.seed,
                **{name: keras.saving.serialize_keras_object(getattr(self, name))
                   for name in self.network_names}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls.network_names:
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

    def save_own_variables(self, store):
        """Saves the model's own variables and, unlike Keras, its seed generator's state.

        Keras leaves `SeedGenerator` states out of saved models, so a loaded model (or a run resumed
        by `BackupAndRestore`) would replay the noise of the first steps; with the state saved it
        goes on with the noise it would have drawn next.
        """
        super().save_own_variables(store)
        store[SEED_STATE] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if SEED_STATE in keys:  # models saved before the state was saved lack it.
            self.seed_generator.state.assign(store[SEED_STATE])
        super().load_own_variables({k: store[k] for k in keys if k != SEED_STATE})

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               **kwargs):
        """Writes a SavedModel with the model's serving signatures (`tfaae.export`).

        The writer is `tfaae.serving.export`, which registers itself (`register_export`) when
        `tfaae` is imported: serving depends on the models, not the reverse.

        Args:
            filepath: the version directory, `saved_models/<model_name>/<integer version>`.
            format: "tf_saved_model"; other formats, or an explicit `input_signature`, go to
                `keras.Model.export`.
            verbose: ignored for SavedModels (kept for Keras's signature).
            input_signature: see `keras.Model.export`.
            **kwargs: `options`, `warmup`, `overwrite` of `tfaae.export`.

        Returns:
            The path written.
        """
        if format != "tf_saved_model" or input_signature is not None:
            return super().export(filepath, format=format, verbose=verbose,
                                  input_signature=input_signature, **kwargs)
        if _EXPORT["write"] is None:
            raise RuntimeError("No SavedModel writer is registered: import tfaae (or "
                               "tfaae.serving) to export with serving signatures.")
        return _EXPORT["write"](self, filepath, **kwargs)

    def build_optimizers(self):
        """Creates the optimizers' variables now, before `fit`.

        `keras.callbacks.BackupAndRestore` restores optimizer state only into variables that exist
        when training begins; built lazily at the first step, they would silently start afresh
        (keras#19389). Models with several optimizers extend this.
        """
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            with self.distribute_strategy.scope():
                optimizer.build(self.trainable_variables)

    def fit(self, *args, **kwargs):
        _check_not_empty("fit", args[0] if args else kwargs.get("x"))
        self.build_optimizers()
        with validation.translate_input_errors():
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        _check_not_empty("evaluate", args[0] if args else kwargs.get("x"))
        with validation.translate_input_errors():
            return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        _check_not_empty("predict", args[0] if args else kwargs.get("x"))
        with validation.translate_input_errors():
            return super().predict(*args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self.build_optimizers()
        with validation.translate_input_errors():
            return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        with validation.translate_input_errors():
            return super().test_on_batch(*args, **kwargs)


def check_output_widths(outputs):
    """Raises ValueError unless each (network name, output on one example, width) fits `[1, width]`."""
    for name, value, width in outputs:
        if tuple(value.shape) != (1, width):
            raise ValueError(f"The {name} must output {width} values per example; got shape "
                             f"{tuple(value.shape)[1:]}.")


class PhaseOptimizers:
    """Mixin for models with one optimizer per training phase, passed to `compile` by name.

    The class lists the names in `optimizer_names` (an instance may narrow them) and gives each
    phase's variables in `phase_variables()`; the mixin stores the optimizers, serialises them
    (`get_compile_config`/`compile_from_config`, so `.keras` reloads stay trainable) and builds them
    before `fit` (`build_optimizers`, so `BackupAndRestore` restores them; keras#19389).
    """

    optimizer_names = ()

    @property
    def metrics(self):
        """The model's `trackers` (one `keras.metrics.Mean` per reported number)."""
        return list(self.trackers.values())

    def default_optimizers(self):
        """The optimizers of phases given none, by name (override per model)."""
        from tfaae import schedules
        return schedules.makhzani_optimizers()

    def compile_phases(self, given, **kwargs):
        """Compiles with `given` ({name: optimizer, its name, or None for the default}).

        Raises:
            TypeError: for `optimizer=`, `loss=` or `metrics=`: the model defines its own.
            ValueError: if one optimizer instance is passed for two phases.
        """
        unsupported = sorted(set(kwargs) & {"optimizer", "loss", "loss_weights", "metrics",
                                            "weighted_metrics"})
        if unsupported:
            raise TypeError(f"{type(self).__name__}.compile takes {', '.join(self.optimizer_names)} "
                            f"(one optimizer per phase) and defines its own losses and metrics; "
                            f"got {unsupported}.")
        keras.Model.compile(self, optimizer=None, **kwargs)
        defaults = self.default_optimizers() if any(given.get(n) is None for n in self.optimizer_names) else {}
        chosen = [keras.optimizers.get(given[n]) if given.get(n) is not None else defaults[n]
                  for n in self.optimizer_names]
        if len({id(o) for o in chosen}) < len(chosen):
            raise ValueError("Each phase needs its own optimizer instance (each keeps its own state "
                             "for its own variables); got the same instance twice.")
        for name, optimizer in zip(self.optimizer_names, chosen):
            setattr(self, name, optimizer)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return {**{name: keras.saving.serialize_keras_object(getattr(self, name))
                   for name in self.optimizer_names},
                "steps_per_execution": self.steps_per_execution, "jit_compile": self.jit_compile,
                "run_eagerly": self.run_eagerly}

    def compile_from_config(self, config):
        config = {k: keras.saving.deserialize_keras_object(v) if k in self.optimizer_names else v
                  for k, v in config.items()}
        self.compile(**config)
        self.build_optimizers()

    def phase_variables(self):
        """{optimizer name: the variables it updates}."""
        raise NotImplementedError

    def build_optimizers(self):
        for name, variables in self.phase_variables().items():
            optimizer = getattr(self, name, None)
            if optimizer is not None and not optimizer.built:
                with self.distribute_strategy.scope():
                    optimizer.build(variables)
