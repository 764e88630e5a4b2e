"""Serving: SavedModels that TF Serving loads, with named signatures, in TF Serving's layout.

`export(model, "saved_models/<name>/<version>")` (`tfaae.export`; `model.export(path)` calls it)
writes a SavedModel whose signatures are declared here, apart from the training code and the
models (serving imports the models, never the reverse), through a small registry:

* `signature(name, inputs, example)` declares one signature: its input specs, a function from the
  model and those inputs to a dict of named outputs, and a valid request (for warmup);
* `serve(model_class, names, default)` says which signatures a model class serves and which of
  them is `serving_default`. Subclasses inherit their parent's declaration unless they make their
  own, so a new model adds its signatures in one place.

The VAE and IWAE serve (all float32 unless stated; `batch` is any size, 0 included):

* `encode` (`serving_default`): `images [batch, *image_shape]` in [0, 1] -> `mean`, `std`
  `[batch, d_L]` of q(h_L|x) along the mean path; with L > 1 layers also `mean_l`, `std_l`
  `[batch, d_l]` for l < L;
* `decode`: `z [batch, d_L]` -> `probabilities`, `logits` `[batch, *image_shape]` of p(x|z), the
  layers in between at their means;
* `reconstruct`: `images` -> `probabilities`, `logits` of decode(encode(x).mean);
* `sample`: `num_samples` (int32 scalar in [1, max_samples]), `seed` (int64 `[2]`) ->
  `probabilities`, `logits` `[num_samples, *image_shape]`, `z [num_samples, d_L]`;
* `log_likelihood`: `images` -> `log_likelihood [batch]`, L_k in nats, k fixed at export.

The AAE serves `encode` (`code`; with `mean`, `std` for a Gaussian posterior), `decode` and
`reconstruct` (with a `labels` int32 `[batch]` input for supervised="decoder"), `sample` (z ~ p(z)
from `seed`) and, for a Gaussian posterior only, `log_likelihood`.

The categorical AAE (`tfaae.CategoricalAAE`) serves `classify` (`serving_default`):
`images` -> `probabilities [batch, num_categories]`, `class` (int32 `[batch]`); `cluster`:
`images` -> `cluster` (int32), `probabilities`; `embed`: `images` -> `embedding`, W_c y + z
`[batch, head_dim]` with cluster heads, else the code [y, z] `[batch, num_categories + style_dim]`.

For the VAE, IWAE and AAE, `encode` is `serving_default`: it is what most callers of an
autoencoder want (the code), and it is one cheap, deterministic encoder pass, so a request without
`signature_name` (health checks included) never pays for k importance samples; the categorical
AAE's `classify` is its one cheap pass and its main use.

Randomness is stateless. `sample` draws from its `seed` input with counter-based (Philox) stateless
ops, so a seed gives the same images in any process and concurrent requests share no state;
`log_likelihood` uses a seed fixed at export and the same k noise vectors for every image, so an
image's score depends only on the image, not on the rest of the batch. The exported graphs hold
core TensorFlow ops only: TF Serving loads them without Python, tfaae or TensorFlow Probability.

Requests that do not fit fail with a message naming the input, what was expected and what came:
a wrong dtype is refused by TensorFlow against the input signature; the shape, which TF Serving
does not check against the signature, by `tf.ensure_shape` when the graph runs ("Shape of tensor
images [5,784] is not compatible with expected shape [?,28,28,1]"); pixels outside [0, 1],
non-finite values and `num_samples` out of range by in-graph assertions (`tfaae.validation`),
whose messages start with "tfaae input error:".

Example:
    >>> model = tfaae.VAE(seed=0)
    >>> path = tfaae.export(model, "saved_models/vae/1")
    >>> served = tf.saved_model.load(path)
    >>> served.signatures["encode"](images=tf.zeros([2, 28, 28, 1]))["mean"].shape
    TensorShape([2, 50])
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from tfaae import __version__, evaluation, io, validation
from tfaae.models import AAE, VAE, CategoricalAAE, base

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
METADATA_FILE = os.path.join("assets.extra", "tfaae_export.json")


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """Settings fixed at export time.

    Args:
        log_likelihood_samples: k of the `log_likelihood` signature (importance samples per image).
        chunk_size: samples drawn at once by `log_likelihood`: memory grows with
            `chunk_size * batch`, not with k.
        log_likelihood_seed: the seed of `log_likelihood`'s noise.
        max_samples: the largest `num_samples` that `sample` accepts.

    Raises:
        TypeError, ValueError: for a setting that is not a positive integer (seed: >= 0).
    """

    log_likelihood_samples: int = 1000
    chunk_size: int = 100
    log_likelihood_seed: int = 0
    max_samples: int = 10_000

    def __post_init__(self):
        for field in dataclasses.fields(self):
            minimum = 0 if field.name == "log_likelihood_seed" else 1
            validation.check_positive_int(field.name, getattr(self, field.name), minimum=minimum)


@dataclasses.dataclass(frozen=True)
class Signature:
    """One serving signature.

    Attributes:
        name: the signature key (`signature_name` in requests).
        inputs: `inputs(model)` -> dict of input name -> `tf.TensorSpec` (names are request keys).
        outputs: `outputs(model, options, **inputs)` -> dict of output name -> tensor.
        example: `example(model, options)` -> dict of input name -> NumPy array: a valid request,
            used for the warmup file.
        available: `available(model)` -> whether this model can serve it (e.g. `log_likelihood`
            needs an encoder with a density).
    """

    name: str
    inputs: object
    outputs: object
    example: object
    available: object = None


SIGNATURES = {}
SERVED = {}


def signature(name, inputs, example, key=None, available=None):
    """Decorator that declares the signature `name` with the decorated function as its outputs.

    Args:
        name: the signature key in the SavedModel (`signature_name` in requests).
        inputs: `inputs(model)` -> dict of name -> `tf.TensorSpec`.
        example: `example(model, options)` -> dict of name -> NumPy array, a valid request.
        key: the declaration's key in this registry (default: `name`); model families that serve
            a signature of the same name differently declare it under their own key, e.g.
            `key="aae.encode"` for the AAE's `encode`.
        available: `available(model)` -> bool, for a signature that some configurations of a
            model class cannot serve (default: all can).

    Raises:
        ValueError: if a signature of that name is already declared.

    Example:
        >>> @signature("embed", inputs=lambda m: {"images": image_spec(m)},
        ...            example=lambda m, o: {"images": zeros_like_spec(image_spec(m))})
        ... def embed(model, options, images):
        ...     return {"code": model.encode(checked_images(model, images))[-1][0]}
    """
    key = name if key is None else key
    if key in SIGNATURES:
        raise ValueError(f"A serving signature with key {key!r} is already declared.")

    def register(outputs):
        SIGNATURES[key] = Signature(name, inputs, outputs, example, available)
        return outputs

    return register


def serve(model_class, names, default):
    """Declares the signatures that `model_class` (and its subclasses) serve.

    Args:
        model_class: a `keras.Model` subclass.
        names: the registry keys of signatures declared with `signature`.
        default: the one of `names` that is also `serving_default`.

    Raises:
        ValueError: for an undeclared signature or a default outside `names`.
    """
    names = tuple(names)
    unknown = [n for n in names if n not in SIGNATURES]
    if unknown:
        raise ValueError(f"Undeclared serving signatures {unknown}; declared: "
                         f"{sorted(SIGNATURES)}.")
    validation.check_choice("default", default, names)
    SERVED[model_class] = (names, default)


def served_signatures(model):
    """(signatures, default name) that `model` serves, from its class or nearest registered parent.

    Raises:
        TypeError: if no class of the model's hierarchy declares signatures.
    """
    for cls in type(model).__mro__:
        if cls in SERVED:
            names, default = SERVED[cls]
            signatures = [SIGNATURES[n] for n in names]
            return ([s for s in signatures if s.available is None or s.available(model)],
                    SIGNATURES[default].name)
    raise TypeError(f"No serving signatures are declared for {type(model).__name__}; declare them "
                    "with tfaae.serving.signature and tfaae.serving.serve.")


# --------------------------------------------------------------------------------------------------
# Inputs and their checks.

def image_spec(model):
    """`[batch, *image_shape]` float32 images: the input of every image signature."""
    return tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")


def zeros_like_spec(spec, batch=1):
    """A zero array fitting `spec`, with `batch` rows for an unknown first dimension."""
    return np.zeros([batch if d is None else d for d in spec.shape], spec.dtype.as_numpy_dtype)


def checked_images(model, images):
    """Checks images' runtime shape and range in the graph; returns them flat, `[batch, D]`.

    `tf.ensure_shape` checks the shape when the graph runs: a server feeds what the request holds,
    and static shapes let Grappler fold away any check built from `tf.shape`.
    """
    images = tf.ensure_shape(images, image_spec(model).shape)
    return validation.assert_unit_interval(
        validation.flatten_images(images, model.image_shape, "images"), "images")


def _float32(outputs):
    return {key: tf.cast(value, tf.float32) for key, value in outputs.items()}


def _bernoulli(logits):
    return _float32({"probabilities": tf.sigmoid(logits), "logits": logits})


def _code_spec(model):
    """`[batch, d]` codes: the VAE's top layer `latent_dims[-1]`, the AAE's `latent_dim`."""
    dim = model.latent_dim if isinstance(model, AAE) else model.latent_dims[-1]
    return tf.TensorSpec([None, dim], tf.float32, name="z")


def _sample_request(options, num_samples, seed):
    """`sample`'s inputs, checked in the graph: one error at a time, num_samples first."""
    num_samples = validation.assert_in_range(tf.ensure_shape(num_samples, []), 1,
                                             options.max_samples, "num_samples")
    with tf.control_dependencies([num_samples]):
        return num_samples, tf.ensure_shape(seed, [2])


