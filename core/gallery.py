"""Which test images a clicked cell holds, and how a gallery of them is filtered, sorted, paged.

No Streamlit here: ``gallery_ui.py`` draws what these functions compute. A gallery is a
DataFrame with one row per image: ``index`` (position in the test set), ``true`` (label), and for
every model ``pred_<model>`` and ``conf_<model>`` (its probability of its own prediction), plus
``agree`` (all models predict the same class).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.data import CLASS_NAMES, NUM_CLASSES
from core.metrics import AGREEMENT_PARTS, agreement_mask, cell_indices

EITHER = "difference"  # the difference matrix's cells hold images of either model
ORDERS = ("index", "ascending", "descending")


def _check_labels(y_true) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y_true.shape}")
    return y_true


def cell_members(
    y_true, y_pred_by_model: Mapping[str, np.ndarray], true_class: int, pred_class: int, source: str
) -> np.ndarray:
    """Sorted test-set indices in one confusion cell of ``source``.

    ``source`` is a model name (that model's matrix) or ``EITHER`` (the difference matrix):
    then the cell holds the images any of the models put there, each once.
    """
    y_true = _check_labels(y_true)
    if source == EITHER:
        members = [
            cell_indices(y_true, y_pred, true_class, pred_class)
            for y_pred in y_pred_by_model.values()
        ]
        return np.unique(np.concatenate(members)) if members else np.array([], dtype=np.int64)
    if source not in y_pred_by_model:
        raise ValueError(f"unknown source {source!r}; expected one of {[*y_pred_by_model, EITHER]}")
    return cell_indices(y_true, y_pred_by_model[source], true_class, pred_class)


def cell_breakdown(y_true, y_pred_a, y_pred_b, true_class: int, pred_class: int) -> dict[str, int]:
    """How many images of one cell both models, only A, only B put there.

    A difference-matrix cell shows ``only_b - only_a``: images both models place there cancel.
    """
    in_a = np.zeros(len(_check_labels(y_true)), dtype=bool)  # (n,)
    in_b = in_a.copy()
    in_a[cell_indices(y_true, y_pred_a, true_class, pred_class)] = True
    in_b[cell_indices(y_true, y_pred_b, true_class, pred_class)] = True
    return {
        "both": int((in_a & in_b).sum()),
        "only_a": int((in_a & ~in_b).sum()),
        "only_b": int((~in_a & in_b).sum()),
    }


def cell_caption(
    y_true,
    y_pred_by_model: Mapping[str, np.ndarray],
    names: Mapping[str, str],
    true_class: int,
    pred_class: int,
    source: str,
) -> str:
    """One sentence on what a cell's gallery holds; for ``EITHER``, how the difference arises."""
    true_name, pred_name = CLASS_NAMES[true_class], CLASS_NAMES[pred_class]
    if source != EITHER:
        n = len(cell_members(y_true, y_pred_by_model, true_class, pred_class, source))
        return (
            f"The {n:,} test images of true {true_name} that {names[source]} predicts as "
            f"{pred_name}, the number in its matrix cell."
        )
    (a, y_pred_a), (b, y_pred_b) = list(y_pred_by_model.items())[:2]
    split = cell_breakdown(y_true, y_pred_a, y_pred_b, true_class, pred_class)
    return (
        f"The difference cell counts {names[b]}'s images minus {names[a]}'s. Shown: every image "
        f"either model puts here, {split['both']:,} by both, {split['only_a']:,} only by "
        f"{names[a]} and {split['only_b']:,} only by {names[b]}; images both put here cancel "
        f"out, so the cell reads {split['only_b']:,} − {split['only_a']:,}."
    )


def part_members(y_true, y_pred_a, y_pred_b, part: str) -> np.ndarray:
    """Sorted test-set indices of one part of the agreement table (``AGREEMENT_PARTS``)."""
    return np.flatnonzero(agreement_mask(y_true, y_pred_a, y_pred_b, part))


def parse_cell(value, sources) -> tuple[int, int, str] | None:
    """A session-state cell ``(true, predicted, source)`` checked, or None when malformed."""
    try:
        true_class, pred_class, source = value
        true_class, pred_class = int(true_class), int(pred_class)
    except (TypeError, ValueError):
        return None
    if not (0 <= true_class < NUM_CLASSES and 0 <= pred_class < NUM_CLASSES):
        return None
    return (true_class, pred_class, source) if source in sources else None


def parse_part(value) -> str | None:
    """A session-state agreement part, or None when it is not one of ``AGREEMENT_PARTS``."""
    return value if isinstance(value, str) and value in AGREEMENT_PARTS else None


def gallery_items(y_true, probs: Mapping[str, np.ndarray], indices) -> pd.DataFrame:
    """One row per image in ``indices``: true label, each model's prediction and confidence."""
    y_true = _check_labels(y_true)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)  # (k,)
    if indices.size and (indices.min() < 0 or indices.max() >= len(y_true)):
        raise ValueError(f"indices must lie in 0..{len(y_true) - 1}")
    columns: dict[str, np.ndarray] = {"index": indices, "true": y_true[indices].astype(np.int64)}
    preds = []
    for name, y_prob in probs.items():
        y_prob = np.asarray(y_prob)
        if y_prob.shape != (len(y_true), NUM_CLASSES):
            raise ValueError(
                f"{name}: y_prob must have shape ({len(y_true)}, {NUM_CLASSES}), got {y_prob.shape}"
            )
        rows = y_prob[indices]  # (k, 10)
        pred = rows.argmax(axis=1)  # (k,)
        columns[f"pred_{name}"] = pred.astype(np.int64)
        columns[f"conf_{name}"] = rows[np.arange(len(indices)), pred].astype(np.float64)
        preds.append(pred)
    agree = np.ones(len(indices), dtype=bool)
    for pred in preds[1:]:
        agree &= pred == preds[0]
    columns["agree"] = agree
    return pd.DataFrame(columns)


