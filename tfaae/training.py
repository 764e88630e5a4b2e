"""Library functions behind `tfaae train`, `evaluate` and `export`: one run directory per run.

A run directory holds:

* `config.json`: the settings (what `train` was called with), the data source and the version;
* `logs/`: TensorBoard logs (`tensorboard --logdir RUN/logs`): `train/` and `validation/`
  (`keras.callbacks.TensorBoard`), `test/` (figures, histograms, evaluation and projector of
  `tfaae.monitoring`) and the hparams summary;
* `backup/`: `tfaae.callbacks.AtomicBackupAndRestore` state while training (resume by re-running
  the same command, even after `kill -9`: it goes on from the last epoch backed up);
* `checkpoints/last.keras`: the last good epoch, written atomically;
* `history.json`: every epoch's metrics (the learning curve), kept across resumptions;
* `clock.json`: the training time (wall and CPU seconds) spent by the end of every epoch, summed
  over resumptions;
* `model.keras`: the final model; `result.json`: status, epochs, final metrics, time;
* `eval.json`: what `evaluate_run` measured.

`export_run` writes a run's model as a SavedModel for TF Serving (`tfaae.serving`).

Each kind of model has a `Recipe` (`RECIPES`): its own settings and defaults, how to build, compile
and feed it, and how to evaluate it; `train` and `evaluate_run` are the same for all.
"""

import json
import math
import os
import shutil
import time

import keras
import numpy as np

import tfaae  # registers the models' Keras classes for load_model.
from tfaae import callbacks as tfaae_callbacks
from tfaae import losses, networks, priors
from tfaae import data as tfaae_data
from tfaae import distribute, evaluation, io, monitoring, optimizers, schedules, serving, validation

PRECISIONS = ("float32", "mixed_bfloat16")

# Settings every model takes; None means "the model's default" (its recipe's `defaults`).
COMMON_DEFAULTS = {
    "model": "vae", "dataset": "mnist", "data_dir": None, "epochs": None, "batch_size": None,
    "learning_rate": None, "schedule": None, "binarization": None, "validation_size": 400,
    "seed": 0, "precision": "float32", "jit_compile": False, "steps_per_execution": 100,
    "init_from": None, "max_train_examples": None, "download": True,
    "eval_every": None, "eval_examples": 1000, "eval_num_samples": 1000,
    "image_every": None, "projector": False, "strategy": "default", "collective_timeout": None,
}
MONITORING = ("eval_every", "eval_examples", "eval_num_samples", "image_every", "projector")
AUTO_TIMES = {"eval_every": 10, "image_every": 20}  # "auto": about this many times per run.


class Recipe:
    """How `train` and `evaluate_run` handle one kind of model.

    Attributes:
        settings: the model's own settings and their defaults.
        defaults: its defaults of the common settings left at None.
        schedules: the `schedule` values it accepts.
    """

    settings, defaults, schedules = {}, {}, ()
    periodic_evaluation = True  # tfaae.callbacks.EvaluationCallback: NLL and active units.

    def check(self, config):
        """Raises ValueError for settings that do not go together."""

    def training_labels(self, config, labels):
        """The labels to train with (int32 [N], -1: unlabeled), or None to train on images alone."""
        return None

    def build(self, config):
        raise NotImplementedError

    def training_dataset(self, config, x_train, labels):
        """The training batches of images in [0, 1] (with the recipe's labels), each epoch a
        function of the seed and the epoch: a `tfaae.data.EpochBatches`."""
        return tfaae_data.epoch_batches(x_train, labels, batch_size=config["batch_size"],
                                        binarization=config["binarization"], seed=config["seed"])

    def prepare(self, model, x_train):
        """Data-dependent initialisation before training."""

    def optimizers(self, config, steps_per_epoch, epochs):
        """Keyword arguments of the model's `compile` that give its optimizer(s)."""
        raise NotImplementedError

    def evaluate(self, model, datasets, num_samples, seed, **options):
        """The run's evaluation as a JSON-serialisable dict."""
        raise NotImplementedError

    def describe(self, result):
        """Lines that `tfaae evaluate` prints for an evaluation result."""
        raise NotImplementedError