def _image_request(model, options):
    return {"images": zeros_like_spec(image_spec(model))}


# --------------------------------------------------------------------------------------------------
# The signatures of the VAE and IWAE.

@signature("encode", inputs=lambda model: {"images": image_spec(model)}, example=_image_request)
def encode(model, options, images):
    """q(h|x) along the mean path: `mean`, `std` of the top layer, `mean_l`, `std_l` below it."""
    layers = model.encode(checked_images(model, images))
    outputs = {"mean": layers[-1][0], "std": layers[-1][1]}
    for number, (mean, std) in enumerate(layers[:-1], start=1):
        outputs.update({f"mean_{number}": mean, f"std_{number}": std})
    return _float32(outputs)


@signature("decode", inputs=lambda model: {"z": _code_spec(model)},
           example=lambda model, options: {"z": zeros_like_spec(_code_spec(model))})
def decode(model, options, z):
    """p(x|z) for top-level codes z, with the layers in between at their means."""
    z = validation.assert_finite(tf.ensure_shape(z, _code_spec(model).shape), "z")
    return _bernoulli(model.decode(z))


@signature("reconstruct", inputs=lambda model: {"images": image_spec(model)},
           example=_image_request)
def reconstruct(model, options, images):
    """p(x|h) with h the posterior means: decode(encode(x).mean)."""
    return _bernoulli(model.decode(model.encode(checked_images(model, images))[-1][0]))


