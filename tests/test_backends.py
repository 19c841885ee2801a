"""Training on Keras' JAX backend in a process where TensorFlow cannot be imported: the same
protocol and run format, the backend in the manifest, and a run the dashboard reads as any other."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from core import artifacts
from core.data import normalise
from core.models import MODEL_NAMES
from core.predict import load_predictor
from tests.conftest import TINY

# requirements-dev.txt installs requirements-jax.txt: without JAX this fails, it is not skipped.
assert importlib.util.find_spec("jax"), "install requirements-jax.txt (./run tests does)"

PROJECT = Path(__file__).resolve().parent.parent

# ``python -m core.train`` with every import of TensorFlow refused; at exit, the TensorFlow
# modules loaded anyway (none, when the trainer needs none of it).
WITHOUT_TENSORFLOW = """
import runpy, sys
sys.modules["tensorflow"] = None  # "import tensorflow" raises ImportError
sys.argv[0] = "core.train"
try:
    runpy.run_module("core.train", run_name="__main__", alter_sys=True)
finally:
    loaded = [m for m, v in sys.modules.items() if m.split(".")[0] == "tensorflow" and v]
    print("tensorflow modules loaded:", loaded, file=sys.stderr)
"""


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """A TINY run of every model trained with KERAS_BACKEND=jax: (the process, its root)."""
    root = tmp_path_factory.mktemp("jax") / "artifacts"
    argv = [sys.executable, "-c", WITHOUT_TENSORFLOW, "--model", "all", "--out", str(root),
            "--epochs", str(TINY["epochs"]), "--batch-size", str(TINY["batch_size"]),
            "--train-limit", str(TINY["train_limit"]), "--log-every", str(TINY["log_every"]),
            "--quiet"]  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    return proc, root


def test_trains_without_tensorflow(jax_run):
    proc, _ = jax_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tensorflow modules loaded: []" in proc.stderr
    assert proc.stdout.count("test accuracy") == len(MODEL_NAMES)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_run_records_the_backend_and_keeps_the_protocol(jax_run, model):
    run = artifacts.load_run(model, root=jax_run[1])  # verifies every file's checksum
    m = run.manifest
    assert m.versions["keras_backend"] == "jax"
    assert (m.versions["jax"], m.versions["jaxlib"]) == (version("jax"), version("jaxlib"))
    assert "tensorflow" not in m.versions
    assert m.compute.onednn is False  # oneDNN is TensorFlow's switch
    p = m.protocol
    assert (p.epochs, p.batch_size, p.optimizer, p.learning_rate) == (1, 32, "Adam", 0.001)
    assert p.train_images == TINY["train_limit"]
    assert [h["epoch"] for h in run.history] == [1] and "test_accuracy" in run.history[0]
    assert m.params == artifacts.get_spec(model).params


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_numpy_engine_reproduces_the_stored_probabilities(jax_run, model, dataset):
    run = artifacts.load_run(model, root=jax_run[1])
    np.testing.assert_allclose(run.y_prob.sum(axis=1), 1.0, atol=1e-5)
    x = normalise(dataset.x_test[:2000])  # a fifth of the test set: seconds, not ten
    y_prob = load_predictor(run).predict(x)  # the engine the dashboard runs
    np.testing.assert_allclose(y_prob, run.y_prob[:2000], atol=1e-5)
    assert (run.y_prob.argmax(1) == run.y_true).mean() == run.manifest.test_metrics.accuracy
