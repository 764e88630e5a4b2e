"""Evaluation of the latent-variable models: log-likelihood estimates and active units.

Burda, Grosse & Salakhutdinov 2016 (https://arxiv.org/abs/1509.00519), section 5: the test
log-likelihood is estimated with k = 5000 importance samples from q, log p(x) ~ L_5000, and a latent
unit u is "active" when A_u = Cov_x(E_{q(u|x)}[u]) > 0.01.

Makhzani et al. 2015 (https://arxiv.org/abs/1511.05644), table 1, following Goodfellow et al. 2014:
a Gaussian kernel density (Parzen window) on 10,000 generated samples, its width chosen on a
validation set, gives the test log-likelihood of an adversarial autoencoder (MNIST: 340 +/- 2).
Parzen estimates are unreliable in high dimensions (Theis, van den Oord & Bethge 2016,
arXiv 1511.01844), so `aae_log_likelihoods` reports the importance-sampled estimate beside it.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from tfaae import fused, random, validation
from tfaae.models.base import with_precision
from tfaae.networks import as_float32


def _batches(data, batch_size):
    """Yields image batches from a `tf.data.Dataset` of x or (x, ...), or from an array."""
    if isinstance(data, tf.data.Dataset):
        for element in data:
            yield element[0] if isinstance(element, (tuple, list)) else element
        return
    data = np.asarray(data)
    if data.ndim == 0 or len(data) == 0:
        raise ValueError(f"data must hold at least one image; got an array of shape {data.shape}.")
    for start in range(0, len(data), batch_size):
        yield data[start:start + batch_size]


CHUNK_ROWS = 5_000  # default decoder rows per chunk of importance samples.


def log_likelihood(model, data, num_samples=5000, chunk_size=None, batch_size=100, seed=0,
                   precision=None):
    """Per-example importance-sampled estimate of log p(x): L_k = log (1/k) sum_i w_i.

    The k samples are drawn in chunks and combined with a running logsumexp, so memory depends on
    `chunk_size * batch`, not on k. L_k is a stochastic lower bound in expectation that tightens as
    k grows (Burda et al. theorem 1); k = 5000 is the paper's evaluation.

    Args:
        model: a `VAE`/`IWAE`, or an `AAE` with a Gaussian encoder (anything with `image_shape`
            and `log_weights(x, k, seed=)`).
        data: a `tf.data.Dataset` of images or (images, labels), or an array of images in [0, 1].
        num_samples: k >= 1.
        chunk_size: samples per chunk (default: as many as keep chunk * batch near
            `CHUNK_ROWS` = 5,000 rows; on 2 CPU cores 10,000 or 20,000 rows were no faster within
            the noise of repeated runs, bfloat16 two layers and float32 one layer, and took more
            memory).
        batch_size: batch size when `data` is an array.
        seed: integer seed of the proposal samples.
        precision: None (the model's own), "float32", or "mixed_bfloat16" (matrix products in
            bfloat16, bias, activations and log weights in float32; see
            benchmarks/results/eval_time.json for the speed on a 2-core CPU with AMX and
            benchmarks/results/precision.json for its effect on the estimate). Either way the
            element-wise work runs in the forward-only fused kernels (`tfaae.fused`).

    Returns:
        float64 NumPy array `[N]` of log p(x) estimates, in nats.

    Raises:
        ValueError: for k < 1, empty data, or images of the wrong shape or range.

    Example:
        >>> ll = log_likelihood(model, x_test[:100], num_samples=5000)
        >>> nll = -ll.mean()
    """
    num_samples = validation.check_positive_int("num_samples", num_samples)
    validation.check_positive_int("batch_size", batch_size)
    validation.check_positive_int("seed", seed, minimum=0)
    if precision is not None:
        model = with_precision(model, precision)
    estimate, generator = _estimator(model)
    generator.state.assign(tf.constant([seed, 0], generator.state.dtype))
    estimates = []
    with validation.translate_input_errors():
        for x in _batches(data, batch_size):
            rows = int(x.shape[0])
            chunk = min(num_samples, chunk_size or max(1, CHUNK_ROWS // max(rows, 1)))
            num_chunks, remainder = divmod(num_samples, chunk)
            estimates.append(estimate(x, chunk, tf.constant(num_chunks), remainder).numpy())
    if not estimates:
        raise ValueError("data is empty: expected at least one batch of images.")
    return np.concatenate(estimates).astype(np.float64)


def log_likelihood_estimate(model, x, chunk_size, num_chunks, remainder=0, seed=None,
                            shared_noise=False):
    """In-graph L_k = log (1/k) sum_i w_i of flat images, k = num_chunks * chunk_size + remainder.

    The samples are drawn `chunk_size` at a time in a `tf.while_loop`, combined with a running
    logsumexp (Burda et al. 2016, eq. 8, evaluated as in their section 5), so memory depends on
    `chunk_size * batch`, not on k.

    Args:
        model: a `VAE`/`IWAE` (anything with `log_weights(x, k, seed=, shared_noise=)`).
        x: `[batch, D]` float32 flat images, already checked.
        chunk_size: samples per chunk, a Python int >= 1.
        num_chunks: number of full chunks, an int or an int32 scalar tensor.
        remainder: samples in a last, smaller chunk (a Python int, may be 0).
        seed: a `keras.random.SeedGenerator` (None: the model's own), or an int or `[2]` integer
            tensor for stateless noise, one seed per chunk (`tfaae.random.fold_in`).
        shared_noise: the same noise for every example (see `VAE.log_weights`): an example's
            estimate then does not depend on the rest of the batch.

    Returns:
        `[batch]` float32 estimates of log p(x), in nats.
    """
    def chunk_log_sum(index, k):
        log_w = model.log_weights(x, k, seed=random.fold_in(seed, index),
                                  shared_noise=shared_noise)["log_w"]
        return tf.reduce_logsumexp(log_w, 0)

    def body(index, total):
        return index + 1, tf.reduce_logsumexp(tf.stack([total, chunk_log_sum(index, chunk_size)]), 0)

    seed = model.seed_generator if seed is None else seed
    num_chunks = tf.convert_to_tensor(num_chunks, tf.int32)
    total = tf.fill(tf.shape(x)[:1], tf.constant(-np.inf, tf.float32))
    _, total = tf.while_loop(lambda index, _: index < num_chunks, body, (tf.constant(0), total))
    if remainder:
        total = tf.reduce_logsumexp(tf.stack([total, chunk_log_sum(num_chunks, remainder)]), 0)
    return total - tf.math.log(tf.cast(num_chunks * chunk_size + remainder, tf.float32))


_ESTIMATORS = weakref.WeakKeyDictionary()


def _estimator(model):
    """A per-model traced function (and its seed generator), so repeated calls do not retrace."""
    if model not in _ESTIMATORS:
        model_ref, generator = weakref.ref(model), keras.random.SeedGenerator(0)

        @tf.function(reduce_retracing=True)
        def batch_estimate(x, chunk, num_chunks, remainder):
            m = model_ref()
            x = validation.assert_unit_interval(validation.flatten_images(x, m.image_shape))
            # The forward-only fused kernels, in both precisions. Not exported: serving traces
            # `log_likelihood_estimate` itself.
            with fused.enabled(gradients=False):
                return log_likelihood_estimate(m, x, chunk, num_chunks, remainder, seed=generator)

        _ESTIMATORS[model] = (batch_estimate, generator)
    return _ESTIMATORS[model]


def posterior_means(model, x, num_samples=100, seed=0):
    """E_q[h_l] for each stochastic layer l: exact for the first, Monte Carlo above it.

    For l >= 2, E_{q(h_l|x)}[h_l] = E_{q(h_{l-1}|x)}[mean of q(h_l|h_{l-1})], averaged over
    `num_samples` ancestral samples of h_{l-1}.

    Args:
        model: a `VAE`/`IWAE`.
        x: a batch of images.
        num_samples: Monte Carlo samples for the layers above the first.
        seed: an integer or a `keras.random.SeedGenerator` (inside a `tf.function`).

    Returns:
        list of `[batch, d_l]` tensors.
    """
    generator = seed if isinstance(seed, keras.random.SeedGenerator) else keras.random.SeedGenerator(seed)
    x = validation.flatten_images(x, model.image_shape)
    means, h = [], None
    for i, layer in enumerate(model.encoder):
        if i == 0:
            mean, log_std = as_float32(layer(x))
            means.append(mean)
            h = mean[None] + tf.exp(log_std)[None] * random.normal(
                tf.concat([[num_samples], tf.shape(mean)], 0), generator)
            continue
        flat = tf.reshape(h, [-1, h.shape[-1]])
        mean, log_std = as_float32(layer(flat))
        mean = tf.reshape(mean, [num_samples, -1, mean.shape[-1]])
        log_std = tf.reshape(log_std, tf.shape(mean))
        means.append(tf.reduce_mean(mean, 0))
        h = mean + tf.exp(log_std) * random.normal(tf.shape(mean), generator)
    return means


def active_units(model, data, threshold=0.01, num_samples=100, batch_size=100, seed=0):
    """Counts active latent units per stochastic layer (Burda et al. 2016, section 6).

    A unit u is active when A_u = Var_x(E_{q(u|x)}[u]) exceeds `threshold`.

    Args:
        model: a `VAE`/`IWAE`.
        data: images (`tf.data.Dataset` or array) in [0, 1].
        threshold: activity threshold (the paper's 0.01).
        num_samples: Monte Carlo samples for layers above the first.
        batch_size: batch size when `data` is an array.
        seed: integer seed.

    Returns:
        dict with "counts" (list, one int per stochastic layer, bottom-up) and "variances" (list of
        float64 arrays `[d_l]`, the activity statistic of every unit).

    Raises:
        ValueError: for a negative threshold or empty data.
    """
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0; got {threshold!r}.")
    sums = sq_sums = None
    count = 0
    generator = keras.random.SeedGenerator(seed)
    fn = tf.function(lambda x: posterior_means(model, x, num_samples, generator),
                     reduce_retracing=True)
    for x in _batches(data, batch_size):
        means = [m.numpy().astype(np.float64) for m in fn(x)]
        if sums is None:
            sums = [np.zeros(m.shape[1]) for m in means]
            sq_sums = [np.zeros(m.shape[1]) for m in means]
        for s, q, m in zip(sums, sq_sums, means):
            s += m.sum(0)
            q += (m * m).sum(0)
        count += len(means[0])
    if not count:
        raise ValueError("data is empty: expected at least one batch of images.")
    variances = [np.maximum(q / count - (s / count) ** 2, 0.0) for s, q in zip(sums, sq_sums)]
    return {"counts": [int((v > threshold).sum()) for v in variances], "variances": variances}


PARZEN_WIDTHS = tuple(np.round(np.geomspace(0.02, 2.0, 41), 5))


def _flat_images(data, batch_size, name):
    """All images of `data` (dataset or array) as one float64 array `[N, D]`, checked."""
    batches = [np.asarray(x, np.float64).reshape(len(x), -1) for x in _batches(data, batch_size)]
    if not batches:
        raise ValueError(f"{name} is empty: expected at least one image.")
    images = np.concatenate(batches)
    if not np.isfinite(images).all():
        raise ValueError(f"{name} must hold finite values; got {int((~np.isfinite(images)).sum())} "
                         "NaN or Inf values.")
    return images


@tf.function(reduce_retracing=True)
def _kernel_logsumexp(x, samples, half_inverse_variances, chunk_size):
    """logsumexp_i -||x - s_i||^2 / (2 sigma^2) for `[b, D]` x, `[N, D]` samples, `[S]` widths.

    The samples are visited in chunks of `chunk_size`, combined with a running logsumexp, so
    memory is `b * chunk_size * S`, not `b * N * S`. Returns `[b, S]`.
    """
    x_norms = tf.reduce_sum(x * x, -1)[:, None]
    total = tf.fill([tf.shape(x)[0], tf.shape(half_inverse_variances)[0]],
                    tf.constant(-np.inf, x.dtype))
    for start in tf.range(0, tf.shape(samples)[0], chunk_size):
        chunk = samples[start:start + chunk_size]
        squared = tf.maximum(
            x_norms + tf.reduce_sum(chunk * chunk, -1)[None] - 2 * tf.matmul(x, chunk, transpose_b=True),
            0.0)                                                               # [b, c]
        chunk_total = tf.reduce_logsumexp(-squared[:, :, None] * half_inverse_variances, 1)
        total = tf.reduce_logsumexp(tf.stack([total, chunk_total]), 0)
    return total


def parzen_log_likelihood(samples, data, sigma, batch_size=100, chunk_size=1000):
    """Per-example log-density of a Gaussian kernel density (Parzen window) on `samples`.

    log p(x) = log (1/N) sum_i N(x; s_i, sigma^2 I)
             = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log N - (D/2) log(2 pi sigma^2),

    computed in float64 and in log space, the N samples visited in chunks (memory does not grow
    with N). For a generative model with decoder means g(z), s_i = g(z_i) with z_i ~ p(z), this is
    the Monte Carlo estimate, with the prior as proposal, of the log-likelihood of the model
    p(x) = E_{p(z)} N(x; g(z), sigma^2 I) (Goodfellow et al. 2014; Makhzani et al. table 1).

    Args:
        samples: `[N, ...]` generated samples (array or tensor), flattened to `[N, D]`.
        data: a `tf.data.Dataset` of images or (images, labels), or an array `[M, ...]`.
        sigma: the kernel width, a number > 0, or a 1-D sequence of widths.
        batch_size: data rows per step (when `data` is an array).
        chunk_size: samples per step.

    Returns:
        float64 NumPy array `[M]` (one width) or `[M, S]` (S widths), in nats.

    Raises:
        ValueError: for widths <= 0, empty or non-finite inputs, or sizes that do not match.

    Example:
        >>> ll = parzen_log_likelihood(model.sample(10_000), x_test, sigma=0.2)
        >>> ll.mean(), ll.std(ddof=1) / len(ll) ** 0.5
    """
    widths = np.atleast_1d(np.asarray(sigma, np.float64))
    if widths.ndim != 1 or not len(widths) or not (widths > 0).all():
        raise ValueError(f"sigma must be a number > 0 or a 1-D sequence of them; got {sigma!r}.")
    validation.check_positive_int("batch_size", batch_size)
    validation.check_positive_int("chunk_size", chunk_size)
    samples = _flat_images(np.asarray(samples), batch_size, "samples")
    dim = samples.shape[1]
    half_inverse = tf.constant(0.5 / widths ** 2)
    samples_t = tf.constant(samples)
    out = []
    for x in _batches(data, batch_size):
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        if x.shape[1] != dim:
            raise ValueError(f"data has {x.shape[1]} values per example but the samples have {dim}.")
        out.append(_kernel_logsumexp(tf.constant(x), samples_t, half_inverse,
                                     tf.constant(chunk_size)).numpy())
    if not out:
        raise ValueError("data is empty: expected at least one image.")
    log_density = (np.concatenate(out) - np.log(len(samples))
                   - 0.5 * dim * np.log(2 * np.pi * widths ** 2))
    return log_density if np.ndim(sigma) else log_density[:, 0]


def _mean_and_stderr(values):
    values = np.asarray(values, np.float64)
    stderr = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), stderr


def parzen_evaluation(model, validation_data, test_data, num_samples=10_000, widths=PARZEN_WIDTHS,
                      batch_size=100, seed=0):
    """The Parzen-window protocol of Makhzani et al.'s table 1 for a generative model.

    Draws `num_samples` images from the model (decoder means), chooses the kernel width that
    maximises the mean log-likelihood of `validation_data` among `widths`, and reports the mean
    test log-likelihood at that width with its standard error over test images.

    Args:
        model: anything with `sample(num_samples, seed=)` returning images (e.g. an `AAE`).
        validation_data, test_data: datasets or arrays of images in [0, 1].
        num_samples: generated samples in the density (the paper's 10,000).
        widths: candidate kernel widths.
        batch_size: batch size when the data are arrays.
        seed: integer seed of the generated samples.

    Returns:
        dict with "log_likelihood" (test mean, nats), "stderr", "sigma" (the chosen width),
        "sigma_at_grid_edge" (whether it is the smallest or largest candidate), "num_samples",
        "num_examples", "widths" and "validation_log_likelihoods" (one mean per width).
    """
    num_samples = validation.check_positive_int("num_samples", num_samples)
    widths = np.asarray(widths, np.float64)
    samples = np.asarray(model.sample(num_samples, seed=seed))
    per_width = parzen_log_likelihood(samples, validation_data, widths, batch_size).mean(0)
    best = int(np.argmax(per_width))
    test = parzen_log_likelihood(samples, test_data, widths[best], batch_size)
    mean, stderr = _mean_and_stderr(test)
    return {"log_likelihood": mean, "stderr": stderr, "sigma": float(widths[best]),
            "sigma_at_grid_edge": best in (0, len(widths) - 1), "num_samples": num_samples,
            "num_examples": int(len(test)), "widths": widths.tolist(),
            "validation_log_likelihoods": per_width.tolist()}


def aae_log_likelihoods(model, validation_data, test_data, parzen_samples=10_000,
                        num_samples=5000, widths=PARZEN_WIDTHS, seed=0):
    """An adversarial autoencoder's test log-likelihood: Parzen, and importance-sampled beside it.

    The Parzen estimate follows the paper (`parzen_evaluation`). For an AAE with a Gaussian encoder
    the importance-sampled estimate L_k (`log_likelihood`, the encoder as proposal) follows: with
    reconstruction="squared_error" its observation model is N(x; decoder mean, sigma^2 I) with sigma
    the chosen Parzen width (the model's `observation_std` is set to it), so both estimate the same
    log p(x), Parzen with the prior as proposal and 10,000 samples shared by all test images,
    importance sampling with q(z|x) and k samples per image. Both are stochastic lower bounds.

    Args:
        model: an `AAE`.
        validation_data, test_data: datasets or arrays of images in [0, 1].
        parzen_samples: generated samples of the Parzen density.
        num_samples: k, importance samples per test image.
        widths: candidate Parzen widths.
        seed: integer seed.

    Returns:
        dict with "parzen" (see `parzen_evaluation`) and "importance_sampled" ({"log_likelihood",
        "stderr", "num_samples", "num_examples", "observation"}), or None there with "reason" when
        the encoder has no density.
    """
    parzen = parzen_evaluation(model, validation_data, test_data, parzen_samples, widths, seed=seed)
    result = {"parzen": parzen, "importance_sampled": None}
    if getattr(model, "posterior", None) != "gaussian":
        result["reason"] = (f"no importance-sampled estimate: the encoder (posterior="
                            f"{getattr(model, 'posterior', None)!r}) has no density; "
                            "posterior='gaussian' has one.")
        return result
    if model.reconstruction == "squared_error":
        model.observation_std.assign(parzen["sigma"])
        observation = f"Gaussian, std {parzen['sigma']:.4g} (the Parzen width)"
    else:
        observation = "Bernoulli"
    ll = log_likelihood(model, test_data, num_samples=num_samples, seed=seed)
    mean, stderr = _mean_and_stderr(ll)
    result["importance_sampled"] = {"log_likelihood": mean, "stderr": stderr,
                                    "num_samples": num_samples, "num_examples": int(len(ll)),
                                    "observation": observation}
    return result


CLUSTER_RULES = ("highest", "majority")


def cluster_to_label(probabilities, labels, num_classes=10, rule="highest"):
    """The label each cluster stands for, from the cluster probabilities of labeled examples.

    Makhzani et al. 2015, section 6: "for each cluster i, we found the validation example x_n that
    maximizes q(y_i|x_n), and assigned the label of x_n to all the points in the cluster i"
    (rule="highest"). rule="majority" gives each cluster the most common label among the examples
    whose most probable cluster it is (ties: the smallest label), and falls back to "highest" for a
    cluster that no example falls in.

    Args:
        probabilities: `[N, num_clusters]` q(y|x) of the labeled examples.
        labels: int `[N]` their labels in [0, num_classes).
        num_classes: number of labels.
        rule: "highest" (the paper's) or "majority".

    Returns:
        int `[num_clusters]` array: the label of each cluster.

    Raises:
        ValueError: for an unknown rule, mismatched shapes or labels out of range.

    Example:
        >>> cluster_to_label([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [1, 0, 0], num_classes=2)
        array([1, 0])
    """
    validation.check_choice("rule", rule, CLUSTER_RULES)
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
    if probabilities.ndim != 2 or labels.shape != probabilities.shape[:1] or not len(labels):
        raise ValueError(f"probabilities must be [N, num_clusters] and labels [N]; got shapes "
                         f"{list(probabilities.shape)} and {list(labels.shape)}.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got values from {labels.min()} "
                         f"to {labels.max()}.")
    highest = labels[np.argmax(probabilities, axis=0)]
    if rule == "highest":
        return highest
    assigned = np.argmax(probabilities, axis=1)
    counts = np.zeros((probabilities.shape[1], num_classes), np.int64)
    np.add.at(counts, (assigned, labels), 1)
    return np.where(counts.sum(1) > 0, np.argmax(counts, axis=1), highest)


def cluster_error(probabilities, labels, mapping):
    """Classification error (percent) of clusters read as labels: `mapping[argmax q(y|x)]`.

    Args:
        probabilities: `[N, num_clusters]` q(y|x) of the evaluated examples.
        labels: int `[N]` their labels.
        mapping: int `[num_clusters]` from `cluster_to_label`.

    Returns:
        float: 100 * the fraction of examples whose cluster's label is not theirs.
    """
    predicted = np.asarray(mapping)[np.argmax(np.asarray(probabilities), axis=1)]
    return float(100.0 * np.mean(predicted != np.asarray(labels)))


def images_and_labels(data):
    """The images `[N, ...]` and labels `[N]` of a dataset of (images, labels) batches, as arrays.

    Raises:
        ValueError: if the dataset's batches carry no labels.
    """
    batches = list(data.as_numpy_iterator())
    if not batches or not isinstance(batches[0], tuple):
        raise ValueError("Classification and clustering errors need (images, labels) batches; got "
                         "images alone.")
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def class_probabilities(model, x, batch_size=1000):
    """`model.classify` over `x` in batches: q(y|x) as a NumPy array `[N, num_categories]`."""
    return np.concatenate([np.asarray(model.classify(x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


def categorical_errors(model, x, y, x_train=None, y_train=None):
    """Test error of a `CategoricalAAE`: classification error, or both clustering errors.

    A semi-supervised model predicts argmax q(y|x). A clustering model's clusters take labels from
    the labeled images `x_train`, `y_train` (`cluster_to_label`: the paper's "highest" rule and
    the majority vote), and each test image the label of its most probable cluster.

    Args:
        model: a `tfaae.CategoricalAAE`.
        x, y: evaluated images and labels.
        x_train, y_train: the images and labels that label the clusters (clustering only).

    Returns:
        dict: "error" (percent) for a semi-supervised model; else "cluster_error" and
        "cluster_labels" ({rule: ...}); and "num_examples".

    Raises:
        ValueError: for a clustering model without `x_train` and `y_train`.
    """
    probabilities = class_probabilities(model, x)
    if model.semi_supervised:
        return {"error": float(100.0 * np.mean(np.argmax(probabilities, 1) != y)),
                "num_examples": int(len(y))}
    if x_train is None or y_train is None:
        raise ValueError("A clustering model's error needs labeled images (x_train, y_train) to "
                         "label its clusters; got none.")
    train = class_probabilities(model, x_train)
    mappings = {rule: cluster_to_label(train, y_train, int(max(y_train.max(), y.max())) + 1, rule)
                for rule in CLUSTER_RULES}
    return {"cluster_error": {rule: cluster_error(probabilities, y, m) for rule, m in mappings.items()},
            "cluster_labels": {rule: m.tolist() for rule, m in mappings.items()},
            "num_examples": int(len(y)), "num_clusters": int(probabilities.shape[1])}