@signature("sample",
           inputs=lambda model: {"num_samples": tf.TensorSpec([], tf.int32, name="num_samples"),
                                 "seed": tf.TensorSpec([2], tf.int64, name="seed")},
           example=lambda model, options: {"num_samples": np.int32(1),
                                           "seed": np.zeros([2], np.int64)})
def sample(model, options, num_samples, seed):
    """Ancestral samples drawn statelessly from `seed` (`VAE.generate`)."""
    z, logits = model.generate(*_sample_request(options, num_samples, seed))
    return {**_bernoulli(logits), "z": tf.cast(z, tf.float32)}


@signature("log_likelihood", inputs=lambda model: {"images": image_spec(model)},
           example=_image_request,
           # Models whose q(z|x) has no density (a deterministic or universal AAE) lack it.
           available=lambda model: getattr(model, "posterior", "gaussian") == "gaussian")
def log_likelihood(model, options, images):
    """L_k, the importance-sampled log p(x) in nats (an anomaly score: low is unusual)."""
    k = options.log_likelihood_samples
    chunk = min(options.chunk_size, k)
    estimate = evaluation.log_likelihood_estimate(
        model, checked_images(model, images), chunk, k // chunk, k % chunk,
        seed=tf.constant([options.log_likelihood_seed, 0], tf.int64), shared_noise=True)
    return {"log_likelihood": estimate}


