"""Per-class AUC of several models side by side (numpy and pandas; no Streamlit, no TensorFlow).

The ROC curves themselves come from ``core.metrics.evaluate``; this module only lines up the
stored AUCs of each model, so the ROC page can show which class is weakest and by how much the
models differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data import CLASS_NAMES
from core.metrics import Evaluation

MACRO = "macro average"
DIFFERENCE = "difference"
WEAKEST = "weakest"


def auc_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """One-vs-rest AUC per class of every model, their difference and the weakest class.

    Returns a DataFrame indexed by class name (the ten classes, then ``MACRO``) with one
    column of AUCs per model, in the order given; with two or more models, ``DIFFERENCE`` is
    the last model's AUC minus the first's. ``WEAKEST`` (bool) marks the class whose AUC,
    averaged over the models, is lowest (ties: the first such class; none when every AUC is
    NaN). The ``MACRO`` row holds each model's macro AUC as ``evaluate`` computed it (NaN when
    a class is missing from the test set) and is never the weakest.
    """
    if not evaluations:
        raise ValueError("auc_table needs at least one evaluation")
    names = list(evaluations)
    per_class = np.column_stack([evaluations[n].per_class_auc for n in names])  # (10, models)
    macro = np.array([evaluations[n].macro_auc for n in names])  # (models,)
    table = pd.DataFrame(np.vstack([per_class, macro]), index=[*CLASS_NAMES, MACRO], columns=names)
    table.index.name = "class"
    if len(names) > 1:
        table[DIFFERENCE] = table[names[-1]] - table[names[0]]
    weakest = np.zeros(len(table), dtype=bool)
    defined = ~np.isnan(per_class).any(axis=1)  # (10,): classes with an AUC from every model
    if defined.any():
        mean = np.where(defined, per_class.mean(axis=1), np.inf)  # (10,)
        weakest[int(np.argmin(mean))] = True
    table[WEAKEST] = weakest
    return table


def weakest_class(table: pd.DataFrame) -> str | None:
    """The class ``auc_table`` marked weakest, or None."""
    marked = table.index[table[WEAKEST]]
    return str(marked[0]) if len(marked) else None