class LatentVariableRecipe(Recipe):
    """The VAE and IWAE: Burda et al.'s architectures, schedule and evaluation."""

    defaults = {"batch_size": 20, "learning_rate": 1e-3, "schedule": "burda",
                "binarization": "dynamic"}
    schedules = ("burda", "constant")

    def __init__(self, model_class, num_samples):
        self.model_class = model_class
        self.settings = {"num_samples": num_samples, "layers": 1, "gradient_estimator": "reparam",
                         "batch_splits": 1}

    def check(self, config):
        validation.check_positive_int("num_samples", config["num_samples"])
        validation.check_positive_int("layers", config["layers"])
        validation.check_positive_int("batch_splits", config["batch_splits"])
        if config["gradient_estimator"] != "reparam" and self.model_class is not tfaae.IWAE:
            raise ValueError(f"gradient_estimator={config['gradient_estimator']!r} applies to the "
                             f"IWAE only; {config['model']!r} trains with the reparameterised gradient.")

    def build(self, config):
        kwargs = {"num_layers": config["layers"], "num_samples": config["num_samples"],
                  "seed": config["seed"], "dtype": config["precision"],
                  "batch_splits": config["batch_splits"]}
        if self.model_class is tfaae.IWAE:
            kwargs["gradient_estimator"] = config["gradient_estimator"]
        return self.model_class(**kwargs)

    def prepare(self, model, x_train):
        model.initialize_output_bias(x_train)

    def optimizers(self, config, steps_per_epoch, epochs):
        if config["schedule"] == "burda":
            return {"optimizer": schedules.burda_optimizer(steps_per_epoch, epochs,
                                                           learning_rate=config["learning_rate"])}
        return {"optimizer": optimizers.Adam(config["learning_rate"], epsilon=1e-4)}

    def evaluate(self, model, datasets, num_samples, seed, precision=None, **options):
        start = time.perf_counter()
        ll = evaluation.log_likelihood(model, datasets["evaluated"], num_samples=num_samples,
                                       seed=seed, precision=precision)
        seconds = time.perf_counter() - start
        stderr = float(ll.std(ddof=1) / np.sqrt(len(ll))) if len(ll) > 1 else 0.0
        return {"nll": float(-ll.mean()), "nll_stderr": stderr,
                "active_units": evaluation.active_units(model, datasets["evaluated"])["counts"],
                "num_examples": int(len(ll)), "num_samples": num_samples,
                "seconds": round(seconds, 2), "precision": precision or model.dtype_policy.name}

    def describe(self, result):
        return [f"{result['split']} NLL (k={result['num_samples']}, {result['num_examples']} images): "
                f"{result['nll']:.2f} +/- {result['nll_stderr']:.2f} nats",
                f"active units per stochastic layer: {result['active_units']}"]


class AdversarialRecipe(Recipe):
    """The adversarial autoencoder: Makhzani et al.'s networks, SGD schedule and Parzen evaluation.

    Defaults follow the paper's MNIST experiments: grey-level images (no binarization), batches of
    100, the Euclidean reconstruction cost, two hidden layers of 1000 units, SGD with momentum.
    The paper states no training length, so `epochs` must be given.
    """

    settings = {"latent_dim": 8, "prior": "gaussian", "prior_scale": None,
                "posterior": "deterministic", "supervised": "none", "labels": None,
                "reconstruction": "squared_error", "hidden_units": 1000}
    defaults = {"batch_size": 100, "schedule": "makhzani", "binarization": "none"}
    schedules = ("makhzani", "adam")
    periodic_evaluation = False  # its log-likelihoods need Parzen widths: `tfaae evaluate`.

    def check(self, config):
        validation.check_choice("prior", config["prior"], priors.PRIORS)
        validation.check_choice("supervised", config["supervised"], tfaae.models.aae.SUPERVISION)
        validation.check_choice("posterior", config["posterior"], networks.POSTERIORS)
        validation.check_choice("reconstruction", config["reconstruction"], losses.RECONSTRUCTIONS)
        validation.check_positive_int("latent_dim", config["latent_dim"])
        validation.check_positive_int("hidden_units", config["hidden_units"])
        if config["epochs"] is None:
            raise ValueError("epochs: the AAE paper states no training length (its learning rates "
                             "drop at epochs 50 and 1000); pass epochs (CLI: --epochs).")
        if config["labels"] is not None:
            validation.check_positive_int("labels", config["labels"])
            if config["supervised"] != "discriminator":
                uses = "every label" if config["supervised"] == "decoder" else "images alone"
                raise ValueError(f"labels={config['labels']} (a labeled subset, the rest unlabeled) "
                                 f"applies to supervised='discriminator'; supervised="
                                 f"{config['supervised']!r} trains on {uses}.")
        if config["prior_scale"] is not None and config["prior"] != "gaussian":
            raise ValueError(f"prior_scale applies to the gaussian prior; got prior={config['prior']!r}.")
        if config["learning_rate"] is not None and config["schedule"] != "adam":
            raise ValueError("learning_rate applies to schedule='adam'; the paper's SGD schedule "
                             "('makhzani') has its own rates for each phase.")

    def training_labels(self, config, labels):
        if config["supervised"] == "none":
            return None
        if config["labels"] is None:
            return labels
        return tfaae_data.semi_supervised_labels(labels, config["labels"], seed=config["seed"])

    def build(self, config):
        prior = config["prior"]
        if config["prior_scale"] is not None:
            prior = {"name": prior, "scale": config["prior_scale"]}
        return tfaae.AAE(posterior=config["posterior"], latent_dim=config["latent_dim"],
                         prior=prior, supervised=config["supervised"],
                         reconstruction=config["reconstruction"],
                         hidden_units=(config["hidden_units"],) * 2, seed=config["seed"],
                         dtype=config["precision"])

    def optimizers(self, config, steps_per_epoch, epochs):
        if config["schedule"] == "makhzani":
            return schedules.makhzani_optimizers(steps_per_epoch)
        return schedules.aae_adam_optimizers(config["learning_rate"] or 2e-4)

    def evaluate(self, model, datasets, num_samples, seed, parzen_samples=10_000, precision=None,
                 **options):
        if datasets["validation"] is None:
            raise ValueError("The Parzen width is chosen on the validation split, and this run has "
                             "none (validation_size was 0).")
        start = time.perf_counter()
        result = evaluation.aae_log_likelihoods(model, datasets["validation"], datasets["evaluated"],
                                                parzen_samples=parzen_samples,
                                                num_samples=num_samples, seed=seed)
        return {**result, "seconds": round(time.perf_counter() - start, 2)}

    def describe(self, result):
        parzen, sampled = result["parzen"], result["importance_sampled"]
        lines = [f"{result['split']} Parzen log-likelihood ({parzen['num_samples']} samples, width "
                 f"{parzen['sigma']:.4g} chosen on validation, {parzen['num_examples']} images): "
                 f"{parzen['log_likelihood']:.2f} +/- {parzen['stderr']:.2f} nats"]
        if parzen["sigma_at_grid_edge"]:
            lines.append("warning: the chosen Parzen width is at the edge of the candidates")
        if sampled is None:
            lines.append(result["reason"])
        else:
            lines.append(f"{result['split']} importance-sampled log-likelihood (k="
                         f"{sampled['num_samples']}, {sampled['observation']} observation model, "
                         f"{sampled['num_examples']} images): {sampled['log_likelihood']:.2f} +/- "
                         f"{sampled['stderr']:.2f} nats")
        return lines


