"""The ``core.figures`` builders the pages draw, each built once per distinct input and shared.

Plotly validates every property as a figure is built (50-400 ms for ours), which would be paid
again on every click and rerun; hashing the inputs costs a few ms. ``st.cache_resource`` hands
every caller the one shared figure (no copy), so a caller must never modify what it gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from core import figures
from core.data import NUM_CLASSES
from core.figures.confusion import (
    DIFFERENCE_HEIGHT,
    DIFFERENCE_MARGIN,
    MATRIX_HEIGHT,
    MATRIX_MARGIN,
)

Builder = TypeVar("Builder", bound=Callable)


def shared(builder: Builder) -> Builder:
    """``builder`` cached on its arguments, its figures shared between sessions (never modify)."""
    return st.cache_resource(show_spinner=False, max_entries=256)(builder)


accuracy_coverage_figure = shared(figures.accuracy_coverage_figure)
agreement_figure = shared(figures.agreement_figure)
confusion_difference_figure = shared(figures.confusion_difference_figure)
confusion_figure = shared(figures.confusion_figure)
f1_bars_figure = shared(figures.f1_bars_figure)
pr_figure = shared(figures.pr_figure)
projection_figure = shared(figures.projection_figure)
reliability_figure = shared(figures.reliability_figure)
roc_figure = shared(figures.roc_figure)
roc_grid_figure = shared(figures.roc_grid_figure)
sample_grid_figure = shared(figures.sample_grid_figure)
seed_curves_figure = shared(figures.seed_curves_figure)
seed_metric_figure = shared(figures.seed_metric_figure)


# --- a matrix whose picked cell moves without a redraw ------------------------------------------


def outline_css(chart_key: str, cell: tuple[int, int], difference: bool = False) -> str:
    """A style rule that outlines cell (true, predicted) of the matrix the chart ``chart_key``
    draws: ``figures.confusion_figure``'s, or ``confusion_difference_figure``'s with
    ``difference``.

    Hand-written because Plotly moves an outline only by drawing the whole chart again
    (Plotly.react: 0.3-1 s per matrix on 2 busy cores, most of a click), and drawing every
    cell's outline hidden for a style rule to show one (200 shapes per matrix) made each visit
    of the Confusion page 0.24 s slower (10 alternated visits). The outline is a box over the
    chart, where Plotly draws the cell: the plot area is a square (``scaleanchor``,
    ``constrain="domain"``) whose side is the smaller of the width and the height between the
    figure's fixed margins, centred between them; ``margin-top``, like every margin, is a share
    of the width, so the side can place the box vertically too. White under black, as
    ``core.figures.outline_cell`` draws it. The browser tests check it against the drawn cells.
    """
    true_class, pred_class = int(cell[0]), int(cell[1])
    if not (0 <= true_class < NUM_CLASSES and 0 <= pred_class < NUM_CLASSES):
        raise ValueError(f"not a cell of a {NUM_CLASSES}x{NUM_CLASSES} matrix: {cell!r}")
    margin = DIFFERENCE_MARGIN if difference else MATRIX_MARGIN
    height = DIFFERENCE_HEIGHT if difference else MATRIX_HEIGHT
    sides = margin["l"] + margin["r"]
    inner = height - margin["t"] - margin["b"]
    side = f"min(100% - {sides}px, {inner}px)"  # of the square plot area
    cell_side = f"{side} / {NUM_CLASSES}"
    return (
        f".st-key-{chart_key} .svg-container::after{{content:'';position:absolute;"
        "pointer-events:none;box-sizing:border-box;aspect-ratio:1;"
        f"left:calc({margin['l']}px + (100% - {sides}px - {side}) / 2 + {pred_class} * "
        f"{cell_side});top:{margin['t']}px;"
        f"margin-top:calc(({inner}px - {side}) / 2 + {true_class} * {cell_side});"
        f"width:calc({cell_side});"
        "box-shadow:0 0 0 1px #000,inset 0 0 0 1px #000,0 0 0 2.5px #fff,inset 0 0 0 2.5px #fff}"
    )


def show_outline(chart_key: str, cell: tuple[int, int], difference: bool = False) -> None:
    """Outline cell (true, predicted) in the matrix drawn by ``chart_key`` (``outline_css``).

    One of the audited places that send raw HTML (tests/test_security.py's ``RAW_HTML``): a
    style rule made only of the chart's key, checked here, two integers and constants.
    """
    if not chart_key.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"not a chart key: {chart_key!r}")
    st.html(f"<style>{outline_css(chart_key, cell, difference)}</style>")
