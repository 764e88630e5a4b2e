"""Fault tolerance: resuming after kill -9, NaN stops, atomic writes, reproducibility."""

import json
import os

import keras
import numpy as np
import pytest

from harness import assert_weights_equal, kill_cli_when, run_cli
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
    # Killed once epoch 1 is backed up, half a second into epoch 2 (its 200 steps take 3 to 4 s).
    kill_cli_when(_train_command(model, crashed, mnist_dir, *extra),
                  lambda: _backed_up_epochs(crashed) >= 1, delay=0.5)
    assert _backed_up_epochs(crashed) == 1
    assert not os.path.exists(os.path.join(crashed, "result.json"))
    assert [h["epoch"] for h in json.load(open(os.path.join(crashed, "history.json")))] == [1]

    proc = run_cli(*_train_command(model, crashed, mnist_dir, *extra))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["status"], result["epochs"], result["resumed_from_epoch"]) == ("completed", EPOCHS, 1)
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
