"""The run directory (`tfaae.training`) and the `tfaae` command, end to end on real MNIST."""

import json
import os

import keras
import numpy as np
import pytest

from harness import assert_clear_error, assert_weights_equal, run_cli, summary_tags
from tfaae import training

QUICK = {"epochs": 2, "max_train_examples": 400, "batch_size": 20, "validation_size": 100,
         "steps_per_execution": 5}
AAE_QUICK = {"model": "aae", "epochs": 1, "max_train_examples": 300, "batch_size": 50,
             "validation_size": 100, "hidden_units": 32, "steps_per_execution": 3}


def test_train_writes_a_complete_run_directory(tmp_path, mnist_dir):
    run = str(tmp_path / "run")
    result = training.train(run, verbose=0, model="iwae", num_samples=5, data_dir=mnist_dir,
                            eval_every=1, eval_examples=50, eval_num_samples=20, **QUICK)
    assert result["status"] == "completed" and result["epochs"] == 2
    assert result["steps_per_epoch"] == 20
    for name in ("config.json", "result.json", "model.keras", "checkpoints/last.keras"):
        assert os.path.exists(os.path.join(run, name)), name
    history = json.load(open(os.path.join(run, "history.json")))
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(h["nll_k20"] > 50 and 0 <= h["active_units"] <= 50 for h in history)
    assert history[-1]["val_bound"] == pytest.approx(result["final"]["val_bound"])
    logs = os.listdir(os.path.join(run, "logs"))  # Keras's runs, monitoring's, the hparams events.
    assert {"train", "validation", "test"} <= set(logs) and len(logs) == 4
    assert summary_tags(os.path.join(run, "logs", "test")) == {
        "evaluation/nll_k20": 2, "evaluation/active_units": 2, "evaluation/active_units_layer1": 2}
    assert not os.path.exists(os.path.join(run, "backup")) or not os.listdir(os.path.join(run, "backup"))
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["model"] == "iwae" and config["data_source"].startswith("IDX files")
    model = training.load_run_model(run)
    assert int(model.optimizer.iterations) == 40 and model.num_samples == 5
    assert result["final"]["val_bound"] < 0
    # Re-running a finished run, or reusing its directory with other settings, is refused.
    assert_clear_error(lambda: training.train(run, verbose=0, model="iwae", num_samples=5,
                                              data_dir=mnist_dir, **QUICK),
                       ValueError, "completed run")
    assert_clear_error(lambda: training.train(run, verbose=0, model="vae", data_dir=mnist_dir,
                                              **QUICK), ValueError, "other settings")


def test_steps_per_execution_changes_only_the_speed(tmp_path, mnist_dir):
    # 20 batches an epoch, 7 per execution: executions of 7, 7 and 6 steps. (Over one multi-epoch
    # dataset with steps_per_epoch, Keras runs whole executions: 21 steps an epoch, the last one
    # taken from the next epoch.)
    runs = {spe: str(tmp_path / f"spe{spe}") for spe in (1, 7)}
    for spe, run in runs.items():
        result = training.train(run, verbose=0, model="iwae", num_samples=2, data_dir=mnist_dir,
                                **{**QUICK, "steps_per_execution": spe})
        assert result["status"] == "completed" and result["steps_per_epoch"] == 20
    one, seven = (training.load_run_model(run) for run in runs.values())
    assert int(one.optimizer.iterations) == int(seven.optimizer.iterations) == 40
    # The same batches, noise and updates: float32 round-off of another graph only.
    assert_weights_equal(one, seven, atol=1e-5)
    histories = [json.load(open(os.path.join(run, "history.json"))) for run in runs.values()]
    for got, want in zip(*histories):
        assert got == pytest.approx(want, rel=1e-5)


def test_non_finite_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, mnist_dir):
    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                layer = self.model.decoder[-1].logits
                layer.kernel.assign(np.full(layer.kernel.shape, np.nan, np.float32))

    run = str(tmp_path / "nan")
    result = training.train(run, verbose=0, callbacks=[Poison()], data_dir=mnist_dir, **QUICK)
    assert result["status"] == "stopped_non_finite"
    assert result["stopped_at"]["epoch"] == 2
    assert not os.path.exists(os.path.join(run, "model.keras"))
    good = keras.models.load_model(result["last_good_checkpoint"])
    assert all(np.isfinite(w).all() for w in good.get_weights())


