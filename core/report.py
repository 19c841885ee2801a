"""The course report's published figures, and ours beside them (no TensorFlow)."""

from __future__ import annotations

import pandas as pd

from core.data import CLASS_NAMES
from core.metrics import Evaluation

SHIRT = CLASS_NAMES.index("Shirt")
TSHIRT = CLASS_NAMES.index("T-shirt/top")

# As printed in the report (one run each, 10 epochs, batch 32).
REPORT: dict[str, dict[str, float]] = {
    "baseline": {"accuracy": 0.9122, "loss": 0.2574, "shirt_auc": 0.97, "shirt_f1": 0.74},
    "residual": {"accuracy": 0.9220, "loss": 0.3039, "shirt_auc": 0.98, "shirt_f1": 0.78},
}
REPORT_MACRO_AUC = 0.99
REPORT_TSHIRT_AS_SHIRT = 101  # the report does not say which model; shown beside both

ROWS = {
    "accuracy": "Test accuracy",
    "loss": "Test loss",
    "macro_auc": "Macro AUC",
    "shirt_auc": "Shirt AUC",
    "shirt_f1": "Shirt F1",
    "hardest_class": "Hardest class (lowest F1)",
    "tshirt_as_shirt": "T-shirt/top predicted as Shirt",
}


def our_figures(evaluation: Evaluation) -> dict:
    """The numbers the report quotes, computed from one of our runs."""
    return {
        "accuracy": evaluation.accuracy,
        "loss": evaluation.loss,
        "macro_auc": evaluation.macro_auc,
        "shirt_auc": evaluation.roc[SHIRT].auc,
        "shirt_f1": float(evaluation.report.loc["Shirt", "f1"]),
        "hardest_class": evaluation.hardest_class,
        "tshirt_as_shirt": int(evaluation.confusion[TSHIRT, SHIRT]),
    }


def report_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """Rows: the report's figures; columns: '<model> report' and '<model> ours' per model."""
    columns = {}
    for name, evaluation in evaluations.items():
        published = {
            **REPORT.get(name, {}),
            "macro_auc": REPORT_MACRO_AUC,
            "hardest_class": "Shirt",
            "tshirt_as_shirt": REPORT_TSHIRT_AS_SHIRT,
        }
        ours = our_figures(evaluation)
        columns[f"{name} report"] = [published.get(key) for key in ROWS]
        columns[f"{name} ours"] = [ours[key] for key in ROWS]
    return pd.DataFrame(columns, index=list(ROWS.values()))


def report_table_text(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """``report_table`` as text for display: as many decimals as the report prints, plus two."""
    table = report_table(evaluations)

    def fmt(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "–"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    return table.map(fmt)
