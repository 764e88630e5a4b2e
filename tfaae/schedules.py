"""Learning-rate schedules and optimizers from the papers, as Keras objects.

Burda et al. 2016 (https://arxiv.org/abs/1509.00519), section 5: Adam (beta1 = 0.9, beta2 = 0.999,
epsilon = 1e-4) for 3^i passes over the data at learning rate 0.001 * 10^(-i/7), i = 0..7: 3,280
passes in all.

Makhzani et al. 2015 (https://arxiv.org/abs/1511.05644), appendix A: the adversarial autoencoder's
three phases each get an SGD-with-momentum optimizer (`makhzani_optimizers`), or Adam
(`aae_adam_optimizers`).
"""

import keras

from tfaae import optimizers, validation

BURDA_PASSES = 8


def burda_epochs(num_passes=BURDA_PASSES):
    """Epochs of each stage of Burda et al.'s schedule: [1, 3, 9, ..., 3^(num_passes - 1)]."""
    validation.check_positive_int("num_passes", num_passes)
    return [3 ** i for i in range(num_passes)]


def burda_schedule(steps_per_epoch, epochs=None, num_passes=BURDA_PASSES, learning_rate=1e-3):
    """Burda et al.'s piecewise-constant schedule, optionally compressed into fewer epochs.

    Stage i lasts 3^i epochs at `learning_rate * 10^(-i/7)`. With `epochs` smaller than the full
    length (3,280 for 8 stages), every stage shrinks in proportion, each keeping at least one step,
    so a short run still visits every learning rate in order.

    Args:
        steps_per_epoch: optimizer steps per epoch.
        epochs: total epochs to fit the schedule into (None: the paper's full length).
        num_passes: number of stages (8 in the paper).
        learning_rate: the first stage's rate.

    Returns:
        A `keras.optimizers.schedules.PiecewiseConstantDecay` over optimizer steps.

    Raises:
        ValueError: for non-positive arguments.

    Example:
        >>> schedule = burda_schedule(steps_per_epoch=2980)
        >>> float(schedule(0)), round(float(schedule(2980 * 3280 - 1)), 6)
        (0.001, 0.0001)
    """
    steps_per_epoch = validation.check_positive_int("steps_per_epoch", steps_per_epoch)
    stages = burda_epochs(num_passes)
    full = sum(stages)
    epochs = full if epochs is None else validation.check_positive_int("epochs", epochs)
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0; got {learning_rate!r}.")
    total_steps = epochs * steps_per_epoch
    # PiecewiseConstantDecay keeps values[i] while step <= boundaries[i]: stage i + 1 starts at
    # step boundaries[i] + 1, the first step after `cumulative` epochs.
    boundaries, cumulative = [], 0
    for stage in stages[:-1]:
        cumulative += stage
        start = max(int(round(cumulative / full * total_steps)), boundaries[-1] + 2 if boundaries else 1)
        boundaries.append(start - 1)
    values = [learning_rate * 10 ** (-i / 7) for i in range(num_passes)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def burda_optimizer(steps_per_epoch, epochs=None, num_passes=BURDA_PASSES, learning_rate=1e-3):
    """Adam (`tfaae.optimizers.Adam`, the fused update) with the paper's settings and `burda_schedule`."""
    return optimizers.Adam(
        burda_schedule(steps_per_epoch, epochs, num_passes, learning_rate),
        beta_1=0.9, beta_2=0.999, epsilon=1e-4)


# Makhzani et al. 2015 (arXiv 1511.05644), appendix A: SGD with momentum in both phases;
# reconstruction at learning rate 0.01, momentum 0.9; regularization (discriminator and generator)
# at 0.1, momentum 0.1; every rate divided by 10 at epochs 50 and 1000.
MAKHZANI_DECAY_EPOCHS = (50, 1000)
MAKHZANI_SGD = {"reconstruction_optimizer": (0.01, 0.9), "discriminator_optimizer": (0.1, 0.1),
                "generator_optimizer": (0.1, 0.1)}


def _decayed(rate, steps_per_epoch, decay_epochs):
    """`rate`, divided by 10 after each of `decay_epochs` (in steps); constant without steps."""
    if steps_per_epoch is None or not decay_epochs:
        return rate
    steps_per_epoch = validation.check_positive_int("steps_per_epoch", steps_per_epoch)
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [e * steps_per_epoch - 1 for e in decay_epochs],
        [rate / 10 ** i for i in range(len(decay_epochs) + 1)])


