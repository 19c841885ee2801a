"""core.figures: each figure holds exactly the computed numbers it was given, in model colours."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from core import figures, metrics, roc
from core.data import CLASS_NAMES, NUM_CLASSES
from core.models import MODEL_NAMES, model_color, model_label

ROOT = Path(__file__).resolve().parents[1]
N = 500


def make_prob(rng: np.random.Generator, y_true: np.ndarray, skill: float) -> np.ndarray:
    """Random probabilities (n, 10) pushed towards the true class by ``skill``."""
    prob = rng.dirichlet(np.full(NUM_CLASSES, 0.5), size=len(y_true))
    prob[np.arange(len(y_true)), y_true] += skill
    return prob / prob.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def y_true() -> np.ndarray:
    return np.random.default_rng(0).integers(0, NUM_CLASSES, N)


@pytest.fixture(scope="module")
def probs(y_true) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"baseline": make_prob(rng, y_true, 0.5), "residual": make_prob(rng, y_true, 0.9)}


@pytest.fixture(scope="module")
def evaluations(y_true, probs) -> dict[str, metrics.Evaluation]:
    return {name: metrics.evaluate(y_true, prob) for name, prob in probs.items()}


def heatmap(fig: go.Figure) -> go.Heatmap:
    (trace,) = [t for t in fig.data if isinstance(t, go.Heatmap)]
    return trace


def overlay(fig: go.Figure) -> go.Scatter:
    (trace,) = [t for t in fig.data if isinstance(t, go.Scatter) and t.customdata is not None]
    return trace


def trace_color(trace) -> str:
    return trace.marker.color if isinstance(trace, go.Bar) else trace.line.color


def model_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if t.legendgroup in MODEL_NAMES]


# --- colours ----------------------------------------------------------------------------------


def test_each_model_keeps_its_colour_in_every_figure(evaluations, probs):
    histories = {name: [{"epoch": 1, "loss": 0.5, "accuracy": 0.8}] for name in evaluations}
    built = [
        figures.roc_figure({n: ev.roc[3] for n, ev in evaluations.items()}, CLASS_NAMES[3]),
        figures.roc_grid_figure(evaluations),
        figures.f1_bars_figure({n: ev.per_class for n, ev in evaluations.items()}),
        figures.training_curves_figure(histories),
        figures.probability_figure({n: p[0] for n, p in probs.items()}),
    ]
    for fig in built:
        traces = model_traces(fig)
        assert {t.legendgroup for t in traces} == set(evaluations)
        for trace in traces:
            assert trace_color(trace) == model_color(trace.legendgroup)


# --- confusion --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_confusion_heatmap_holds_the_matrix(evaluations, name):
    confusion = evaluations[name].confusion
    fig = figures.confusion_figure(confusion, name)
    np.testing.assert_array_equal(np.asarray(heatmap(fig).z), confusion)
    # Row 0 (T-shirt) at the top: y axis reversed, class names as tick labels.
    assert tuple(fig.layout.yaxis.range) == (9.5, -0.5)
    assert tuple(fig.layout.xaxis.range) == (-0.5, 9.5)
    assert tuple(fig.layout.yaxis.ticktext) == CLASS_NAMES
    assert tuple(fig.layout.xaxis.ticktext) == CLASS_NAMES
    assert np.asarray(heatmap(fig).text)[2, 5] == f"{confusion[2, 5]:,}"


def test_confusion_normalised_by_row(evaluations):
    confusion = evaluations["baseline"].confusion
    fig = figures.confusion_figure(confusion, "baseline", normalise=True)
    z = np.asarray(heatmap(fig).z, dtype=float)
    np.testing.assert_allclose(z, confusion / confusion.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(z.sum(axis=1), 1.0)
    assert np.asarray(heatmap(fig).text)[0, 0] == f"{z[0, 0]:.1%}"


def test_confusion_normalised_keeps_empty_rows_at_zero():
    confusion = np.eye(NUM_CLASSES, dtype=int) * 5
    confusion[4, 4] = 0  # no coats at all
    z = np.asarray(heatmap(figures.confusion_figure(confusion, "t", normalise=True)).z)
    assert np.isfinite(z).all() and z[4].sum() == 0


def test_confusion_overlay_covers_every_cell(evaluations):
    confusion = evaluations["residual"].confusion
    fig = figures.confusion_figure(confusion, "residual")
    points = overlay(fig)
    assert len(points.x) == NUM_CLASSES * NUM_CLASSES
    customdata = points.customdata
    # Plain lists, not a numpy array (which would reach the page as a dict).
    assert all(type(cell) is list and all(type(v) is int for v in cell) for cell in customdata)
    cells = {tuple(cell) for cell in customdata}
    assert cells == {(t, p) for t in range(NUM_CLASSES) for p in range(NUM_CLASSES)}
    # Each marker sits on its own cell: x = predicted, y = true.
    assert all(
        x == p and y == t for x, y, (t, p) in zip(points.x, points.y, customdata, strict=True)
    )
    assert points.marker.opacity == 0 and points.marker.symbol == "square"
    assert points.marker.size >= 30
    assert fig.layout.clickmode == "event+select"
    t, p = 6, 0
    hover = points.text[customdata.index([t, p])]
    assert CLASS_NAMES[t] in hover and CLASS_NAMES[p] in hover and f"{confusion[t, p]:,}" in hover


def test_confusion_outlines_the_selected_cell(evaluations):
    confusion = evaluations["baseline"].confusion
    assert not figures.confusion_figure(confusion, "t").layout.shapes
    fig = figures.confusion_figure(confusion, "t", selected=(6, 0))
    assert fig.layout.shapes
    for shape in fig.layout.shapes:
        assert (shape.x0, shape.x1, shape.y0, shape.y1) == (-0.5, 0.5, 5.5, 6.5)
    with pytest.raises(ValueError, match=r"must lie in 0\.\.9"):
        figures.confusion_figure(confusion, "t", selected=(10, 0))


def test_matrices_keep_the_square_plot_area_the_outline_rule_assumes(evaluations):
    """``widgets.charts.outline_css`` places the picked cell's outline from these constants:
    the figures must be drawn with exactly these margins and heights, square cells and fixed
    ranges (where that lands on the drawn cells, the browser tests check)."""
    from core.figures import confusion as matrices

    conf = evaluations["baseline"].confusion
    for fig, margin, height in (
        (figures.confusion_figure(conf, "t"), matrices.MATRIX_MARGIN, matrices.MATRIX_HEIGHT),
        (figures.confusion_difference_figure(conf, conf, "baseline", "residual"),
         matrices.DIFFERENCE_MARGIN, matrices.DIFFERENCE_HEIGHT),
    ):  # fmt: skip
        assert {k: getattr(fig.layout.margin, k) for k in "lrtb"} == margin
        assert fig.layout.height == height
        assert fig.layout.yaxis.scaleanchor == "x"
        assert fig.layout.xaxis.constrain == fig.layout.yaxis.constrain == "domain"
        assert list(fig.layout.xaxis.range) == [-0.5, NUM_CLASSES - 0.5]
        assert list(fig.layout.yaxis.range) == [NUM_CLASSES - 0.5, -0.5]


def test_outline_rule_names_its_chart_and_cell():
    from widgets.charts import outline_css

    rule = outline_css("confusion_chart_baseline_chart", (6, 0))
    assert rule.startswith(".st-key-confusion_chart_baseline_chart .svg-container::after{")
    assert "+ 0 * min(" in rule and "+ 6 * min(" in rule  # column 0, row 6
    assert outline_css("k", (6, 0)) != outline_css("k", (6, 0), difference=True)
    with pytest.raises(ValueError, match="not a cell"):
        outline_css("k", (10, 0))


def test_confusion_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(10, 10\)"):
        figures.confusion_figure(np.zeros((3, 3)), "t")


@pytest.mark.parametrize(
    "event, expected",
    [
        ({"selection": {"points": [{"customdata": [3, 7], "x": 7, "y": 3}]}}, (3, 7)),
        ({"selection": {"points": [{"customdata": {"0": 3, "1": 7}}]}}, (3, 7)),
        ({"selection": {"points": [{"customdata": {"1": 7, "0": 3}}]}}, (3, 7)),
        ({"selection": {"points": [{"x": 7, "y": 3}]}}, (3, 7)),
        ({"selection": {"points": []}}, None),
        ({"selection": {"points": [], "box": [], "lasso": []}}, None),
        ({}, None),
        (None, None),
        ({"selection": {"points": [{"customdata": [3, 12]}]}}, None),
        ({"selection": {"points": [{"customdata": "only_a"}]}}, None),
    ],
)
def test_selected_cell(event, expected):
    assert figures.selected_cell(event) == expected


def test_selected_cell_reads_attribute_style_events():
    class Event:  # Streamlit's PlotlyState also answers attribute access
        selection = SimpleNamespace(points=({"customdata": [1, 2]},))

        def __getitem__(self, key):
            raise KeyError(key)

    assert figures.selected_cell(Event()) == (1, 2)


def test_difference_figure_is_b_minus_a_centred_at_zero(evaluations):
    a, b = evaluations["baseline"].confusion, evaluations["residual"].confusion
    fig = figures.confusion_difference_figure(a, b, "baseline", "residual")
    trace = heatmap(fig)
    np.testing.assert_array_equal(np.asarray(trace.z), b - a)
    assert trace.zmid == 0
    assert len(overlay(fig).customdata) == NUM_CLASSES * NUM_CLASSES
    assert fig.layout.clickmode == "event+select"
    explained = fig.layout.title.text + fig.layout.title.subtitle.text
    assert "diagonal" in explained and "Residual CNN" in explained


# --- ROC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("zoom", [False, True])
def test_roc_figure(evaluations, zoom):
    k = 6
    curves = {name: ev.roc[k] for name, ev in evaluations.items()}
    fig = figures.roc_figure(curves, CLASS_NAMES[k], zoom=zoom)
    assert len(fig.data) == len(curves) + 1
    (chance,) = [t for t in fig.data if t.name == "chance"]
    assert list(chance.x) == [0, 1] and list(chance.y) == [0, 1]
    for name, curve in curves.items():
        (trace,) = [t for t in fig.data if t.legendgroup == name]
        assert trace.name == f"{model_label(name)} (AUC {curve.auc:.3f})"
        np.testing.assert_array_equal(trace.x, curve.fpr)
        np.testing.assert_array_equal(trace.y, curve.tpr)
    assert CLASS_NAMES[k] in fig.layout.title.text
    x_range, y_range = fig.layout.xaxis.range, fig.layout.yaxis.range
    if zoom:
        assert x_range[1] == pytest.approx(0.2) and y_range[0] == pytest.approx(0.8)
        assert x_range[0] <= 0 and y_range[1] >= 1
    else:
        assert x_range[1] == pytest.approx(1) and y_range[0] == pytest.approx(0)


def test_roc_figure_names_a_missing_auc():
    curve = roc.RocCurve(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.ones(2), float("nan"))
    fig = figures.roc_figure({"baseline": curve}, "Bag")
    assert "AUC n/a" in fig.data[1].name


def test_roc_grid(evaluations):
    fig = figures.roc_grid_figure(evaluations)
    assert len(fig.data) == NUM_CLASSES * len(evaluations)
    axes = {(t.xaxis, t.yaxis) for t in fig.data}
    assert len(axes) == NUM_CLASSES
    assert sum(bool(t.showlegend) for t in fig.data) == len(evaluations)  # legend only once
    titles = [a.text for a in fig.layout.annotations]
    for k, class_name in enumerate(CLASS_NAMES):
        (title,) = [t for t in titles if t.startswith(class_name + "<br>")]
        for name, ev in evaluations.items():
            color = model_color(name)
            assert f"<span style='color:{color}'>{ev.roc[k].auc:.3f}</span>" in title
    for name, ev in evaluations.items():
        traces = [t for t in fig.data if t.legendgroup == name]
        for k, trace in enumerate(traces):
            np.testing.assert_array_equal(trace.y, ev.roc[k].tpr)


# --- bars -------------------------------------------------------------------------------------


def test_f1_bars_carry_the_per_class_f1(evaluations):
    per_class = {name: ev.per_class for name, ev in evaluations.items()}
    fig = figures.f1_bars_figure(per_class)
    assert fig.layout.barmode == "group"
    assert len(fig.data) == len(per_class)
    for trace in fig.data:
        assert tuple(trace.x) == CLASS_NAMES
        expected = per_class[trace.legendgroup]["f1"].iloc[:NUM_CLASSES].to_numpy()
        np.testing.assert_allclose(trace.y, expected)


def test_probability_figure(probs):
    one = {name: prob[7] for name, prob in probs.items()}
    fig = figures.probability_figure(one)
    assert len(fig.data) == 2 and fig.layout.barmode == "group"
    for trace in fig.data:
        assert trace.orientation == "h"
        assert tuple(trace.y) == CLASS_NAMES
        np.testing.assert_allclose(trace.x, one[trace.legendgroup])
    assert fig.layout.xaxis.tickformat == ".0%"
    with pytest.raises(ValueError, match="expected 10 probabilities"):
        figures.probability_figure({"baseline": np.ones(3) / 3})


# --- training curves --------------------------------------------------------------------------

HISTORY = [
    {"epoch": e, "loss": 1 / e, "accuracy": 0.8 + e / 100, "test_loss": 1.1 / e,
     "test_accuracy": 0.79 + e / 100, "seconds": 60.0}
    for e in (1, 2, 3)
]  # fmt: skip
STEPS = [
    {"epoch": e, "step": s, "total_steps": 12, "loss": 1 / s, "accuracy": 0.5 + s / 30}
    for e, s in ((1, 2), (1, 4), (2, 6), (2, 8), (3, 10), (3, 12))
]  # 4 steps per epoch, a record every 2


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_training_curves(metric):
    histories = {"baseline": HISTORY, "residual": HISTORY[:2]}
    fig = figures.training_curves_figure(histories, metric=metric)
    assert len(fig.data) == 2 * len(histories)
    for name, records in histories.items():
        train, test = [t for t in fig.data if t.legendgroup == name]
        assert list(train.x) == [r["epoch"] for r in records]
        assert list(train.y) == [r[metric] for r in records]
        assert list(test.y) == [r[f"test_{metric}"] for r in records]
        assert train.line.dash == "solid" and test.line.dash == "dash"
        assert "held-out test (monitoring only)" in test.name
        assert train.line.color == test.line.color == model_color(name)
    assert fig.layout.xaxis.title.text == "epoch"


def test_training_curves_steps_at_fractional_epochs():
    fig = figures.training_curves_figure({"baseline": HISTORY}, steps={"baseline": STEPS})
    (steps,) = [t for t in fig.data if "per step" in t.name]
    np.testing.assert_allclose(steps.x, [0.5, 1, 1.5, 2, 2.5, 3])  # inferred: 4 steps an epoch
    assert list(steps.y) == [r["accuracy"] for r in STEPS]
    assert steps.line.width < fig.data[0].line.width
    assert steps.line.color == model_color("baseline")
    # Given explicitly, per model or for all, it wins; one epoch alone cannot be inferred.
    for given in (8, {"baseline": 8}):
        fig = figures.training_curves_figure({}, steps={"baseline": STEPS}, steps_per_epoch=given)
        np.testing.assert_allclose(fig.data[0].x, [r["step"] / 8 for r in STEPS])
    with pytest.raises(ValueError, match="pass steps_per_epoch"):
        figures.training_curves_figure({}, steps={"baseline": STEPS[:2]})
    first_epoch = figures.training_curves_figure(
        {}, steps={"baseline": STEPS[:2]}, steps_per_epoch=4
    )
    np.testing.assert_allclose(first_epoch.data[0].x, [0.5, 1])


def test_training_curves_references_and_metric_check():
    references = {"report, baseline": 0.9122, "report, residual": 0.9220}
    fig = figures.training_curves_figure({"baseline": HISTORY}, references=references)
    lines = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert sorted(s.y0 for s in lines) == [0.9122, 0.9220]
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "report, baseline" in texts and "report, residual" in texts
    with pytest.raises(ValueError, match="metric must be one of"):
        figures.training_curves_figure({"baseline": HISTORY}, metric="f1")


# --- agreement --------------------------------------------------------------------------------


def test_agreement_figure(y_true, probs):
    comparison = metrics.compare(y_true, probs["baseline"], probs["residual"], n_resamples=200)
    agreement = comparison.agreement
    fig = figures.agreement_figure(agreement, "baseline", "residual", selected="only_b")
    points = overlay(fig)
    assert sorted(points.customdata) == sorted(metrics.AGREEMENT_PARTS)
    assert fig.layout.clickmode == "event+select"
    text = np.asarray(heatmap(fig).text)
    # Rows: A right / wrong; columns: B right / wrong.
    layout = [["both_right", "only_a"], ["only_b", "both_wrong"]]
    for row in range(2):
        for col in range(2):
            part = layout[row][col]
            assert f"<b>{agreement[part]:,}</b>" in text[row, col]
            i = list(points.customdata).index(part)
            assert (points.x[i], points.y[i]) == (col, row)
    assert {(s.x0, s.y0) for s in fig.layout.shapes} == {(-0.5, 0.5)}  # only_b: row 1, col 0
    with pytest.raises(ValueError, match="agreement lacks"):
        figures.agreement_figure({"both_right": 1}, "baseline", "residual")


@pytest.mark.parametrize(
    "event, expected",
    [
        ({"selection": {"points": [{"customdata": "only_a"}]}}, "only_a"),
        ({"selection": {"points": [{"customdata": ["both_wrong"]}]}}, "both_wrong"),
        ({"selection": {"points": [{"customdata": {"0": "only_b"}}]}}, "only_b"),
        ({"selection": {"points": []}}, None),
        ({"selection": {"points": [{"customdata": "nonsense"}]}}, None),
        (None, None),
    ],
)
def test_selected_part(event, expected):
    assert figures.selected_part(event) == expected


# --- images -----------------------------------------------------------------------------------


def decode_source(source: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert source.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source[len(prefix) :]))))


def test_sample_grid_places_each_image_crisply():
    images = np.random.default_rng(2).integers(0, 256, (13, 28, 28), dtype=np.uint8)
    labels = [f"#{i}" for i in range(13)]
    fig = figures.sample_grid_figure(images, labels, columns=5)
    (image,) = [t for t in fig.data if isinstance(t, go.Image)]
    assert image.zsmooth is False
    canvas = decode_source(image.source)  # (rows * row_px, 5 * 32 - 4)
    assert canvas.shape[1] == 5 * 28 + 4 * 4
    row_px = canvas.shape[0] // 3
    for i, original in enumerate(images):
        top, left = (i // 5) * row_px, (i % 5) * 32
        np.testing.assert_array_equal(canvas[top : top + 28, left : left + 28], original)
    captions = [a.text for a in fig.layout.annotations]
    assert captions == labels
    with pytest.raises(ValueError, match="13 images but 2 labels"):
        figures.sample_grid_figure(images, labels[:2])
    with pytest.raises(ValueError, match="must be uint8"):
        figures.sample_grid_figure(images / 255, labels)
    assert not [t for t in figures.sample_grid_figure(images[:0], []).data]


@pytest.mark.parametrize("scale", [1, 4])
def test_image_png_replicates_pixels(scale):
    pixels = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    png = figures.image_png(pixels, scale=scale)
    assert png.startswith(b"\x89PNG")
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    assert decoded.shape == (28 * scale, 28 * scale)
    expected = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    np.testing.assert_array_equal(decoded, expected)


def test_image_png_takes_floats_in_unit_range():
    pixels = np.random.default_rng(4).integers(0, 256, (28, 28), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(figures.image_png(pixels / 255.0, scale=2))))
    np.testing.assert_array_equal(decoded[::2, ::2], pixels)
    with pytest.raises(ValueError, match=r"float pixels must lie in \[0, 1\]"):
        figures.image_png(pixels.astype(float))
    with pytest.raises(ValueError, match="2-D grayscale"):
        figures.image_png(np.zeros((28, 28, 3), dtype=np.uint8))


# --- import cost ------------------------------------------------------------------------------


def test_import_needs_no_tensorflow_or_streamlit():
    code = (
        "import sys, core.figures; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
