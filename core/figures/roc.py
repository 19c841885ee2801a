"""ROC curves: one class's curve per model, and every class's in a grid; beside them, one
class's precision-recall curve per model."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data import CLASS_NAMES, NUM_CLASSES
from core.figures.style import NEUTRAL, apply_layout, diagonal_line, model_line
from core.metrics import Evaluation
from core.models import model_color, model_label
from core.roc import PrCurve, RocCurve

# Room for the axis labels and the legend (two rows at half the page's width), so that Plotly's
# automargin never has to grow a margin: it then draws the whole figure a second time.
ROC_MARGIN = {"l": 76, "r": 24, "b": 125}
PR_MARGIN = {"l": 72, "b": 96}
GRID_MARGIN = {"l": 72, "r": 18, "b": 96}


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
    fig = go.Figure(diagonal_line("chance"))
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
    return apply_layout(fig, title, height=520, hovermode="closest", margin=ROC_MARGIN)


def pr_figure(curves: dict[str, PrCurve], class_name: str) -> go.Figure:
    """One class's one-vs-rest precision-recall curve per model, average precision in the
    legend, with the chance level (the class's share of the images) dotted."""
    fig = go.Figure()
    for name, curve in curves.items():
        hover = (
            f"{model_label(name)}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}"
            "<br>threshold %{customdata:.3f}<extra></extra>"
        )
        label = f"{model_label(name)} (AP {_auc_text(curve.ap)})"
        fig.add_trace(
            model_line(name, curve.recall, curve.precision, label, hover, line_shape="hv",
                       customdata=np.append(curve.thresholds, np.nan))  # the last point has none
        )  # fmt: skip
    if curves:
        chance = next(iter(curves.values())).prevalence
        fig.add_hline(
            y=chance,
            line={"color": NEUTRAL, "dash": "dot", "width": 1},
            annotation_text=f"chance ({chance:.0%} of the images)",
            annotation_position="bottom right",
        )
    fig.update_xaxes(title="Recall (true positive rate)", range=[0, 1.01])
    fig.update_yaxes(title="Precision", range=[0, 1.02])
    return apply_layout(
        fig,
        f"Precision-recall, {class_name} vs the rest",
        height=520,
        hovermode="closest",
        margin=PR_MARGIN,
    )


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
    fig = apply_layout(
        fig,
        "ROC curves of every class (one vs the rest)",
        height=600,
        subtitle="AUC of each model under each class name, in the models' colours",
        hovermode="closest",
    )
    fig.update_layout(margin=GRID_MARGIN | {"t": 130})  # t: the subplot titles under the title
    return fig
