"""A stand-in for TF Serving's model server, on core TensorFlow only: never imports tfaae or TFP.

No TF Serving binary can be installed on our machines (it is on neither PyPI nor Debian), so the
tests check the server's contract with this small model, built from TF Serving's documented
behaviour (tensorflow_serving/servables/tensorflow/predict_util.cc, g3doc/api_rest.md):

* loading: the largest integer version under the base path (the default version policy), then
  every record of `assets.extra/tf_serving_warmup_requests` is replayed and a failing one fails
  the load;
* Predict: the signature named in `model_spec.signature_name` (default `serving_default`), the
  request's input aliases exactly those of the SignatureDef, the outputs those of `output_filter`
  (default: all); no shape check (the model server does none), tensors as sent;
* REST `:predict`: the `instances` row format and the `inputs` columnar format, answered with
  `predictions` and `outputs`, errors as `{"error": message}` with HTTP status 400.

The signatures run through `tf.saved_model.load`, i.e. TensorFlow's C++ function runtime with the
graphs saved in the SavedModel, which, like the model server, does not check the static shapes.

Run as a script, it answers a file of requests in a fresh process (see `serve_in_fresh_process`).
"""

import json
import os
import pickle
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


class ServingError(Exception):
    """An error the model server would return: a gRPC status code name and its message."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class ModelServer:
    """Loads the latest version under `base_path` as TF Serving does and answers Predict calls."""

    def __init__(self, base_path, model_name="model"):
        versions = sorted(int(d) for d in os.listdir(base_path) if d.isdigit())
        if not versions:
            raise ServingError("NOT_FOUND", f"No versions of servable {model_name} found under "
                                            f"base path {base_path}")
        self.model_name, self.version = model_name, versions[-1]
        self.path = os.path.join(base_path, str(self.version))
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(self.path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        (meta_graph,) = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
        self.meta_graph = meta_graph
        for function in meta_graph.graph_def.library.function:  # TF Serving's default: no XLA JIT.
            if function.attr["_XlaMustCompile"].b:
                raise ServingError("FAILED_PRECONDITION", f"Function {function.signature.name} "
                                   "needs XLA; start the server with --xla_cpu_compilation_enabled")
        self.signature_defs = dict(meta_graph.signature_def)
        self.loaded = tf.saved_model.load(self.path, tags=["serve"])
        self.warmup_count = self._warmup()

    def _warmup(self):
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                raise ServingError("UNIMPLEMENTED", "Only predict warmup requests are modelled.")
            self.predict(log.predict_log.request)
            count += 1
        return count

    def predict(self, request):
        """Answers a `PredictRequest` with a `PredictResponse`, or raises `ServingError`."""
        name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name.startswith("__"):
            raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        signature = self.signature_defs[name]
        sent, expected = set(request.inputs), set(signature.inputs)
        if sent != expected:
            raise ServingError("INVALID_ARGUMENT", (
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}."))
        outputs = list(request.output_filter) or sorted(signature.outputs)
        for alias in outputs:
            if alias not in signature.outputs:
                raise ServingError("INVALID_ARGUMENT", (
                    f"output tensor alias not found in signature: {alias} Outputs expected to be "
                    f"in the set {{{','.join(sorted(signature.outputs))}}}."))
        inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
        try:
            results = self.loaded.signatures[name](**inputs)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            raise ServingError("INVALID_ARGUMENT", getattr(error, "message", str(error))) from None
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.signature_name = name
        response.model_spec.version.value = self.version
        for alias in outputs:
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(results[alias].numpy()))
        return response

    def rest_predict(self, body):
        """Answers the body of a REST `POST /v1/models/<name>:predict`: (HTTP status, JSON body)."""
        try:
            request, columnar = self._parse_rest(body)
            response = self.predict(request)
        except ServingError as error:
            return 400, json.dumps({"error": error.message})
        outputs = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
        if columnar:
            value = next(iter(outputs.values())) if len(outputs) == 1 else outputs
            return 200, json.dumps({"outputs": _to_json(value)})
        if len(outputs) == 1:
            return 200, json.dumps({"predictions": _to_json(next(iter(outputs.values())))})
        rows = {len(v) if v.ndim else None for v in outputs.values()}
        if len(rows) != 1 or None in rows:
            return 400, json.dumps({"error": "Outputs have different batch sizes; use the "
                                             "columnar format."})
        predictions = [{key: _to_json(v[i]) for key, v in outputs.items()}
                       for i in range(rows.pop())]
        return 200, json.dumps({"predictions": predictions})

    def _parse_rest(self, body):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as error:
            raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {error}") from None
        name = body.get("signature_name") or DEFAULT_SIGNATURE
        if name not in self.signature_defs:
            raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        specs = self.signature_defs[name].inputs
        if ("instances" in body) == ("inputs" in body):
            raise ServingError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key")
        if "inputs" in body:
            values = body["inputs"]
            if not isinstance(values, dict) or set(values) - set(specs):
                values = {next(iter(specs)): values} if len(specs) == 1 else values
        else:
            instances = body["instances"]
            if not isinstance(instances, list) or not instances:
                raise ServingError("INVALID_ARGUMENT", "'instances' must be a non-empty list.")
            if all(isinstance(i, dict) for i in instances):
                values = {key: [i.get(key) for i in instances] for key in specs}
            elif len(specs) == 1:
                values = {next(iter(specs)): instances}
            else:
                raise ServingError("INVALID_ARGUMENT", "Expecting one named input per instance "
                                                       f"object: {sorted(specs)}.")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = name
        for key, value in values.items():
            if key not in specs:
                raise ServingError("INVALID_ARGUMENT", f"Unknown input: {key}")
            dtype = tf.dtypes.as_dtype(specs[key].dtype).as_numpy_dtype
            try:
                array = np.asarray(value, dtype=dtype)
            except (TypeError, ValueError) as error:
                raise ServingError("INVALID_ARGUMENT",
                                   f"JSON value for input {key} is not of type {dtype.__name__}: "
                                   f"{error}") from None
            request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
        return request, "inputs" in body


def _to_json(value):
    if isinstance(value, dict):
        return {key: _to_json(v) for key, v in value.items()}
    return np.asarray(value).tolist()


def signature_op_types(meta_graph, name):
    """The op types a signature runs: the nodes its outputs come from and, transitively, every
    function they call (PartitionedCall, While and If bodies...)."""
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    pending = [nodes[t.name.split(":")[0]] for t in meta_graph.signature_def[name].outputs.values()]
    types, seen = set(), set()
    while pending:
        node = pending.pop()
        types.add(node.op)
        for value in node.attr.values():
            for called in [value.func.name, *(f.name for f in value.list.func)]:
                if called in functions and called not in seen:
                    seen.add(called)
                    pending.extend(functions[called].node_def)
    return types


def answer(base_path, requests):
    """Loads the server and answers requests: a dict name -> ("grpc", bytes) | ("rest", str).

    Returns:
        dict with "responses" (name -> serialized PredictResponse, ("error", code, message), or
        ("rest", status, body)), "version", "warmup_count", "op_types" (signature -> the op types
        it runs) and "modules" (whether tfaae / tensorflow_probability / keras were imported).
    """
    server = ModelServer(base_path)
    responses = {}
    for name, (kind, payload) in requests.items():
        if kind == "rest":
            responses[name] = ("rest", *server.rest_predict(payload))
            continue
        try:
            responses[name] = server.predict(predict_pb2.PredictRequest.FromString(payload))
            responses[name] = responses[name].SerializeToString()
        except ServingError as error:
            responses[name] = ("error", error.code, error.message)
    modules = {m: m in sys.modules for m in ("tfaae", "tensorflow_probability", "keras")}
    op_types = {name: sorted(signature_op_types(server.meta_graph, name))
                for name in server.signature_defs if not name.startswith("__")}
    return {"responses": responses, "version": server.version, "modules": modules,
            "warmup_count": server.warmup_count, "op_types": op_types}


def serve_in_fresh_process(base_path, requests, workdir):
    """`answer` in a fresh Python process that imports only TensorFlow and the serving API protos.

    Args:
        base_path: the model's base directory (holding integer versions).
        requests: dict name -> ("grpc", PredictRequest) | ("rest", JSON body string).
        workdir: a directory for the request and response files.

    Returns:
        `answer`'s dict, with PredictResponse messages parsed.
    """
    from harness import run_python  # only in the test process.

    payload = {name: (kind, r.SerializeToString() if kind == "grpc" else r)
               for name, (kind, r) in requests.items()}
    requests_file = os.path.join(workdir, "requests.pkl")
    answers_file = os.path.join(workdir, "answers.pkl")
    with open(requests_file, "wb") as f:
        pickle.dump(payload, f)
    here = os.path.dirname(os.path.abspath(__file__))
    summary = run_python(f"""
        import json, pickle, sys
        sys.path.insert(0, {here!r})
        import tf_serving
        with open({requests_file!r}, "rb") as f:
            requests = pickle.load(f)
        result = tf_serving.answer({os.fspath(base_path)!r}, requests)
        with open({answers_file!r}, "wb") as f:
            pickle.dump(result, f)
        print(json.dumps(result["modules"]))
    """)
    with open(answers_file, "rb") as f:
        result = pickle.load(f)
    assert result["modules"] == summary
    result["responses"] = {
        name: predict_pb2.PredictResponse.FromString(r) if isinstance(r, bytes) else r
        for name, r in result["responses"].items()}
    return result
