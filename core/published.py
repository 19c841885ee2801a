"""Published numbers the dashboard sets ours beside: the course report's, human accuracy, and the
best published results (no TensorFlow, no plotting).

In this project "report" means only the course report (the HTML file is an "export", the
per-class precision/recall/F1 table is "per_class"); names here still spell it "course_report".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from core.data import CLASS_NAMES
from core.metrics import Evaluation
from core.models import MODEL_NAMES, model_color, model_label
from core.text import Rows, rows_frame

if TYPE_CHECKING:
    import pandas as pd

SHIRT = CLASS_NAMES.index("Shirt")
TSHIRT = CLASS_NAMES.index("T-shirt/top")

# As printed in the course report (one run each, 10 epochs, batch 32).
COURSE_REPORT: dict[str, dict[str, float]] = {
    "baseline": {"accuracy": 0.9122, "loss": 0.2574, "shirt_auc": 0.97, "shirt_f1": 0.74},
    "residual": {"accuracy": 0.9220, "loss": 0.3039, "shirt_auc": 0.98, "shirt_f1": 0.78},
}
COURSE_REPORT_MACRO_AUC = 0.99
COURSE_REPORT_TSHIRT_AS_SHIRT = 101  # the report does not say which model; shown beside both

COURSE_REPORT_ROWS = {
    "accuracy": "Test accuracy",
    "loss": "Test loss",
    "macro_auc": "Macro AUC",
    "shirt_auc": "Shirt AUC",
    "shirt_f1": "Shirt F1",
    "hardest_class": "Hardest class (lowest F1)",
    "tshirt_as_shirt": "T-shirt/top predicted as Shirt",
}

# Zalando's fashion-mnist README, benchmark "Human Performance": crowd-sourced, no fashion
# expertise, 1000 randomly sampled test images, 3 labels per image, majority labelling.
HUMAN_ACCURACY = 0.835
HUMAN_LABEL = "Humans, crowd-sourced (Fashion-MNIST README)"
BEST_PUBLISHED_NOTE = (
    "For scale: the best published results on Fashion-MNIST reach roughly 96–97% test "
    "accuracy (approximate; much larger models and training recipes than these two CNNs)."
)


def course_report_label(name: str) -> str:
    """The label of a model's course-report line in a chart ("Report: Baseline CNN")."""
    return f"Report: {model_label(name)}"


def course_report_references(metric: str, models: Iterable[str] = COURSE_REPORT) -> dict:
    """{label: value} of ``metric`` ("accuracy", "loss", ...) for each model the report gives."""
    return {
        course_report_label(m): COURSE_REPORT[m][metric]
        for m in models
        if metric in COURSE_REPORT.get(m, {})
    }


ACCURACY_REFERENCES: dict[str, float] = {
    HUMAN_LABEL: HUMAN_ACCURACY,
    **course_report_references("accuracy"),
}
# A course-report line wears its model's colour; other lines are neutral.
REFERENCE_COLORS: dict[str, str] = {
    course_report_label(name): model_color(name) for name in COURSE_REPORT
}


def reference_lines(metric: str, models: Iterable[str] = MODEL_NAMES) -> dict[str, float]:
    """Dotted lines for a chart of ``metric``: for accuracy, humans and the course report; for
    loss, the course report's figures of ``models`` (``REFERENCE_COLORS`` colours them)."""
    if metric == "accuracy":
        return dict(ACCURACY_REFERENCES)
    return course_report_references(metric, models)


def curves_caption(metric: str) -> str:
    """What the dotted lines of a training-curves chart are, and what the test curves are not."""
    text = "Dotted lines: the report's final test figures"
    text += " and crowd-sourced human accuracy." if metric == "accuracy" else "."
    text += " Held-out test curves are monitoring only; nothing is selected on them."
    return f"{text} {BEST_PUBLISHED_NOTE}" if metric == "accuracy" else text


def our_course_report_figures(evaluation: Evaluation) -> dict:
    """The numbers the course report quotes, computed from one of our runs."""
    return {
        "accuracy": evaluation.accuracy,
        "loss": evaluation.loss,
        "macro_auc": evaluation.macro_auc,
        "shirt_auc": evaluation.roc[SHIRT].auc,
        "shirt_f1": evaluation.f1("Shirt"),
        "hardest_class": evaluation.hardest_class,
        "tshirt_as_shirt": int(evaluation.confusion[TSHIRT, SHIRT]),
    }


def _course_report_columns(evaluations: dict[str, Evaluation]) -> dict[str, list]:
    """Columns '<model> report' and '<model> ours', each a value per ``COURSE_REPORT_ROWS``."""
    columns = {}
    for name, evaluation in evaluations.items():
        published = {
            **COURSE_REPORT.get(name, {}),
            "macro_auc": COURSE_REPORT_MACRO_AUC,
            "hardest_class": "Shirt",
            "tshirt_as_shirt": COURSE_REPORT_TSHIRT_AS_SHIRT,
        }
        ours = our_course_report_figures(evaluation)
        columns[f"{name} report"] = [published.get(key) for key in COURSE_REPORT_ROWS]
        columns[f"{name} ours"] = [ours[key] for key in COURSE_REPORT_ROWS]
    return columns


def course_report_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """Rows: the course report's figures; columns: '<model> report' and '<model> ours'."""
    import pandas as pd

    return pd.DataFrame(
        _course_report_columns(evaluations), index=list(COURSE_REPORT_ROWS.values())
    )


def _text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def course_report_rows(evaluations: dict[str, Evaluation]) -> Rows:
    """``course_report_table`` as text (as many decimals as the report prints, plus two): a
    header and one row per figure, its name first (the Overview's Markdown table)."""
    columns = _course_report_columns(evaluations)
    rows = [
        [label, *(_text(values[i]) for values in columns.values())]
        for i, label in enumerate(COURSE_REPORT_ROWS.values())
    ]
    return ["", *columns], rows


def course_report_table_text(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """``course_report_rows`` as a DataFrame indexed by figure."""
    return rows_frame(course_report_rows(evaluations))
