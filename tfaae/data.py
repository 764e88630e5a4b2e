"""Image datasets for tfaae: MNIST, Fashion-MNIST and any dataset in MNIST's IDX format.

Images come as float32 in [0, 1] with shape `[28, 28, 1]` (the dataset's own shape for other IDX
data), labels as int32. Sources are tried in this order, the local ones before the network:

1. an explicit directory of IDX files (`data_dir=` or the `TFAAE_DATA_DIR` environment variable),
   holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
   `t10k-labels-idx1-ubyte`, each raw or gzipped;
2. a prepared TensorFlow Datasets cache (`tfds_data_dir=`, or TFDS's default `~/tensorflow_datasets`);
3. Debian's package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`), Fashion-MNIST only;
4. a TFDS download (when `download=True`).

Example:
    >>> train, val, test = load_datasets("mnist", data_dir="../shared/datasets/mnist",
    ...                                  batch_size=100, binarization="dynamic", seed=0)
"""

import gzip
import math
import os

import keras
import numpy as np
import tensorflow as tf

DEBIAN_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist"}
KNOWN_DATASETS = tuple(TFDS_NAMES)
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
BINARIZATIONS = ("dynamic", "fixed", "none")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataNotFoundError(FileNotFoundError):
    """Raised when no source can provide a dataset; the message names the ways to provide it."""