def makhzani_optimizers(steps_per_epoch=None, decay_epochs=MAKHZANI_DECAY_EPOCHS):
    """The AAE paper's three SGD-with-momentum optimizers, as keyword arguments of `AAE.compile`.

    Each learning rate is divided by 10 after each of `decay_epochs` (the paper's 50 and 1000), in
    optimizer steps: epochs 1 to 50 run at the first rate. Unlike Burda et al.'s, this schedule is
    not compressed into shorter runs: a 20-epoch run stays at the first rates, as in the paper.

    Args:
        steps_per_epoch: optimizer steps per epoch; None gives constant rates (no decay).
        decay_epochs: epochs after which the rates fall tenfold.

    Returns:
        dict with "reconstruction_optimizer", "discriminator_optimizer", "generator_optimizer".

    Example:
        >>> opts = makhzani_optimizers(steps_per_epoch=600)
        >>> float(opts["reconstruction_optimizer"].learning_rate(600 * 50))
        0.001
    """
    if steps_per_epoch is not None:
        steps_per_epoch = validation.check_positive_int("steps_per_epoch", steps_per_epoch)
        decay_epochs = [validation.check_positive_int("decay_epochs", e) for e in decay_epochs]
        if list(decay_epochs) != sorted(set(decay_epochs)):
            raise ValueError(f"decay_epochs must increase; got {decay_epochs!r}.")
    optimizers = {}
    for name, (rate, momentum) in MAKHZANI_SGD.items():
        optimizers[name] = keras.optimizers.SGD(_decayed(rate, steps_per_epoch, decay_epochs),
                                                momentum=momentum, name=name)
    return optimizers


def aae_adam_optimizers(learning_rate=2e-4, beta_1=0.5, names=tuple(MAKHZANI_SGD)):
    """Adam for the AAE's phases, the alternative to the paper's SGD.

    beta_1 = 0.5 follows the usual setting for adversarial training (Radford et al. 2016,
    arXiv 1511.06434); the reconstruction phase uses the same rate and betas.

    Args:
        learning_rate: every phase's rate.
        beta_1: Adam's first-moment decay.
        names: the optimizers' names (default: the AAE's three; `CategoricalAAE.optimizer_names`
            for the semi-supervised AAE's four).

    Returns:
        dict with one Adam per name: "reconstruction_optimizer", "discriminator_optimizer",
        "generator_optimizer" by default.
    """
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a number > 0; got {learning_rate!r}.")
    return {name: keras.optimizers.Adam(learning_rate, beta_1=beta_1, name=name)
            for name in names}


# Makhzani et al. 2015, section 5 and appendix, semi-supervised MNIST (as best known; the text is
# terse): SGD with momentum 0.9 in every phase; the reconstruction at 1e-4, the regularization and
# the semi-supervised classification at 1e-3 (our reading of "0.001-ish"); rates divided by 10 after
# epoch 50 and again after epoch 1000, as in the AAE's appendix schedule.
CATEGORICAL_SGD = {"reconstruction_optimizer": 1e-4, "discriminator_optimizer": 1e-3,
                   "generator_optimizer": 1e-3, "classification_optimizer": 1e-3}


def categorical_optimizers(steps_per_epoch=None, names=tuple(CATEGORICAL_SGD),
                           decay_epochs=MAKHZANI_DECAY_EPOCHS):
    """SGD with momentum 0.9 for the phases of `tfaae.models.CategoricalAAE` (the paper's).

    Args:
        steps_per_epoch: optimizer steps per epoch; None gives constant rates.
        names: which optimizers (the clustering model has no "classification_optimizer").
        decay_epochs: epochs after which the rates fall tenfold.

    Returns:
        dict of name -> `keras.optimizers.SGD`.

    Example:
        >>> sorted(categorical_optimizers(names=("reconstruction_optimizer",)))
        ['reconstruction_optimizer']
    """
    unknown = sorted(set(names) - set(CATEGORICAL_SGD))
    if unknown:
        raise ValueError(f"names must be among {sorted(CATEGORICAL_SGD)}; got {unknown}.")
    optimizers = {}
    for name in names:
        optimizers[name] = keras.optimizers.SGD(
            _decayed(CATEGORICAL_SGD[name], steps_per_epoch, decay_epochs), momentum=0.9, name=name)
    return optimizers
