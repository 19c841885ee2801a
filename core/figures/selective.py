"""Selective prediction: accuracy against coverage of several models, with a threshold's points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from core.figures.style import apply_layout, model_labels, model_line
from core.models import model_color

if TYPE_CHECKING:
    from core.selective import Abstention, RiskCoverage

LINE_HOVER = (
    "{}<br>answering %{{x:.1%}}<br>accuracy %{{y:.2%}}"
    "<br>least confident answered %{{customdata:.3f}}<extra></extra>"
)


# Room for the axis labels and the legend, so that Plotly's automargin never has to grow a
# margin: it then draws the whole figure a second time.
MARGIN = {"l": 88, "r": 20, "b": 116}


def accuracy_coverage_figure(
    curves: Mapping[str, RiskCoverage],
    points: Mapping[str, Abstention] | None = None,
    names: Mapping[str, str] | Sequence[str] | None = None,
) -> go.Figure:
    """Accuracy of the most confident predictions against the share kept, models overlaid, AURC
    in the legend; ``points`` (a confidence threshold per model) marked on the curves."""
    fig = go.Figure()
    keys = list(curves)
    labels = dict(zip(keys, model_labels(keys, names), strict=True))
    for key, curve in curves.items():
        name, hover = f"{labels[key]} (AURC {curve.aurc:.4f})", LINE_HOVER.format(labels[key])
        line = model_line(key, curve.coverage, curve.accuracy, name, hover)
        fig.add_trace(line.update(customdata=curve.confidence))
    for key, point in (points or {}).items():
        if not point.answered:
            continue
        fig.add_trace(
            go.Scatter(
                x=[point.coverage],
                y=[point.accuracy],
                mode="markers",
                name=f"{labels[key]} at ≥ {point.threshold:.0%} confidence",
                legendgroup=key,
                marker={"color": model_color(key), "size": 11, "symbol": "diamond",
                        "line": {"color": "white", "width": 1.5}},
                hovertemplate=(
                    f"{labels[key]}, confidence ≥ {point.threshold:.2f}<br>answering "
                    f"{point.answered:,} of {point.n:,} (%{{x:.1%}})<br>accuracy %{{y:.2%}}"
                    "<extra></extra>"
                ),
            )
        )  # fmt: skip
    # The first few kept images make the curve jump between 0 and 1: frame the rest of it.
    low = min((curve.overall_accuracy for curve in curves.values()), default=0.0)
    fig.update_xaxes(title="Coverage (share of the test images answered)", range=[0, 1.01],
                     tickformat=".0%")  # fmt: skip
    fig.update_yaxes(title="Accuracy on the answered images", tickformat=".0%",
                     range=[max(0.0, low - 0.25 * (1 - low) - 0.01), 1.005])  # fmt: skip
    return apply_layout(
        fig,
        "Selective prediction: accuracy when answering only the most confident",
        height=480,
        subtitle="Left: the model abstains on all but its surest answers; right: answers all",
        hovermode="closest",
        margin=MARGIN,
    )
