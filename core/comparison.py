"""Two models' results as tables: the per-class metrics side by side, their colours, and
the CSV download.

No Streamlit here. Differences are always B minus A (``metrics.per_class_diff``).
"""

from __future__ import annotations

import io

import pandas as pd

from core.metrics import PER_CLASS_COLUMNS, Comparison, Evaluation, per_class_diff
from core.models import model_color, model_label

METRIC_TITLES = {"precision": "Precision", "recall": "Recall", "f1": "F1"}
DIFF_MARK = "Δ"
DIFF_SCALE = 0.05  # a difference this large (5 points) gets the strongest tint


def per_class_table(
    eval_a: Evaluation, eval_b: Evaluation, name_a: str, name_b: str
) -> pd.DataFrame:
    """Per-class metrics side by side with readable columns ('F1 · Baseline CNN', 'F1 Δ')."""
    diff = per_class_diff(eval_a, eval_b)
    label_a, label_b = model_label(name_a), model_label(name_b)
    columns = {}
    for metric, title in METRIC_TITLES.items():
        columns[f"{title} · {label_a}"] = diff[f"{metric}_a"]
        columns[f"{title} · {label_b}"] = diff[f"{metric}_b"]
        columns[f"{title} {DIFF_MARK}"] = diff[f"{metric}_diff"]
    columns["Support"] = diff["support"]
    return pd.DataFrame(columns, index=diff.index)


def diff_columns(table: pd.DataFrame) -> list[str]:
    """The difference columns of ``per_class_table``."""
    return [column for column in table if column.endswith(DIFF_MARK)]


def diff_css(value: float, name_a: str, name_b: str, scale: float = DIFF_SCALE) -> str:
    """CSS tinting a difference (B - A) in the better model's colour, stronger when larger."""
    if pd.isna(value) or value == 0:
        return ""
    color = model_color(name_b if value > 0 else name_a)
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    alpha = 0.15 + 0.6 * min(abs(float(value)) / scale, 1.0)
    return f"background-color: rgba({red},{green},{blue},{alpha:.2f})"


def part_labels(name_a: str, name_b: str) -> dict[str, str]:
    """Words for the parts of the agreement table ('only Baseline CNN right', ...)."""
    label_a, label_b = model_label(name_a), model_label(name_b)
    return {
        "both_right": "both right",
        "only_a": f"only {label_a} right",
        "only_b": f"only {label_b} right",
        "both_wrong": "both wrong",
    }


def _part_name(part: str, name_a: str, name_b: str) -> str:
    return {"only_a": f"only_{name_a}_right", "only_b": f"only_{name_b}_right"}.get(part, part)


def comparison_csv(
    eval_a: Evaluation, eval_b: Evaluation, comparison: Comparison, name_a: str, name_b: str
) -> str:
    """The comparison as CSV: columns row, metric, <name_a>, <name_b>, difference (B - A).

    Rows: precision, recall, F1 and support of every class and the macro/weighted averages;
    then 'overall' accuracy, loss and macro AUC; then 'paired comparison' rows whose single
    value is in the difference column: McNemar's p, the accuracy difference and its bootstrap
    CI, and the four agreement counts.
    """
    diff = per_class_diff(eval_a, eval_b)
    rows = []
    for row in diff.index:
        for metric in PER_CLASS_COLUMNS:
            if metric == "support":
                a = b = int(diff.loc[row, "support"])
                rows.append((row, metric, a, b, 0))
            else:
                a, b = diff.loc[row, f"{metric}_a"], diff.loc[row, f"{metric}_b"]
                rows.append((row, metric, a, b, diff.loc[row, f"{metric}_diff"]))
    for metric in ("accuracy", "loss", "macro_auc"):
        a, b = getattr(eval_a, metric), getattr(eval_b, metric)
        rows.append(("overall", metric, a, b, b - a))
    level = f"{(1 - comparison.alpha) * 100:g}"
    paired = {
        "mcnemar_p": comparison.mcnemar_p,
        "accuracy_difference": comparison.difference,
        f"ci{level}_low": comparison.ci_low,
        f"ci{level}_high": comparison.ci_high,
        **{
            f"agreement_{_part_name(part, name_a, name_b)}": n
            for part, n in comparison.agreement.items()
        },
    }
    for metric, value in paired.items():
        rows.append(("paired comparison", metric, None, None, value))
    table = pd.DataFrame(rows, columns=["row", "metric", name_a, name_b, "difference"])
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return buffer.getvalue()
