"""Data loading: IDX parsing, the three sources and their order, binarization, subsets."""

import gzip
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from harness import assert_clear_error
from tfaae import data


def _write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


def _write_dataset(directory, n_train=30, n_test=10, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    suffix = ".gz" if compress else ""
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 5, 4), dtype=np.uint8)
        labels = (np.arange(n) % 3).astype(np.uint8)
        _write_idx(os.path.join(directory, f"{split}-images-idx3-ubyte{suffix}"), images, compress)
        _write_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte{suffix}"), labels, compress)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx" + (".gz" if compress else ""))
    _write_idx(str(path), array, compress)
    np.testing.assert_array_equal(data.read_idx(str(path)), array)
    wide = np.arange(6, dtype=">i4").reshape(2, 3)
    _write_idx(str(tmp_path / "w.idx"), wide)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "w.idx")), wide)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"PK\x03\x04rest")
    assert_clear_error(lambda: data.read_idx(str(tmp_path / "junk")), ValueError,
                       "not an IDX file", "50 4b 03 04")
    _write_idx(str(tmp_path / "t.idx"), np.zeros((4, 2), np.uint8))
    (tmp_path / "t.idx").write_bytes((tmp_path / "t.idx").read_bytes()[:-3])
    assert_clear_error(lambda: data.read_idx(str(tmp_path / "t.idx")), ValueError, "truncated")


def test_real_mnist_from_explicit_directory(mnist, mnist_dir):
    x_train, y_train = mnist["train"]
    x_test, y_test = mnist["test"]
    assert x_train.shape == (60000, 28, 28, 1) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28, 1) and y_test.dtype == np.int32
    assert mnist["source"] == f"IDX files in {mnist_dir}"
    # The well-known first labels of MNIST, and the checksum of the uncompressed bytes.
    np.testing.assert_array_equal(y_train[:8], [5, 0, 4, 1, 9, 2, 1, 3])
    np.testing.assert_array_equal(y_test[:8], [7, 2, 1, 0, 4, 1, 4, 9])
    with gzip.open(os.path.join(mnist_dir, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest().startswith("ff7bcfd4")


def test_any_idx_dataset_by_environment_variable(tmp_path, monkeypatch):
    written = _write_dataset(str(tmp_path / "mine"), compress=False)
    monkeypatch.setenv("TFAAE_DATA_DIR", str(tmp_path / "mine"))
    arrays = data.load_arrays("my_letters")
    np.testing.assert_array_equal(arrays["train"][0][..., 0], written["train"][0])
    np.testing.assert_array_equal(arrays["test"][1], written["t10k"][1])
    assert arrays["train"][0].shape == (30, 5, 4, 1)


def test_missing_idx_file_is_named(tmp_path):
    _write_dataset(str(tmp_path / "d"))
    os.remove(tmp_path / "d" / "t10k-labels-idx1-ubyte.gz")
    assert_clear_error(lambda: data.load_arrays("mnist", str(tmp_path / "d")),
                       data.DataNotFoundError, "t10k-labels-idx1-ubyte")
    assert_clear_error(lambda: data.load_arrays("mnist", str(tmp_path / "nope")),
                       data.DataNotFoundError, "not a directory")


def test_fashion_mnist_from_debian_package():
    if not os.path.isdir(data.DEBIAN_DIRS["fashion_mnist"]):
        pytest.fail("apt-get install dataset-fashion-mnist (the CI script does) to run this test")
    arrays = data.load_arrays("fashion_mnist", tfds_data_dir="/nonexistent-tfds", download=False)
    assert arrays["source"].startswith("Debian's files")
    assert arrays["train"][0].shape == (60000, 28, 28, 1)
    assert set(np.unique(arrays["test"][1])) == set(range(10))


def test_prepared_tfds_cache_is_used():
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=12):
        arrays = data.load_arrays("mnist", download=False)
    assert arrays["source"] == "a prepared TFDS cache"
    assert arrays["train"][0].shape == (12, 28, 28, 1) and arrays["train"][0].dtype == np.uint8
    assert arrays["train"][1].dtype == np.int32


def test_no_source_names_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("TFAAE_DATA_DIR", raising=False)
    assert_clear_error(
        lambda: data.load_arrays("mnist", tfds_data_dir=str(tmp_path), download=False),
        data.DataNotFoundError, "Could not load dataset 'mnist'", "data_dir=", "TFAAE_DATA_DIR",
        "tfds build mnist", "apt-get install dataset-fashion-mnist", "a prepared TFDS cache")
    assert_clear_error(lambda: data.load_arrays("cifar"), ValueError, "Unknown dataset 'cifar'",
                       "mnist, fashion_mnist")


def test_dynamic_binarization_is_fresh_each_pass_and_seeded():
    grey = np.full((64, 28, 28, 1), 0.3, np.float32)
    ds = data.make_dataset(grey, batch_size=16, binarization="dynamic", seed=5)
    first = np.concatenate(list(ds.as_numpy_iterator()))
    second = np.concatenate(list(ds.as_numpy_iterator()))
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second), "each pass must draw new binarizations"
    assert abs(first.mean() - 0.3) < 0.01
    again = np.concatenate(list(data.make_dataset(grey, batch_size=16, seed=5).as_numpy_iterator()))
    np.testing.assert_array_equal(first, again)


