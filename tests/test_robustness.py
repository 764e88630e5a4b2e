"""Fault tolerance: resuming after kill -9, NaN stops, atomic writes, reproducibility."""

import json
import os

import keras
import numpy as np
import pytest

from harness import (assert_clear_error, assert_weights_equal, kill_cli_when, max_weight_difference,
                     run_cli, small_model)
from tfaae import callbacks, training

EPOCHS, STEPS = 3, 200
CLI_QUICK = ["--epochs", EPOCHS, "--max-train-examples", 10 * STEPS, "--batch-size", 10,
             "--validation-size", 100, "--steps-per-execution", 1, "--no-eval", "--no-images",
             "--no-projector", "--quiet"]


def _train_command(model, run, mnist_dir, *extra):
    return ["train", model, *CLI_QUICK, *extra, "--data-dir", mnist_dir, "--logdir", run]


def _backed_up_epochs(run):
    return callbacks.AtomicBackupAndRestore.saved_epoch(os.path.join(run, "backup"))


@pytest.mark.parametrize("model,extra", [("vae", []), ("aae", ["--hidden-units", 32])])
def test_kill_9_mid_epoch_then_the_same_command_resumes(tmp_path, mnist_dir, model, extra):
    whole, crashed = str(tmp_path / "whole"), str(tmp_path / "crashed")
    proc = run_cli(*_train_command(model, whole, mnist_dir, *extra))
    assert proc.returncode == 0, proc.stderr
    # Killed 0.2 s after epoch 1 is backed up: mid-epoch 2 (the small AAE's 200 steps take 0.7 s
    # on a quiet 2-core machine, 4 s on a busy one), or mid-epoch 3 should epoch 2 be faster.
    kill_cli_when(_train_command(model, crashed, mnist_dir, *extra),
                  lambda: _backed_up_epochs(crashed) >= 1, delay=0.2)
    backed_up = _backed_up_epochs(crashed)
    assert 1 <= backed_up < EPOCHS
    assert not os.path.exists(os.path.join(crashed, "result.json"))
    history = json.load(open(os.path.join(crashed, "history.json")))
    assert [h["epoch"] for h in history] == list(range(1, backed_up + 1))
    keras.models.load_model(os.path.join(crashed, "checkpoints", "last.keras"))  # whole, loadable.

    proc = run_cli(*_train_command(model, crashed, mnist_dir, *extra))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["status"], result["epochs"], result["resumed_from_epoch"]) == (
        "completed", EPOCHS, backed_up)
    assert not os.path.exists(os.path.join(crashed, "backup"))  # removed once training completed.
    a, b = training.load_run_model(whole), training.load_run_model(crashed)
    names = getattr(a, "optimizer_names", ("optimizer",))
    # Every optimizer came back from the backup: its iterations count the whole run's steps.
    assert [int(getattr(b, n).iterations) for n in names] == [EPOCHS * STEPS] * len(names)
    # The resumed run trains on the same batches with the same noise: it ends where the
    # uninterrupted one ends (float32 round-off of reloaded weights only).
    assert_weights_equal(a, b, atol=1e-5)
    history = json.load(open(os.path.join(crashed, "history.json")))
    expected = json.load(open(os.path.join(whole, "history.json")))
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    for got, want in zip(history, expected):
        assert got == pytest.approx(want, rel=1e-5)


def test_a_diverging_run_stops_with_a_clear_message(tmp_path, mnist_dir):
    run = tmp_path / "nan"
    proc = run_cli("train", "vae", "--schedule", "constant", "--learning-rate", "1e38", "--epochs", 2,
                   "--max-train-examples", 100, "--validation-size", 100, "--no-eval", "--no-images",
                   "--no-projector", "--quiet", "--data-dir", mnist_dir, "--logdir", run)
    assert proc.returncode == 1, proc.stderr
    assert "tfaae: training stopped: non-finite" in proc.stderr
    assert "no epoch ended with finite metrics, so there is no checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "stopped_non_finite" and result["last_good_checkpoint"] is None
    assert result["stopped_at"]["epoch"] == 1 and not (run / "model.keras").exists()


