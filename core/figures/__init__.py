"""Plotly figures of computed results; no metric maths here, only layout.

Every builder takes what ``core.metrics`` (or the run store) already computed and returns a
``plotly.graph_objects.Figure``. Each model keeps one colour in every figure
(``core.models.model_color``). One module per kind of figure; ``style`` holds what they share,
``selection`` makes cells clickable and reads Streamlit's selection events back. The builders
are named here too, so ``from core import figures; figures.roc_figure(...)`` works.
"""

from core.figures.calibration import reliability_figure
from core.figures.compare import agreement_figure, f1_bars_figure, probability_figure
from core.figures.confusion import confusion_difference_figure, confusion_figure
from core.figures.images import image_png, sample_grid_figure
from core.figures.map import projection_figure
from core.figures.robustness import (
    robustness_difference_figure,
    robustness_figure,
    robustness_severity_figure,
)
from core.figures.roc import pr_figure, roc_figure, roc_grid_figure
from core.figures.selection import selected_cell, selected_indices, selected_part
from core.figures.selective import accuracy_coverage_figure
from core.figures.training import (
    METRICS,
    SEED_METRIC_LABELS,
    add_reference_lines,
    seed_curves_figure,
    seed_metric_figure,
    training_curves_figure,
)

__all__ = [
    "METRICS",
    "SEED_METRIC_LABELS",
    "accuracy_coverage_figure",
    "add_reference_lines",
    "agreement_figure",
    "confusion_difference_figure",
    "confusion_figure",
    "f1_bars_figure",
    "image_png",
    "pr_figure",
    "probability_figure",
    "projection_figure",
    "reliability_figure",
    "robustness_difference_figure",
    "robustness_figure",
    "robustness_severity_figure",
    "roc_figure",
    "roc_grid_figure",
    "sample_grid_figure",
    "seed_curves_figure",
    "seed_metric_figure",
    "selected_cell",
    "selected_indices",
    "selected_part",
    "training_curves_figure",
]