def test_dynamic_binarization_follows_each_pixels_grey_level_with_labels_in_step():
    # 21 grey patterns of 4x3x1 (a channel axis), each repeated 40 times and labeled by its
    # pattern; batches of 64 with a partial last one. Over the passes, the pixel frequencies of
    # the images of each label must match that label's pattern: the label travels with its image.
    rng = np.random.default_rng(3)
    patterns = rng.random((21, 4, 3, 1)).astype(np.float32)
    labels = np.repeat(np.arange(21), 40)
    ds = data.make_dataset(patterns[labels], labels, batch_size=64, binarization="dynamic",
                           shuffle=True, seed=1)
    assert int(ds.cardinality()) == 14
    passes = 20
    sums, orders = np.zeros_like(patterns), []
    for _ in range(passes):
        batches = list(ds.as_numpy_iterator())
        assert [len(b[0]) for b in batches] == [64] * 13 + [8]
        order = np.concatenate([b[1] for b in batches])
        np.testing.assert_array_equal(np.sort(order), labels)
        np.add.at(sums, order, np.concatenate([b[0] for b in batches]))
        orders.append(tuple(order))
    assert len(set(orders)) == passes, "each pass must reshuffle"
    repeated = np.concatenate([b[1] for b in ds.repeat(2).as_numpy_iterator()])
    assert not np.array_equal(repeated[:840], repeated[840:]), "so must each pass of a repeat"
    # Binomial(800, p) frequencies: within 5 standard deviations of each pixel's grey level.
    draws = 40 * passes
    std = np.sqrt(patterns * (1 - patterns) / draws)
    assert np.all(np.abs(sums / draws - patterns) <= 5 * std + 1e-6)


def test_dataset_batches_are_gathered_rows_with_static_shape_when_dropping_the_rest():
    x = np.arange(45 * 6, dtype=np.float32).reshape(45, 6) / 270
    ds = data.make_dataset(x, np.arange(45), batch_size=10, binarization="none", shuffle=True,
                           seed=2, drop_remainder=True)
    assert ds.element_spec[0].shape.as_list() == [10, 6] and int(ds.cardinality()) == 4
    for images, labels in ds.as_numpy_iterator():
        np.testing.assert_array_equal(images, x[labels])
    in_order = np.concatenate(list(data.make_dataset(x, batch_size=10, binarization="none")))
    np.testing.assert_array_equal(in_order, x)


def test_epochs_are_functions_of_seed_and_epoch():
    grey = np.random.default_rng(4).random((23, 5)).astype(np.float32)
    every = list(data.make_epochs(grey, np.arange(23), batch_size=5, seed=3, epochs=3))
    resumed = list(data.make_epochs(grey, np.arange(23), batch_size=5, seed=3, epochs=3,
                                    first_epoch=1))
    assert len(every) == 15 and len(resumed) == 10
    for (x1, y1), (x2, y2) in zip(every[5:], resumed):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    first, second = (np.concatenate([b[1] for b in every[i:i + 5]]) for i in (0, 5))
    assert sorted(first) == sorted(second) == list(range(23)) and not np.array_equal(first, second)
    binary = np.concatenate([b[0] for b in every])
    assert set(np.unique(binary)) == {0.0, 1.0}


