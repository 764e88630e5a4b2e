"""The categorical AAE: semi-supervised classification, clustering, dimensionality reduction."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfaae
from harness import (assert_clear_error, changed_since, interrupt_and_resume, run_cli, run_python,
                     save_load_roundtrip, snapshot)
from tfaae import data, evaluation, losses, schedules, training

PHASES = {"reconstruction_phase": "reconstruction_optimizer",
          "discriminator_phase": "discriminator_optimizer",
          "generator_phase": "generator_optimizer",
          "classification_phase": "classification_optimizer"}


def small(semi_supervised=True, num_categories=10, style_dim=2, head_dim=None, hidden=(32,),
          learning_rate=1e-3, seed=3):
    """A small compiled CategoricalAAE (Glorot-initialised networks) with Adam in every phase."""
    nets = tfaae.networks.categorical_aae_networks(num_categories, style_dim, hidden_units=hidden,
                                                   init_std=None, seed=seed)
    model = tfaae.CategoricalAAE(**nets, num_categories=num_categories, style_dim=style_dim,
                                 semi_supervised=semi_supervised, head_dim=head_dim, seed=seed)
    model.compile(**schedules.aae_adam_optimizers(learning_rate, names=model.optimizer_names))
    return model


@pytest.fixture(scope="module")
def grey(mnist):
    """5,000 grey-level training images [5000, 28, 28, 1] and their labels."""
    return data.to_unit_interval(mnist["train"][0][:5000]), mnist["train"][1][:5000]


def semi_dataset(grey, num_labels=100, n=512, batch_size=64, seed=0):
    x, y = grey
    labeled, labels, _ = data.labeled_subset(x, y, num_labels, seed=seed)
    return data.semi_supervised_dataset(x[:n], labeled, labels, batch_size=batch_size, seed=seed)


@pytest.mark.parametrize("phase", list(PHASES))
def test_each_phase_updates_only_its_own_networks(grey, phase):
    model = small(style_dim=2, head_dim=2)
    model.build_optimizers()
    x = tf.reshape(grey[0][:32], [32, -1])
    parts = {"encoder": model.encoder, "decoder": model.decoder,
             "category_discriminator": model.category_discriminator,
             "style_discriminator": model.style_discriminator}
    before = {name: snapshot(layer) for name, layer in parts.items()}
    heads = np.array(model.heads)
    args = (x, tf.constant(grey[1][:32])) if phase == "classification_phase" else (x,)
    getattr(model, phase)(*args)
    moved = {name for name, layer in parts.items() if changed_since(before[name], layer)}
    moved |= {"heads"} if not np.array_equal(heads, np.array(model.heads)) else set()
    assert moved == {"reconstruction_phase": {"encoder", "decoder", "heads"},
                     "discriminator_phase": {"category_discriminator", "style_discriminator"},
                     "generator_phase": {"encoder"},
                     "classification_phase": {"encoder"}}[phase]
    assert {n: int(getattr(model, n).iterations) for n in model.optimizer_names} == {
        n: int(n == PHASES[phase]) for n in model.optimizer_names}


def test_fit_runs_every_phase_and_reports_each_number(grey):
    model = small()
    history = model.fit(semi_dataset(grey), epochs=1, verbose=0,
                        validation_data=(grey[0][:100], grey[1][:100])).history
    trained = {"reconstruction_loss", "category_discriminator_loss", "style_discriminator_loss",
               "category_generator_loss", "style_generator_loss", "classification_loss"}
    assert set(history) == trained | {f"val_{k}" for k in trained | {"error"}}
    assert [int(getattr(model, n).iterations) for n in model.optimizer_names] == [8, 8, 8, 8]
    # The validation error is the percentage of argmax q(y|x) that misses the label.
    probabilities = np.asarray(model.classify(grey[0][:100]))
    expected = 100 * np.mean(probabilities.argmax(1) != grey[1][:100])
    assert history["val_error"][0] == pytest.approx(expected, abs=1e-4)
    clusters = small(semi_supervised=False, num_categories=16, style_dim=5)
    assert clusters.optimizer_names == ("reconstruction_optimizer", "discriminator_optimizer",
                                        "generator_optimizer")
    history = clusters.fit(grey[0][:128], grey[1][:128], batch_size=64, epochs=1, verbose=0).history
    assert "classification_loss" not in history and np.isfinite(history["reconstruction_loss"][0])


def test_cluster_to_label_against_a_hand_computed_case():
    # Four clusters, six labeled examples (rows), three classes.
    q = np.array([[0.70, 0.10, 0.10, 0.10],    # label 0
                  [0.60, 0.20, 0.10, 0.10],    # label 1
                  [0.55, 0.05, 0.30, 0.10],    # label 1
                  [0.10, 0.80, 0.05, 0.05],    # label 2
                  [0.20, 0.30, 0.45, 0.05],    # label 2
                  [0.30, 0.30, 0.35, 0.05]])   # label 0
    labels = np.array([0, 1, 1, 2, 2, 0])
    # "highest": the example maximising q(y_i|x) per column: rows 0, 3, 4, 0 (the first of equal
    # values) -> labels 0, 2, 2, 0.
    np.testing.assert_array_equal(evaluation.cluster_to_label(q, labels, 3, "highest"), [0, 2, 2, 0])
    # "majority": argmax rows 0,1,2 -> cluster 0 (labels 0,1,1: 1); row 3 -> cluster 1 (2);
    # rows 4, 5 -> cluster 2 (labels 2, 0: a tie, the smaller, 0); cluster 3 is empty: "highest".
    np.testing.assert_array_equal(evaluation.cluster_to_label(q, labels, 3, "majority"), [1, 2, 0, 0])
    # Test images in clusters 0, 1, 2, 3, 0 read as labels 1, 2, 0, 0, 1 (majority): two of five wrong.
    test_q = np.eye(4)[[0, 1, 2, 3, 0]]
    assert evaluation.cluster_error(test_q, [1, 2, 0, 1, 0], [1, 2, 0, 0]) == pytest.approx(40.0)
    assert_clear_error(lambda: evaluation.cluster_to_label(q, labels, 3, "vote"), ValueError,
                       "rule", "'vote'")
    assert_clear_error(lambda: evaluation.cluster_to_label(q, labels + 1, 2), ValueError,
                       "[0, 2)", "from 1 to 3")


def test_cluster_head_cost_against_numpy():
    heads = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [0.0, 1.0]], np.float32)
    expected = sum(max(0.0, 6.0 - np.linalg.norm(heads[i] - heads[j]))
                   for i in range(4) for j in range(i + 1, 4))
    assert float(losses.cluster_head_cost(heads, 6.0)) == pytest.approx(expected, rel=1e-5)
    variable = tf.Variable(heads)
    with tf.GradientTape() as tape:
        cost = losses.cluster_head_cost(variable, 6.0)
    gradient = tape.gradient(cost, variable).numpy()
    assert np.isfinite(gradient).all()  # two coincident heads: no NaN from the square root.
    assert float(losses.cluster_head_cost(heads * 10, 6.0)) == pytest.approx(6.0, abs=1e-5)  # one pair.


def test_short_semi_supervised_run_beats_chance_by_a_wide_margin(grey, mnist):
    model = small(style_dim=5, hidden=(256,))
    model.fit(semi_dataset(grey, num_labels=100, n=5000, batch_size=100), epochs=2, verbose=0)
    x_test = data.to_unit_interval(mnist["test"][0][:1000])
    error = evaluation.categorical_errors(model, x_test, mnist["test"][1][:1000])["error"]
    assert error < 40.0, error  # chance: 90%; 100 labels and 100 steps reach about 25%.


def test_labeled_set_errors(grey):
    x, y = grey[0][:64], grey[1][:64].astype(np.int32)
    semi = lambda labels, xl=x: data.semi_supervised_dataset(x, xl[:len(labels)], labels)  # noqa: E731
    assert_clear_error(lambda: semi(np.where(y == 3, 10, y)), ValueError, "[0, 10)",
                       "from 0 to 10")
    assert_clear_error(lambda: semi(np.where(y == 3, 4, y)), ValueError, "no example of class(es) [3]")
    assert_clear_error(lambda: semi(np.arange(7)), ValueError, "at least one label per class",
                       "got 7 labels")
    assert_clear_error(lambda: data.labeled_subset(x, y, 5), ValueError, "multiple of num_classes")
    model = small()
    # Labels out of range inside a batch, and batches without the labeled minibatch.
    batch = {"images": x[:32], "labeled_images": x[:32], "labels": np.full(32, 12, np.int32)}
    assert_clear_error(lambda: model.train_on_batch(batch), ValueError, "[0, 10)",
                       "got values from 12 to 12")
    assert_clear_error(lambda: model.fit(x, y, batch_size=32, verbose=0), ValueError,
                       "'images', 'labeled_images', 'labels'", "semi_supervised_dataset")
    assert_clear_error(lambda: model.train_on_batch({"images": x}), ValueError,
                       "['labeled_images', 'labels']")
    assert_clear_error(lambda: tfaae.CategoricalAAE(style_dim=3, head_dim=2), ValueError,
                       "style_dim must equal head_dim=2", "got 3")
    assert_clear_error(lambda: small(semi_supervised=False).compile(classification_optimizer="adam"),
                       TypeError, "no classification phase")
    assert_clear_error(lambda: training._check_config({"model": "clustering", "labels": 100,
                                                       "epochs": 1}), ValueError,
                       "clustering is unsupervised")
    assert_clear_error(lambda: training._check_config({"model": "semi-supervised", "labels": 0,
                                                       "epochs": 1}), ValueError, "labels", "0")


def test_save_load_and_backup_keep_every_optimizer(grey, tmp_path):
    model = small(head_dim=2)
    model.fit(semi_dataset(grey, n=128), epochs=1, verbose=0)
    loaded = save_load_roundtrip(model, grey[0][:8], str(tmp_path / "m.keras"),
                                 lambda m, x: m.embed(x))
    assert [int(getattr(loaded, n).iterations) for n in loaded.optimizer_names] == [2, 2, 2, 2]
    np.testing.assert_array_equal(np.asarray(model.heads), np.asarray(loaded.heads))
    interrupted, restored = interrupt_and_resume(
        lambda: small(semi_supervised=False, num_categories=16, style_dim=5),
        grey[0][:64], str(tmp_path / "backup"))
    assert len(interrupted) == len(restored) > 3
    for a, b in zip(interrupted, restored):
        np.testing.assert_array_equal(a, b)


def test_classify_cluster_embed_signatures_in_a_fresh_process(grey, tmp_path):
    model = small(semi_supervised=False, num_categories=6, style_dim=2, head_dim=2)
    model.fit(grey[0][:128], batch_size=64, epochs=1, verbose=0)
    path = tfaae.export(model, tmp_path / "saved_models" / "map" / "1", warmup=False)
    x = grey[0][:5]
    np.save(tmp_path / "x.npy", x)
    out = run_python(f"""
        import json, numpy as np, tensorflow as tf
        served = tf.saved_model.load({str(path)!r})
        x = tf.constant(np.load({str(tmp_path / 'x.npy')!r}))
        result = {{name: {{k: v.numpy().tolist() for k, v in served.signatures[name](images=x).items()}}
                   for name in ("classify", "cluster", "embed", "serving_default")}}
        result["names"] = sorted(served.signatures)
        print(json.dumps(result))
    """)
    assert out["names"] == ["classify", "cluster", "embed", "serving_default"]
    index, probabilities = model.cluster(x)
    np.testing.assert_allclose(out["classify"]["probabilities"], model.classify(x), atol=1e-6)
    np.testing.assert_array_equal(out["classify"]["class"], index)
    np.testing.assert_array_equal(out["cluster"]["cluster"], index)
    np.testing.assert_allclose(out["cluster"]["probabilities"], probabilities, atol=1e-6)
    np.testing.assert_allclose(out["embed"]["embedding"], model.embed(x), atol=1e-5)
    np.testing.assert_allclose(out["serving_default"]["probabilities"], probabilities, atol=1e-6)
    # W_c y + z: the representation is the heads mixed by q(y|x), plus the style.
    logits, z = model.encode_parts(tf.reshape(x, [5, -1]))
    np.testing.assert_allclose(np.asarray(model.embed(x)),
                               np.asarray(tf.nn.softmax(logits)) @ np.asarray(model.heads) + z,
                               atol=1e-5)


def test_cli_trains_and_evaluates_each_task(mnist_dir, tmp_path):
    common = ["--epochs", "1", "--max-train-examples", "600", "--hidden-units", "32", "--data-dir",
              mnist_dir, "--no-download", "--schedule", "adam", "--validation-size", "0",
              "--no-images", "--no-projector", "--quiet"]
    run = tmp_path / "semi"
    done = run_cli("train", "semi-supervised", "--labels", "100", "--logdir", run, *common)
    assert done.returncode == 0, done.stderr[-2000:]
    evaluated = run_cli("evaluate", run, "--max-examples", "500")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "test classification error (500 images): " in evaluated.stdout
    error = json.loads(open(run / "eval.json").read())["error"]
    assert 0 <= error <= 100
    # Clustering and the 2-D map through the same library calls, in this process.
    for task, extra in (("clustering", {"clusters": 16}), ("dim-reduction", {})):
        settings = {"model": task, "epochs": 1, "max_train_examples": 600, "hidden_units": 32,
                    "data_dir": mnist_dir, "download": False, "schedule": "adam",
                    "validation_size": 0, "image_every": None, "projector": False, **extra}
        training.train(tmp_path / task, verbose=0, **settings)
        result = training.evaluate_run(tmp_path / task, max_examples=500)
        lines = training.describe_evaluation(result)
        assert set(result["cluster_error"]) == {"highest", "majority"}
        assert "the paper's rule" in lines[0] and "majority vote" in lines[1]
        assert len(result["cluster_labels"]["highest"]) == (16 if task == "clustering" else 20)
    assert os.path.getsize(result["map"]) > 10_000
