"""Cached reads shared by the pages: runs, metrics, comparisons, the test set, models.

Everything here is keyed on a run's identity (``run_key``: model, run id, artifacts root and
its manifest's time stamp), built in one place, so a new or replaced run is picked up. No
TensorFlow here. Cached figures: ``widgets.charts``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import streamlit as st

from core import artifacts, metrics, runcache
from core.data import load_dataset
from core.png import image_png


class RunKey(NamedTuple):
    """What every cached read of one run is keyed on."""

    model: str
    run_id: str
    root: str
    stamp: int  # the manifest's mtime: a replaced run gets a new key


def manifest_stamp(root: Path | str, model: str, run_id: str) -> int:
    try:
        return (Path(root) / model / run_id / artifacts.MANIFEST).stat().st_mtime_ns
    except OSError:
        return 0


def key_of(model: str, run_id: str, root: Path | str) -> RunKey:
    """The cache key of run ``run_id`` of ``model`` under ``root``, as it is on disk now."""
    return RunKey(model, run_id, str(root), manifest_stamp(root, model, run_id))


def run_key(run: artifacts.Run | artifacts.RunInfo) -> RunKey:
    """The cache key of a loaded or listed run."""
    return key_of(run.model, run.run_id, run.path.parent.parent)


@st.cache_data(show_spinner="Reading the run…", max_entries=16)
def load_run(key: RunKey) -> artifacts.Run:
    """The verified run ``key`` names (raises ``artifacts.RunError`` if it is damaged)."""
    return artifacts.load_run(key.model, key.run_id, key.root)


# Results: computed once per run and kept in its cache (core.runcache), then held here once per
# server and shared by every session (st.cache_resource: no copy per call; never modified).
@st.cache_resource(show_spinner="Computing metrics…", max_entries=64)
def _evaluate(key: RunKey) -> metrics.Evaluation:
    return runcache.evaluation(load_run(key))


@st.cache_resource(show_spinner="Comparing…", max_entries=16)
def _compare(key_a: RunKey, key_b: RunKey) -> metrics.Comparison:
    return runcache.comparison(load_run(key_a), load_run(key_b))


def evaluation(run: artifacts.Run) -> metrics.Evaluation:
    """The run's metrics, confusion matrix and ROC curves (kept with the run; shared)."""
    return _evaluate(run_key(run))


def comparison(run_a: artifacts.Run, run_b: artifacts.Run) -> metrics.Comparison:
    """The paired comparison (McNemar, bootstrap CI) of two runs on the same test set (kept in
    the first run's cache; shared)."""
    return _compare(run_key(run_a), run_key(run_b))


@st.cache_resource(show_spinner=False, max_entries=16)
def _architecture(key: RunKey) -> runcache.Architecture:
    run = load_run(key)
    return runcache.architecture(run, lambda: predictor(run))


def architecture(run: artifacts.Run) -> runcache.Architecture:
    """The run's layer table, layer graph and parameter count (kept with the run: showing them
    loads no model; shared)."""
    return _architecture(run_key(run))


@st.cache_resource(show_spinner="Loading the Fashion-MNIST test set…")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    """The real test images (10000, 28, 28) uint8 and labels, read once per server."""
    data = load_dataset(allow_download=False, test_only=True)
    return data.x_test, data.y_test


@st.cache_data(show_spinner=False, max_entries=4096)
def test_image_png(index: int) -> bytes:
    """Test image ``index`` as a 28 px PNG (encoded once per server; ``image_grid`` enlarges
    it in the browser)."""
    x_test, _ = test_set()
    return image_png(x_test[index], scale=1)


@st.cache_resource(show_spinner=False, max_entries=256)
def test_images_png(indices: tuple[int, ...]) -> tuple[bytes, ...]:
    """``test_image_png`` of each of ``indices``, one cache look-up for a gallery page (24
    look-ups cost a fifth of a gallery click's script time); shared, immutable bytes."""
    return tuple(test_image_png(int(index)) for index in indices)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _predictor(key: RunKey):
    from core.predict import load_predictor

    return load_predictor(load_run(key))


def predictor(run: artifacts.Run):
    """The run's model for fast inference (``core.predict.load_predictor``: one ONNX Runtime
    session per run and server, shared by every script thread; numpy for runs without
    ``model.onnx``)."""
    return _predictor(run_key(run))


def predictor_cache_clear() -> None:
    """Forget the loaded models (the next ``predictor`` call loads them again)."""
    _predictor.clear()
