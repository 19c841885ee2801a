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
from core.figures.selection import outline_cell

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

OUTLINE_SHAPES = 2  # shapes per cell outline (core.figures.outline_cell: white under black)


class _ShapeList(list):
    """Collects what ``outline_cell`` adds: Plotly's ``add_shape`` revalidates every shape the
    figure holds, so 200 of them one by one took seconds; one ``update_layout`` takes ms."""

    def add_shape(self, shape: dict) -> None:
        self.append(shape)


def _with_every_outline(fig):
    """``fig`` (a clickable 10x10 matrix) with every cell's outline, each hidden (opacity 0),
    first in its shapes: cell (t, p)'s are shapes ``OUTLINE_SHAPES * (10 t + p)`` on."""
    outlines = _ShapeList()
    for true_class in range(NUM_CLASSES):
        for pred_class in range(NUM_CLASSES):
            outline_cell(outlines, pred_class, true_class)
    hidden = [shape | {"opacity": 0} for shape in outlines]
    return fig.update_layout(shapes=[*hidden, *fig.layout.shapes])


@shared
def pickable_confusion_figure(confusion, title: str, normalise: bool = False):
    """``figures.confusion_figure`` with every cell's outline hidden; ``outline_css`` shows one."""
    return _with_every_outline(figures.confusion_figure(confusion, title, normalise))


@shared
def pickable_difference_figure(conf_a, conf_b, name_a: str, name_b: str):
    """``figures.confusion_difference_figure`` with every cell's outline hidden (``outline_css``)."""
    return _with_every_outline(figures.confusion_difference_figure(conf_a, conf_b, name_a, name_b))


def outline_css(chart_key: str, cell: tuple[int, int]) -> str:
    """CSS that shows cell (true, predicted)'s outline in the ``pickable_*_figure`` drawn by the
    chart ``chart_key``.

    Hand-written because moving an outline in the figure makes the browser redraw the whole
    chart (Plotly.react: 0.3-1 s per matrix on 2 busy cores, most of a click), while a
    changed style rule repaints one outline. It relies on Plotly numbering its shape elements
    by their place in ``layout.shapes`` (``data-index``); the browser tests check the outline.
    """
    first = OUTLINE_SHAPES * (int(cell[0]) * NUM_CLASSES + int(cell[1]))
    paths = ", ".join(
        f'.st-key-{chart_key} .shapelayer path[data-index="{i}"]'
        for i in range(first, first + OUTLINE_SHAPES)
    )
    return f"{paths} {{opacity: 1 !important}}"


def show_outline(chart_key: str, cell: tuple[int, int]) -> None:
    """Show cell (true, predicted)'s outline in the ``pickable_*_figure`` drawn by ``chart_key``.

    One of the two places that send raw HTML (the other: ``widgets.images.image_grid``; the
    security test allows no others): a style rule made only of the chart's key, checked here,
    and two integers.
    """
    if not chart_key.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"not a chart key: {chart_key!r}")
    st.html(f"<style>{outline_css(chart_key, cell)}</style>")
