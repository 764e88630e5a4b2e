"""Argument and input checks shared by the models, with messages that say what was expected and got.

Static properties (dtype, shape) are checked when a step is traced and raise `TypeError` or
`ValueError` at once. Values (range, NaN) are checked in the graph; the models turn a failed check
into a `ValueError` carrying the same message (see `translate_input_errors`). Under XLA
(`jit_compile=True`) TensorFlow drops in-graph assertions, so the value checks are only active
without it, which is the default on CPU.
"""

import contextlib
import math
import numbers

import numpy as np
import tensorflow as tf

TAG = "tfaae input error: "


def check_positive_int(name, value, minimum=1):
    """Returns `value` as an int, or raises naming the argument and the value received."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r} "
                        f"({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises naming them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def flatten_images(x, image_shape, name="x"):
    """Checks a batch of images statically and flattens it to `[batch, prod(image_shape)]`.

    Args:
        x: tensor `[batch, *image_shape]` or `[batch, prod(image_shape)]`, floating point.
        image_shape: the model's image shape, e.g. (28, 28, 1).
        name: the argument's name for messages.

    Returns:
        A float32 tensor `[batch, D]`.

    Raises:
        TypeError: if `x` is not floating point (uint8 images must be divided by 255 first).
        ValueError: if the shape does not hold `D = prod(image_shape)` values per example.
    """
    x = tf.convert_to_tensor(x) if not isinstance(x, (tf.Tensor, tf.Variable)) else x
    if not x.dtype.is_floating:
        raise TypeError(f"{name} must be floating-point images in [0, 1] of shape "
                        f"[batch, {', '.join(map(str, image_shape))}]; got dtype {x.dtype.name} "
                        f"(for uint8 images, divide by 255 first).")
    dim = math.prod(image_shape)
    shape = x.shape
    expected = f"{name} must have shape [batch, {', '.join(map(str, image_shape))}] (or [batch, {dim}])"
    if shape.rank is not None and (shape.rank < 2 or (None not in shape[1:]
                                                      and math.prod(shape[1:]) != dim)):
        raise ValueError(f"{expected}; got shape {list(shape)}.")
    if shape.rank is None or None in shape[1:]:
        # A step retraced for images of other shapes sees x of unknown rank or sizes (Keras
        # relaxes the input signature): check in the graph.
        ok = (tf.rank(x) >= 2) & tf.equal(tf.reduce_prod(tf.shape(x)[1:]), dim)
        check = tf.debugging.Assert(ok, [f"{TAG}{expected}; got shape", tf.shape(x)], summarize=8)
        with tf.control_dependencies([check]):
            return tf.reshape(tf.cast(x, tf.float32), [-1, dim])
    return tf.reshape(tf.cast(x, tf.float32), [-1, dim])


def _checked(x, ok, data):
    """Returns `x` behind an in-graph `tf.debugging.Assert(ok, [TAG + data[0], *data[1:]])`."""
    check = tf.debugging.Assert(ok, [TAG + data[0], *data[1:]], summarize=8)
    with tf.control_dependencies([check]):
        return tf.identity(x)


def assert_unit_interval(x, name="x"):
    """In-graph check that `x` is finite and within [0, 1]; returns `x` (with the check attached).

    Raises (when the graph runs, without XLA):
        tf.errors.InvalidArgumentError: tagged with `TAG`, reporting min, max and the NaN count.
    """
    finite = tf.math.is_finite(x)
    low, high = tf.reduce_min(x), tf.reduce_max(x)
    ok = tf.reduce_all(finite) & (low >= 0.0) & (high <= 1.0)
    return _checked(x, ok, [
        f"{name} must hold finite values in [0, 1] (Bernoulli likelihood); got min", low, "max",
        high, "non-finite values", tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int32))])


def assert_finite(x, name="x"):
    """In-graph check that `x` holds no NaN or Inf; returns `x` (with the check attached)."""
    bad = tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)), tf.int32))
    return _checked(x, tf.equal(bad, 0), [f"{name} must hold finite values; got non-finite values",
                                           bad])


def assert_in_range(x, low, high, name="x"):
    """In-graph check that every value of `x` lies in [low, high]; returns `x` (checked)."""
    ok = tf.reduce_all((x >= low) & (x <= high))
    return _checked(x, ok, [f"{name} must be between {low} and {high}; got", x])


def class_labels(labels, num_classes, allow_unlabeled=True, name="labels"):
    """Checks a batch of labels and returns them as int32 class ids `[batch]`, -1 for unlabeled.

    Two formats are accepted:

    * integer class ids, `[batch]` or `[batch, 1]`, in [0, num_classes), or -1 for "unlabeled";
    * one-hot rows, floating point `[batch, num_classes]`; an all-zero row means "unlabeled".

    The dtype and shape are checked at once; the values in the graph (see `assert_unit_interval`).

    Args:
        labels: the labels.
        num_classes: number of classes.
        allow_unlabeled: whether -1 (or an all-zero row) is allowed.
        name: the argument's name for messages.

    Returns:
        An int32 tensor `[batch]`.

    Raises:
        TypeError: for a non-numeric dtype, or floating-point class ids.
        ValueError: for a wrong shape or one-hot width; (in the graph, tagged) for values out of
            range or rows that are not one-hot.
    """
    labels = tf.convert_to_tensor(labels) if not isinstance(labels, (tf.Tensor, tf.Variable)) else labels
    lowest = -1 if allow_unlabeled else 0
    allowed = f"[{lowest}, {num_classes})" + (" (-1: unlabeled)" if allow_unlabeled else "")
    expected = (f"{name} must be integer class ids [batch] in {allowed}, or one-hot rows "
                f"[batch, {num_classes}]{' (all zeros: unlabeled)' if allow_unlabeled else ''}")
    shape, rank = labels.shape, labels.shape.rank
    checks = []
    if rank is None and (labels.dtype.is_floating or labels.dtype.is_integer):
        # A step retraced for inputs of another shape sees labels of unknown rank: check in the graph.
        floating = labels.dtype.is_floating
        ok = (tf.equal(tf.rank(labels), 2) & tf.equal(tf.shape(labels)[-1], num_classes) if floating
              else tf.equal(tf.rank(labels), 1) | (tf.equal(tf.rank(labels), 2)
                                                   & tf.equal(tf.shape(labels)[-1], 1)))
        checks.append(tf.debugging.Assert(ok, [f"{TAG}{expected}; got {labels.dtype.name} labels of "
                                               "shape", tf.shape(labels)], summarize=3))
        with tf.control_dependencies(checks):
            labels = tf.reshape(labels, [-1, num_classes] if floating else [-1])
        shape, rank = labels.shape, labels.shape.rank
    if labels.dtype.is_floating:
        if rank != 2:
            raise TypeError(f"{expected}; got {labels.dtype.name} values of shape {list(shape)} "
                            "(floating-point labels must be one-hot rows).")
        if shape[-1] != num_classes:
            raise ValueError(f"{expected}; got one-hot rows of width {shape[-1]} (num_classes is "
                             f"{num_classes}).")
        ones = tf.reduce_sum(labels, -1)
        binary = tf.reduce_all((labels == 0) | (labels == 1))
        ok = binary & tf.reduce_all((ones == 1) | ((ones == 0) & allow_unlabeled))
        checks.append(tf.debugging.Assert(ok, [
            f"{TAG}{expected}; got rows that are not one-hot: values from", tf.reduce_min(labels),
            "to", tf.reduce_max(labels), "row sums from", tf.reduce_min(ones), "to",
            tf.reduce_max(ones)], summarize=3))
        ids = tf.where(ones > 0, tf.argmax(labels, -1, output_type=tf.int32), -1)
    elif labels.dtype.is_integer:
        if rank == 2 and shape[-1] == 1:
            labels = labels[:, 0]
        elif rank != 1:
            raise ValueError(f"{expected}; got integer labels of shape {list(shape)}.")
        ids = tf.cast(labels, tf.int32)
        low, high = tf.reduce_min(ids), tf.reduce_max(ids)
        ok = (low >= lowest) & (high < num_classes)
        checks.append(tf.debugging.Assert(ok, [f"{TAG}{expected}; got values from", low, "to", high],
                                          summarize=3))
    else:
        raise TypeError(f"{expected}; got dtype {labels.dtype.name}.")
    with tf.control_dependencies(checks):
        return tf.identity(ids)


def check_unit_interval_array(x, name="x"):
    """Eager NumPy version of `assert_unit_interval`, for arrays checked before tracing."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be floating point in [0, 1]; got dtype {x.dtype}.")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} must hold finite values; got {int(bad.sum())} NaN or Inf values.")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must hold values in [0, 1]; got min {x.min():.4g}, "
                         f"max {x.max():.4g}.")
    return x


@contextlib.contextmanager
def translate_input_errors():
    """Turns tagged in-graph assertion failures into a plain `ValueError` with the same message."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = str(error.message)
        if TAG not in message:
            raise
        # TensorFlow prints each item of the Assert's data in brackets: "[text] [value] ...".
        detail = message[message.index(TAG) + len(TAG):].split("\n")[0].rstrip()
        detail = " ".join(item.strip("[]") for item in detail.split("] ["))
        raise ValueError(detail) from None