def models_of(items: pd.DataFrame) -> list[str]:
    """The model names a gallery DataFrame holds, in column order."""
    return [column.removeprefix("pred_") for column in items if column.startswith("pred_")]


def filter_items(
    items: pd.DataFrame,
    disagree_only: bool = False,
    conf_range: tuple[float, float] = (0.0, 1.0),
    model: str | None = None,
) -> pd.DataFrame:
    """Keep images the models disagree on and/or whose ``model`` confidence lies in the range.

    The range is inclusive at both ends, in [0, 1].
    """
    low, high = (float(v) for v in conf_range)
    if not 0 <= low <= high <= 1:
        raise ValueError(f"conf_range must satisfy 0 <= low <= high <= 1, got {conf_range}")
    keep = np.ones(len(items), dtype=bool)  # (k,)
    if disagree_only:
        keep &= ~items["agree"].to_numpy(dtype=bool)
    if (low, high) != (0.0, 1.0):
        if model is None or f"conf_{model}" not in items:
            raise ValueError(
                f"a confidence range needs one of the gallery's models {models_of(items)}, "
                f"got {model!r}"
            )
        conf = items[f"conf_{model}"].to_numpy()
        keep &= (conf >= low) & (conf <= high)
    return items[keep]


def sort_items(items: pd.DataFrame, model: str | None = None, order: str = "index") -> pd.DataFrame:
    """Test-set order, or ``model``'s confidence ascending/descending (ties in test-set order)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if order == "index":
        return items.sort_values("index", kind="stable")
    if model is None or f"conf_{model}" not in items:
        raise ValueError(
            f"sorting by confidence needs one of the gallery's models {models_of(items)}, "
            f"got {model!r}"
        )
    return items.sort_values(
        [f"conf_{model}", "index"], ascending=[order == "ascending", True], kind="stable"
    )


def page(items: pd.DataFrame, page: int, per_page: int) -> tuple[pd.DataFrame, int]:
    """Rows of page ``page`` (from 1; clamped to the last page) and the number of pages (>= 1)."""
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}")
    n_pages = max(1, math.ceil(len(items) / per_page))
    number = min(max(int(page), 1), n_pages)
    start = (number - 1) * per_page
    return items.iloc[start : start + per_page], n_pages


def page_label(n_shown: int, page: int, per_page: int, total: int | None = None) -> str:
    """'Showing 25–48 of 120 images', naming how many the filters hide out of ``total``."""
    if n_shown == 0:
        text = "No images to show"
    else:
        n_pages = max(1, math.ceil(n_shown / per_page))
        number = min(max(int(page), 1), n_pages)
        first = (number - 1) * per_page + 1
        last = min(number * per_page, n_shown)
        text = f"Showing {first:,}–{last:,} of {n_shown:,} images"
    if total is not None and total != n_shown:
        text += f" (the filters hide {total - n_shown:,} of {total:,})"
    return text


def caption(row: Mapping, names: Mapping[str, str]) -> str:
    """'true Shirt · Baseline CNN: T-shirt/top 81% · Residual CNN: Shirt 55%' for one image.

    ``names`` maps each model of the gallery to the name shown, in the order shown.
    """
    parts = [f"true {CLASS_NAMES[int(row['true'])]}"]
    for model, shown in names.items():
        pred, conf = int(row[f"pred_{model}"]), float(row[f"conf_{model}"])
        parts.append(f"{shown}: {CLASS_NAMES[pred]} {conf:.0%}")
    return " · ".join(parts)


def same_labels(y_true, y_other) -> bool:
    """Whether two label arrays describe the same test set (same length, same labels)."""
    y_true, y_other = np.asarray(y_true), np.asarray(y_other)
    return y_true.shape == y_other.shape and bool(np.array_equal(y_true, y_other))
