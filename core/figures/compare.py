"""Two or more models on the same images: where they agree, per-class F1, one image's
probabilities. Clicks on the agreement table are read with ``selection.selected_part``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.comparison import part_labels
from core.data import CLASS_NAMES, NUM_CLASSES
from core.figures.selection import click_overlay, outline_cell
from core.figures.style import apply_layout, tint
from core.metrics import AGREEMENT_PARTS
from core.models import model_color, model_label


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
    captions = part_labels(name_a, name_b)
    total = sum(int(agreement[part]) for part in AGREEMENT_PARTS)
    # One colour per part, not a colour scale: both right is the bulk and would wash out the rest.
    colors = ["#F2F2F2", tint(model_color(name_a)), tint(model_color(name_b)), "#BDBDBD"]
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
        click_overlay([c for _, c in cells], [r for r, _ in cells], parts, hover, size=110)
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
        outline_cell(fig, col, row)
    return apply_layout(
        fig,
        f"Where {label_a} and {label_b} agree",
        height=360,
        subtitle="Click a cell to see its images",
        clickmode="event+select",
        hovermode="closest",
    )


def f1_bars_figure(per_class: dict[str, pd.DataFrame]) -> go.Figure:
    """Per-class F1 of each model as grouped bars (from ``Evaluation.per_class``)."""
    fig = go.Figure()
    classes = list(CLASS_NAMES)
    for name, table in per_class.items():
        f1 = table.loc[classes, "f1"].to_numpy(dtype=float)  # (10,)
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
    return apply_layout(fig, "F1 score per class", height=420, barmode="group")


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
    return apply_layout(fig, "Predicted probability per class", height=460, barmode="group")
