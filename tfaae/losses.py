"""The adversarial autoencoder's losses, as small pure functions of logits.

Makhzani et al. 2015, "Adversarial Autoencoders" (https://arxiv.org/abs/1511.05644), section 2: the
autoencoder minimises a reconstruction loss while a GAN matches the aggregated posterior q(z) to the
prior p(z). The discriminator D is trained on the game's value (Goodfellow et al. 2014, eq. 1)

    min_G max_D  E_{z ~ p(z)} [log D(z)] + E_{x ~ p_d(x)} [log(1 - D(q(x)))],

with the encoder q as its generator. Discriminator outputs are logits l (D = sigmoid(l)), and every
cross-entropy is computed from them with `softplus`, which is stable for any logit: -log sigmoid(l)
= softplus(-l) and -log(1 - sigmoid(l)) = softplus(l).

Shapes: images `[batch, D]`, decoder logits `[batch, D]`, discriminator logits `[batch]` or
`[batch, 1]`; every loss is returned per example, `[batch]`.
"""

import tensorflow as tf

from tfaae import bounds

RECONSTRUCTIONS = ("squared_error", "bernoulli")


def _flat(logits):
    """Discriminator logits `[batch, 1]` or `[batch]` as `[batch]` float32."""
    logits = tf.cast(logits, tf.float32)
    return tf.reshape(logits, [-1]) if logits.shape.rank == 2 else logits


def squared_error(x, logits):
    """The paper's Euclidean reconstruction cost on MNIST: sum_d (x_d - sigmoid(l_d))^2.

    Makhzani et al., appendix A: "The autoencoder is trained with a Euclidean cost function for
    reconstruction", the decoder's last layer being a sigmoid. Up to constants it is the negative
    log-likelihood of a Gaussian N(x; sigmoid(l), sigma^2 I), scaled by 2 sigma^2.

    Args:
        x: `[batch, D]` targets in [0, 1].
        logits: `[batch, D]` decoder logits.

    Returns:
        `[batch]` losses.
    """
    return tf.reduce_sum(tf.square(x - tf.sigmoid(tf.cast(logits, tf.float32))), axis=-1)


def bernoulli(x, logits):
    """Bernoulli reconstruction loss, -log p(x|z) = sum_d softplus(l_d) - x_d l_d, from logits.

    Args:
        x: `[batch, D]` targets in [0, 1] (binary for a likelihood, grey levels for a
            cross-entropy).
        logits: `[batch, D]` decoder logits.

    Returns:
        `[batch]` losses.
    """
    return -bounds.bernoulli_log_likelihood(x, tf.cast(logits, tf.float32))


def reconstruction(name):
    """The reconstruction loss function called `name` ("squared_error" or "bernoulli")."""
    return {"squared_error": squared_error, "bernoulli": bernoulli}[name]


def discriminator_loss(prior_logits, code_logits):
    """The discriminator's cross-entropy: prior samples are positives, codes negatives.

    L_D = -log D(z_p) - log(1 - D(z_q)) = softplus(-l_p) + softplus(l_q), paired per example: the
    negative of the GAN value above for one prior sample z_p ~ p(z) and one code z_q ~ q(z|x).

    Args:
        prior_logits: `[batch]` (or `[batch, 1]`) logits of D on prior samples.
        code_logits: `[batch]` (or `[batch, 1]`) logits of D on the encoder's codes.

    Returns:
        `[batch]` losses (ln 4 = 1.386 at chance, D = 1/2 everywhere).
    """
    return tf.math.softplus(-_flat(prior_logits)) + tf.math.softplus(_flat(code_logits))


def generator_loss(code_logits):
    """The encoder's (generator's) loss: -log D(z_q) = softplus(-l_q).

    The non-saturating form of Goodfellow et al. (section 3): the encoder maximises log D(q(x))
    instead of minimising log(1 - D(q(x))), which gives strong gradients while D still wins.

    Args:
        code_logits: `[batch]` (or `[batch, 1]`) logits of D on the encoder's codes.

    Returns:
        `[batch]` losses (ln 2 = 0.693 at chance).
    """
    return tf.math.softplus(-_flat(code_logits))


def discriminator_accuracy(prior_logits, code_logits):
    """Fraction of the pair (prior sample, code) that D classifies right (logit > 0: prior).

    Args:
        prior_logits: `[batch]` (or `[batch, 1]`) logits on prior samples.
        code_logits: `[batch]` (or `[batch, 1]`) logits on codes.

    Returns:
        `[batch]` values in {0, 0.5, 1}.
    """
    right = tf.cast(_flat(prior_logits) > 0, tf.float32) + tf.cast(_flat(code_logits) < 0, tf.float32)
    return right / 2


def cluster_head_cost(heads, threshold):
    """The cluster heads' spacing cost: sum over pairs i < j of max(0, eta - ||h_i - h_j||).

    Makhzani et al. 2015 (arXiv 1511.05644), section 7: the dimensionality-reduction AAE maps the
    n-way cluster indicator y to a head W_c y and "penalizes every two cluster heads that are
    closer than eta" so that clusters stay apart. The paper gives no formula; this hinge on the
    Euclidean distance is zero once every pair is at least `threshold` apart.

    Args:
        heads: `[n, m]` cluster heads (the rows of W_c).
        threshold: eta > 0.

    Returns:
        A float32 scalar.

    Example:
        >>> float(cluster_head_cost(tf.constant([[0.0, 0.0], [3.0, 4.0]]), 6.0))
        1.0
    """
    heads = tf.cast(heads, tf.float32)
    squared = tf.reduce_sum(tf.square(heads[:, None, :] - heads[None, :, :]), -1)
    n = tf.shape(heads)[0]
    upper = tf.linalg.band_part(tf.ones([n, n]), 0, -1) - tf.eye(n)  # pairs i < j.
    # The square root's gradient is infinite at 0: take it on the pairs only, never at 0.
    distances = tf.sqrt(tf.where(upper > 0, squared, 1.0) + 1e-12)
    return tf.reduce_sum(upper * tf.nn.relu(threshold - distances))


def classification_loss(labels, logits):
    """Cross-entropy -log q(y = label | x) of the categorical encoder, from its logits.

    Makhzani et al. 2015, section 5: the semi-supervised phase "updates q(y|x) to minimize the
    cross-entropy cost on a labeled mini-batch".

    Args:
        labels: int `[batch]` class ids in [0, num_classes).
        logits: `[batch, num_classes]` logits of q(y|x).

    Returns:
        `[batch]` losses.
    """
    return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32),
                                                          tf.cast(logits, tf.float32))
