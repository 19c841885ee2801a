"""Calibration: the reliability diagram of several models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.style import apply_layout, diagonal_line, model_labels
from core.models import model_color

if TYPE_CHECKING:
    from core.calibration import Reliability


# Room for the axis labels and the legend, so that Plotly's automargin never has to grow a
# margin: it then draws the whole figure a second time.
MARGIN = {"l": 84, "b": 96}


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
        diagonal_line("perfectly calibrated"),
        row=1,
        col=1,
    )
    keys = list(results)
    for key, label in zip(keys, model_labels(keys, names), strict=True):
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
    return apply_layout(
        fig,
        "Reliability: is the model as often right as it is confident?",
        height=560,
        subtitle="Below the diagonal = over-confident; bars: test images per confidence bin",
        barmode="group",
        hovermode="closest",
        margin=MARGIN,
    )
