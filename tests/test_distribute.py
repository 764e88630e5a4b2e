"""tf.distribute: MirroredStrategy over two logical CPU devices against one device, and
multi-worker training with two worker processes on 127.0.0.1 against one process."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from harness import (assert_clear_error, max_weight_difference, one_device_and_mirrored, run_cli,
                     run_cli_workers)
from tfaae import distribute, training

# float32 sums split over two replicas round differently: measured differences are below 4e-7.
WEIGHT_TOLERANCE = 1e-5

MODELS = {
    "vae_two_layers": ("small_model(tfaae.VAE, layers=2, num_samples=2)", False),
    "iwae_dreg": ("small_model(tfaae.IWAE, num_samples=3, gradient_estimator='dreg')", False),
    # tfaae's fused Adam on one device, Keras's update under the strategy: the same updates.
    "iwae_fused_adam": ("small_model(tfaae.IWAE, num_samples=3, "
                        "optimizer=tfaae.optimizers.Adam(1e-3, epsilon=1e-4))", False),
    "aae_universal_labels": ("__import__('test_aae').small(posterior='universal', prior='mixture', "
                             "supervised='discriminator')", True),
    "aae_gaussian": ("__import__('test_aae').small(posterior='gaussian')", False),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_two_devices_give_the_updates_of_one(name):
    # 71 examples in batches of 32: the last batch (7) splits unevenly over the replicas (4 + 3).
    build, labels = MODELS[name]
    runs = one_device_and_mirrored(build, examples=71, batch_size=32, labels=labels)
    one, many = runs["one"], runs["many"]
    assert (one["replicas"], many["replicas"]) == (1, 2)
    assert one["iterations"] == many["iterations"] == [3] * len(one["iterations"])
    assert one["seed_state"] == many["seed_state"]
    assert max_weight_difference(one["weights"], many["weights"]) < WEIGHT_TOLERANCE
    for metric, values in one["history"].items():
        np.testing.assert_allclose(many["history"][metric], values, rtol=1e-5, err_msg=metric)


# No validation split: the multi-worker loop has no validation pass, whose noise would advance the
# single-process run's seed generator.
MULTI = ["--epochs", 2, "--max-train-examples", 240, "--batch-size", 20, "--validation-size", 0,
         "--steps-per-execution", 1, "--no-eval", "--no-images", "--no-projector", "--quiet"]


@pytest.mark.parametrize("model,extra", [("vae", ["--num-samples", 2]),
                                         ("aae", ["--hidden-units", 32, "--posterior", "gaussian"])])
def test_two_worker_processes_train_as_one_process(tmp_path, mnist_dir, model, extra):
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    proc = run_cli("train", model, *MULTI, *extra, "--data-dir", mnist_dir, "--logdir", single)
    assert proc.returncode == 0, proc.stderr
    workers = run_cli_workers(["train", model, *MULTI, *extra, "--strategy", "multi-worker",
                               "--collective-timeout", 120, "--data-dir", mnist_dir,
                               "--logdir", cluster])
    for index, (code, _, err) in enumerate(workers):
        assert code == 0, f"worker {index}:\n{err[-4000:]}"
    result = json.loads(workers[0][1])
    assert result["status"] == "completed" and result["epochs"] == 2
    assert not [f for f in os.listdir(cluster) if f.startswith(".worker-")]
    a, b = training.load_run_model(str(single)), training.load_run_model(str(cluster))
    names = getattr(a, "optimizer_names", ("optimizer",))
    assert [int(getattr(b, n).iterations) for n in names] == [24] * len(names)
    # Two replicas (one per worker) sum float32 gradients in another order than one device.
    difference = max_weight_difference(a.get_weights(), b.get_weights())
    print(f"max abs weight difference, 1 process vs 2 workers: {difference:.3g}")
    assert difference < WEIGHT_TOLERANCE
    single_history = json.loads((single / "history.json").read_text())
    cluster_history = json.loads((cluster / "history.json").read_text())
    for mine, theirs in zip(cluster_history, single_history):
        for metric, value in mine.items():
            assert value == pytest.approx(theirs[metric], rel=1e-5), metric


def test_the_training_loop_wants_one_epoch_of_known_length():
    for dataset, got in ((tf.data.Dataset.range(3).repeat(), "cardinality -1"),
                         (tf.data.Dataset.range(3).filter(lambda i: i > 0), "cardinality -2")):
        assert_clear_error(lambda d=dataset: distribute.fit(None, d, epochs=1), ValueError,
                           "one epoch of batches", got)
