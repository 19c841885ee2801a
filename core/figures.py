"""Plotly figures of computed results; no metric maths here, only layout.

Every builder takes what ``core.metrics`` (or the run store) already computed and returns a
``plotly.graph_objects.Figure``. Each model keeps one colour in every figure (``model_color``),
colour-blind safe (Okabe & Ito). Heatmaps that the pages make clickable carry an invisible
scatter of square markers over their cells, because Streamlit reports no selection for clicks on
a heatmap itself; the page passes ``on_select="rerun", selection_mode="points"`` to
``st.plotly_chart`` and reads the click back with ``selected_cell`` or ``selected_part``.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data import CLASS_NAMES, NUM_CLASSES
from core.metrics import AGREEMENT_PARTS, Evaluation, RocCurve
from core.models import MODEL_NAMES, REGISTRY
from core.report import REPORT

if TYPE_CHECKING:
    from core.calibration import Reliability
    from core.seeds import SeedSummary

# Okabe & Ito (2008), distinguishable with every common colour-vision deficiency.
MODEL_COLORS: dict[str, str] = {"baseline": "#0072B2", "residual": "#E69F00"}
_MORE_COLORS = ("#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
NEUTRAL = "#7F7F7F"
FONT = {"family": "Source Sans Pro, Segoe UI, Helvetica, Arial, sans-serif", "size": 13}
HOVER_LABEL = {"bgcolor": "white", "font": {"color": "#262730"}}
CELL_PX = 44  # marker size of the click overlay: about one confusion cell at the default height
METRICS = ("accuracy", "loss")


# --- shared helpers ---------------------------------------------------------------------------


def model_color(name: str) -> str:
    """The one colour of a model in every figure; registry names beyond the first two get more."""
    if name in MODEL_COLORS:
        return MODEL_COLORS[name]
    by_display = {spec.display_name: key for key, spec in REGISTRY.items()}
    if name in by_display:
        return model_color(by_display[name])
    others = [key for key in MODEL_NAMES if key not in MODEL_COLORS]
    if name in others:
        return _MORE_COLORS[others.index(name) % len(_MORE_COLORS)]
    # An unregistered name still gets the same colour on every call (str hash is salted).
    return _MORE_COLORS[sum(name.encode()) % len(_MORE_COLORS)]


def model_label(name: str) -> str:
    """The registry's display name ("Residual CNN") of a model name; other names unchanged."""
    return REGISTRY[name].display_name if name in REGISTRY else name


def _apply_layout(fig: go.Figure, title: str, height: int, subtitle: str | None = None, **layout):
    """Fonts, margins, template and legend shared by every figure."""
    title_spec: dict = {"text": title, "x": 0, "xanchor": "left"}
    if subtitle:
        title_spec["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": "#555"}}
    fig.update_layout(
        title=title_spec,
        height=height,
        template="plotly_white",
        font=FONT,
        margin={"l": 10, "r": 10, "t": 90 if subtitle else 60, "b": 10},
        # Below everything, in the figure's own margin: long legends never cover the title.
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
        hoverlabel=HOVER_LABEL,
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    fig.update_layout(**layout)
    return fig


def _click_overlay(x: list, y: list, customdata: list, hovertext: list[str], size: float):
    """Invisible square markers over heatmap cells: clicks on them reach Streamlit as points."""
    invisible = {"marker": {"opacity": 0}}
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        marker={"symbol": "square", "size": size, "color": "#444444", "opacity": 0},
        # A plain list: a numpy array would reach the page as a dict keyed "0", "1".
        customdata=customdata,
        text=hovertext,
        hovertemplate="%{text}<extra></extra>",
        selected=invisible,
        unselected=invisible,
        showlegend=False,
        name="cells",
    )


def _outline_shapes(x: float, y: float, half_width: float = 0.5, half_height: float = 0.5):
    """A white-under-black rectangle that stands out on both light and dark cells."""
    box = {"type": "rect", "xref": "x", "yref": "y", "x0": x - half_width, "x1": x + half_width}
    box |= {"y0": y - half_height, "y1": y + half_height, "fillcolor": "rgba(0,0,0,0)"}
    return [
        box | {"line": {"color": "white", "width": 5}},
        box | {"line": {"color": "black", "width": 2}},
    ]


def _check_confusion(confusion) -> np.ndarray:
    confusion = np.asarray(confusion)
    if confusion.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(
            f"confusion must have shape ({NUM_CLASSES}, {NUM_CLASSES}), got {confusion.shape}"
        )
    return confusion


def _class_axes(fig: go.Figure) -> None:
    """Class names on both axes of a 10x10 matrix; true T-shirt at the top, square cells."""
    ticks = {"tickmode": "array", "tickvals": list(range(NUM_CLASSES)), "ticktext": CLASS_NAMES}
    plain = {"fixedrange": True, "showgrid": False, "zeroline": False}
    # Fixed ranges: the click overlay's big markers would otherwise pad the autorange and
    # shrink the matrix inside its figure.
    edges = [-0.5, NUM_CLASSES - 0.5]
    fig.update_xaxes(
        title="Predicted class", tickangle=-45, constrain="domain", range=edges, **plain, **ticks
    )
    fig.update_yaxes(
        title="True class",
        range=edges[::-1],  # true T-shirt at the top
        scaleanchor="x",
        constrain="domain",
        **plain,
        **ticks,
    )