# The categorical AAE's tasks (Makhzani et al., sections 5-7) and their defaults: classes or
# clusters, style size and cluster heads.
# Adam's default rate per task: at 2e-4 clustering stays collapsed onto a few clusters for its
# first epochs (16 clusters, 5 minutes: 79% test error against 43% at 1e-3).
CATEGORICAL_TASKS = {
    "semi-supervised": {"labels": 1000, "clusters": None, "style_dim": 10, "head_dim": None,
                        "adam_learning_rate": 2e-4},
    "clustering": {"labels": None, "clusters": 16, "style_dim": 5, "head_dim": None,
                   "adam_learning_rate": 1e-3},
    "dim-reduction": {"labels": None, "clusters": 20, "style_dim": None, "head_dim": 2,
                      "adam_learning_rate": 2e-4},
}


class CategoricalRecipe(Recipe):
    """The AAE with a categorical code (`tfaae.CategoricalAAE`): semi-supervised classification,
    clustering and dimensionality reduction (Makhzani et al., sections 5, 6 and 7).

    Settings: labels (semi-supervised and dim-reduction: how many training labels, class-balanced
    and seeded, or "all"; dim-reduction without labels is unsupervised), clusters (clustering and
    unsupervised dim-reduction), style_dim, head_dim and head_distance (dim-reduction),
    labeled_batch_size, hidden_units, reconstruction. Defaults follow the paper: grey levels,
    batches of 100, squared error, 1000-1000 ReLU networks, SGD with momentum 0.9
    ("makhzani"; "adam" converges faster on short budgets). `epochs` must be given.
    """

    defaults = {"batch_size": 100, "schedule": "makhzani", "binarization": "none"}
    schedules = ("makhzani", "adam")
    periodic_evaluation = False  # the error is `tfaae evaluate`'s.

    def __init__(self, task):
        self.task = task
        self.settings = {"labels": None, "clusters": None, "style_dim": None, "head_dim": None,
                         "head_distance": 6.0, "labeled_batch_size": None, "hidden_units": 1000,
                         "reconstruction": "squared_error"}

    def _task_setting(self, config, key):
        return config[key] if config[key] is not None else CATEGORICAL_TASKS[self.task][key]

    def semi_supervised(self, config):
        return self._task_setting(config, "labels") is not None

    def check(self, config):
        validation.check_choice("reconstruction", config["reconstruction"], losses.RECONSTRUCTIONS)
        validation.check_positive_int("hidden_units", config["hidden_units"])
        if config["epochs"] is None:
            raise ValueError("epochs: the AAE paper states no training length; pass epochs "
                             "(CLI: --epochs).")
        labels = self._task_setting(config, "labels")
        if labels is not None and self.task == "clustering":
            raise ValueError(f"labels={labels}: clustering is unsupervised; use 'semi-supervised' "
                             "or 'dim-reduction' to train with labels.")
        if labels is not None and labels != "all":
            validation.check_positive_int("labels", labels)
        if config["clusters"] is not None and self.task == "semi-supervised" or (
                config["clusters"] is not None and labels is not None):
            raise ValueError(f"clusters={config['clusters']}: with labels the categories are the "
                             "dataset's classes (10).")
        for key in ("clusters", "style_dim", "head_dim", "labeled_batch_size"):
            if config[key] is not None:
                validation.check_positive_int(key, config[key], minimum=2 if key == "clusters" else 1)
        if config["head_dim"] is not None and self.task != "dim-reduction":
            raise ValueError(f"head_dim={config['head_dim']}: cluster heads belong to 'dim-reduction'.")
        if config["learning_rate"] is not None and config["schedule"] != "adam":
            raise ValueError("learning_rate applies to schedule='adam'; the paper's SGD schedule "
                             "('makhzani') has its own rates for each phase.")

    def training_labels(self, config, labels):
        return labels  # all true labels: evaluation sets and cluster assignment need them.

    def build(self, config):
        head_dim = self._task_setting(config, "head_dim")
        return tfaae.CategoricalAAE(
            num_categories=10 if self.semi_supervised(config) else self._task_setting(config, "clusters"),
            style_dim=config["style_dim"] or head_dim or CATEGORICAL_TASKS[self.task]["style_dim"],
            semi_supervised=self.semi_supervised(config), head_dim=head_dim,
            head_distance=config["head_distance"], reconstruction=config["reconstruction"],
            hidden_units=(config["hidden_units"],) * 2, seed=config["seed"],
            dtype=config["precision"])

    def training_dataset(self, config, x_train, labels):
        if not self.semi_supervised(config):
            return super().training_dataset(config, x_train, None)
        count = self._task_setting(config, "labels")
        x_labeled, y_labeled = (x_train, labels) if count == "all" else tfaae_data.labeled_subset(
            x_train, labels, count, seed=config["seed"])[:2]
        return tfaae_data.semi_supervised_epochs(
            x_train, x_labeled, y_labeled, batch_size=config["batch_size"],
            labeled_batch_size=config["labeled_batch_size"], binarization=config["binarization"],
            seed=config["seed"])

    def optimizers(self, config, steps_per_epoch, epochs):
        names = ("reconstruction_optimizer", "discriminator_optimizer", "generator_optimizer",
                 "classification_optimizer")[:4 if self.semi_supervised(config) else 3]
        if config["schedule"] == "makhzani":
            return schedules.categorical_optimizers(steps_per_epoch, names=names)
        rate = config["learning_rate"] or CATEGORICAL_TASKS[self.task]["adam_learning_rate"]
        return schedules.aae_adam_optimizers(rate, names=names)

    def evaluate(self, model, datasets, num_samples, seed, run_dir=None, **options):
        start = time.perf_counter()
        x, y = evaluation.images_and_labels(datasets["evaluated"])
        result = evaluation.categorical_errors(
            model, x, y, None if model.semi_supervised else datasets["x_train"],
            None if model.semi_supervised else datasets["y_train"])
        if run_dir is not None and model.head_dim == 2:
            from tfaae import figures
            path = os.path.join(run_dir, "map.png")
            figures.save_png(figures.latent_map(
                np.asarray(model.embed(x)), y, np.asarray(model.heads),
                title=f"W_c y + z of {len(x)} images (grey: cluster heads)"), path)
            result["map"] = path
        return {**result, "task": self.task, "seconds": round(time.perf_counter() - start, 2)}

    def describe(self, result):
        if "error" in result:
            return [f"{result['split']} classification error ({result['num_examples']} images): "
                    f"{result['error']:.2f}%"]
        lines = [f"{result['split']} clustering error, cluster label from the training image with "
                 f"the highest q(y|x) (the paper's rule): {result['cluster_error']['highest']:.2f}%",
                 f"{result['split']} clustering error, majority vote of the training images: "
                 f"{result['cluster_error']['majority']:.2f}% ({result['num_examples']} images)"]
        return lines + ([f"2-D map: {result['map']}"] if "map" in result else [])

