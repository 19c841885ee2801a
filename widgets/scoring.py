"""Streamlit helpers for one run's scores beyond the confusion matrix, as the ROC &
calibration page shows them: calibration, abstaining (accuracy against coverage, top-k) and
precision-recall curves, each computed once per run and cached (``cached.run_key``).

The maths lives in ``core.calibration``, ``core.selective`` and ``core.roc``. No TensorFlow.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import artifacts, calibration, metrics, roc, selective
from widgets import cached

# --- calibration -------------------------------------------------------------------------------


@st.cache_data(show_spinner="Checking calibration…", max_entries=16)
def _calibrate(key: cached.RunKey) -> calibration.Calibration:
    run = cached.load_run(key)
    return calibration.calibrate(run.y_true, run.y_prob)


def calibrate(run: artifacts.Run) -> calibration.Calibration:
    """Cached reliability bins, class-wise ECE and confident mistakes of one run."""
    return _calibrate(cached.run_key(run))


# --- abstaining and precision-recall ------------------------------------------------------------


@st.cache_data(show_spinner="Ranking by confidence…", max_entries=16)
def _risk_coverage(key: cached.RunKey) -> selective.RiskCoverage:
    run = cached.load_run(key)
    return selective.risk_coverage(run.y_true, run.y_prob)


@st.cache_data(show_spinner=False, max_entries=16)
def _top_k_accuracy(key: cached.RunKey) -> np.ndarray:
    run = cached.load_run(key)
    return selective.top_k_accuracy(run.y_true, run.y_prob)


@st.cache_data(show_spinner="Computing precision-recall curves…", max_entries=16)
def _pr_curves(key: cached.RunKey) -> tuple[roc.PrCurve, ...]:
    run = cached.load_run(key)
    return roc.pr_curves(*metrics.check_predictions(run.y_true, run.y_prob))


def risk_coverage(run: artifacts.Run) -> selective.RiskCoverage:
    """Cached accuracy-coverage curve and AURC of one run (``core.selective``)."""
    return _risk_coverage(cached.run_key(run))


def top_k_accuracy(run: artifacts.Run) -> np.ndarray:
    """Cached top-1/2/3 accuracy of one run, shape (3,)."""
    return _top_k_accuracy(cached.run_key(run))


def pr_curves(run: artifacts.Run) -> tuple[roc.PrCurve, ...]:
    """Cached one-vs-rest precision-recall curve and average precision of each class."""
    return _pr_curves(cached.run_key(run))