def _cells() -> tuple[list[int], list[int], list[list[int]]]:
    pairs = [(t, p) for t in range(NUM_CLASSES) for p in range(NUM_CLASSES)]
    return [p for _, p in pairs], [t for t, _ in pairs], [[t, p] for t, p in pairs]


def _row_fractions(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total (a row with no images stays 0); formatting only."""
    totals = confusion.sum(axis=1, keepdims=True)  # (10, 1)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)


def _diagonal(name: str) -> go.Scatter:
    """The dashed line y = x from (0, 0) to (1, 1): chance on a ROC curve, perfect calibration."""
    return go.Scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        name=name,
        line={"color": NEUTRAL, "dash": "dash", "width": 1},
        hoverinfo="skip",
    )


def selected_points(event) -> list:
    """The selected points of a Streamlit plotly selection event (dict or attribute style)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, IndexError):
        try:
            points = event.selection.points
        except AttributeError:
            return []
    return list(points or [])


def _first_point(event) -> Mapping | None:
    """The first selected point of a Streamlit plotly selection event, or None."""
    points = selected_points(event)
    if not points:
        return None
    point = points[0]
    return point if isinstance(point, Mapping) else None


def _customdata_items(point: Mapping) -> list | None:
    data = point.get("customdata")
    if data is None:
        return None
    if isinstance(data, Mapping):  # a numpy row arrives keyed by position: {"0": .., "1": ..}
        return [data[key] for key in sorted(data, key=lambda k: int(k))]
    if isinstance(data, str):
        return [data]
    if isinstance(data, Sequence):
        return list(data)
    return [data]


# --- confusion matrices -----------------------------------------------------------------------


def confusion_figure(
    confusion: np.ndarray,
    title: str,
    normalise: bool = False,
    selected: tuple[int, int] | None = None,
) -> go.Figure:
    """Confusion heatmap, rows = true class (T-shirt at the top), columns = predicted class.

    ``normalise`` colours and labels each cell by its share of the true class's images.
    ``selected`` = (true, predicted) outlines that cell. Clicks are read with ``selected_cell``.
    """
    confusion = _check_confusion(confusion)
    fractions = _row_fractions(confusion)  # (10, 10)
    if normalise:
        z = fractions
        text = [[f"{v:.1%}" if v else "0%" for v in row] for row in fractions]
    else:
        z = confusion
        text = [[f"{int(v):,}" for v in row] for row in confusion]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(NUM_CLASSES)),
            y=list(range(NUM_CLASSES)),
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11},
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalise else None,
            showscale=False,  # every cell prints its number; the width goes to the matrix
            hoverinfo="skip",
        )
    )
    x, y, customdata = _cells()
    hover = [
        f"true: {CLASS_NAMES[t]}<br>predicted: {CLASS_NAMES[p]}<br>"
        f"images: {int(confusion[t, p]):,}<br>share of true {CLASS_NAMES[t]}: {fractions[t, p]:.1%}"
        for t, p in customdata
    ]
    fig.add_trace(_click_overlay(x, y, customdata, hover, CELL_PX))
    _class_axes(fig)
    if selected is not None:
        true_class, pred_class = _check_cell(selected)
        for shape in _outline_shapes(pred_class, true_class):
            fig.add_shape(shape)
    subtitle = "Share of each true class" if normalise else "Number of test images"
    return _apply_layout(
        fig,
        title,
        height=500,
        subtitle=subtitle + "; click a cell to see its images",
        clickmode="event+select",
        hovermode="closest",
    )


def _check_cell(cell) -> tuple[int, int]:
    true_class, pred_class = (int(v) for v in cell)
    if not (0 <= true_class < NUM_CLASSES and 0 <= pred_class < NUM_CLASSES):
        raise ValueError(f"selected cell must lie in 0..{NUM_CLASSES - 1}, got {tuple(cell)}")
    return true_class, pred_class


def selected_cell(selection_event) -> tuple[int, int] | None:
    """(true, predicted) of the clicked confusion cell in a ``st.plotly_chart`` event, or None."""
    point = _first_point(selection_event)
    if point is None:
        return None
    items = _customdata_items(point)
    if items is None or len(items) < 2:
        # Older Streamlit versions drop customdata; the overlay's x is predicted, y is true.
        if "x" not in point or "y" not in point:
            return None
        items = [point["y"], point["x"]]
    try:
        cell = (int(items[0]), int(items[1]))
    except (TypeError, ValueError):
        return None
    if not all(0 <= v < NUM_CLASSES for v in cell):
        return None
    return cell