RECIPES = {
    "vae": LatentVariableRecipe(tfaae.VAE, num_samples=1),
    "iwae": LatentVariableRecipe(tfaae.IWAE, num_samples=50),
    "aae": AdversarialRecipe(),
    **{task: CategoricalRecipe(task) for task in CATEGORICAL_TASKS},
}


def _check_config(settings):
    model = settings.get("model", COMMON_DEFAULTS["model"])
    validation.check_choice("model", model, tuple(RECIPES))
    recipe = RECIPES[model]
    unknown = sorted(set(settings) - set(COMMON_DEFAULTS) - set(recipe.settings))
    foreign = [k for k in unknown if any(k in r.settings for r in RECIPES.values())]
    if foreign:
        owners = {k: sorted(name for name, r in RECIPES.items() if k in r.settings) for k in foreign}
        raise ValueError(f"{', '.join(foreign)} do not apply to the {model}: "
                         + "; ".join(f"{k} is a setting of {', '.join(v)}" for k, v in owners.items())
                         + ".")
    if unknown:
        raise TypeError(f"Unknown training settings: {', '.join(unknown)}; expected some of "
                        f"{', '.join(sorted(set(COMMON_DEFAULTS) | set(recipe.settings)))}.")
    config = {**COMMON_DEFAULTS, **recipe.settings,
              **{k: v for k, v in settings.items() if v is not None}}
    config.update({k: v for k, v in recipe.defaults.items() if config[k] is None})
    validation.check_choice("precision", config["precision"], PRECISIONS)
    validation.check_choice("schedule", config["schedule"], recipe.schedules)
    validation.check_choice("binarization", config["binarization"], tfaae_data.BINARIZATIONS)
    for key in ("batch_size", "steps_per_execution"):
        validation.check_positive_int(key, config[key])
    validation.check_positive_int("seed", config["seed"], minimum=0)
    validation.check_positive_int("validation_size", config["validation_size"], minimum=0)
    for key in ("eval_examples", "eval_num_samples"):
        validation.check_positive_int(key, config[key])
    for key in ("epochs", "max_train_examples", "eval_every", "image_every"):
        if config[key] is not None and config[key] != "auto":
            validation.check_positive_int(key, config[key])
    validation.check_choice("strategy", config["strategy"], distribute.STRATEGIES)
    if config["collective_timeout"] is not None:
        validation.check_positive_int("collective_timeout", config["collective_timeout"])
        if config["strategy"] != "multi-worker":
            raise ValueError("collective_timeout applies to strategy='multi-worker'; got strategy="
                             f"{config['strategy']!r}.")
    if not isinstance(config["projector"], bool):
        raise TypeError(f"projector must be True or False; got {config['projector']!r}.")
    if config["eval_every"] not in (None, "auto") and not recipe.periodic_evaluation:
        raise ValueError(f"eval_every: the {model} has no periodic NLL evaluation during training "
                         "(its log-likelihoods need a Parzen width chosen on validation); use "
                         "`tfaae evaluate RUN` after training.")
    if not recipe.periodic_evaluation:
        config["eval_every"] = None
    if config["learning_rate"] is not None and not (
            isinstance(config["learning_rate"], (int, float)) and config["learning_rate"] > 0):
        raise ValueError(f"learning_rate must be a number > 0; got {config['learning_rate']!r}.")
    recipe.check(config)
    return config


