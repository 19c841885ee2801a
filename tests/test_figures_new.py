"""core.figures, calibration and seed figures: each holds exactly the numbers it was given."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from core import calibration, figures, seeds
from core.artifacts import Run
from core.data import NUM_CLASSES
from core.figures.style import NEUTRAL
from core.models import model_color, model_label
from core.published import ACCURACY_REFERENCES
from tests import seedtools

NAMES = {"baseline": "Baseline CNN", "residual": "Residual CNN"}


def make_prob(rng, y_true, skill):
    prob = rng.dirichlet(np.full(NUM_CLASSES, 0.5), size=len(y_true))
    prob[np.arange(len(y_true)), y_true] += skill
    return prob / prob.sum(axis=1, keepdims=True)


def fake_run(model, seed, skill, history=()):
    rng = np.random.default_rng(100 * seed + len(model))
    y_true = rng.integers(0, NUM_CLASSES, 200)
    manifest = seedtools.manifest(
        model, f"s{seed}", seed, seedtools.history(np.random.default_rng(0)),
        {"n": 200, "accuracy": 0.0, "loss": 0.0},
    )  # fmt: skip
    return Run(
        model, f"s{seed}", Path("/nonexistent"), manifest, list(history),
        y_true, make_prob(rng, y_true, skill).astype(np.float32),
    )  # fmt: skip


def by_name(fig: go.Figure) -> dict[str, go.BaseTraceType]:
    names = [t.name for t in fig.data]
    assert len(names) == len(set(names)), f"trace names repeat: {names}"
    return {t.name: t for t in fig.data}


# --- reliability ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reliabilities():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, NUM_CLASSES, 800)
    return {
        "baseline": calibration.reliability(y_true, make_prob(rng, y_true, 0.6)),
        "residual": calibration.reliability(y_true, make_prob(rng, y_true, 1.2), bins=10),
    }


def test_reliability_figure_holds_the_bins(reliabilities):
    fig = figures.reliability_figure(reliabilities)
    traces = by_name(fig)
    diagonal = traces["perfectly calibrated"]
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    for name, rel in reliabilities.items():
        label = model_label(name)
        line = traces[f"{label} (ECE {rel.ece:.1%})"]
        filled = rel.counts > 0
        np.testing.assert_allclose(line.x, rel.confidence[filled])
        np.testing.assert_allclose(line.y, rel.accuracy[filled])
        assert [c[0] for c in line.customdata] == rel.counts[filled].tolist()
        assert line.line.color == model_color(name)
        bars = traces[f"{label}: images per bin"]
        assert isinstance(bars, go.Bar) and list(bars.y) == rel.counts.tolist()
        np.testing.assert_allclose(bars.x, (rel.edges[:-1] + rel.edges[1:]) / 2)
        assert bars.marker.color == model_color(name) and bars.yaxis == "y2"
    assert fig.layout.yaxis2.type == "log"
    assert "over-confident" in fig.layout.title.subtitle.text


def test_reliability_figure_takes_names_as_mapping_or_list(reliabilities):
    labels = {"baseline": "Model A"}
    names = {t.name for t in figures.reliability_figure(reliabilities, labels).data}
    assert any(n.startswith("Model A (ECE") for n in names)
    assert any(n.startswith("Residual CNN (ECE") for n in names)
    names = {t.name for t in figures.reliability_figure(reliabilities, ["A", "B"]).data}
    assert any(n.startswith("B (ECE") for n in names)
    with pytest.raises(ValueError, match="2 results but 1 names"):
        figures.reliability_figure(reliabilities, ["A"])


# --- seeds ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def summaries():
    return {
        "baseline": seeds.summarize({s: fake_run("baseline", s, 0.5) for s in range(4)}),
        "residual": seeds.summarize({s: fake_run("residual", s, 0.8) for s in (0, 1, 2, 5, 7)}),
    }


@pytest.mark.parametrize("metric", ["accuracy", "loss", "macro_f1"])
def test_seed_metric_figure_points_and_mean_std(summaries, metric):
    fig = figures.seed_metric_figure(summaries, NAMES, metric=metric)
    traces = by_name(fig)
    for name, summary in summaries.items():
        points = traces[f"{NAMES[name]}: each seed"]
        assert list(points.y) == pytest.approx(summary.per_seed[metric].tolist())
        assert list(points.customdata) == list(summary.seeds)
        mean = traces[f"{NAMES[name]}: mean ± std of {summary.n} seeds"]
        assert list(mean.y) == pytest.approx([summary.mean(metric)])
        assert list(mean.error_y.array) == pytest.approx([summary.std(metric)])
        assert mean.error_y.visible is True
        assert points.marker.color == mean.marker.color == model_color(name)
    assert list(fig.layout.xaxis.ticktext) == list(NAMES.values())
    assert fig.layout.yaxis.title.text == figures.SEED_METRIC_LABELS[metric]
    assert not fig.layout.shapes  # no references asked for


def test_seed_metric_figure_with_references(summaries):
    refs = ACCURACY_REFERENCES
    fig = figures.seed_metric_figure(summaries, metric="accuracy", references=refs)
    lines = {s.name: s for s in fig.layout.shapes}
    assert set(lines) == set(refs)
    for label, value in refs.items():
        assert lines[label].y0 == lines[label].y1 == value and lines[label].line.dash == "dot"
    texts = [a.text for a in fig.layout.annotations]
    assert "Report: Baseline CNN: 91.22%" in texts and "Report: Residual CNN: 92.2%" in texts
    assert "Humans, crowd-sourced (Fashion-MNIST README): 83.5%" in texts
    assert fig.layout.yaxis.tickformat == ".1%"


def test_seed_metric_figure_class_f1_and_one_seed(summaries):
    fig = figures.seed_metric_figure(summaries, metric="Shirt")
    points = by_name(fig)["Baseline CNN: each seed"]
    assert list(points.y) == pytest.approx(summaries["baseline"].per_class_f1["Shirt"].tolist())
    assert fig.layout.yaxis.title.text == "F1 of Shirt"
    one = {"residual": seeds.summarize({3: fake_run("residual", 3, 0.8)})}
    fig = figures.seed_metric_figure(one)
    mean = by_name(fig)["Residual CNN: mean ± std of 1 seed"]
    assert mean.error_y.visible is False
    assert "spread cannot be estimated" in fig.layout.title.subtitle.text
    with pytest.raises(ValueError, match="metric must be one of"):
        figures.seed_metric_figure(summaries, metric="auc")


def history(values):
    return [
        {
            "epoch": e + 1,
            "loss": 1 - v,
            "accuracy": v,
            "test_loss": 1.1 - v,
            "test_accuracy": v - 0.01,
        }
        for e, v in enumerate(values)
    ]


def test_seed_curves_figure_mean_lines_and_bands():
    curves = {
        "baseline": seeds.curves(
            [fake_run("baseline", s, 0.5, history(v)) for s, v in enumerate([[0.80, 0.85, 0.88],
                                                                              [0.82, 0.86, 0.87]])]
        ),
        "residual": seeds.curves([fake_run("residual", 0, 0.5, history([0.81, 0.87, 0.9]))]),
    }  # fmt: skip
    fig = figures.seed_curves_figure(curves, NAMES, metric="accuracy")
    traces = by_name(fig)
    frame = curves["baseline"]
    train = traces["Baseline CNN: train (mean of 2 seeds)"]
    test = traces["Baseline CNN: held-out test (mean of 2 seeds)"]
    assert list(train.x) == [1, 2, 3] and train.line.dash == "solid" and test.line.dash == "dash"
    np.testing.assert_allclose(train.y, [0.81, 0.855, 0.875])
    np.testing.assert_allclose(test.y, frame["test_accuracy_mean"])
    band = traces["Baseline CNN: train ± 1 std"]
    mean, std = frame["accuracy_mean"].to_numpy(), frame["accuracy_std"].to_numpy()
    assert list(band.x) == [1, 2, 3, 3, 2, 1] and band.fill == "toself"
    np.testing.assert_allclose(band.y, np.r_[mean + std, (mean - std)[::-1]])
    assert "Baseline CNN: held-out test ± 1 std" in traces
    # One seed: lines but no band.
    assert "Residual CNN: train (mean of 1 seed)" in traces
    assert not any(n.startswith("Residual CNN") and "std" in n for n in traces)
    assert train.line.color == model_color("baseline")
    loss = figures.seed_curves_figure(curves, metric="loss")
    np.testing.assert_allclose(
        by_name(loss)["Baseline CNN: train (mean of 2 seeds)"].y, frame["loss_mean"]
    )
    with pytest.raises(ValueError, match="metric must be one of"):
        figures.seed_curves_figure(curves, metric="f1")


# --- references -------------------------------------------------------------------------------


def annotation_layout(fig):
    """(value, side, direction) per reference line, lowest first."""
    return sorted((a.y, a.xanchor, a.yanchor) for a in fig.layout.annotations)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_reference_labels_are_staggered(count):
    values = [0.90 + 0.004 * i for i in range(count)]  # close lines, the hard case
    refs = {f"line {i}": v for i, v in enumerate(values)}
    fig = figures.add_reference_lines(go.Figure(), refs)
    assert len(fig.layout.shapes) == count and len(fig.layout.annotations) == count
    placed = annotation_layout(fig)
    # Neighbours sit on opposite sides.
    for (_, side_low, _), (_, side_high, _) in pairwise(placed):
        assert side_low != side_high
    # Every label above its line (yanchor "bottom"): two labels on one side never face each
    # other across the gap between their lines, and none runs into the axis under the lowest.
    assert all(direction == "bottom" for _, _, direction in placed)
    if count == 3:
        assert [side for _, side, _ in placed] == ["left", "right", "left"]


def test_reference_line_colours():
    fig = figures.add_reference_lines(go.Figure(), ACCURACY_REFERENCES)
    colours = {s.name: s.line.color for s in fig.layout.shapes}
    assert colours["Report: Baseline CNN"] == model_color("baseline")
    assert colours["Report: Residual CNN"] == model_color("residual")
    assert colours["Humans, crowd-sourced (Fashion-MNIST README)"] == NEUTRAL
    fig = figures.add_reference_lines(go.Figure(), {"x": 0.5}, colors={"x": "#123456"})
    assert fig.layout.shapes[0].line.color == "#123456"
    assert fig.layout.annotations[0].text == "x: 50%"
    plain = figures.add_reference_lines(go.Figure(), {"loss": 0.2574}, percent=False)
    assert plain.layout.annotations[0].text == "loss: 0.2574"
