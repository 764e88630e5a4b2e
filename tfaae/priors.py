"""Priors p(z) for the adversarial autoencoder, as `tfp.distributions`.

Makhzani et al. 2015 (https://arxiv.org/abs/1511.05644) impose on the codes a standard (or scaled)
Gaussian, a mixture of 10 2-D Gaussians laid out radially, or a swiss roll (figures 2 to 4). Any
`tfp` distribution with event shape `[latent_dim]` works as well; it only has to sample (and, for
the importance-sampled log-likelihood, give `log_prob`).

For the supervised AAE (label to the discriminator), label i of the data maps to component i of a
`tfd.MixtureSameFamily` prior: the mixture's components must have batch shape `[num_classes]`.
Both the radial mixture and the swiss roll (its 10 sections) qualify.

Example:
    >>> prior = gaussian_mixture()
    >>> z = sample(prior, 5, seed=0, labels=tf.constant([0, 1, 2, -1, 9]))
    >>> z.shape
    TensorShape([5, 2])
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfaae import random

tfd = tfp.distributions

PRIORS = ("gaussian", "mixture", "swiss_roll")


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}.")
    return float(value)


def _count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def gaussian(latent_dim, scale=1.0):
    """N(0, scale^2 I) in `latent_dim` dimensions (the paper's likelihood experiments).

    Args:
        latent_dim: dimension of z.
        scale: standard deviation of every coordinate.

    Returns:
        A `tfd.MultivariateNormalDiag` with event shape `[latent_dim]`.
    """
    latent_dim, scale = _count("latent_dim", latent_dim), _positive("scale", scale)
    return tfd.MultivariateNormalDiag(loc=tf.zeros([latent_dim]),
                                      scale_diag=tf.fill([latent_dim], scale), name="gaussian")


def gaussian_mixture(num_components=10, radius=4.0, radial_std=1.0, tangential_std=0.25):
    """A mixture of 2-D Gaussians laid out radially, equally weighted (the paper's figures 2 to 4).

    Component i has its mean at radius `radius` and angle 2 pi i / K, and is elongated along its
    radius: covariance R_i diag(radial_std^2, tangential_std^2) R_i^T with R_i the rotation by that
    angle. For K >= 3 its mean is 0 and its covariance (radius^2 + radial_std^2 +
    tangential_std^2) / 2 I.

    Args:
        num_components: K (10 for MNIST's classes).
        radius: distance of every component's mean from the origin.
        radial_std, tangential_std: standard deviations along and across the radius.

    Returns:
        A `tfd.MixtureSameFamily` with event shape `[2]` and K components.
    """
    k = _count("num_components", num_components, minimum=2)
    radius = _positive("radius", radius)
    stds = np.array([_positive("radial_std", radial_std), _positive("tangential_std", tangential_std)])
    angles = 2 * np.pi * np.arange(k) / k
    cos, sin = np.cos(angles), np.sin(angles)
    rotations = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # [K, 2, 2]
    covariances = rotations @ np.diag(stds ** 2) @ np.swapaxes(rotations, -1, -2)
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=tf.zeros([k])),
        components_distribution=tfd.MultivariateNormalTriL(
            loc=tf.constant(radius * np.stack([cos, sin], -1), tf.float32),
            scale_tril=tf.constant(np.linalg.cholesky(covariances), tf.float32)),
        name="gaussian_mixture")


def swiss_roll_points(num_sections=10, points_per_section=40, start=1.5 * math.pi,
                      stop=4.5 * math.pi, scale=1 / 3):
    """Points along the swiss roll: scale * t (cos t, sin t), t evenly spaced in [start, stop).

    Returns:
        float64 array `[num_sections, points_per_section, 2]`: section s holds the points whose
        parameter t falls in the s-th of `num_sections` equal parts of [start, stop).
    """
    sections = _count("num_sections", num_sections)
    per_section = _count("points_per_section", points_per_section)
    if not stop > start:
        raise ValueError(f"stop must exceed start; got start={start!r}, stop={stop!r}.")
    fractions = (np.arange(sections * per_section) + 0.5) / (sections * per_section)
    t = start + (stop - start) * fractions
    points = _positive("scale", scale) * np.stack([t * np.cos(t), t * np.sin(t)], -1)
    return points.reshape(sections, per_section, 2)


def swiss_roll(num_sections=10, points_per_section=40, noise_std=0.15, **roll):
    """A 2-D swiss roll, as a mixture of its `num_sections` sections (the paper's figure 4).

    The roll is the curve scale * t (cos t, sin t), t uniform on [start, stop) (see
    `swiss_roll_points`), blurred by isotropic Gaussian noise: each section is an equally weighted
    mixture of small Gaussians N(point, noise_std^2 I) at evenly spaced points of the curve, so
    log_prob is exact and the moments have a closed form (those of the points, plus noise_std^2 I).
    Section i is mixture component i, the one that label i maps to.

    Args:
        num_sections: number of sections (= components; 10 for MNIST's classes).
        points_per_section: Gaussians per section.
        noise_std: standard deviation of the blur.
        **roll: `start`, `stop`, `scale` of `swiss_roll_points`.

    Returns:
        A `tfd.MixtureSameFamily` (over sections) of `tfd.MixtureSameFamily`s (over points), event
        shape `[2]`.
    """
    points = swiss_roll_points(num_sections, points_per_section, **roll)
    sections, per_section = points.shape[:2]
    noise = _positive("noise_std", noise_std)
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=tf.zeros([sections])),
        components_distribution=tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.zeros([sections, per_section])),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=tf.constant(points, tf.float32), scale_diag=tf.fill(points.shape, noise))),
        name="swiss_roll")


_BUILDERS = {"gaussian": lambda d, **kw: gaussian(d, **kw),
             "mixture": lambda d, **kw: gaussian_mixture(**kw),
             "swiss_roll": lambda d, **kw: swiss_roll(**kw)}


def get(spec, latent_dim):
    """The prior described by `spec`, checked against `latent_dim`.

    Args:
        spec: a name ("gaussian", "mixture", "swiss_roll"), a dict {"name": name, **keyword
            arguments of its builder} (e.g. {"name": "gaussian", "scale": 5.0}), or any
            `tfp.distributions.Distribution` with event shape `[latent_dim]` and no batch shape.
        latent_dim: dimension of the codes.

    Returns:
        The distribution.

    Raises:
        ValueError: for an unknown name, builder arguments it does not take, or a distribution
            whose shape does not fit (the 2-D priors need latent_dim = 2).
        TypeError: if `spec` is none of the above.
    """
    if isinstance(spec, tfd.Distribution):
        prior = spec
    elif isinstance(spec, (str, dict)):
        options = dict(spec) if isinstance(spec, dict) else {"name": spec}
        name = options.pop("name", None)
        if name not in _BUILDERS:
            raise ValueError(f"prior must be one of {', '.join(map(repr, PRIORS))} (or a dict with "
                             f"such a 'name', or a tfp distribution); got {name!r}.")
        try:
            prior = _BUILDERS[name](latent_dim, **options)
        except TypeError as error:
            raise ValueError(f"prior {name!r} does not take {sorted(options)}: {error}") from None
    else:
        raise TypeError(f"prior must be a name, a dict or a tfp.distributions.Distribution; got "
                        f"{type(spec).__name__}.")
    event, batch = prior.event_shape, prior.batch_shape
    if event.rank != 1 or event[0] != latent_dim or batch.rank != 0:
        raise ValueError(f"The prior must have event shape [{latent_dim}] (latent_dim) and no batch "
                         f"shape; got event shape {event.as_list()} and batch shape "
                         f"{batch.as_list()} ({prior.name}).")
    if prior.dtype != tf.float32:
        raise ValueError(f"The prior must sample float32; got {prior.dtype}.")
    return prior


def num_components(prior):
    """K, the number of mixture components labels can map to, or None for a non-mixture prior."""
    if not isinstance(prior, tfd.MixtureSameFamily):
        return None
    batch = prior.components_distribution.batch_shape
    return int(batch[-1]) if batch.rank == 1 and batch[-1] is not None else None


def sample(prior, num_samples, seed, labels=None):
    """Samples the prior, optionally conditioned on labels (label i: mixture component i).

    The draws are TFP's stateless samplers seeded from `seed` (through `tfaae.random.draw_seed`),
    so the same seed gives the same samples; TFP picks TensorFlow's default stateless algorithm
    (Philox, except under XLA on CPU), which for `[batch, latent_dim]` draws costs nothing.

    Args:
        prior: a distribution from `get`.
        num_samples: n (an int or scalar tensor).
        seed: a `keras.random.SeedGenerator` (advanced), an int, or a `[2]` seed tensor.
        labels: None, or int `[n]` labels: a sample for label i >= 0 comes from component i of a
            `tfd.MixtureSameFamily` prior, one for label -1 ("unlabeled") from the whole prior.

    Returns:
        float32 `[n, latent_dim]` samples. In a `tf.distribute` replica context, n is the
        replica's share of the global batch and its rows are those of the global batch's draw.
    """
    # TFP samples statelessly from int32 seeds; the seed still comes from `seed` alone.
    seeds = tfp.random.split_seed(tf.cast(random.draw_seed(seed), tf.int32), n=2)
    # Under tf.distribute, this replica's rows of the global batch's draws (`random.replica_rows`).
    z = random.replica_rows(lambda n: prior.sample(n, seed=seeds[0]), num_samples)
    if labels is None:
        return z
    per_component = random.replica_rows(  # [n, K, d]
        lambda n: prior.components_distribution.sample(n, seed=seeds[1]), num_samples)
    chosen = tf.gather(per_component, tf.maximum(labels, 0), axis=1, batch_dims=1)
    return tf.where(labels[:, None] >= 0, chosen, z)