def load_training_data(config, max_eval_examples=None):
    """Returns the datasets of a run's settings: "train", "validation", "test", and "x_train"
    (the training images in [0, 1]) and "source" (where the data came from).

    "train" is a `tfaae.data.EpochBatches` (a dataset of one epoch and the callback that tells it
    the epoch): each epoch's order and binarization are functions of the seed and the epoch, so
    that a resumed run trains on the batches of the uninterrupted one, and every epoch is one pass
    whatever the steps per execution.

    For a model that trains with labels (its recipe's `training_labels`), the datasets hold
    (images, labels) pairs: the training labels as the recipe keeps them (-1: unlabeled), the
    validation and test labels all known.
    """
    arrays = tfaae_data.load_arrays(config["dataset"], config["data_dir"],
                                    download=config.get("download", True))
    (x_train, y_train), (x_val, y_val) = tfaae_data.split_train_validation(
        *arrays["train"], config["validation_size"])
    keep = config.get("max_train_examples") or None
    x_train = tfaae_data.to_unit_interval(x_train[:keep])
    labels = RECIPES[config["model"]].training_labels(config, y_train[:keep])
    fixed = "fixed" if config["binarization"] == "dynamic" else config["binarization"]

    def evaluation_set(images, targets, seed):
        if not len(images[:max_eval_examples]):
            return None
        return tfaae_data.make_dataset(
            tfaae_data.to_unit_interval(images[:max_eval_examples]),
            None if labels is None else targets[:max_eval_examples], batch_size=100,
            binarization=fixed, seed=seed)

    train = RECIPES[config["model"]].training_dataset(config, x_train, labels)
    return {"train": train, "validation": evaluation_set(x_val, y_val, config["seed"] + 2),
            "test": evaluation_set(*arrays["test"], config["seed"] + 3), "x_train": x_train,
            "y_train": y_train[:keep], "y_test": arrays["test"][1], "source": arrays["source"]}