def confusion_difference_figure(
    conf_a: np.ndarray,
    conf_b: np.ndarray,
    name_a: str,
    name_b: str,
    selected: tuple[int, int] | None = None,
) -> go.Figure:
    """Cell-by-cell ``conf_b - conf_a`` on a diverging scale centred at 0, clickable cells."""
    conf_a, conf_b = _check_confusion(conf_a), _check_confusion(conf_b)
    diff = conf_b.astype(np.int64) - conf_a.astype(np.int64)  # (10, 10)
    label_a, label_b = model_label(name_a), model_label(name_b)
    fig = go.Figure(
        go.Heatmap(
            z=diff,
            x=list(range(NUM_CLASSES)),
            y=list(range(NUM_CLASSES)),
            text=[[f"{int(v):+,}" if v else "0" for v in row] for row in diff],
            texttemplate="%{text}",
            textfont={"size": 11},
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": f"{label_b}<br>− {label_a}", "thickness": 12},
            hoverinfo="skip",
        )
    )
    x, y, customdata = _cells()
    hover = [
        f"true: {CLASS_NAMES[t]}<br>predicted: {CLASS_NAMES[p]}<br>"
        f"{label_a}: {int(conf_a[t, p]):,}<br>{label_b}: {int(conf_b[t, p]):,}<br>"
        f"difference: {int(diff[t, p]):+,}"
        for t, p in customdata
    ]
    fig.add_trace(_click_overlay(x, y, customdata, hover, CELL_PX))
    _class_axes(fig)
    if selected is not None:
        true_class, pred_class = _check_cell(selected)
        for shape in _outline_shapes(pred_class, true_class):
            fig.add_shape(shape)
    return _apply_layout(
        fig,
        f"{label_b} minus {label_a}, image counts per cell",
        height=640,
        subtitle=(
            f"On the diagonal, positive (blue) = {label_b} gets more of that class right.<br>"
            f"Off the diagonal, negative (red) = {label_b} makes fewer of those mistakes."
        ),
        clickmode="event+select",
        hovermode="closest",
    )


# --- ROC curves -------------------------------------------------------------------------------


def _auc_text(auc: float) -> str:
    return "n/a" if math.isnan(auc) else f"{auc:.3f}"


def _roc_trace(name: str, curve: RocCurve, trace_name: str, showlegend: bool = True):
    return go.Scatter(
        x=curve.fpr,
        y=curve.tpr,
        customdata=curve.thresholds,
        mode="lines",
        name=trace_name,
        legendgroup=name,
        showlegend=showlegend,
        line={"color": model_color(name), "width": 2},
        hovertemplate=(
            f"{model_label(name)}<br>false positive rate %{{x:.3f}}<br>"
            "true positive rate %{y:.3f}<br>threshold %{customdata:.3f}<extra></extra>"
        ),
    )


def roc_figure(curves: dict[str, RocCurve], class_name: str, zoom: bool = False) -> go.Figure:
    """One class's one-vs-rest ROC curve per model, AUC in the legend, with the chance line.

    ``zoom`` shows the top-left corner (false positive rate 0..0.2, true positive rate 0.8..1),
    where good classifiers differ.
    """
    fig = go.Figure(_diagonal("chance"))
    for name, curve in curves.items():
        label = f"{model_label(name)} (AUC {_auc_text(curve.auc)})"
        fig.add_trace(_roc_trace(name, curve, label))
    x_range, y_range = ([0, 0.2], [0.8, 1.0]) if zoom else ([0, 1], [0, 1.0])
    margin = 0.01 * (x_range[1] - x_range[0])  # keep curves on the frame visible
    fig.update_xaxes(
        title="False positive rate", range=[x_range[0] - margin, x_range[1]], constrain="domain"
    )
    fig.update_yaxes(
        title="True positive rate",
        range=[y_range[0], y_range[1] + margin],
        scaleanchor="x",
        constrain="domain",
    )
    title = f"ROC curve, {class_name} vs the rest" + (" (top-left corner)" if zoom else "")
    return _apply_layout(fig, title, height=520, hovermode="closest")


def roc_grid_figure(evaluations: dict[str, Evaluation]) -> go.Figure:
    """Ten small ROC plots, one per class, every model overlaid; AUCs in each subplot title."""
    titles = []
    for k, class_name in enumerate(CLASS_NAMES):
        # AUCs in the models' colours, in legend order; a subplot is too narrow for names.
        aucs = " · ".join(
            f"<span style='color:{model_color(name)}'>{_auc_text(ev.roc[k].auc)}</span>"
            for name, ev in evaluations.items()
        )
        titles.append(f"{class_name}<br><span style='font-size:11px'>{aucs}</span>")
    fig = make_subplots(
        rows=2,
        cols=5,
        subplot_titles=titles,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.025,
        vertical_spacing=0.16,
    )
    for k in range(NUM_CLASSES):
        row, col = k // 5 + 1, k % 5 + 1
        fig.add_shape(
            type="line",
            x0=0,
            y0=0,
            x1=1,
            y1=1,
            row=row,
            col=col,
            line={"color": NEUTRAL, "dash": "dash", "width": 1},
        )
        for name, ev in evaluations.items():
            trace = _roc_trace(name, ev.roc[k], model_label(name), showlegend=k == 0)
            fig.add_trace(trace, row=row, col=col)
    fig.update_xaxes(range=[-0.01, 1], dtick=0.5)
    fig.update_yaxes(range=[0, 1.01], dtick=0.5)
    fig.update_xaxes(title="FPR", row=2)
    fig.update_yaxes(title="TPR", col=1)
    fig.update_annotations(font_size=12)
    fig = _apply_layout(
        fig,
        "ROC curves of every class (one vs the rest)",
        height=600,
        subtitle="AUC of each model under each class name, in the models' colours",
        hovermode="closest",
    )
    fig.update_layout(margin_t=130)  # room for the subplot titles under the figure title
    return fig


