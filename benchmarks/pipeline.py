"""CPU time of the input pipeline per training batch, against tf.data's per-example textbook pipeline.

On a 2-core machine the tf.data threads share the cores with the training step, so every
millisecond of CPU the pipeline takes per batch is taken from training. This times, for batches
of `--batch` MNIST training images with dynamic binarization:

* `make_dataset`: what `throughput.py` and users' `fit` loops read (shuffled each pass);
* `epoch_batches`: what `tfaae train` reads (each epoch a function of the seed and the epoch, one
  new pass per epoch as `fit` reads it: the cost of starting each pass is counted);
* `make_epochs`: the same epochs as one multi-epoch pass;
* `textbook`: `from_tensor_slices(images).shuffle(N).batch(B)` then a per-batch map drawing
  TensorFlow's stateless Philox uniforms (the pipeline tfaae used before);
* `make_dataset` with `binarization="none"`: the gather alone.

Each dataset is consumed inside a `tf.function` loop (as `fit` consumes it, without Python per
batch); reported are the process's CPU milliseconds and the wall milliseconds per batch, best of
`--repeats` rounds.

    python benchmarks/pipeline.py                 # ~1 minute
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import common  # noqa: E402
from tfaae import data  # noqa: E402


def textbook(images, batch_size, seed=0):
    ds = tf.data.Dataset.from_tensor_slices(images).cache().shuffle(
        len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size, drop_remainder=True)
    seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)

    def binarize(x, pair):
        return tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=pair) < x, x.dtype)

    return tf.data.Dataset.zip(ds, seeds).map(binarize, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def per_batch_cost(dataset, batches, repeats):
    """(CPU ms, wall ms) per batch of reading `dataset` in a tf.function loop, best of `repeats`."""
    iterator = iter(dataset.repeat())

    @tf.function
    def consume(n):
        total = tf.constant(0.0)
        for _ in tf.range(n):
            total += next(iterator)[0, 0, 0, 0]  # one value: the batch must be produced.
        return total

    consume(tf.constant(50)).numpy()
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        consume(tf.constant(batches)).numpy()
        cpu.append((time.process_time() - start_cpu) / batches * 1e3)
        wall.append((time.perf_counter() - start_wall) / batches * 1e3)
    return round(min(cpu), 3), round(min(wall), 3)


def per_epoch_cost(feed, epochs, repeats):
    """(CPU ms, wall ms) per batch of reading `epochs` whole epochs of an `EpochBatches`, a new
    pass per epoch as `fit` makes, best of `repeats`."""
    @tf.function
    def consume(iterator, n):
        total = tf.constant(0.0)
        for _ in tf.range(n):
            total += next(iterator)[0, 0, 0, 0]
        return total

    steps = tf.constant(feed.steps_per_epoch)
    consume(iter(feed.dataset), steps).numpy()
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for epoch in range(epochs):
            feed.on_epoch_begin(epoch)
            consume(iter(feed.dataset), steps).numpy()
        batches = epochs * feed.steps_per_epoch
        cpu.append((time.process_time() - start_cpu) / batches * 1e3)
        wall.append((time.perf_counter() - start_wall) / batches * 1e3)
    return round(min(cpu), 3), round(min(wall), 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=2000, help="batches per round")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images, _ = common.mnist_images()
    pipelines = {
        "make_dataset": data.make_dataset(images, batch_size=args.batch, shuffle=True,
                                          drop_remainder=True),
        "make_epochs": data.make_epochs(images, batch_size=args.batch, epochs=1000),
        "textbook": textbook(images, args.batch),
        "make_dataset_no_binarization": data.make_dataset(images, batch_size=args.batch,
                                                          binarization="none", shuffle=True,
                                                          drop_remainder=True),
    }
    results = {}
    feed = data.epoch_batches(images, batch_size=args.batch)
    epochs = max(1, args.batches // feed.steps_per_epoch)
    cpu, wall = per_epoch_cost(feed, epochs, args.repeats)
    results["epoch_batches"] = {"cpu_ms_per_batch": cpu, "wall_ms_per_batch": wall}
    print(f"{'epoch_batches':<30} {cpu:.3f} ms CPU, {wall:.3f} ms wall per batch "
          f"({epochs} epochs of {feed.steps_per_epoch})", flush=True)
    for name, dataset in pipelines.items():
        cpu, wall = per_batch_cost(dataset, args.batches, args.repeats)
        results[name] = {"cpu_ms_per_batch": cpu, "wall_ms_per_batch": wall}
        print(f"{name:<30} {cpu:.3f} ms CPU, {wall:.3f} ms wall per batch", flush=True)
    common.write_result("pipeline", {"batch_size": args.batch, "batches_per_round": args.batches,
                                     "repeats": args.repeats, "pipelines": results})


if __name__ == "__main__":
    main()