serve(VAE, ("encode", "decode", "reconstruct", "sample", "log_likelihood"), default="encode")


# --------------------------------------------------------------------------------------------------
# The signatures of the AAE: the same names, over codes z ~ q(z|x) and the prior p(z). A model with
# supervised="decoder" takes the class of each image or code as an extra `labels` input.

def _labels_spec():
    return tf.TensorSpec([None], tf.int32, name="labels")


def _decoder_labels(model):
    """`{"labels": spec}` for a decoder that takes classes, else `{}`."""
    return {"labels": _labels_spec()} if model.supervised == "decoder" else {}


def _checked_labels(model, labels, batch):
    """Labels `[batch]` in [0, num_classes), checked in the graph; None when the decoder has none."""
    if labels is None:
        return None
    labels = validation.assert_in_range(tf.ensure_shape(labels, [None]), 0, model.num_classes - 1,
                                        "labels")
    same = tf.debugging.assert_equal(tf.shape(labels)[0], batch,
                                     message=validation.TAG + "labels must have one class per row")
    with tf.control_dependencies([same]):
        return tf.identity(labels)


def _aae_code(model, x):
    """The code served for flat images: q's mean (Gaussian posterior), else z with noise seed 0."""
    if model.posterior == "gaussian":
        mean, log_std = model.encoder(x)
        return {"code": mean, "mean": mean, "std": tf.exp(log_std)}
    return {"code": model.codes(x, tf.constant([0, 0], tf.int64))}


def _image_bernoulli(model, logits):
    """`probabilities`, `logits` of flat logits `[batch, D]`, image-shaped like the VAE's."""
    return _bernoulli(tf.reshape(logits, tf.concat([tf.shape(logits)[:1], model.image_shape], 0)))


def _with_labels(model, request, batch=1):
    if model.supervised == "decoder":
        request["labels"] = np.zeros([batch], np.int32)
    return request


@signature("encode", key="aae.encode", inputs=lambda model: {"images": image_spec(model)},
           example=_image_request)
def aae_encode(model, options, images):
    """The code of each image: `code` (q's mean, or z drawn with a fixed noise seed), and `mean`,
    `std` for a Gaussian posterior."""
    return _float32(_aae_code(model, checked_images(model, images)))


@signature("decode", key="aae.decode",
           inputs=lambda model: {"z": _code_spec(model), **_decoder_labels(model)},
           example=lambda model, options: _with_labels(
               model, {"z": zeros_like_spec(_code_spec(model))}))
def aae_decode(model, options, z, labels=None):
    """p(x|z) (and the class, for supervised="decoder"): `probabilities`, `logits`."""
    z = validation.assert_finite(tf.ensure_shape(z, _code_spec(model).shape), "z")
    return _image_bernoulli(
        model, model.decode_logits(z, _checked_labels(model, labels, tf.shape(z)[0])))


@signature("reconstruct", key="aae.reconstruct",
           inputs=lambda model: {"images": image_spec(model), **_decoder_labels(model)},
           example=lambda model, options: _with_labels(model, _image_request(model, options)))
