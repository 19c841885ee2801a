"""Confusion matrices as clickable heatmaps: one model's, and the difference of two.

Clicks are read back with ``core.figures.selection.selected_cell``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go

from core.data import CLASS_NAMES, NUM_CLASSES
from core.figures.selection import click_overlay, outline_cell
from core.figures.style import apply_layout
from core.models import model_label

CELL_PX = 44  # marker size of the click overlay: about one confusion cell at the default height
# Room for the class names and axis titles (and the colour bar), so that Plotly's automargin never
# has to grow a margin: it then draws the whole figure a second time (most of a matrix's cost).
MATRIX_MARGIN = {"l": 112, "r": 10, "t": 90, "b": 104}
DIFFERENCE_MARGIN = MATRIX_MARGIN | {"r": 165}
MATRIX_HEIGHT, DIFFERENCE_HEIGHT = 500, 640


def _check_confusion(confusion) -> np.ndarray:
    confusion = np.asarray(confusion)
    if confusion.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(
            f"confusion must have shape ({NUM_CLASSES}, {NUM_CLASSES}), got {confusion.shape}"
        )
    return confusion


def _check_cell(cell) -> tuple[int, int]:
    true_class, pred_class = (int(v) for v in cell)
    if not (0 <= true_class < NUM_CLASSES and 0 <= pred_class < NUM_CLASSES):
        raise ValueError(f"selected cell must lie in 0..{NUM_CLASSES - 1}, got {tuple(cell)}")
    return true_class, pred_class


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


def _matrix_figure(
    z: np.ndarray,
    text: list[list[str]],
    hover: Callable[[int, int], str],
    selected: tuple[int, int] | None,
    **colors,
) -> go.Figure:
    """A 10x10 heatmap printing ``text`` in its cells, clickable: one invisible marker per
    (true, predicted) cell with ``hover(true, predicted)`` as its tooltip; ``selected`` outlined.
    ``colors``: the heatmap's colour scale arguments."""
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(NUM_CLASSES)),
            y=list(range(NUM_CLASSES)),
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11},
            hoverinfo="skip",
            **colors,
        )
    )
    cells = [[t, p] for t in range(NUM_CLASSES) for p in range(NUM_CLASSES)]
    x, y = [p for _, p in cells], [t for t, _ in cells]
    fig.add_trace(click_overlay(x, y, cells, [hover(t, p) for t, p in cells], CELL_PX))
    _class_axes(fig)
    if selected is not None:
        true_class, pred_class = _check_cell(selected)
        outline_cell(fig, pred_class, true_class)
    return fig


def _row_fractions(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total (a row with no images stays 0); formatting only."""
    totals = confusion.sum(axis=1, keepdims=True)  # (10, 1)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)


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

    def hover(t: int, p: int) -> str:
        return (
            f"true: {CLASS_NAMES[t]}<br>predicted: {CLASS_NAMES[p]}<br>images: "
            f"{int(confusion[t, p]):,}<br>share of true {CLASS_NAMES[t]}: {fractions[t, p]:.1%}"
        )

    fig = _matrix_figure(
        z,
        text,
        hover,
        selected,
        colorscale="Blues",
        zmin=0,
        zmax=1 if normalise else None,
        showscale=False,  # every cell prints its number; the width goes to the matrix
    )
    subtitle = "Share of each true class" if normalise else "Number of test images"
    return apply_layout(
        fig,
        title,
        height=MATRIX_HEIGHT,
        subtitle=subtitle + "; click a cell to see its images",
        clickmode="event+select",
        hovermode="closest",
        margin=MATRIX_MARGIN,
    )


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

    def hover(t: int, p: int) -> str:
        return (
            f"true: {CLASS_NAMES[t]}<br>predicted: {CLASS_NAMES[p]}<br>"
            f"{label_a}: {int(conf_a[t, p]):,}<br>{label_b}: {int(conf_b[t, p]):,}<br>"
            f"difference: {int(diff[t, p]):+,}"
        )

    fig = _matrix_figure(
        diff,
        [[f"{int(v):+,}" if v else "0" for v in row] for row in diff],
        hover,
        selected,
        colorscale="RdBu",
        zmid=0,
        colorbar={"title": f"{label_b}<br>− {label_a}", "thickness": 12},
    )
    return apply_layout(
        fig,
        f"{label_b} minus {label_a}, image counts per cell",
        height=DIFFERENCE_HEIGHT,
        subtitle=(
            f"On the diagonal, positive (blue) = {label_b} gets more of that class right.<br>"
            f"Off the diagonal, negative (red) = {label_b} makes fewer of those mistakes."
        ),
        clickmode="event+select",
        hovermode="closest",
        margin=DIFFERENCE_MARGIN,
    )