def evaluation_subset(data, num_examples):
    """The first `num_examples` test images (binarized as the run evaluates them) and labels."""
    batches = list(data["test"].as_numpy_iterator())  # whole: the dataset caches.
    images = np.concatenate([b[0] if isinstance(b, tuple) else b for b in batches])
    return images[:num_examples], data["y_test"][:num_examples]


def _same_settings(saved, config):
    keys = (set(saved) | set(config)) - {"epochs", "download", "data_dir", "data_source",
                                         "tfaae_version", "strategy", "collective_timeout",
                                         *MONITORING}
    return {k: (saved.get(k), config.get(k)) for k in keys if saved.get(k) != config.get(k)}


def train(run_dir, verbose=1, callbacks=(), time_limit=None, **settings):
    """Trains a model and writes its run directory; re-running the same call resumes it.

    Args:
        run_dir: the run directory (created).
        verbose: Keras verbosity (1: progress bar).
        callbacks: extra Keras callbacks.
        time_limit: seconds this call may take (None: no limit), counted from the call: training
            stops at the last epoch boundary before it (`tfaae.callbacks.TimeLimit`: at least one
            epoch per call), with the backup written, and the result's status is
            "stopped_time_limit"; calling again with the same settings continues, as if
            uninterrupted (schedule, data order and noise).
        **settings: any of `COMMON_DEFAULTS`: model ("vae", "iwae", "aae", or the categorical
            AAE's "semi-supervised", "clustering", "dim-reduction"), dataset, data_dir,
            epochs (None: the paper's 3,280 for the VAE/IWAE; required for the AAE), batch_size,
            learning_rate, schedule ("burda"/"constant" for the VAE/IWAE, "makhzani"/"adam" for
            the AAE), binarization, validation_size, seed, precision ("float32"/
            "mixed_bfloat16"), jit_compile, steps_per_execution, init_from (a run directory whose
            final weights start this run, e.g. the VAE before the IWAE in Burda et al.'s table 2),
            max_train_examples, download; and the model's own (`RECIPES[model].settings`):
            num_samples, layers, gradient_estimator, batch_splits (`VAE(batch_splits=)`) for the
            VAE/IWAE; latent_dim, prior
            ("gaussian", "mixture", "swiss_roll"), prior_scale, posterior ("deterministic",
            "gaussian", "universal"), supervised ("none", "discriminator", "decoder"), labels
            (how many training labels to keep, class-balanced, for supervised="discriminator"),
            reconstruction ("squared_error", "bernoulli"), hidden_units for the AAE; labels (N or
            "all"), clusters, style_dim, head_dim, head_distance, labeled_batch_size,
            hidden_units, reconstruction for the categorical AAE (`CategoricalRecipe`); and the
            monitoring (`tfaae.monitoring`): eval_every (epochs between NLL/active-unit
            evaluations of the first eval_examples test images with eval_num_samples importance
            samples; None: off; "auto": about 10 times per run; VAE/IWAE only), image_every
            (epochs between TensorBoard figures and posterior histograms; None: off; "auto":
            about 20 times per run), projector (codes of the eval_examples test images for
            TensorBoard's projector); and the distribution (`tfaae.distribute`): strategy
            ("default", "mirrored": `MirroredStrategy` over this machine's devices, or
            "multi-worker": `MultiWorkerMirroredStrategy` configured by `TF_CONFIG`, trained by
            `tfaae.distribute.fit` without validation or TensorBoard monitoring, the chief
            writing the run directory) and collective_timeout (multi-worker: seconds a worker
            waits for the others before failing).

    Returns:
        dict: the `result.json` content (status "completed" or "stopped_non_finite"), or, with
        status "stopped_time_limit", the same fields for the epochs trained so far (no
        `result.json` is written: the run goes on at the next call).

    Raises:
        ValueError: for bad settings, a completed run, or a run directory holding other settings.
        TypeError: for unknown settings.
    """
    called = time.monotonic()
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None; got "
                         f"{time_limit!r}.")
    config = _check_config(settings)
    recipe = RECIPES[config["model"]]
    config_path = os.path.join(run_dir, "config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            saved = json.load(f)
        diff = _same_settings(saved, config)
        if diff:
            raise ValueError(f"{run_dir} holds a run with other settings ({diff}); use a new run "
                             "directory.")
        if os.path.exists(os.path.join(run_dir, "result.json")):
            raise ValueError(f"{run_dir} holds a completed run; use a new run directory.")
    # First: a multi-worker strategy must be set up before TensorFlow runs anything.
    strategy = distribute.get_strategy(config["strategy"], config["collective_timeout"])
    chief, multi_worker = distribute.is_chief(strategy), config["strategy"] == "multi-worker"
    keras.utils.set_random_seed(config["seed"])
    epochs = config["epochs"] or sum(schedules.burda_epochs())
    backup_dir = os.path.join(run_dir, "backup")
    first_epoch = min(tfaae_callbacks.AtomicBackupAndRestore.saved_epoch(backup_dir), epochs)
    data = load_training_data(config)
    steps_per_epoch = data["train"].steps_per_epoch
    for key, times in AUTO_TIMES.items():
        if config[key] == "auto":
            config[key] = math.ceil(epochs / times)
    with strategy.scope():  # variables and optimizer slots are the strategy's.
        model = recipe.build(config)
        recipe.prepare(model, data["x_train"])
        if config["init_from"]:
            model.set_weights(load_run_model(config["init_from"]).get_weights())
        model.compile(**recipe.optimizers(config, steps_per_epoch, epochs),
                      jit_compile=config["jit_compile"],
                      steps_per_execution=config["steps_per_execution"])
        model.build_optimizers()
    if chief:
        io.write_json(config_path, {**config, "data_source": data["source"],
                                    "tfaae_version": tfaae.__version__})
    # Non-chief workers restore the chief's backup but write to a directory of their own.
    own_dir = run_dir if chief else os.path.join(run_dir, f".worker-{os.getpid()}")
    nan_guard = tfaae_callbacks.StopOnNonFinite()
    history_file = tfaae_callbacks.HistoryFile(os.path.join(own_dir, "history.json"))
    all_callbacks = [
        data["train"],  # tells the training dataset the epoch.
        nan_guard,
        tfaae_callbacks.AtomicCheckpoint(os.path.join(own_dir, "checkpoints", "last.keras")),
    ]
    logdir = os.path.join(run_dir, "logs")
    if not multi_worker:
        # After TensorBoard (the evaluation's scalars go to the "test" run, not "train"), before
        # HistoryFile (which records the NLL and active units the evaluation adds to the logs).
        all_callbacks += [keras.callbacks.TensorBoard(logdir), *monitoring.monitoring_callbacks(
            logdir, *evaluation_subset(data, config["eval_examples"]),
            image_every=config["image_every"], eval_every=config["eval_every"],
            eval_num_samples=config["eval_num_samples"], projector=config["projector"],
            seed=config["seed"],
            hparams={k: v for k, v in config.items() if k not in ("data_dir", "download")})]
    time_guard = None if time_limit is None else tfaae_callbacks.TimeLimit(called + time_limit)
    all_callbacks += [
        history_file,
        tfaae_callbacks.RunClock(os.path.join(own_dir, "clock.json")),
        # Last: an epoch is backed up once every callback has seen it (and drawn its noise).
        tfaae_callbacks.AtomicBackupAndRestore(backup_dir, os.path.join(own_dir, "backup")),
        *callbacks, *([time_guard] if time_guard else [])]
    start = time.perf_counter()
    if multi_worker:  # Keras 3.15's fit fails under MultiWorkerMirroredStrategy (keras#20585).
        history = distribute.fit(model, data["train"].dataset, epochs, all_callbacks,
                                 initial_epoch=first_epoch, verbose=verbose)
    else:
        history = model.fit(data["train"].dataset, validation_data=data["validation"],
                            epochs=epochs, callbacks=all_callbacks, verbose=verbose, shuffle=False)
    final = {k: float(v[-1]) for k, v in history.history.items() if v}
    if not final and history_file.records:  # resumed after the last epoch: nothing left to run.
        final = {k: v for k, v in history_file.records[-1].items() if k != "epoch"}
    result = {"status": "completed", "epochs": first_epoch + len(history.epoch),
              "train_seconds": round(time.perf_counter() - start, 2), "final": final,
              "steps_per_epoch": steps_per_epoch, "resumed_from_epoch": first_epoch}
    if nan_guard.stopped_at:
        checkpoint = os.path.join(run_dir, "checkpoints", "last.keras")
        result.update(status="stopped_non_finite", stopped_at=nan_guard.stopped_at,
                      last_good_checkpoint=checkpoint if os.path.exists(checkpoint) else None)
    elif time_guard is not None and time_guard.stopped:
        result.update(status="stopped_time_limit", of_epochs=epochs,
                      longest_epoch_seconds=round(time_guard.longest, 2))
        if not chief:
            shutil.rmtree(own_dir, ignore_errors=True)
        return result  # no result.json: the next call continues.
    elif chief:
        io.save_model(model, os.path.join(run_dir, "model.keras"))
    if chief:
        io.write_json(os.path.join(run_dir, "result.json"), result)
    else:
        if not nan_guard.stopped_at:  # as the chief does, in case saving reads across workers.
            io.save_model(model, os.path.join(own_dir, "model.keras"))
        shutil.rmtree(own_dir, ignore_errors=True)
    return result


def read_run_config(run_dir):
    """The settings a run was trained with (`config.json`).

    Raises:
        FileNotFoundError: if `run_dir` has no config.json.
    """
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{run_dir} has no config.json: expected a `tfaae train` run directory.")
    with open(config_path, encoding="utf-8") as f:
        return json.load(f)


def run_model_path(run_dir):
    """The `.keras` file of a run: its final model, or its last good checkpoint when training did
    not finish.

    Raises:
        FileNotFoundError: if the run has neither.
    """
    for name in ("model.keras", os.path.join("checkpoints", "last.keras")):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{run_dir} has no model.keras or checkpoints/last.keras: expected the "
                            "directory of a `tfaae train` run.")


