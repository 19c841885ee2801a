"""core.figures' accuracy-coverage and precision-recall figures hold exactly what they are given."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import figures, metrics, roc, selective
from core.data import CLASS_NAMES, NUM_CLASSES
from core.models import MODEL_NAMES, model_color, model_label


def make_prob(seed: int, n: int = 300, skill: float = 1.0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, NUM_CLASSES, n)
    prob = rng.dirichlet(np.full(NUM_CLASSES, 0.5), size=n)
    prob[np.arange(n), y_true] += skill
    return y_true, prob / prob.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def predictions():
    return {name: make_prob(seed, skill=1.0 + seed) for seed, name in enumerate(MODEL_NAMES)}


@pytest.fixture(scope="module")
def curves(predictions):
    return {name: selective.risk_coverage(*p) for name, p in predictions.items()}


def test_accuracy_coverage_figure_overlays_the_models(curves):
    points = {name: selective.abstain(curve, 0.6) for name, curve in curves.items()}
    fig = figures.accuracy_coverage_figure(curves, points)
    assert len(fig.data) == 2 * len(curves)
    for name, curve in curves.items():
        line, marker = [t for t in fig.data if t.legendgroup == name]
        assert line.name == f"{model_label(name)} (AURC {curve.aurc:.4f})"
        np.testing.assert_array_equal(line.x, curve.coverage)
        np.testing.assert_array_equal(line.y, curve.accuracy)
        assert line.line.color == marker.marker.color == model_color(name)
        assert list(marker.x) == [points[name].coverage]
        assert list(marker.y) == [points[name].accuracy]
        assert marker.name == f"{model_label(name)} at ≥ 60% confidence"
    low = min(c.overall_accuracy for c in curves.values())
    assert fig.layout.yaxis.range[0] < low and fig.layout.yaxis.range[1] >= 1


def test_accuracy_coverage_figure_without_points_or_with_none_answered(curves):
    assert len(figures.accuracy_coverage_figure(curves).data) == len(curves)
    nothing = {name: selective.Abstention(0.99, 0, c.n, math.nan) for name, c in curves.items()}
    assert len(figures.accuracy_coverage_figure(curves, nothing).data) == len(curves)
    named = figures.accuracy_coverage_figure(curves, names=["A", "B"])
    assert [t.name.split(" (")[0] for t in named.data] == ["A", "B"]


def test_pr_figure_holds_each_models_curve(predictions):
    k = CLASS_NAMES.index("Shirt")
    curves = {
        name: roc.pr_curves(*metrics.check_predictions(*p))[k] for name, p in predictions.items()
    }
    fig = figures.pr_figure(curves, "Shirt")
    assert len(fig.data) == len(curves)
    for name, curve in curves.items():
        (trace,) = [t for t in fig.data if t.legendgroup == name]
        assert trace.name == f"{model_label(name)} (AP {curve.ap:.3f})"
        np.testing.assert_array_equal(trace.x, curve.recall)
        np.testing.assert_array_equal(trace.y, curve.precision)
        np.testing.assert_array_equal(trace.customdata[:-1], curve.thresholds)
    (chance,) = fig.layout.shapes
    assert chance.y0 == chance.y1 == pytest.approx(next(iter(curves.values())).prevalence)
    assert "Shirt" in fig.layout.title.text
    missing = roc.PrCurve(np.array([0.1, 1.0]), np.array([1.0, 0.0]), np.ones(1), math.nan)
    assert "AP n/a" in figures.pr_figure({"baseline": missing}, "Bag").data[0].name