def aae_reconstruct(model, options, images, labels=None):
    """decode(encode(x).code): `probabilities`, `logits`."""
    x = checked_images(model, images)
    code = _aae_code(model, x)["code"]
    return _image_bernoulli(
        model, model.decode_logits(code, _checked_labels(model, labels, tf.shape(x)[0])))


@signature("sample", key="aae.sample", inputs=SIGNATURES["sample"].inputs,
           example=SIGNATURES["sample"].example)
def aae_sample(model, options, num_samples, seed):
    """z ~ p(z) drawn statelessly from `seed`, decoded: `probabilities`, `logits`, `z` (and the
    random `labels` given to a supervised="decoder" decoder)."""
    z, logits, labels = model.generate(*_sample_request(options, num_samples, seed))
    outputs = {**_image_bernoulli(model, logits), "z": tf.cast(z, tf.float32)}
    return outputs if labels is None else {**outputs, "labels": labels}


serve(AAE, ("aae.encode", "aae.decode", "aae.reconstruct", "aae.sample", "log_likelihood"),
      default="aae.encode")


# --------------------------------------------------------------------------------------------------
# The signatures of the categorical AAE (semi-supervised classification, clustering, dimensionality
# reduction): one deterministic encoder pass each.

@signature("classify", inputs=lambda model: {"images": image_spec(model)}, example=_image_request)
def classify(model, options, images):
    """q(y|x): `probabilities [batch, num_categories]` and the most probable `class` (int32)."""
    probabilities = model.classify(checked_images(model, images))
    return {"probabilities": tf.cast(probabilities, tf.float32),
            "class": tf.argmax(probabilities, -1, output_type=tf.int32)}


@signature("cluster", inputs=lambda model: {"images": image_spec(model)}, example=_image_request)
def cluster(model, options, images):
    """The most probable `cluster` (int32 `[batch]`) and q(y|x), `probabilities`."""
    index, probabilities = model.cluster(checked_images(model, images))
    return {"cluster": index, "probabilities": tf.cast(probabilities, tf.float32)}


@signature("embed", inputs=lambda model: {"images": image_spec(model)}, example=_image_request)
def embed(model, options, images):
    """The low-dimensional `embedding`: W_c y + z with cluster heads, else the code [y, z]."""
    return {"embedding": tf.cast(model.embed(checked_images(model, images)), tf.float32)}


serve(CategoricalAAE, ("classify", "cluster", "embed"), default="classify")


# --------------------------------------------------------------------------------------------------
# Export.

def check_version_path(path):
    """Returns `path` if it names a version directory `.../<model_name>/<integer version>`.

    Raises:
        ValueError: otherwise (TF Serving would silently ignore the directory).
    """
    path = os.fspath(path)
    version = os.path.basename(os.path.normpath(path))
    if not version.isdigit() or not os.path.basename(os.path.dirname(os.path.normpath(path))):
        raise ValueError(f"path must be a version directory in TF Serving's layout, "
                         f"<base>/<model_name>/<integer version> (e.g. saved_models/vae/1); "
                         f"got {path!r}.")
    return path