def load_run_model(run_dir):
    """Loads a run's final model, or its last good checkpoint (see `run_model_path`)."""
    return keras.models.load_model(run_model_path(run_dir))


def export_run(run_dir, path, warmup=True, overwrite=False, **options):
    """Exports a run's model (see `run_model_path`) as a SavedModel for TF Serving.

    Args:
        run_dir: a `tfaae train` run directory (any directory holding `model.keras` or
            `checkpoints/last.keras` of a tfaae model).
        path: the version directory, `saved_models/<model_name>/<integer version>`.
        warmup: write TF Serving warmup requests (needs `tensorflow-serving-api`).
        overwrite: replace an existing version.
        **options: fields of `tfaae.serving.ExportOptions` (e.g. log_likelihood_samples).

    Returns:
        dict with "path", "source" (the exported `.keras` file), "model", "serving_default" and
        "signatures" (name -> {"inputs", "outputs", "summary"}).

    Raises:
        FileNotFoundError: if the run has no model; ValueError/TypeError as `tfaae.serving.export`.
    """
    source = run_model_path(run_dir)
    model = keras.models.load_model(source)
    serving.export(model, path, serving.ExportOptions(**options), warmup=warmup,
                   overwrite=overwrite)
    with open(os.path.join(path, serving.METADATA_FILE), encoding="utf-8") as f:
        metadata = json.load(f)
    return {"path": path, "source": source, "model": metadata["model"],
            "serving_default": metadata["serving_default"], "signatures": metadata["signatures"]}