def test_init_from_starts_from_another_runs_weights(tmp_path, mnist_dir):
    first = str(tmp_path / "vae")
    training.train(first, verbose=0, model="vae", data_dir=mnist_dir, **QUICK)
    second = str(tmp_path / "iwae")
    training.train(second, verbose=0, model="iwae", num_samples=5, init_from=first,
                   learning_rate=1e-12, schedule="constant", data_dir=mnist_dir, **QUICK)
    a, b = training.load_run_model(first), training.load_run_model(second)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-6)


def test_bad_settings(tmp_path):
    assert_clear_error(lambda: training.train(str(tmp_path), model="gan"), ValueError, "model", "'gan'")
    assert_clear_error(lambda: training.train(str(tmp_path), epochs=0), ValueError, "epochs")
    assert_clear_error(lambda: training.train(str(tmp_path), learning_rate=-1), ValueError,
                       "learning_rate")
    assert_clear_error(lambda: training.train(str(tmp_path), batchsize=3), TypeError, "batchsize")
    assert_clear_error(lambda: training.train(str(tmp_path), model="vae",
                                              gradient_estimator="dreg"), ValueError, "IWAE only")
    assert_clear_error(lambda: training.evaluate_run(str(tmp_path / "none")), FileNotFoundError,
                       "config.json")


def test_aae_run_with_hidden_labels_and_its_evaluation(tmp_path, mnist_dir):
    run = str(tmp_path / "aae")
    settings = dict(latent_dim=2, prior="mixture", supervised="discriminator", labels=100,
                    posterior="gaussian", schedule="adam", data_dir=mnist_dir, **AAE_QUICK)
    result = training.train(run, verbose=0, **settings)
    assert result["status"] == "completed" and result["steps_per_epoch"] == 6
    assert {"val_reconstruction_loss", "val_discriminator_accuracy"} <= set(result["final"])
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["labels"] == 100 and config["binarization"] == "none" and config["schedule"] == "adam"
    model = training.load_run_model(run)
    assert [int(getattr(model, n).iterations) for n in model.optimizer_names] == [6, 6, 6]
    # 100 training labels, 10 per class; the other 200 examples are unlabeled (-1).
    labels = np.concatenate([y for _, y in training.load_training_data(config)["train"].dataset])
    assert len(labels) == 300 and (labels == -1).sum() == 200
    assert np.bincount(labels[labels >= 0], minlength=10).tolist() == [10] * 10
    evaluation = training.evaluate_run(run, num_samples=20, max_examples=50, parzen_samples=500)
    assert evaluation["parzen"]["num_samples"] == 500 and evaluation["parzen"]["num_examples"] == 50
    assert evaluation["importance_sampled"]["num_examples"] == 50
    assert json.load(open(os.path.join(run, "eval.json")))["parzen"] == evaluation["parzen"]
    lines = training.describe_evaluation(evaluation)
    assert lines[0].startswith("test Parzen log-likelihood (500 samples, width ")
    assert lines[-1].startswith("test importance-sampled log-likelihood (k=20, Gaussian, std ")
    assert_clear_error(lambda: training.train(run, verbose=0, **settings), ValueError, "completed run")


@pytest.mark.parametrize("settings,error,fragments", [
    ({"model": "vae", "latent_dim": 2}, ValueError, ["latent_dim do not apply to the vae",
                                                     "a setting of aae"]),
    ({"model": "aae"}, ValueError, ["epochs", "pass epochs"]),
    ({"model": "aae", "epochs": 1, "supervised": "decoder", "labels": 100}, ValueError,
     ["applies to supervised='discriminator'", "every label"]),
    ({"model": "aae", "epochs": 1, "learning_rate": 1e-3}, ValueError, ["schedule='adam'"]),
    ({"model": "aae", "epochs": 1, "schedule": "burda"}, ValueError, ["'makhzani', 'adam'", "'burda'"]),
    ({"model": "aae", "epochs": 1, "prior": "mixture", "prior_scale": 2.0}, ValueError,
     ["prior_scale applies to the gaussian prior"]),
    ({"model": "aae", "epochs": 1, "prior": "cauchy"}, ValueError, ["prior", "'cauchy'"]),
    ({"model": "iwae", "num_samples": 0}, ValueError, ["num_samples", "got 0"]),
])
def test_aae_and_model_specific_settings_are_checked(tmp_path, settings, error, fragments):
    assert_clear_error(lambda: training.train(str(tmp_path / "x"), **settings), error, *fragments)
    assert not os.path.exists(tmp_path / "x")