def test_a_nan_epoch_is_never_backed_up(tmp_path):
    model = small_model()
    model.build_optimizers()
    backup = callbacks.AtomicBackupAndRestore(tmp_path / "backup")
    backup.set_model(model)
    backup.on_epoch_end(0, {"loss": 1.0})
    good = [np.array(w) for w in model.weights]
    model.decoder[-1].logits.kernel.assign(np.full(model.decoder[-1].logits.kernel.shape, np.nan))
    backup.on_epoch_end(1, {"loss": float("nan")})
    assert callbacks.AtomicBackupAndRestore.saved_epoch(tmp_path / "backup") == 1
    restored = small_model()
    backup = callbacks.AtomicBackupAndRestore(tmp_path / "backup")
    backup.set_model(restored)
    backup.on_train_begin()
    for want, got in zip(good, restored.weights):
        np.testing.assert_array_equal(want, np.array(got))


REPRO = dict(model="iwae", num_samples=3, epochs=1, max_train_examples=100, batch_size=20,
             validation_size=100, eval_every=None, image_every=None, projector=False,
             steps_per_execution=5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_same_seed_same_command_same_metrics(tmp_path, mnist_dir, jit_compile):
    runs = [training.train(str(tmp_path / f"run{i}"), verbose=0, data_dir=mnist_dir,
                           jit_compile=jit_compile, **REPRO) for i in range(2)]
    a, b = (training.load_run_model(str(tmp_path / f"run{i}")) for i in range(2))
    difference = max_weight_difference(a.get_weights(), b.get_weights())
    print(f"jit_compile={jit_compile}: max abs weight difference between two runs {difference:.3g}")
    if not jit_compile:  # the same kernels in the same order: bit for bit.
        assert runs[0]["final"] == runs[1]["final"] and difference == 0.0
    else:  # the stated tolerance under XLA, which may fuse float32 sums differently.
        assert runs[0]["final"] == pytest.approx(runs[1]["final"], rel=1e-5)
        assert difference <= 1e-5


_WRITER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("tfaae_io", sys.argv[1])
io = importlib.util.module_from_spec(spec); spec.loader.exec_module(io)
i = 0
while True:
    i += 1
    io.write_json(sys.argv[2], {"version": i, "payload": [i] * 200_000})
"""


def test_kill_9_while_writing_leaves_the_old_or_the_new_file(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    target = tmp_path / "state.json"
    io_path = os.path.join(os.path.dirname(training.__file__), "io.py")
    for delay in (0.3, 0.55, 0.8, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, io_path, str(target)])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if target.exists():
            state = json.loads(target.read_text())  # whole: parses, and is one version entirely.
            assert state["payload"] == [state["version"]] * 200_000
    assert target.exists()


# --------------------------------------------------------------------------------------------------
# Time limits: a run split into pieces by --time-limit ends where an uninterrupted one ends.

def _pieces_by_time_limit(run, **settings):
    """Calls `training.train` with a limit shorter than an epoch until it completes: one epoch a
    call. Returns the statuses of the calls."""
    statuses = []
    while not statuses or statuses[-1] == "stopped_time_limit":
        statuses.append(training.train(run, verbose=0, time_limit=1e-3, **settings)["status"])
    return statuses


def _assert_same_run(whole, pieces, rel=1e-5):
    a, b = training.load_run_model(whole), training.load_run_model(pieces)
    names = getattr(a, "optimizer_names", ("optimizer",))
    assert [int(getattr(b, n).iterations) for n in names] == [
        int(getattr(a, n).iterations) for n in names]
    assert_weights_equal(a, b, atol=1e-5)
    history = json.load(open(os.path.join(pieces, "history.json")))
    expected = json.load(open(os.path.join(whole, "history.json")))
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    for got, want in zip(history, expected):
        assert got == pytest.approx(want, rel=rel)


def test_a_run_split_in_three_by_the_cli_time_limit_ends_as_an_uninterrupted_one(tmp_path, mnist_dir):
    whole, pieces = str(tmp_path / "whole"), str(tmp_path / "pieces")
    assert run_cli(*_train_command("iwae", whole, mnist_dir, "--num-samples", 3)).returncode == 0
    codes = []
    while not codes or codes[-1] == 3:
        proc = run_cli(*_train_command("iwae", pieces, mnist_dir, "--num-samples", 3,
                                       "--time-limit", "1s"))
        codes.append(proc.returncode)
        if proc.returncode == 3:  # stopped: the backup is there, no result.json yet.
            assert "run the same command to continue" in proc.stderr
            result = json.loads(proc.stdout)
            assert (result["status"], result["epochs"], result["of_epochs"]) == (
                "stopped_time_limit", len(codes), EPOCHS)
            assert _backed_up_epochs(pieces) == len(codes)
            assert not os.path.exists(os.path.join(pieces, "result.json"))
    assert codes == [3, 3, 0]  # one epoch a call: every call after TensorFlow's start-up > 1 s.
    assert not os.path.exists(os.path.join(pieces, "backup"))
    _assert_same_run(whole, pieces)
    clock = json.load(open(os.path.join(pieces, "clock.json")))
    assert [c["epoch"] for c in clock] == [1, 2, 3]
    for key in ("wall_seconds", "cpu_seconds"):  # summed over the three processes.
        assert 0 < clock[0][key] < clock[1][key] < clock[2][key]


@pytest.mark.parametrize("model,settings", [
    ("aae", {"hidden_units": 32}),
    ("semi-supervised", {"hidden_units": 32, "labels": 100, "labeled_batch_size": 10}),
])
def test_time_limits_split_adversarial_runs_without_changing_them(tmp_path, mnist_dir, model,
                                                                   settings):
    common = {"model": model, "epochs": EPOCHS, "max_train_examples": 10 * STEPS,
              "batch_size": 10, "validation_size": 100, "steps_per_execution": 1,
              "image_every": None, "projector": False, "data_dir": mnist_dir, **settings}
    whole, pieces = str(tmp_path / "whole"), str(tmp_path / "pieces")
    training.train(whole, verbose=0, **common)
    assert _pieces_by_time_limit(pieces, **common) == ["stopped_time_limit"] * 2 + ["completed"]
    _assert_same_run(whole, pieces)


def test_time_limit_arguments_are_checked(tmp_path):
    assert callbacks.parse_duration("150m") == 9000
    assert callbacks.parse_duration("2.5h") == 9000
    assert callbacks.parse_duration("90s") == 90
    assert callbacks.parse_duration("1d") == 86400
    assert callbacks.parse_duration("30") == 1800  # Slurm: bare minutes.
    assert callbacks.parse_duration("1:30:00") == 5400
    assert callbacks.parse_duration("2:30") == 150
    assert callbacks.parse_duration("3h50m") == 13800
    assert callbacks.parse_duration("1d2h30s") == 86400 + 7200 + 30
    for bad in ("", "soon", "-5m", "0", "1:2:3:4", "nan", "5m5m", "0h0m", "h", "1x"):
        assert_clear_error(lambda: callbacks.parse_duration(bad), ValueError, "positive duration",
                           repr(bad))
    assert_clear_error(lambda: training.train(str(tmp_path / "r"), time_limit=0), ValueError,
                       "time_limit", "0")
    assert_clear_error(lambda: callbacks.TimeLimit("soon"), TypeError, "deadline", "'soon'")
    assert_clear_error(lambda: callbacks.TimeLimit(1.0, margin=0.5), ValueError, "margin", "0.5")
    proc = run_cli("train", "vae", "--logdir", str(tmp_path / "x"), "--time-limit", "soon")
    assert proc.returncode == 2 and "--time-limit" in proc.stderr and "'soon'" in proc.stderr