def build_archive(model, options=None):
    """A `keras.export.ExportArchive` with one endpoint per signature `model` serves.

    Returns:
        (archive, endpoints, default, signatures): the archive, a dict of signature name -> its
        traced `tf.function`, the name of the default signature, and the `Signature`s served.
    """
    options = options or ExportOptions()
    signatures, default = served_signatures(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    endpoints = {}
    # The first endpoint is also written as `serving_default` (see ExportArchive.write_out).
    for sig in sorted(signatures, key=lambda s: s.name != default):
        specs = sig.inputs(model)
        endpoints[sig.name] = archive.add_endpoint(sig.name, _endpoint(sig, model, options, specs),
                                                   input_signature=list(specs.values()))
    return archive, endpoints, default, signatures


def _endpoint(sig, model, options, specs):
    """`sig`'s outputs as a function of positional tensors, in the order of `specs`."""
    def endpoint(*tensors):
        return sig.outputs(model, options, **dict(zip(specs, tensors)))
    return endpoint


def describe(endpoints, signatures):
    """Each signature's inputs and outputs (dtype and shape, None for any size) and summary."""
    summaries = {sig.name: sig.outputs.__doc__.strip().splitlines()[0] for sig in signatures}
    def spec(s):
        return {"dtype": s.dtype.name, "shape": s.shape.as_list()}

    described = {}
    for name, function in endpoints.items():
        outputs = function.get_concrete_function().structured_outputs
        described[name] = {"inputs": {s.name: spec(s) for s in function.input_signature},
                           "outputs": {key: spec(outputs[key]) for key in sorted(outputs)},
                           "summary": summaries[name]}
    return described


def warmup_requests(model, signatures, model_name, options):
    """One `PredictionLog` per signature, holding a valid `PredictRequest` (TF Serving warmup).

    Raises:
        ImportError: without `tensorflow-serving-api` (`pip install "tfaae[serving]"`).
    """
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError("Writing TF Serving warmup requests needs tensorflow-serving-api: "
                          "pip install \"tfaae[serving]\" (or export with warmup=False).") from error
    logs = []
    for sig in signatures:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = sig.name
        for key, value in sig.example(model, options).items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def export(model, path, options=None, warmup=True, overwrite=False):
    """Writes `model` as a SavedModel with named signatures, atomically, in TF Serving's layout.

    The SavedModel is built in a temporary directory beside `path` and renamed onto it, so a server
    polling the model's base directory never sees a half-written version. Besides
    `saved_model.pb` and `variables/`, the version holds `assets.extra/tf_serving_warmup_requests`
    (one request per signature, which TF Serving replays before serving) and
    `assets.extra/tfaae_export.json` (the model's config, the signatures, the export options).

    Args:
        model: a tfaae model whose class serves signatures (see `serve`), e.g. `VAE`, `IWAE`.
        path: the version directory, `<base>/<model_name>/<integer version>`.
        options: an `ExportOptions` (None: the defaults: k = 1000 for `log_likelihood`).
        warmup: write the warmup file (needs `tensorflow-serving-api`).
        overwrite: replace an existing version (TF Serving does not reload a version it has
            already loaded: prefer a new version number).

    Returns:
        `path`.

    Raises:
        ValueError: for a path outside TF Serving's layout, or an existing version without
            `overwrite`.
        TypeError: for a model without serving signatures, or options that are not `ExportOptions`.
        ImportError: for `warmup` without `tensorflow-serving-api`.

    Example:
        >>> export(tfaae.IWAE(num_layers=2, seed=0), "saved_models/iwae/1",
        ...        ExportOptions(log_likelihood_samples=5000))
        'saved_models/iwae/1'
    """
    path = check_version_path(path)
    options = ExportOptions() if options is None else options
    if not isinstance(options, ExportOptions):
        raise TypeError(f"options must be a tfaae.serving.ExportOptions; got "
                        f"{type(options).__name__}.")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} exists; TF Serving does not reload a version it has loaded: "
                         f"export to a new version number, or pass overwrite=True.")
    archive, endpoints, default, signatures = build_archive(model, options)
    model_name = os.path.basename(os.path.dirname(os.path.normpath(path)))
    logs = warmup_requests(model, signatures, model_name, options) if warmup else []
    metadata = {
        "model": type(model).__name__, "config": model.get_config(), "serving_default": default,
        "signatures": describe(endpoints, signatures),
        "options": dataclasses.asdict(options), "tfaae_version": __version__,
        "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
    }
    with io.atomic_path(path, directory=True) as tmp:
        archive.write_out(tmp, verbose=False)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        if logs:
            with tf.io.TFRecordWriter(os.path.join(tmp, WARMUP_FILE)) as writer:
                for log in logs:
                    writer.write(log.SerializeToString())
        io.write_json(os.path.join(tmp, METADATA_FILE), metadata)
    return path


base.register_export(export)  # `model.export(path)` writes with `export`.