def test_cli_trains_and_evaluates_an_aae(tmp_path, mnist_dir):
    run = tmp_path / "cli-aae"
    proc = run_cli("train", "aae", "--prior", "swiss_roll", "--latent-dim", 2, "--supervised",
                   "decoder", "--posterior", "gaussian", "--epochs", 1, "--max-train-examples", 200,
                   "--validation-size", 100, "--hidden-units", 32, "--data-dir", mnist_dir,
                   "--logdir", run, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed"
    proc = run_cli("evaluate", run, "--num-samples", 10, "--max-examples", 40, "--parzen-samples", 300)
    assert proc.returncode == 0, proc.stderr
    assert "test Parzen log-likelihood (300 samples, width " in proc.stdout
    assert "test importance-sampled log-likelihood (k=10, Gaussian, std " in proc.stdout
    assert json.loads((run / "eval.json").read_text())["importance_sampled"]["num_examples"] == 40


def test_cli_trains_and_evaluates(tmp_path, mnist_dir):
    run = tmp_path / "cli"
    proc = run_cli("train", "iwae", "--num-samples", 5, "--layers", 2, "--epochs", 1,
                   "--max-train-examples", 200, "--data-dir", mnist_dir, "--logdir", run, "--quiet",
                   "--eval-num-samples", 50, "--intra-op-threads", 1, "--inter-op-threads", 3)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "completed"
    # The thread pools were set before TensorFlow's first op (afterwards it refuses to).
    assert result["threads"] == {"intra_op": 1, "inter_op": 3}
    # Monitoring is on by default, its "auto" intervals resolved for one epoch.
    config = json.loads((run / "config.json").read_text())
    assert (config["image_every"], config["eval_every"], config["projector"]) == (1, 1, True)
    tags = summary_tags(run / "logs" / "test")
    assert {"figures/samples", "figures/reconstructions", "figures/latent_map", "posterior/layer2/std",
            "evaluation/nll_k50", "evaluation/active_units_layer2"} <= set(tags)
    assert (run / "logs" / "test" / "projector_config.pbtxt").exists()
    proc = run_cli("evaluate", run, "--num-samples", 100, "--max-examples", 50,
                   "--intra-op-threads", 2)
    assert proc.returncode == 0, proc.stderr
    assert "test NLL (k=100, 50 images):" in proc.stdout
    assert json.loads(proc.stdout[proc.stdout.index("{"):])["threads"] == {"intra_op": 2,
                                                                          "inter_op": 0}
    assert "active units per stochastic layer: [" in proc.stdout
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["num_examples"] == 50 and len(evaluation["active_units"]) == 2
    assert 50 < evaluation["nll"] < 800


@pytest.mark.parametrize("args,fragment", [
    (["train", "gan", "--logdir", "x"], "invalid choice: 'gan'"),
    (["train", "vae", "--logdir", "x", "--num-samples", "0"], "expected a positive integer, got '0'"),
    (["train", "vae", "--logdir", "x", "--layers", "3"], "invalid choice: 3"),
    (["train", "vae", "--epochs", "2"], "the following arguments are required: --logdir"),
    (["evaluate", "/nonexistent/run"], "has no config.json"),
    (["train", "vae", "--logdir", "x", "--dataset", "cifar", "--no-download"], "Unknown dataset 'cifar'"),
    (["train", "vae", "--logdir", "x", "--prior", "mixture"], "prior do not apply to the vae"),
    (["train", "vae", "--logdir", "x", "--intra-op-threads", "0"], "expected a positive integer, got '0'"),
    (["train", "iwae", "--logdir", "x", "--batch-splits", "0"], "expected a positive integer, got '0'"),
    (["train", "aae", "--logdir", "x", "--epochs", "1", "--batch-splits", "2"],
     "batch_splits do not apply to the aae"),
])
def test_cli_bad_flags_get_clear_messages(args, fragment, tmp_path):
    args = [str(tmp_path / a) if a == "x" else a for a in args]
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"intra_op_threads": 0}, ValueError, "intra_op_threads must be an integer >= 1; got 0."),
    ({"inter_op_threads": "2"}, TypeError, "inter_op_threads must be an integer >= 1; got '2' (str)."),
])
def test_configure_threads_rejects_bad_sizes(kwargs, error, fragment):
    from tfaae import cli
    with pytest.raises(error) as raised:
        cli.configure_threads(**kwargs)
    assert fragment in str(raised.value)