def read_idx(path):
    """Reads one IDX file (raw or gzipped) into a NumPy array.

    Args:
        path: path of the file.

    Returns:
        The array, with the shape and dtype that the file's header declares.

    Raises:
        ValueError: if the file is not in IDX format or is truncated.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file: expected a header 00 00 <dtype> <ndim>, "
                         f"got bytes {data[:4].hex(' ')!r}.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path} is truncated or padded: its header {shape} needs {expected} "
                         f"bytes, the file has {len(data)}.")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)


def _find_idx(directory, stem):
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    return None


def _from_idx_dir(directory):
    arrays = {}
    for split, (image_stem, label_stem) in IDX_FILES.items():
        image_path, label_path = _find_idx(directory, image_stem), _find_idx(directory, label_stem)
        if image_path is None or label_path is None:
            missing = image_stem if image_path is None else label_stem
            raise DataNotFoundError(f"{directory} has no {missing} (raw or .gz).")
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{directory}: expected images [N, H, W] and labels [N]; got images "
                             f"{images.shape} and labels {labels.shape}.")
        arrays[split] = (images[..., None], labels.astype(np.int32))
    return arrays


def _from_tfds(name, tfds_data_dir, download):
    import tensorflow_datasets as tfds  # imported lazily: it is slow to import.
    splits = tfds.load(TFDS_NAMES[name], split=["train", "test"], as_supervised=True,
                       data_dir=tfds_data_dir, download=download)
    arrays = {}
    for split, ds in zip(("train", "test"), splits):
        batches = list(tfds.as_numpy(ds.batch(10_000)))
        arrays[split] = (np.concatenate([b[0] for b in batches]).astype(np.uint8),
                         np.concatenate([b[1] for b in batches]).astype(np.int32))
    return arrays


def load_arrays(name="mnist", data_dir=None, tfds_data_dir=None, download=True):
    """Loads a dataset's train and test splits as uint8 arrays.

    Args:
        name: "mnist", "fashion_mnist", or any name when `data_dir` holds IDX files.
        data_dir: directory of IDX files; defaults to the `TFAAE_DATA_DIR` environment variable.
        tfds_data_dir: TFDS's data directory (None: TFDS's default).
        download: whether TFDS may download the dataset when nothing local serves.

    Returns:
        A dict {"train": (images, labels), "test": (images, labels)}, images uint8 [N, H, W, 1],
        labels int32 [N], and {"source": description of where the data came from}.

    Raises:
        DataNotFoundError: if no source has the dataset.
        ValueError: if a name is unknown and no data directory is given.
    """
    data_dir = data_dir or os.environ.get("TFAAE_DATA_DIR") or None
    reasons = []
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise DataNotFoundError(f"data_dir={data_dir!r} is not a directory (expected IDX files "
                                    f"{', '.join(s for pair in IDX_FILES.values() for s in pair)}).")
        arrays = _from_idx_dir(data_dir)
        arrays["source"] = f"IDX files in {data_dir}"
        return arrays
    if name not in KNOWN_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: expected one of {', '.join(KNOWN_DATASETS)}, "
                         f"or any name together with data_dir= (or TFAAE_DATA_DIR) holding IDX files.")
    attempts = [("a prepared TFDS cache", lambda: _from_tfds(name, tfds_data_dir, download=False))]
    if name in DEBIAN_DIRS:
        attempts.append((f"Debian's files in {DEBIAN_DIRS[name]}", lambda: _from_idx_dir(DEBIAN_DIRS[name])))
    if download:
        attempts.append(("a TFDS download", lambda: _from_tfds(name, tfds_data_dir, download=True)))
    for description, attempt in attempts:
        try:
            arrays = attempt()
        except Exception as error:  # each source fails in its own way; report them all below.
            reasons.append(f"{description}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            continue
        arrays["source"] = description
        return arrays
    ways = ["pass data_dir= (CLI: --data-dir) or set TFAAE_DATA_DIR to a directory holding the four "
            "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])",
            f"prepare it with TensorFlow Datasets (`tfds build {TFDS_NAMES[name]}` on a machine with "
            "internet, then copy ~/tensorflow_datasets or pass tfds_data_dir=)",
            "for fashion_mnist, install Debian's package: apt-get install dataset-fashion-mnist"]
    raise DataNotFoundError(f"Could not load dataset {name!r}. Tried:\n  - " + "\n  - ".join(reasons)
                            + "\nProvide it in one of three ways:\n  1. " + "\n  2. ".join(ways[:2])
                            + "\n  3. " + ways[2])


def to_unit_interval(images):
    """Converts uint8 images in [0, 255] to float32 in [0, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 in [0, 255]; got dtype {images.dtype}.")
    return images.astype(np.float32) / 255.0


def binarize_fixed(images, seed=0):
    """Samples a binarization once: pixel ~ Bernoulli(intensity), reproducible from `seed`.

    Args:
        images: float array in [0, 1].
        seed: integer seed.

    Returns:
        A float32 array of zeros and ones of the same shape.
    """
    rng = np.random.default_rng(seed)
    return (rng.random(np.shape(images), dtype=np.float32) < images).astype(np.float32)


BLOCK_BATCHES = 8  # batches binarized per call of `_bernoulli`.


@tf.function(jit_compile=True)
def _bernoulli(images, seed):
    """Pixels ~ Bernoulli(grey level) from a `[2]` seed: ThreeFry uniforms under XLA.

    XLA vectorises ThreeFry on the CPU; TensorFlow's own stateless Philox op (scalar code) took
    about three times the CPU time per MNIST batch on 2 cores, time taken from training there.
    """
    draw = tf.random.stateless_uniform(tf.shape(images), seed=seed, dtype=images.dtype,
                                       alg="threefry")
    return tf.cast(draw < images, images.dtype)


def _batches(tensors, order, batch_size, drop_remainder, binarize_seed=None):
    """The batches of `tensors` (images, or (images, labels)) in `order`, one element per batch.

    Each batch is a gather of its rows (not `batch` over single examples, which costs per example).
    With `binarize_seed` (`[2]` int64), the images of each block of `BLOCK_BATCHES` batches are
    binarized by one `_bernoulli` call, seeded by the seed folded in with the block's index.
    """
    size = tf.shape(order, out_type=tf.int64)[0]
    full = size // batch_size
    # Binarized as rows [n, D]: with a trailing channel axis of 1 as XLA's innermost loop, the
    # draw took twice the time.
    width = math.prod((tensors[0] if isinstance(tensors, tuple) else tensors).shape[1:])
    rows = tf.reshape(order[:full * batch_size], [-1, batch_size])

    def gather(index, positions):
        element = tf.nest.map_structure(lambda t: tf.gather(t, positions), tensors)
        if binarize_seed is None:
            return element
        images = element[0] if isinstance(element, tuple) else element
        seed = tf.random.experimental.stateless_fold_in(binarize_seed, index, alg="philox")
        binary = tf.reshape(_bernoulli(tf.reshape(images, [-1, width]), seed), tf.shape(images))
        return (binary,) + tuple(element[1:]) if isinstance(element, tuple) else binary

    if binarize_seed is None:
        ds = tf.data.Dataset.from_tensor_slices(rows).map(lambda r: gather(None, r))
    else:
        ds = (tf.data.Dataset.from_tensor_slices(rows).batch(BLOCK_BATCHES).enumerate()
              .map(gather).unbatch())
    if not drop_remainder:
        tail = tf.data.Dataset.from_tensors(order[full * batch_size:]).filter(
            lambda r: tf.size(r) > 0)
        ds = ds.concatenate(tail.map(lambda r: gather(-1, r)))  # block -1: the tail.
    return ds


def _in_memory(images, labels, batch_size, binarization, seed):
    """Checks the pipeline's arguments; returns the images (binarized once if "fixed"), or
    (images, int32 labels), as constant tensors.

    Raises:
        ValueError: for an unknown binarization or a non-positive batch size.
    """
    if binarization not in BINARIZATIONS:
        raise ValueError(f"binarization must be one of {BINARIZATIONS}; got {binarization!r}.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if binarization == "fixed":
        images = binarize_fixed(images, seed)
    return tf.nest.map_structure(
        tf.constant, images if labels is None else (images, np.asarray(labels, np.int32)))


def _prefetched(ds):
    """`ds` prefetched, without tf.data's autotuning. These pipelines need no tuning (no parallel
    stages; the training step waits on none), and with it a new pass sometimes stalled: in `fit`,
    1 to 3 epochs in 16 began 1.2 s late (the iterator made for the epoch, or the previous one let
    go; never with autotuning off)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _num_batches(size, batch_size, drop_remainder):
    return size // batch_size if drop_remainder else -(-size // batch_size)


def split_train_validation(images, labels, validation_size=400):
    """Holds out the LAST `validation_size` training examples for validation, as the IWAE code does.

    Raises:
        ValueError: if `validation_size` is negative or not smaller than the training set.
    """
    if not isinstance(validation_size, (int, np.integer)) or not 0 <= validation_size < len(images):
        raise ValueError(f"validation_size must be an integer in [0, {len(images)}); "
                         f"got {validation_size!r}.")
    cut = len(images) - validation_size
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def labeled_subset(images, labels, num_labels, num_classes=10, seed=0):
    """Draws `num_labels` examples balanced over the classes (num_labels / num_classes each).

    Args:
        images: array [N, ...].
        labels: integer array [N].
        num_labels: total number of labeled examples; a multiple of `num_classes`.
        num_classes: number of classes.
        seed: integer seed.

    Returns:
        (images, labels, indices) of the subset, in a seeded random order.

    Raises:
        ValueError: if labels fall outside [0, num_classes), a class has too few examples,
            or `num_labels` is not a positive multiple of `num_classes`.
    """
    labels = np.asarray(labels)
    if not isinstance(num_labels, (int, np.integer)) or num_labels < num_classes or num_labels % num_classes:
        raise ValueError(f"num_labels must be a positive multiple of num_classes={num_classes} (at "
                         f"least one label per class); got {num_labels!r}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got values in "
                         f"[{labels.min()}, {labels.max()}].")
    per_class = num_labels // num_classes
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class:
            raise ValueError(f"class {c} has {len(pool)} examples; {per_class} are needed for "
                             f"num_labels={num_labels} balanced over {num_classes} classes.")
        chosen.append(rng.choice(pool, per_class, replace=False))
    indices = rng.permutation(np.concatenate(chosen))
    return images[indices], labels[indices], indices


UNLABELED = -1


def semi_supervised_labels(labels, num_labels, num_classes=10, seed=0):
    """Keeps a class-balanced, seeded subset of `num_labels` labels and marks the rest unlabeled.

    This is the label format of the supervised adversarial autoencoder: int32 class ids, -1
    (`UNLABELED`) for an example whose label is hidden (the paper's figure: 10,000 labeled and
    40,000 unlabeled MNIST images). The subset is `labeled_subset`'s.

    Args:
        labels: integer array [N] in [0, num_classes).
        num_labels: how many stay labeled; a positive multiple of `num_classes`.
        num_classes: number of classes.
        seed: integer seed of the subset.

    Returns:
        int32 array [N]: the label where kept, -1 elsewhere.

    Raises:
        ValueError: as `labeled_subset`.
    """
    labels = np.asarray(labels)
    _, _, indices = labeled_subset(labels, labels, num_labels, num_classes, seed)
    out = np.full(len(labels), UNLABELED, np.int32)
    out[indices] = labels[indices]
    return out


def make_dataset(images, labels=None, batch_size=100, binarization="dynamic", shuffle=False,
                 seed=0, drop_remainder=False):
    """Builds a batched `tf.data.Dataset` from float images in [0, 1].

    The pipeline is light, since on a small CPU its work is taken from training: the images stay in
    memory as one tensor, each pass draws a seeded permutation, each batch is one gather of its
    rows, and dynamic binarization draws ThreeFry uniforms under XLA for blocks of
    `BLOCK_BATCHES` batches at a time (seeded per pass and block).

    Args:
        images: float32 array [N, H, W, C] in [0, 1].
        labels: optional int array [N]; when given, elements are (images, labels).
        batch_size: batch size.
        binarization: "dynamic" (fresh Bernoulli sample each pass), "fixed" (sampled once from
            `seed`) or "none" (grey levels).
        shuffle: whether to reshuffle on each pass (seeded).
        seed: seed of the shuffle and the binarization.
        drop_remainder: whether to drop the last partial batch.

    Returns:
        The dataset.

    Raises:
        ValueError: for an unknown binarization or a non-positive batch size.
    """
    tensors = _in_memory(images, labels, batch_size, binarization, seed)
    size = len(images)

    # One seed pair per pass over the data (a new one each time the dataset is read): the pass's
    # order, and its binarization.
    def one_pass(pair):
        order = tf.range(size, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, pair)
        binarize_seed = pair if binarization == "dynamic" else None
        return _batches(tensors, order, batch_size, drop_remainder, binarize_seed)

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).take(1)
    ds = seeds.flat_map(one_pass)
    ds = ds.apply(tf.data.experimental.assert_cardinality(
        _num_batches(size, batch_size, drop_remainder)))
    return _prefetched(ds)


def make_epochs(images, labels=None, batch_size=100, binarization="dynamic", seed=0, epochs=1,
                first_epoch=0):
    """The training batches of epochs `first_epoch` to `epochs - 1`, one epoch after the other.

    Unlike `make_dataset(shuffle=True)`, whose order and binarization depend on how often the
    dataset was read before, each epoch here is a function of `(seed, epoch)` alone: a run resumed
    at epoch e (`BackupAndRestore`) sees exactly the batches the uninterrupted run saw from epoch
    e on. Passed to `fit` with `steps_per_epoch=math.ceil(len(images) / batch_size)`, its epochs
    stay apart only if `steps_per_execution` divides that (Keras 3 runs whole executions);
    `epoch_batches` gives the same epochs to `fit` for any `steps_per_execution`.

    Args:
        images: float32 array [N, H, W, C] in [0, 1].
        labels: optional int array [N]; when given, elements are (images, labels).
        batch_size: batch size.
        binarization: "dynamic" (a fresh Bernoulli sample every epoch), "fixed" or "none".
        seed: seed of the shuffles and binarizations.
        epochs: the number of epochs of the whole run.
        first_epoch: the first epoch to produce (counted from 0).

    Returns:
        A `tf.data.Dataset` of `(epochs - first_epoch) * ceil(N / batch_size)` batches.

    Raises:
        ValueError: for an unknown binarization, a non-positive batch size or bad epochs.

    Example:
        >>> x = np.zeros((10, 28, 28, 1), np.float32)
        >>> len(list(make_epochs(x, batch_size=4, epochs=3, first_epoch=1)))
        6
    """
    if not (isinstance(epochs, (int, np.integer)) and isinstance(first_epoch, (int, np.integer))
            and 0 <= first_epoch <= epochs):
        raise ValueError(f"epochs and first_epoch must be integers with 0 <= first_epoch <= epochs; "
                         f"got epochs={epochs!r}, first_epoch={first_epoch!r}.")
    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(
        _epochs_of(images, labels, batch_size, binarization, seed))
    ds = ds.apply(tf.data.experimental.assert_cardinality(
        (epochs - first_epoch) * _num_batches(len(images), batch_size, False)))
    return _prefetched(ds)


def _epoch(tensors, size, batch_size, binarization, key, drop_remainder=False):
    """The batches of one pass, its order and binarization functions of `key` (int64 `[2]`)
    alone: `[seed, epoch]` for `make_epochs`' epochs."""
    order = tf.random.experimental.stateless_shuffle(tf.range(size, dtype=tf.int64), seed=key)
    binarize_seed = key + tf.constant([1, 0], tf.int64) if binarization == "dynamic" else None
    return _batches(tensors, order, batch_size, drop_remainder, binarize_seed)


def _epochs_of(images, labels, batch_size, binarization, seed):
    """The function of the epoch (int64 scalar) returning that epoch's batches of `images`."""
    tensors = _in_memory(images, labels, batch_size, binarization, seed)
    return lambda epoch: _epoch(tensors, len(images), batch_size, binarization,
                                _epoch_key(seed, epoch))


def _epoch_key(seed, epoch):
    return tf.stack([tf.constant(seed, tf.int64), epoch])


class EpochBatches(keras.callbacks.Callback):
    """The training batches of the epoch that `model.fit` is at: a dataset and its callback.

    `dataset` holds one epoch, `steps_per_epoch` batches, whose order and binarization are
    functions of `(seed, epoch)` alone (`make_epochs`' epochs), where the epoch is the one `fit`
    announces to its callbacks (`on_epoch_begin`, which this callback hears). Keras reads a finite
    dataset once per epoch, so every epoch is exactly one pass, whatever `steps_per_execution` is
    (with a multi-epoch dataset and `steps_per_epoch`, Keras 3 runs whole executions: an epoch
    whose length `steps_per_execution` does not divide runs on into the next epoch's batches), and
    a run resumed at epoch e (`keras.callbacks.BackupAndRestore`) trains on the batches of the
    uninterrupted one. The epoch is read when the epoch's first batch is drawn.

    Build one with `epoch_batches` or `semi_supervised_epochs`, outside any `tf.distribute`
    strategy's scope.

    Args:
        epoch_dataset: function of the epoch (int64 scalar tensor) returning that epoch's batches.
        steps_per_epoch: the number of batches of every epoch.

    Example:
        >>> feed = epoch_batches(train_images, batch_size=100, seed=0)
        >>> model.fit(feed.dataset, epochs=10, callbacks=[feed])
    """

    def __init__(self, epoch_dataset, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Read lazily, when the pass's first batch is drawn: after `on_epoch_begin`.
        ds = tf.data.Dataset.from_tensors(0).map(lambda _: self.epoch.read_value())
        ds = ds.flat_map(epoch_dataset).apply(
            tf.data.experimental.assert_cardinality(steps_per_epoch))
        self.dataset = _prefetched(ds)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def epoch_batches(images, labels=None, batch_size=100, binarization="dynamic", seed=0):
    """`EpochBatches` of images (and labels): epoch e holds `make_epochs`' batches of epoch e.

    Args: `images`, `labels`, `batch_size`, `binarization` and `seed`, as `make_epochs`.

    Returns:
        An `EpochBatches` of `ceil(N / batch_size)` batches per epoch.

    Raises:
        ValueError: for an unknown binarization or a non-positive batch size.

    Example:
        >>> feed = epoch_batches(np.zeros((10, 28, 28, 1), np.float32), batch_size=4)
        >>> feed.steps_per_epoch
        3
    """
    return EpochBatches(_epochs_of(images, labels, batch_size, binarization, seed),
                        _num_batches(len(images), batch_size, False))


def load_datasets(name="mnist", data_dir=None, batch_size=100, validation_size=400,
                  binarization="dynamic", seed=0, with_labels=False, tfds_data_dir=None,
                  download=True, eval_batch_size=None):
    """Loads a dataset and returns (train, validation, test) `tf.data.Dataset`s.

    The training set is shuffled each epoch; validation and test are binarized with a fixed seed
    when `binarization` is "dynamic", so every evaluation sees the same binary images.

    Args:
        name: dataset name (see `load_arrays`).
        data_dir: directory of IDX files (or `TFAAE_DATA_DIR`).
        batch_size: training batch size.
        validation_size: number of training images held out (the last ones).
        binarization: "dynamic", "fixed" or "none".
        seed: seed of shuffling and binarization.
        with_labels: whether elements are (images, labels).
        tfds_data_dir: TFDS data directory.
        download: whether TFDS may download.
        eval_batch_size: batch size of validation and test (default: `batch_size`).

    Returns:
        (train, validation, test) datasets; validation is None when `validation_size` is 0.
    """
    arrays = load_arrays(name, data_dir, tfds_data_dir=tfds_data_dir, download=download)
    (x_train, y_train), (x_val, y_val) = split_train_validation(*arrays["train"], validation_size)
    x_test, y_test = arrays["test"]
    eval_batch_size = eval_batch_size or batch_size
    eval_binarization = "fixed" if binarization == "dynamic" else binarization

    def build(x, y, **kwargs):
        return make_dataset(to_unit_interval(x), y if with_labels else None, **kwargs)

    train = build(x_train, y_train, batch_size=batch_size, binarization=binarization,
                  shuffle=True, seed=seed)
    val = build(x_val, y_val, batch_size=eval_batch_size, binarization=eval_binarization,
                seed=seed + 2) if validation_size else None
    test = build(x_test, y_test, batch_size=eval_batch_size, binarization=eval_binarization,
                 seed=seed + 3)
    return train, val, test


def check_labeled_set(labels, num_classes=10):
    """Checks the labels of a semi-supervised model's labeled set; returns them as int32 `[N]`.

    Raises:
        ValueError: for labels that are not integers `[N]`, fall outside [0, num_classes), are fewer
            than num_classes, or leave a class without any example (the classifier could never
            learn it).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels of the labeled set must be integer class ids [N]; got "
                         f"{labels.dtype} values of shape {list(labels.shape)}.")
    if len(labels) < num_classes:
        raise ValueError(f"The labeled set needs at least one label per class, num_classes="
                         f"{num_classes}; got {len(labels)} labels.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels of the labeled set must lie in [0, {num_classes}); got values "
                         f"from {labels.min()} to {labels.max()}.")
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"The labeled set has no example of class(es) {missing}; every one of the "
                         f"num_classes={num_classes} classes needs at least one.")
    return labels.astype(np.int32)


def semi_supervised_dataset(images, labeled_images, labels, num_classes=10, batch_size=100,
                            labeled_batch_size=None, binarization="none", seed=0):
    """Zips an unlabeled stream with a repeated labeled set, for `CategoricalAAE.fit`.

    An epoch is one pass over `images` (shuffled each pass); each of its batches comes with a
    labeled minibatch drawn from the labeled set, which repeats (reshuffled) as often as needed
    (Makhzani et al. 2015, section 5: every minibatch runs the reconstruction and regularization
    phases on unlabeled images and the classification phase on labeled ones).
    `semi_supervised_epochs` gives the same batches as functions of `(seed, epoch)` (what
    `tfaae train` reads).

    Args:
        images: float32 `[N, ...]` in [0, 1], the unlabeled stream (the paper uses every training
            image, labeled ones included).
        labeled_images: float32 `[L, ...]` in [0, 1].
        labels: int `[L]` in [0, num_classes), every class present (e.g. from `labeled_subset`).
        num_classes: number of classes.
        batch_size: unlabeled images per batch.
        labeled_batch_size: labeled images per batch (default: `batch_size`, at most L).
        binarization: "dynamic", "fixed" or "none" (both streams).
        seed: seed of the shuffles and binarizations.

    Returns:
        A `tf.data.Dataset` of dicts {"images", "labeled_images", "labels"}: one pass over
        `images`, reshuffled each time it is read.

    Raises:
        ValueError: as `check_labeled_set`, or for images and labels of different lengths.

    Example:
        >>> x, y, _ = labeled_subset(train_images, train_labels, 100)
        >>> ds = semi_supervised_dataset(train_images, x, y, batch_size=100)
    """
    labels, labeled_batch_size = _check_semi_supervised(labeled_images, labels, num_classes,
                                                        batch_size, labeled_batch_size)
    unlabeled = make_dataset(images, None, batch_size, binarization, shuffle=True, seed=seed)
    labeled = make_dataset(labeled_images, labels, labeled_batch_size, binarization, shuffle=True,
                           seed=seed + 7, drop_remainder=True).repeat()
    return _zip_semi_supervised(unlabeled, labeled)


def semi_supervised_epochs(images, labeled_images, labels, num_classes=10, batch_size=100,
                           labeled_batch_size=None, binarization="none", seed=0):
    """`EpochBatches` of `semi_supervised_dataset`'s batches, each epoch a function of
    `(seed, epoch)`: the unlabeled stream is `make_epochs`' epoch, the labeled stream that epoch's
    own seeded passes over the labeled set.

    Args, Raises: as `semi_supervised_dataset`.

    Returns:
        An `EpochBatches` of `ceil(N / batch_size)` batches per epoch.
    """
    labels, labeled_batch_size = _check_semi_supervised(labeled_images, labels, num_classes,
                                                        batch_size, labeled_batch_size)
    unlabeled = _in_memory(images, None, batch_size, binarization, seed)
    labeled = _in_memory(labeled_images, labels, labeled_batch_size, binarization, seed + 7)
    size, labeled_size = len(images), len(labels)

    def epoch_dataset(epoch):
        labeled_key = _epoch_key(seed + 7, epoch)
        passes = tf.data.Dataset.counter().flat_map(lambda index: _epoch(
            labeled, labeled_size, labeled_batch_size, binarization,
            tf.random.experimental.stateless_fold_in(labeled_key, index), drop_remainder=True))
        return _zip_semi_supervised(_epoch(unlabeled, size, batch_size, binarization,
                                           _epoch_key(seed, epoch)), passes)

    return EpochBatches(epoch_dataset, _num_batches(size, batch_size, False))


def _check_semi_supervised(labeled_images, labels, num_classes, batch_size, labeled_batch_size):
    labels = check_labeled_set(labels, num_classes)
    if len(labeled_images) != len(labels):
        raise ValueError(f"Got {len(labeled_images)} labeled images but {len(labels)} labels.")
    return labels, min(labeled_batch_size or batch_size, len(labels))


def _zip_semi_supervised(unlabeled, labeled):
    return tf.data.Dataset.zip(unlabeled, labeled).map(
        lambda x, pair: {"images": x, "labeled_images": pair[0], "labels": pair[1]})
