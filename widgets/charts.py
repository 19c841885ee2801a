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
