"""TensorBoard monitoring, the papers' figures and `tfaae report`, checked through a real TensorBoard
server, decoded PNGs and NumPy recomputations."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.projector import ProjectorConfig

import tfaae
from harness import (assert_clear_error, assert_png, http_bytes, http_json, png_pixels, poll,
                     run_cli, summary_tags, tensorboard_server)
from tfaae import cli, figures, monitoring, networks, training

K = 10  # importance samples of the periodic NLL in the monitored run.
EXAMPLES = 100  # test images of the monitored run's figures, evaluation and projector.
TENSOR = monitoring.EMBEDDING + monitoring.TENSOR


def grid_size(rows, columns, title=True, row_labels=False, column_labels=False, side=28):
    """(width, height) in pixels of an `image_grid` figure, from the layout constants."""
    cell = side + figures.PAD
    width = figures.SCALE * (columns * cell + figures.PAD) + row_labels * figures.ROW_LABEL_PX
    height = (figures.SCALE * (rows * cell + figures.PAD) + title * figures.TITLE_PX
              + column_labels * figures.COLUMN_LABEL_PX)
    return width, height


def cell_centre(pixels, row, column, top, left=0, side=28):
    """Grey level at the centre of grid cell (row, column) of a rendered `image_grid`."""
    step = side + figures.PAD
    y = top + figures.SCALE * (figures.PAD + row * step + side // 2)
    x = left + figures.SCALE * (figures.PAD + column * step + side // 2)
    return float(pixels[y, x, :3].mean())


SAMPLES_SIZE = grid_size(10, 10)
RECONSTRUCTIONS_SIZE = grid_size(6, 10, row_labels=True)  # 30 images: 3 input and 3 output rows.
MAP_SIZE = (figures.MAP_PX, figures.MAP_PX)


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory, mnist_dir):
    """A two-epoch IWAE run with every monitor on each epoch; returns (parent directory, run)."""
    parent = tmp_path_factory.mktemp("runs")
    run = str(parent / "run")
    training.train(run, verbose=0, model="iwae", num_samples=5, data_dir=mnist_dir, epochs=2,
                   max_train_examples=200, batch_size=20, validation_size=100,
                   steps_per_execution=5, eval_every=1, eval_examples=EXAMPLES,
                   eval_num_samples=K, image_every=1, projector=True)
    return str(parent), run


def _subset(run, mnist_dir):
    config = training.read_run_config(run)
    config["data_dir"] = mnist_dir
    return training.evaluation_subset(training.load_training_data(config, EXAMPLES), EXAMPLES)


def test_tensorboard_serves_the_runs_scalars_images_histograms_hparams_and_projector(
        monitored_run, mnist_dir):
    parent, run = monitored_run
    history = json.load(open(os.path.join(run, "history.json")))
    model = training.load_run_model(run)
    images, labels = _subset(run, mnist_dir)
    test = "run/logs/test"
    with tensorboard_server(parent) as url:
        runs = poll(lambda: http_json(url + "/data/runs"), lambda r: len(r) >= 4)
        assert set(runs) == {"run/logs", "run/logs/train", "run/logs/validation", test}

        scalars = http_json(url + "/data/plugin/scalars/tags")
        assert {"epoch_bound", "epoch_loss", "epoch_kl", "epoch_recon_loglik"} <= set(scalars["run/logs/train"])
        assert set(scalars[test]) == {f"evaluation/nll_k{K}", "evaluation/active_units",
                                      "evaluation/active_units_layer1"}
        nll = http_json(f"{url}/data/plugin/scalars/scalars?run={test}&tag=evaluation/nll_k{K}")
        assert [step for _, step, _ in nll] == [0, 1]  # epochs from 0, as Keras's epoch scalars.
        np.testing.assert_allclose([v for _, _, v in nll], [h[f"nll_k{K}"] for h in history], rtol=1e-6)

        tags = http_json(url + "/data/plugin/images/tags")[test]
        assert set(tags) == {"figures/samples", "figures/reconstructions", "figures/latent_map"}
        for tag, (width, height) in (("figures/samples", SAMPLES_SIZE),
                                     ("figures/reconstructions", RECONSTRUCTIONS_SIZE),
                                     ("figures/latent_map", MAP_SIZE)):
            steps = http_json(f"{url}/data/plugin/images/images?run={test}&tag={tag}&sample=0")
            assert [s["step"] for s in steps] == [0, 1]
            assert_png(http_bytes(f"{url}/data/plugin/images/individualImage?{steps[-1]['query']}"),
                       width, height)

        histograms = http_json(url + "/data/plugin/histograms/tags")[test]
        assert set(histograms) == {"posterior/layer1/mean", "posterior/layer1/std"}
        mean, std = model.encode(images)[0]
        for name, value in (("mean", mean), ("std", std)):
            data = http_json(f"{url}/data/plugin/histograms/histograms?run={test}"
                             f"&tag=posterior/layer1/{name}")
            buckets = np.array(data[-1][2])
            assert data[-1][1] == 1 and buckets[:, 2].sum() == EXAMPLES * 50
            np.testing.assert_allclose([buckets[0, 0], buckets[-1, 1]],
                                       [np.min(value), np.max(value)], rtol=1e-4, atol=1e-5)

        experiment = http_json(url + "/data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        assert {"model", "num_samples", "layers", "learning_rate", "schedule", "seed"} <= hparams
        assert "data_dir" not in hparams
        metrics = {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]}
        assert {("test", f"evaluation/nll_k{K}"), ("validation", "epoch_bound")} <= metrics
        groups = http_json(url + "/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
            "startIndex": 0, "sliceSize": 10})["sessionGroups"]
        assert len(groups) == 1 and groups[0]["hparams"]["model"] == "iwae"
        assert groups[0]["hparams"]["num_samples"] == 5
        values = {m["name"]["tag"]: m["value"] for m in groups[0]["metricValues"]}
        assert values[f"evaluation/nll_k{K}"] == pytest.approx(history[-1][f"nll_k{K}"], rel=1e-6)

        assert http_json(url + "/data/plugin/projector/runs") == [test]
        info = http_json(f"{url}/data/plugin/projector/info?run={test}")
        assert info["embeddings"][0]["tensorName"] == TENSOR
        assert info["embeddings"][0]["tensorShape"] == [EXAMPLES, 50]
        tensor = np.frombuffer(http_bytes(f"{url}/data/plugin/projector/tensor?run={test}&name={TENSOR}"),
                               np.float32).reshape(EXAMPLES, 50)
        np.testing.assert_allclose(tensor, model.latent_codes(images), atol=1e-5)
        metadata = http_bytes(f"{url}/data/plugin/projector/metadata?run={test}&name={TENSOR}")
        rows = metadata.decode().strip().split("\n")
        assert rows[0] == "index\tlabel" and [int(r.split("\t")[1]) for r in rows[1:]] == list(labels)


def test_report_writes_figures_and_a_markdown_summary_beside_the_papers_numbers(monitored_run):
    _, run = monitored_run
    evaluation = training.evaluate_run(run, num_samples=20, max_examples=50)
    proc = run_cli("report", run, "--num-examples", 200)
    assert proc.returncode == 0, proc.stderr
    report = os.path.join(run, "report")
    assert sorted(os.listdir(report)) == ["README.md", "latent_map.png", "learning_curves.png",
                                          "reconstructions.png", "samples.png"]
    history = json.load(open(os.path.join(run, "history.json")))
    metrics = {key.removeprefix("val_") for record in history for key in record} - {"epoch"}
    panel_rows = math.ceil(len(metrics) / figures.PANELS_PER_ROW)
    for name, (width, height) in {
            "samples": SAMPLES_SIZE, "reconstructions": RECONSTRUCTIONS_SIZE, "latent_map": MAP_SIZE,
            "learning_curves": (figures.PANELS_PER_ROW * figures.PANEL_PX[0],
                                panel_rows * figures.PANEL_PX[1] + figures.TITLE_PX)}.items():
        assert_png(os.path.join(report, f"{name}.png"), width, height)
    markdown = open(os.path.join(report, "README.md"), encoding="utf-8").read()
    result = json.load(open(os.path.join(run, "result.json")))
    assert f"| {evaluation['nll']:.2f} ± {evaluation['nll_stderr']:.2f} | 85.54 |" in markdown
    assert "k = 20, 50 test images (eval.json)" in markdown
    assert f"| {history[-1][f'nll_k{K}']:.2f} |" in markdown
    assert f"| final val_bound (result.json) | {result['final']['val_bound']:.4g} |" in markdown
    assert "| IWAE | 1 | 5 | 85.54 **(this run)** |" in markdown
    for paper in ("86.76", "84.78", "85.33", "83.89", "82.90"):
        assert f"| {paper} |" in markdown
    for name in ("samples", "reconstructions", "latent_map", "learning_curves"):
        assert f"![{name}]({name}.png)" in markdown


def test_report_and_monitoring_reject_bad_arguments(tmp_path, monitored_run):
    from tfaae import report
    _, run = monitored_run
    assert_clear_error(lambda: report.write_report(str(tmp_path)), FileNotFoundError, "config.json")
    assert_clear_error(lambda: report.write_report(run, num_examples=0), ValueError, "num_examples", "0")
    images = np.zeros((4, 28, 28, 1), np.float32)
    assert_clear_error(lambda: monitoring.ImageSummaries(tmp_path, images + 2), ValueError,
                       "images", "[0, 1]")
    assert_clear_error(lambda: monitoring.ImageSummaries(tmp_path, images, labels=[1, 2]), ValueError,
                       "labels", "one per image")
    assert_clear_error(lambda: monitoring.PosteriorHistograms(tmp_path, images, every=0), ValueError,
                       "every", "0")
    assert_clear_error(lambda: monitoring.HParamsSummary(tmp_path, ["model"]), TypeError, "hparams", "list")
    assert_clear_error(lambda: monitoring.write_projector(tmp_path, np.full((3, 2), np.nan)), ValueError,
                       "codes", "finite")
    assert_clear_error(lambda: monitoring.write_projector(tmp_path, np.zeros((3, 2)), labels=[0]),
                       ValueError, "labels", "one entry per code (3)")
    no_codes = keras.Sequential([keras.layers.Dense(1)])
    no_codes.compile(optimizer="sgd", loss="mse")
    assert_clear_error(lambda: no_codes.fit(images.reshape(4, -1), np.zeros(4), verbose=0, callbacks=[
        monitoring.EmbeddingProjector(tmp_path, images)]), TypeError, "latent_codes", "Sequential")
    assert_clear_error(lambda: training.train(str(tmp_path), image_every=0), ValueError, "image_every")
    assert_clear_error(lambda: training.train(str(tmp_path), projector="yes"), TypeError, "projector")
    proc = run_cli("report", tmp_path / "missing")
    assert proc.returncode == 2 and "has no config.json" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_monitoring_flags():
    parser = cli.build_parser()
    defaults = parser.parse_args(["train", "vae", "--logdir", "x"])
    assert (defaults.image_every, defaults.eval_every, defaults.projector) == ("auto", "auto", True)
    assert defaults.eval_num_samples == 1000
    chosen = parser.parse_args(["train", "vae", "--logdir", "x", "--image-every", "3", "--eval-every",
                                "7", "--eval-num-samples", "50"])
    assert (chosen.image_every, chosen.eval_every, chosen.eval_num_samples) == (3, 7, 50)
    off = parser.parse_args(["train", "vae", "--logdir", "x", "--no-images", "--no-eval", "--no-projector"])
    assert (off.image_every, off.eval_every, off.projector) == (None, None, False)


def test_projector_folder_is_consistent(tmp_path, rng):
    codes = rng.normal(size=(37, 4)).astype(np.float32)
    labels = rng.integers(0, 10, 37)
    images = rng.random((37, 28, 28, 1)).astype(np.float32)
    monitoring.write_projector(tmp_path, codes * 0, labels, images, step=1)
    monitoring.write_projector(tmp_path, codes, labels, images, step=2)
    config = text_format.Parse((tmp_path / "projector_config.pbtxt").read_text(), ProjectorConfig())
    (embedding,) = config.embeddings
    checkpoint = tf.train.load_checkpoint(str(tmp_path))  # the latest, through the checkpoint file.
    assert checkpoint.get_variable_to_shape_map()[embedding.tensor_name] == [37, 4]
    np.testing.assert_array_equal(checkpoint.get_tensor(embedding.tensor_name), codes)
    assert not list(tmp_path.glob("embedding-1.*"))  # the older checkpoint is gone.
    rows = (tmp_path / embedding.metadata_path).read_text().splitlines()
    assert rows[0] == "index\tlabel" and len(rows) - 1 == len(codes)
    assert [int(r.split("\t")[1]) for r in rows[1:]] == list(labels)
    sprite = png_pixels(str(tmp_path / embedding.sprite.image_path))
    assert sprite.shape[:2] == (7 * 28, 7 * 28) and list(embedding.sprite.single_image_dim) == [28, 28]
    np.testing.assert_allclose(sprite[28:56, 0:28, 0] / 255.0, images[7, ..., 0], atol=1 / 255)
    monitoring.write_projector(tmp_path / "plain", codes)
    assert (tmp_path / "plain" / "metadata.tsv").read_text().splitlines() == [str(i) for i in range(37)]


def test_figure_grids_place_every_image(rng):
    """Cells are read back from the rendered pixels: rows, columns and blanks where they belong."""
    inputs = np.full((15, 28, 28), 0.2, np.float32)
    pixels = figures.to_rgb(figures.reconstruction_grid(inputs, inputs + 0.6, columns=10))
    assert pixels.shape[:2][::-1] == grid_size(4, 10, row_labels=True)
    left = figures.ROW_LABEL_PX
    for row, level in ((0, 0.2), (1, 0.8), (2, 0.2), (3, 0.8)):
        assert cell_centre(pixels, row, 4, figures.TITLE_PX, left) == pytest.approx(255 * level, abs=1)
    assert cell_centre(pixels, 2, 7, figures.TITLE_PX, left) == 255  # past the 15th image: blank.

    styles = np.array([[0.3], [0.6], [0.9]], np.float32)
    calls = []

    def decode(codes, classes):
        calls.append((codes, classes))
        return np.ones((len(codes), 28, 28, 1)) * codes[:, :1, None, None] * (classes + 1)[:, None, None, None] / 10

    pixels = figures.to_rgb(figures.style_grid(decode, styles, num_classes=10))
    codes, classes = calls[0]
    np.testing.assert_array_equal(codes[:, 0], np.repeat(styles[:, 0], 10))
    np.testing.assert_array_equal(classes, np.tile(np.arange(10), 3))
    assert pixels.shape[:2][::-1] == grid_size(3, 10, column_labels=True)
    top = figures.TITLE_PX + figures.COLUMN_LABEL_PX
    for i, style in enumerate(styles[:, 0]):
        for j in range(10):
            assert cell_centre(pixels, i, j, top) == pytest.approx(255 * style * (j + 1) / 10, abs=2.5)

    assignments = rng.integers(0, 4, 40)
    assignments[assignments == 2] = 1  # cluster 2 stays empty.
    levels = np.array([0.1, 0.4, 0.0, 0.7])
    cluster_images = np.ones((40, 28, 28)) * levels[assignments][:, None, None]
    pixels = figures.to_rgb(figures.cluster_examples(cluster_images, assignments, per_cluster=12))
    assert pixels.shape[:2][::-1] == grid_size(4, 12, row_labels=True)
    counts = np.bincount(assignments, minlength=4)
    for cluster in range(4):
        for slot in range(12):
            expected = 255 * levels[cluster] if slot < counts[cluster] else 255
            assert cell_centre(pixels, cluster, slot, figures.TITLE_PX, left) == pytest.approx(expected, abs=2.5)


def test_latent_map_projects_onto_the_codes_principal_axes(tmp_path, rng):
    directions = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    codes = (rng.normal(size=(500, 6)) * [5, 2, 0.3, 0.2, 0.1, 0.1]) @ directions.T + 3
    mean, axes, kept = figures.principal_axes(codes)
    variances, vectors = np.linalg.eigh(np.cov(codes.T, bias=True))
    np.testing.assert_allclose(np.abs(axes.T @ vectors[:, ::-1][:, :2]), np.eye(2), atol=1e-8)
    np.testing.assert_allclose(kept, variances[::-1][:2] / variances.sum(), rtol=1e-8)
    np.testing.assert_allclose(mean, codes.mean(0))
    labels = rng.integers(0, 10, 500)
    for d in (2, 6):
        path = tmp_path / f"map{d}.png"
        figures.save_png(figures.latent_map(codes[:, :d], labels, rng.normal(size=(300, d))), path)
        assert_png(path, *MAP_SIZE)
    assert_clear_error(lambda: figures.latent_map(codes[:, :1]), ValueError, "d >= 2", "(500, 1)")
    assert_clear_error(lambda: figures.latent_map(codes, labels[:3]), ValueError, "labels", "[500]")
    assert_clear_error(lambda: figures.latent_map(codes, prior=codes[:, :2]), ValueError, "prior", "[M, 6]")


def test_figures_reject_bad_arguments(rng):
    images = rng.random((6, 28, 28))
    assert_clear_error(lambda: figures.image_grid(images * 255), ValueError, "[0, 1]")
    assert_clear_error(lambda: figures.image_grid(images[0]), ValueError, "[N, height, width]", "(28, 28)")
    assert_clear_error(lambda: figures.image_grid(images, columns=0), ValueError, "columns", "0")
    assert_clear_error(lambda: figures.image_grid(images, 3, row_labels=["a"]), ValueError,
                       "row_labels", "(2)")
    assert_clear_error(lambda: figures.reconstruction_grid(images, images[:5]), ValueError,
                       "same shape")
    assert_clear_error(lambda: figures.style_grid(lambda s, c: images, np.zeros((2, 3)), 10),
                       ValueError, "one image per (style, class) pair (20)", "got 6")
    assert_clear_error(lambda: figures.style_grid(lambda s, c: images, np.zeros(3), 10),
                       ValueError, "styles", "[S, d]")
    assert_clear_error(lambda: figures.cluster_examples(images, [0, 1, 2, 3, 4, 5], num_clusters=3),
                       ValueError, "[0, 3)", "[0, 5]")
    assert_clear_error(lambda: figures.cluster_examples(images, [0.5] * 6), ValueError,
                       "assignments", "integers")
    assert_clear_error(lambda: figures.learning_curves([]), ValueError, "history")


def test_vae_hooks_match_the_models_inference_and_generation(binary_test):
    model = tfaae.VAE(num_layers=2, seed=0)
    x = binary_test[:8]
    parameters = model.posterior_parameters(x)
    layers = model.encode(x)
    assert sorted(parameters) == ["layer1/mean", "layer1/std", "layer2/mean", "layer2/std"]
    for l, (mean, std) in enumerate(layers, 1):
        np.testing.assert_array_equal(parameters[f"layer{l}/mean"], mean)
        np.testing.assert_array_equal(parameters[f"layer{l}/std"], std)
    np.testing.assert_array_equal(model.latent_codes(x), layers[-1][0])
    prior = np.asarray(model.prior_samples(20_000, seed=3))
    assert prior.shape == (20_000, 50)
    np.testing.assert_array_equal(prior, model.prior_samples(20_000, seed=3))
    assert abs(prior.mean()) < 0.01 and abs(prior.std() - 1) < 0.01
    # sample() is the prior's draw (the seed's first fold) taken down through the decoder.
    z = tfaae.random.normal((6, 50), tfaae.random.fold_in(5, 0))
    np.testing.assert_array_equal(model.prior_samples(6, seed=5), z)
    expected = tf.sigmoid(model.decode(z, sample_intermediate=True, seed=5))
    np.testing.assert_array_equal(model.sample(6, seed=5), expected)


class _FiguresOfItsOwn(tfaae.VAE):
    """A VAE that adds figures through the `monitoring_figures` hook, as the AAE models will."""

    def monitoring_figures(self, x, labels, seed=0):
        codes = np.asarray(self.latent_codes(x))
        return {"style_grid": figures.style_grid(lambda z, classes: tf.sigmoid(self.decode(z)),
                                                 codes[:3], num_classes=4),
                "clusters": figures.cluster_examples(np.asarray(x), labels % 3, per_cluster=5)}


def test_image_summaries_write_the_figures_of_a_models_hooks(tmp_path, binary_train):
    encoder, decoder = networks.burda_networks(latent_dims=(2,), hidden_units=((16,),), seed=0)
    model = _FiguresOfItsOwn(encoder=encoder, decoder=decoder, seed=0)
    model.compile(optimizer="adam")
    x, labels = binary_train[:40], np.arange(40) % 10
    model.fit(x, epochs=2, batch_size=20, verbose=0, callbacks=[
        monitoring.ImageSummaries(tmp_path, x, labels, every=2, num_samples=20),
        monitoring.PosteriorHistograms(tmp_path, x, every=1)])
    tags = summary_tags(str(tmp_path))
    assert tags == {"figures/samples": 1, "figures/reconstructions": 1, "figures/latent_map": 1,
                    "figures/style_grid": 1, "figures/clusters": 1,
                    "posterior/layer1/mean": 2, "posterior/layer1/std": 2}
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1  # one shared writer.
    drawn = monitoring.model_figures(model, x, labels, num_samples=20)
    assert list(drawn) == ["samples", "reconstructions", "latent_map", "style_grid", "clusters"]
    assert figures.to_rgb(drawn["samples"]).shape[:2][::-1] == grid_size(2, 10)


def test_models_without_two_dimensional_images_or_codes_get_no_grids_or_map():
    encoder, decoder = networks.burda_networks(latent_dims=(1,), hidden_units=((8,),), input_dim=10)
    model = tfaae.VAE(encoder=encoder, decoder=decoder, image_shape=(10,), seed=0)
    assert monitoring.model_figures(model, np.zeros((5, 10), np.float32)) == {}