def test_epoch_batches_hold_the_epoch_that_fit_announces():
    grey = np.random.default_rng(4).random((23, 5)).astype(np.float32)
    every = list(data.make_epochs(grey, np.arange(23), batch_size=5, seed=3, epochs=3))
    feed = data.epoch_batches(grey, np.arange(23), batch_size=5, seed=3)
    assert feed.steps_per_epoch == 5 and int(feed.dataset.cardinality()) == 5
    for epoch in (2, 0, 1, 1):  # as a resumed run, or a repeated epoch, would ask.
        feed.on_epoch_begin(epoch)
        for (x1, y1), (x2, y2) in zip(every[5 * epoch:5 * epoch + 5], feed.dataset, strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


def test_semi_supervised_epochs_are_functions_of_seed_and_epoch():
    grey = np.random.default_rng(5).random((23, 5)).astype(np.float32)
    feed = data.semi_supervised_epochs(grey, grey[:12], np.arange(12) % 10, batch_size=5,
                                       labeled_batch_size=5, binarization="dynamic", seed=1)

    def epoch(index):
        feed.on_epoch_begin(index)
        return list(feed.dataset.as_numpy_iterator())

    first, again, second = epoch(0), epoch(0), epoch(1)
    assert len(first) == 5 and [len(b["images"]) for b in first] == [5, 5, 5, 5, 3]
    for a, b in zip(first, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(first[0]["images"], second[0]["images"])
    assert set(np.unique(np.concatenate([b["labeled_images"] for b in first]))) == {0.0, 1.0}
    # Grey levels: each labeled row is found in the labeled set, with its label; 5 batches of 5
    # from 12 labeled images are passes of 2 batches (10 distinct rows each), then a third pass.
    feed = data.semi_supervised_epochs(grey, grey[:12], np.arange(12) % 10, batch_size=5,
                                       labeled_batch_size=5, seed=1)
    batches = epoch(3)
    rows = np.concatenate([b["labeled_images"] for b in batches])
    index = [int(np.flatnonzero((grey[:12] == row).all(axis=1))[0]) for row in rows]
    np.testing.assert_array_equal(np.concatenate([b["labels"] for b in batches]),
                                  np.array(index) % 10)
    assert len(set(index[:10])) == len(set(index[10:20])) == 10 and index[:10] != index[10:20]


def test_fixed_binarization_is_the_same_each_pass():
    grey = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    ds = data.make_dataset(grey, batch_size=8, binarization="fixed", seed=2)
    first, second = (np.concatenate(list(ds.as_numpy_iterator())) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, data.binarize_fixed(grey, 2))


def test_train_validation_split_holds_out_the_last_images(mnist):
    x, y = mnist["train"]
    (xt, yt), (xv, yv) = data.split_train_validation(x, y, 400)
    assert len(xt) == 59600 and len(xv) == 400
    np.testing.assert_array_equal(xv, x[-400:])
    assert_clear_error(lambda: data.split_train_validation(x, y, 60000), ValueError,
                       "validation_size", "60000")


def test_load_datasets_shapes_and_labels(mnist_dir):
    train, val, test = data.load_datasets("mnist", mnist_dir, batch_size=50, validation_size=100,
                                          with_labels=True)
    images, labels = next(iter(train))
    assert images.shape == (50, 28, 28, 1) and images.dtype == tf.float32
    assert labels.dtype == tf.int32
    assert sum(int(b[0].shape[0]) for b in val) == 100
    assert sum(int(b[0].shape[0]) for b in test) == 10000


def test_labeled_subset_is_balanced_and_seeded(mnist):
    x, y = mnist["train"]
    xs, ys, idx = data.labeled_subset(x, y, 100, seed=3)
    assert np.bincount(ys, minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(xs, x[idx])
    np.testing.assert_array_equal(idx, data.labeled_subset(x, y, 100, seed=3)[2])
    assert not np.array_equal(idx, data.labeled_subset(x, y, 100, seed=4)[2])


def test_labeled_subset_errors(mnist):
    x, y = mnist["train"][0][:1000], mnist["train"][1][:1000]
    assert_clear_error(lambda: data.labeled_subset(x, y, 105), ValueError, "multiple of", "105")
    assert_clear_error(lambda: data.labeled_subset(x, y, 5), ValueError, "at least one label")
    no_sevens = y != 7
    assert_clear_error(lambda: data.labeled_subset(x[no_sevens], y[no_sevens], 100), ValueError,
                       "class 7 has 0 examples")
    assert_clear_error(lambda: data.labeled_subset(x, y + 1, 100), ValueError, "[0, 10)", "10]")


def test_dataset_argument_errors():
    grey = np.zeros((4, 3), np.float32)
    assert_clear_error(lambda: data.make_dataset(grey, binarization="otsu"), ValueError,
                       "binarization", "'otsu'")
    assert_clear_error(lambda: data.make_dataset(grey, batch_size=0), ValueError, "batch_size")
    assert_clear_error(lambda: data.to_unit_interval(grey), TypeError, "uint8", "float32")


def test_semi_supervised_labels_hide_all_but_a_balanced_subset(mnist):
    y = mnist["train"][1][:2000]
    kept = data.semi_supervised_labels(y, 100, seed=3)
    assert kept.dtype == np.int32 and kept.shape == y.shape
    assert (kept == data.UNLABELED).sum() == 1900
    np.testing.assert_array_equal(kept[kept >= 0], y[kept >= 0])
    assert np.bincount(kept[kept >= 0], minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(kept, data.semi_supervised_labels(y, 100, seed=3))
    assert not np.array_equal(kept, data.semi_supervised_labels(y, 100, seed=4))
    assert_clear_error(lambda: data.semi_supervised_labels(y, 105), ValueError, "multiple of", "105")