def evaluate_run(run_dir, num_samples=5000, split="test", max_examples=None, data_dir=None,
                 seed=0, parzen_samples=10_000, precision=None):
    """Evaluates a run and writes `eval.json`.

    VAE/IWAE: the importance-sampled NLL and the active units. AAE: the Parzen-window
    log-likelihood (width chosen on the validation split) and, for a Gaussian encoder, the
    importance-sampled log-likelihood (see `tfaae.evaluation.aae_log_likelihoods`).

    Args:
        run_dir: a `tfaae train` run directory.
        num_samples: importance samples per example (the paper's 5000).
        split: "test" or "validation".
        max_examples: evaluate only the first N examples of each split (None: all).
        data_dir: overrides the run's data directory.
        seed: seed of the samples.
        parzen_samples: generated samples of the AAE's Parzen density (the paper's 10,000).
        precision: VAE/IWAE: None (the model's), "float32" or "mixed_bfloat16" (faster on CPUs
            with AVX512-BF16; see `tfaae.evaluation.log_likelihood`).

    Returns:
        dict: for the VAE/IWAE "nll" (mean negative log-likelihood, nats), "nll_stderr",
        "active_units", "num_examples", "num_samples", "seconds"; for the AAE "parzen",
        "importance_sampled" (or None, with "reason"), "seconds"; and "split", "model".
    """
    config = read_run_config(run_dir)
    validation.check_choice("split", split, ("test", "validation"))
    validation.check_positive_int("num_samples", num_samples)
    validation.check_positive_int("parzen_samples", parzen_samples)
    if data_dir:
        config["data_dir"] = data_dir
    if max_examples is not None:
        validation.check_positive_int("max_examples", max_examples)
    model = load_run_model(run_dir)
    datasets = load_training_data(config, max_eval_examples=max_examples)
    if datasets[split] is None:
        raise ValueError(f"The run has no {split} split (validation_size was 0).")
    datasets["evaluated"] = datasets[split]
    result = {**RECIPES[config["model"]].evaluate(model, datasets, num_samples, seed,
                                                  parzen_samples=parzen_samples,
                                                  precision=precision, run_dir=run_dir),
              "split": split, "model": config["model"]}
    io.write_json(os.path.join(run_dir, "eval.json"), result)
    return result


def describe_evaluation(result):
    """The lines `tfaae evaluate` prints for an `evaluate_run` result."""
    return RECIPES[result["model"]].describe(result)
