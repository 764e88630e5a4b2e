"""tf.distribute: MirroredStrategy over two logical CPU devices against one device, and
multi-worker training with two worker processes on 127.0.0.1 against one process."""

import numpy as np
import pytest

from harness import max_weight_difference, one_device_and_mirrored

# float32 sums split over two replicas round differently: measured differences are below 4e-7.
WEIGHT_TOLERANCE = 1e-5

MODELS = {
    "vae_two_layers": ("small_model(tfaae.VAE, layers=2, num_samples=2)", False),
    "iwae_dreg": ("small_model(tfaae.IWAE, num_samples=3, gradient_estimator='dreg')", False),
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