# --- per-class bars ---------------------------------------------------------------------------


def f1_bars_figure(reports: dict[str, pd.DataFrame]) -> go.Figure:
    """Per-class F1 of each model as grouped bars (from ``Evaluation.report``)."""
    fig = go.Figure()
    classes = list(CLASS_NAMES)
    for name, report in reports.items():
        f1 = report.loc[classes, "f1"].to_numpy(dtype=float)  # (10,)
        fig.add_trace(
            go.Bar(
                x=classes,
                y=f1,
                name=model_label(name),
                legendgroup=name,
                marker={"color": model_color(name)},
                text=[f"{v:.3f}" for v in f1],
                textposition="inside",
                textangle=-90,
                insidetextanchor="end",
                hovertemplate=f"{model_label(name)}<br>%{{x}}: F1 %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_yaxes(title="F1 score", range=[0, 1])
    fig.update_xaxes(title=None)
    return _apply_layout(fig, "F1 score per class", height=420, barmode="group")


def probability_figure(probs: dict[str, np.ndarray]) -> go.Figure:
    """Each model's predicted probabilities (10,) for one image as horizontal grouped bars."""
    fig = go.Figure()
    for name, prob in probs.items():
        prob = np.asarray(prob, dtype=float).reshape(-1)
        if prob.shape != (NUM_CLASSES,):
            raise ValueError(f"{name}: expected {NUM_CLASSES} probabilities, got {prob.size}")
        fig.add_trace(
            go.Bar(
                x=prob,
                y=list(CLASS_NAMES),
                orientation="h",
                name=model_label(name),
                legendgroup=name,
                marker={"color": model_color(name)},
                text=[f"{v:.1%}" for v in prob],
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"{model_label(name)}<br>%{{y}}: %{{x:.2%}}<extra></extra>",
            )
        )
    fig.update_xaxes(title="Probability", range=[0, 1.12], tickformat=".0%", tickvals=[0, 0.5, 1])
    fig.update_yaxes(autorange="reversed")  # T-shirt at the top, as in the confusion matrix
    return _apply_layout(fig, "Predicted probability per class", height=460, barmode="group")


# --- training ---------------------------------------------------------------------------------


def _infer_steps_per_epoch(name: str, records: list[dict]) -> float:
    """From step records alone: an epoch's last record is written at step = epoch * steps."""
    epochs = {int(r["epoch"]) for r in records}
    finished = [e for e in epochs if e < max(epochs)]
    if not finished:
        raise ValueError(
            f"{name}: cannot tell the steps per epoch from step records of one epoch; "
            "pass steps_per_epoch (the live log's start record holds it)"
        )
    first = min(finished)
    return max(int(r["step"]) for r in records if int(r["epoch"]) == first) / first


def training_curves_figure(
    histories: dict[str, list[dict]],
    steps: dict[str, list[dict]] | None = None,
    metric: str = "accuracy",
    references: dict[str, float] | None = None,
    steps_per_epoch: int | dict[str, int] | None = None,
) -> go.Figure:
    """Per-epoch train (solid) and held-out test (dashed) curves of every model on one x axis.

    ``histories`` maps a model to its epoch records (``epoch``, ``loss``, ``accuracy``,
    ``test_loss``, ``test_accuracy``). ``steps`` maps a model to its live-log step records
    (``epoch``, ``step``, ``total_steps``, ``loss``, ``accuracy``; ``step`` counts from the start
    of training), drawn as thin lines at x = step / steps_per_epoch, a fractional epoch.
    ``steps_per_epoch`` is one number for all models or one per model (the live log's start
    record holds it); when omitted it is read off the step records, which works once a second
    epoch has begun. ``references`` draws labelled horizontal dotted lines (e.g. the report's).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    fig = go.Figure()
    for name, records in histories.items():
        color, label = model_color(name), model_label(name)
        x = [r["epoch"] for r in records]
        for key, part, dash in (
            (metric, "train", "solid"),
            (f"test_{metric}", "held-out test (monitoring only)", "dash"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[r.get(key) for r in records],
                    mode="lines+markers",
                    name=f"{label}: {part}",
                    legendgroup=name,
                    line={"color": color, "dash": dash, "width": 2},
                    marker={"size": 6},
                    hovertemplate=f"{label}, {part}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
                )
            )
    for name, records in (steps or {}).items():
        if not records:
            continue
        if isinstance(steps_per_epoch, Mapping):
            per_epoch = steps_per_epoch.get(name) or _infer_steps_per_epoch(name, records)
        else:
            per_epoch = steps_per_epoch or _infer_steps_per_epoch(name, records)
        label = model_label(name)
        fig.add_trace(
            go.Scatter(
                x=[r["step"] / per_epoch for r in records],
                y=[r[metric] for r in records],
                mode="lines",
                name=f"{label}: train, per step (running mean)",
                legendgroup=name,
                line={"color": model_color(name), "width": 1},
                opacity=0.55,
                hovertemplate=f"{label}, step %{{customdata}}<br>%{{y:.4f}}<extra></extra>",
                customdata=[r["step"] for r in records],
            )
        )
    for i, (text, value) in enumerate((references or {}).items()):
        color = model_color(text) if text in histories or text in MODEL_NAMES else NEUTRAL
        fig.add_hline(
            y=value,
            line={"color": color, "dash": "dot", "width": 1.5},
            annotation_text=f"{text}: {value:.4g}",
            annotation_position="top left" if i % 2 == 0 else "bottom right",
            annotation_font={"size": 11, "color": color},
        )
    fig.update_xaxes(title="epoch", rangemode="tozero", dtick=1)
    fig.update_yaxes(title=metric, tickformat=".1%" if metric == "accuracy" else None)
    return _apply_layout(fig, f"Training {metric} per epoch", height=460, hovermode="closest")


# --- two models on the same images ------------------------------------------------------------


def agreement_figure(
    agreement: dict[str, int], name_a: str, name_b: str, selected: str | None = None
) -> go.Figure:
    """2x2 table of images both/only A/only B/neither got right; clicks read by ``selected_part``.

    Rows: A right, A wrong; columns: B right, B wrong. The cells each model alone got right wear
    that model's colour.
    """
    missing = [part for part in AGREEMENT_PARTS if part not in agreement]
    if missing:
        raise ValueError(f"agreement lacks {missing}; expected keys {AGREEMENT_PARTS}")
    label_a, label_b = model_label(name_a), model_label(name_b)
    layout_parts = [["both_right", "only_a"], ["only_b", "both_wrong"]]  # [row A][column B]
    captions = {
        "both_right": "both right",
        "only_a": f"only {label_a} right",
        "only_b": f"only {label_b} right",
        "both_wrong": "both wrong",
    }
    total = sum(int(agreement[part]) for part in AGREEMENT_PARTS)
    # One colour per part, not a colour scale: both right is the bulk and would wash out the rest.
    colors = ["#F2F2F2", _tint(model_color(name_a)), _tint(model_color(name_b)), "#BDBDBD"]
    codes = [[AGREEMENT_PARTS.index(part) for part in row] for row in layout_parts]
    text = [
        [
            f"{captions[part]}<br><b>{int(agreement[part]):,}</b>"
            + (f"<br>{int(agreement[part]) / total:.1%}" if total else "")
            for part in row
        ]
        for row in layout_parts
    ]
    fig = go.Figure(
        go.Heatmap(
            z=codes,
            x=[0, 1],
            y=[0, 1],
            text=text,
            texttemplate="%{text}",
            textfont={"size": 14, "color": "#262730"},
            colorscale=[[i / 3, c] for i, c in enumerate(colors)],
            zmin=0,
            zmax=3,
            showscale=False,
            hoverinfo="skip",
            xgap=3,
            ygap=3,
        )
    )
    cells = [(row, col) for row in range(2) for col in range(2)]
    parts = [layout_parts[row][col] for row, col in cells]
    hover = [f"{captions[part]}: {int(agreement[part]):,} images" for part in parts]
    fig.add_trace(
        _click_overlay([c for _, c in cells], [r for r, _ in cells], parts, hover, size=110)
    )
    fig.update_xaxes(
        tickvals=[0, 1],
        ticktext=[f"{label_b} right", f"{label_b} wrong"],
        range=[-0.5, 1.5],  # fixed: the overlay's markers must not pad the axes
        side="top",
        fixedrange=True,
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(
        tickvals=[0, 1],
        ticktext=[f"{label_a} right", f"{label_a} wrong"],
        range=[1.5, -0.5],
        fixedrange=True,
        showgrid=False,
        zeroline=False,
    )
    if selected is not None:
        if selected not in AGREEMENT_PARTS:
            raise ValueError(f"unknown part {selected!r}; expected one of {AGREEMENT_PARTS}")
        row, col = cells[parts.index(selected)]
        for shape in _outline_shapes(col, row):
            fig.add_shape(shape)
    return _apply_layout(
        fig,
        f"Where {label_a} and {label_b} agree",
        height=360,
        subtitle="Click a cell to see its images",
        clickmode="event+select",
        hovermode="closest",
    )


def _tint(hex_color: str, alpha: float = 0.45) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def selected_part(selection_event) -> str | None:
    """The clicked part of ``agreement_figure`` ('both_right', 'only_a', ...), or None."""
    point = _first_point(selection_event)
    if point is None:
        return None
    items = _customdata_items(point)
    if not items:
        return None
    part = items[0]
    return part if part in AGREEMENT_PARTS else None


# --- images -----------------------------------------------------------------------------------


def sample_grid_figure(images: np.ndarray, labels: list[str], columns: int = 10) -> go.Figure:
    """Grayscale images (k, 28, 28) uint8 in a grid, pixels crisp, with a caption under each.

    A caption may hold ``<br>`` (or ``\\n``) for a second line; hovering a tile shows it too.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (k, height, width), got {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), got dtype {images.dtype}")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    captions = [str(label).replace("\n", "<br>") for label in labels]
    fig = go.Figure()
    if len(images) == 0:
        fig.add_annotation(
            text="No images", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _apply_layout(fig, "", height=120)
    k, height, width = images.shape
    columns = min(columns, k)
    rows = -(-k // columns)
    gap = 4  # pixels between tiles
    lines = max(caption.count("<br>") + 1 for caption in captions)
    caption_px = 7 * lines + 3  # room under each tile, in image pixels
    row_px, col_px = height + caption_px, width + gap
    canvas = np.full((rows * row_px, columns * col_px - gap), 255, dtype=np.uint8)  # white gaps
    centres_x, centres_y, notes = [], [], []
    for i, image in enumerate(images):
        top, left = (i // columns) * row_px, (i % columns) * col_px
        canvas[top : top + height, left : left + width] = image
        centres_x.append(left + (width - 1) / 2)  # pixel i is centred on x = i
        centres_y.append(top + (height - 1) / 2)
        notes.append(
            {"text": captions[i], "x": left + (width - 1) / 2, "y": top + height, "xref": "x",
             "yref": "y", "showarrow": False, "yanchor": "top", "font": {"size": 11}}
        )  # fmt: skip
    fig.update_layout(annotations=notes)  # at once: add_annotation costs ~20 ms per call
    # One PNG rather than z: a few kB instead of a JSON number per pixel. With zsmooth off the
    # browser draws it with image-rendering: pixelated, so every pixel stays a crisp block.
    source = "data:image/png;base64," + base64.b64encode(image_png(canvas, scale=1)).decode()
    fig.add_trace(go.Image(source=source, zsmooth=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=centres_x,
            y=centres_y,
            mode="markers",
            text=captions,
            customdata=list(range(k)),
            marker={"symbol": "square", "size": 40, "opacity": 0, "color": "#444444"},
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(visible=False, range=[-0.5, canvas.shape[1] - 0.5], fixedrange=True)
    fig.update_yaxes(
        visible=False, range=[canvas.shape[0] - 0.5, -0.5], scaleanchor="x", fixedrange=True
    )
    scale = 2.3  # screen pixels per image pixel at a typical page width
    fig = _apply_layout(fig, "", height=int(canvas.shape[0] * scale) + 40)
    fig.update_layout(margin={"t": 30, "b": 10, "l": 0, "r": 0})  # t: room for the mode bar
    return fig


def image_png(pixels: np.ndarray, scale: int = 4) -> bytes:
    """One grayscale image (uint8, or float in [0, 1]) as PNG bytes, upscaled without smoothing."""
    from PIL import Image  # only this function needs Pillow

    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D grayscale image, got shape {pixels.shape}")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    if np.issubdtype(pixels.dtype, np.floating):
        if not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1):
            raise ValueError("float pixels must lie in [0, 1]")
        pixels = np.rint(pixels * 255)
    elif pixels.dtype != np.uint8 and (pixels.min() < 0 or pixels.max() > 255):
        raise ValueError("integer pixels must lie in 0..255")
    image = Image.fromarray(pixels.astype(np.uint8))
    height, width = pixels.shape
    image = image.resize((width * scale, height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- reference lines --------------------------------------------------------------------------

HUMAN_ACCURACY = 0.835
ACCURACY_REFERENCES: dict[str, float] = {
    # Zalando's fashion-mnist README, benchmark "Human Performance": crowd-sourced, no fashion
    # expertise, 1000 randomly sampled test images, 3 labels per image, majority labelling.
    "Humans, crowd-sourced (Fashion-MNIST README)": HUMAN_ACCURACY,
    **{f"Report: {model_label(name)}": REPORT[name]["accuracy"] for name in REPORT},
}
REFERENCE_COLORS: dict[str, str] = {
    f"Report: {model_label(name)}": MODEL_COLORS.get(name, NEUTRAL) for name in REPORT
}
BEST_PUBLISHED_NOTE = (
    "For scale: the best published results on Fashion-MNIST reach roughly 96–97% test "
    "accuracy (approximate; much larger models and training recipes than these two CNNs)."
)


def _reference_color(label: str, colors: Mapping[str, str] | None) -> str:
    if colors and label in colors:
        return colors[label]
    if label in REFERENCE_COLORS:
        return REFERENCE_COLORS[label]
    if label in MODEL_NAMES or label in {spec.display_name for spec in REGISTRY.values()}:
        return model_color(label)
    return NEUTRAL


def add_reference_lines(
    fig: go.Figure,
    references: Mapping[str, float] | None,
    colors: Mapping[str, str] | None = None,
    percent: bool = True,
) -> go.Figure:
    """Labelled dotted horizontal lines, e.g. ``ACCURACY_REFERENCES``; returns ``fig``.

    Labels are staggered so that neighbours never share a spot: taken from the lowest line up,
    they alternate left and right. Every label sits just above its line (one under the lowest
    line would run into the axis' tick labels), so two labels on one side never face each other
    across the gap between their lines; a light backing keeps them legible over data.
    """
    items = sorted((references or {}).items(), key=lambda item: item[1])
    for i, (label, value) in enumerate(items):
        color = _reference_color(label, colors)
        side = "left" if i % 2 == 0 else "right"
        text = f"{label}: {value * 100:.4g}%" if percent else f"{label}: {value:.4g}"
        fig.add_hline(
            y=value,
            line={"color": color, "dash": "dot", "width": 1.5},
            annotation_text=text,
            annotation_position=f"top {side}",
            annotation_font={"size": 11, "color": color},
            annotation_bgcolor="rgba(255,255,255,0.75)",
            name=label,
        )
    return fig


def _model_labels(keys: Sequence[str], names: Mapping[str, str] | Sequence[str] | None):
    """Display labels of ``keys``: from a mapping, a list in the same order, or the registry."""
    if names is None:
        return [model_label(key) for key in keys]
    if isinstance(names, Mapping):
        return [names.get(key, model_label(key)) for key in keys]
    names = list(names)
    if len(names) != len(keys):
        raise ValueError(f"{len(keys)} results but {len(names)} names")
    return names


# --- calibration ------------------------------------------------------------------------------


def reliability_figure(
    results: Mapping[str, Reliability],
    names: Mapping[str, str] | Sequence[str] | None = None,
) -> go.Figure:
    """Reliability diagram: accuracy against mean confidence per bin, models overlaid, with the
    diagonal of perfect calibration; under it, the number of test images in each bin (log)."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06
    )
    fig.add_trace(
        _diagonal("perfectly calibrated"),
        row=1,
        col=1,
    )
    keys = list(results)
    for key, label in zip(keys, _model_labels(keys, names), strict=True):
        rel = results[key]
        filled = np.flatnonzero(rel.counts > 0)  # empty bins have no accuracy to draw
        low, high = rel.edges[:-1], rel.edges[1:]  # (bins,)
        custom = [
            [int(rel.counts[b]), float(low[b]), float(high[b]), float(rel.gap[b])] for b in filled
        ]
        fig.add_trace(
            go.Scatter(
                x=rel.confidence[filled],
                y=rel.accuracy[filled],
                customdata=custom,
                mode="lines+markers",
                name=f"{label} (ECE {rel.ece:.1%})",
                legendgroup=key,
                line={"color": model_color(key), "width": 2},
                marker={"size": 7},
                hovertemplate=(
                    f"{label}<br>confidence %{{customdata[1]:.2f}}–%{{customdata[2]:.2f}}"
                    "<br>mean confidence %{x:.3f}<br>accuracy %{y:.3f}"
                    "<br>accuracy − confidence %{customdata[3]:+.3f}"
                    "<br>images %{customdata[0]:,}<extra></extra>"
                ),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=(low + high) / 2,  # bar positions: the bins' centres
                y=rel.counts,
                name=f"{label}: images per bin",
                legendgroup=key,
                showlegend=False,
                marker={"color": model_color(key)},
                opacity=0.8,
                hovertemplate=(
                    f"{label}<br>confidence near %{{x:.2f}}: %{{y:,}} images<extra></extra>"
                ),
            ),
            row=2,
            col=1,
        )
    fig.update_xaxes(range=[0, 1.01], row=1, col=1)
    fig.update_xaxes(
        title="Confidence (probability of the predicted class)", range=[0, 1.01], row=2
    )
    fig.update_yaxes(title="Accuracy", range=[0, 1.01], row=1, col=1)
    fig.update_yaxes(title="Images", type="log", row=2, col=1)
    return _apply_layout(
        fig,
        "Reliability: is the model as often right as it is confident?",
        height=560,
        subtitle="Below the diagonal = over-confident; bars: test images per confidence bin",
        barmode="group",
        hovermode="closest",
    )


# --- several seeds ----------------------------------------------------------------------------

SEED_METRIC_LABELS = {
    "accuracy": "Test accuracy",
    "loss": "Test loss (log loss)",
    "macro_f1": "Macro F1",
}


def _seed_values(summary: SeedSummary, metric: str) -> tuple[pd.Series, float, float]:
    if metric in summary.per_seed.columns:
        row = summary.summary.loc[metric]
        return summary.per_seed[metric], float(row["mean"]), float(row["std"])
    if metric in summary.per_class_f1.columns:
        row = summary.class_summary.loc[metric]
        return summary.per_class_f1[metric], float(row["mean"]), float(row["std"])
    raise ValueError(
        f"metric must be one of {tuple(SEED_METRIC_LABELS)} or a class name, got {metric!r}"
    )


def seed_metric_figure(
    summaries: Mapping[str, SeedSummary],
    names: Mapping[str, str] | Sequence[str] | None = None,
    metric: str = "accuracy",
    references: Mapping[str, float] | None = None,
) -> go.Figure:
    """One point per seed for each model, beside its mean ± one standard deviation.

    ``metric``: "accuracy", "loss", "macro_f1", or a class name (that class's F1).
    ``references`` draws labelled dotted lines (e.g. ``ACCURACY_REFERENCES``).
    """
    fig = go.Figure()
    keys = list(summaries)
    labels = _model_labels(keys, names)
    percent = metric == "accuracy"
    fmt = ".2%" if percent else ".4f"
    single = False
    for i, (key, label) in enumerate(zip(keys, labels, strict=True)):
        values, mean, std = _seed_values(summaries[key], metric)
        seeds = [int(s) for s in values.index]
        # Seeds side by side left of the model's slot, the mean to its right (layout only).
        offsets = np.linspace(-0.3, -0.05, len(seeds)) if len(seeds) > 1 else np.array([-0.15])
        color = model_color(key)
        fig.add_trace(
            go.Scatter(
                x=i + offsets,
                y=values.to_numpy(dtype=float),
                customdata=seeds,
                mode="markers",
                name=f"{label}: each seed",
                legendgroup=key,
                marker={"color": color, "size": 9, "opacity": 0.75, "symbol": "circle"},
                hovertemplate=f"{label}, seed %{{customdata}}<br>%{{y:{fmt}}}<extra></extra>",
            )
        )
        no_spread = math.isnan(std)
        single = single or no_spread
        spread = "one seed, no spread" if no_spread else f"± {std:{fmt}} (std)"
        fig.add_trace(
            go.Scatter(
                x=[i + 0.15],
                y=[mean],
                error_y={
                    "type": "data",
                    "array": [0.0 if no_spread else std],
                    "visible": not no_spread,
                    "color": color,
                    "thickness": 2,
                    "width": 8,
                },
                mode="markers",
                name=f"{label}: mean ± std of {len(seeds)} seed{'s' if len(seeds) != 1 else ''}",
                legendgroup=key,
                marker={"color": color, "size": 13, "symbol": "diamond", "line": {"width": 1}},
                hovertemplate=f"{label}, mean %{{y:{fmt}}} {spread}<extra></extra>",
            )
        )
    add_reference_lines(fig, references, percent=percent)
    title_metric = SEED_METRIC_LABELS.get(metric, f"F1 of {metric}")
    fig.update_xaxes(
        tickvals=list(range(len(keys))), ticktext=labels, range=[-0.6, len(keys) - 0.4]
    )
    fig.update_yaxes(title=title_metric, tickformat=".1%" if percent else None)
    subtitle = "Dots: one run per seed; diamond and bar: mean ± one standard deviation"
    if single:
        subtitle += "<br>Only one seed for some model: its spread cannot be estimated"
    return _apply_layout(
        fig, f"{title_metric} across seeds", height=480, subtitle=subtitle, hovermode="closest"
    )


def seed_curves_figure(
    curves: Mapping[str, pd.DataFrame],
    names: Mapping[str, str] | Sequence[str] | None = None,
    metric: str = "accuracy",
    references: Mapping[str, float] | None = None,
) -> go.Figure:
    """Per-epoch mean over seeds (train solid, held-out test dashed) with a ± one std band.

    ``curves`` maps a model to ``core.seeds.curves(...)``: index epoch, ``<metric>_mean``,
    ``<metric>_std``, ``test_<metric>_mean``, ``test_<metric>_std``, ``n``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    fig = go.Figure()
    keys = list(curves)
    for key, label in zip(keys, _model_labels(keys, names), strict=True):
        frame = curves[key]
        color = model_color(key)
        epochs = [int(e) for e in frame.index]
        n = int(frame["n"].max()) if "n" in frame and len(frame) else 0
        for column, part, dash in (
            (metric, "train", "solid"),
            (f"test_{metric}", "held-out test", "dash"),
        ):
            mean = frame[f"{column}_mean"].to_numpy(dtype=float)
            std = frame[f"{column}_std"].to_numpy(dtype=float)
            band = ~np.isnan(std)
            if band.any():
                x_band = [e for e, b in zip(epochs, band, strict=True) if b]
                upper, lower = (mean + std)[band], (mean - std)[band]  # the band's edges
                fig.add_trace(
                    go.Scatter(
                        x=x_band + x_band[::-1],
                        y=np.concatenate([upper, lower[::-1]]),
                        fill="toself",
                        fillcolor=_tint(color, 0.18 if dash == "solid" else 0.1),
                        line={"width": 0},
                        mode="lines",
                        name=f"{label}: {part} ± 1 std",
                        legendgroup=key,
                        showlegend=False,
                        hoverinfo="skip",
                    )
                )
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=mean,
                    customdata=np.nan_to_num(std, nan=0.0),
                    mode="lines+markers",
                    name=f"{label}: {part} (mean of {n} seed{'s' if n != 1 else ''})",
                    legendgroup=key,
                    line={"color": color, "dash": dash, "width": 2},
                    marker={"size": 6},
                    hovertemplate=(
                        f"{label}, {part}<br>epoch %{{x}}: %{{y:.4f}} ± %{{customdata:.4f}}"
                        "<extra></extra>"
                    ),
                )
            )
    add_reference_lines(fig, references, percent=metric == "accuracy")
    fig.update_xaxes(title="epoch", dtick=1)
    fig.update_yaxes(title=metric, tickformat=".1%" if metric == "accuracy" else None)
    return _apply_layout(
        fig,
        f"Training {metric} per epoch, mean over seeds",
        height=460,
        subtitle="Line: mean over seeds; band: ± one standard deviation",
        hovermode="closest",
    )
