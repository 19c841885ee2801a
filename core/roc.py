"""ROC curves and AUCs: one-vs-rest per class (scikit-learn), and several models side by side.

``core.metrics.evaluate`` keeps each model's curves (``roc_curves``) and macro AUC; ``auc_table``
lines the AUCs of several models up, so the ROC page can show which class is weakest and by how
much the models differ. Beside them, one-vs-rest precision-recall curves and average precision
(``pr_curves``, ``ap_table``). No Streamlit, no TensorFlow.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.data import CLASS_NAMES, NUM_CLASSES

if TYPE_CHECKING:  # core.metrics builds on this module
    import pandas as pd

    from core.metrics import Evaluation

MACRO = "macro average"
DIFFERENCE = "difference"
WEAKEST = "weakest"
AP_CAPTION = (
    "Precision-recall: of the images a model takes for the class, the share that are (precision), "
    "against the share of the class's images it catches (recall), as the threshold falls. "
    "Average precision (AP) sums precision over the recall steps; chance is the class's share of "
    "the images (the dotted line), a perfect ranking 1."
)


@dataclass(frozen=True)
class RocCurve:
    """One-vs-rest ROC curve of one class; ``auc`` is NaN when the class is absent or alone."""

    fpr: np.ndarray  # (m,)
    tpr: np.ndarray  # (m,)
    thresholds: np.ndarray  # (m,)
    auc: float


def roc_curves(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[RocCurve, ...]:
    """The one-vs-rest ROC curve of each class (``y_true`` (n,) labels, ``y_prob`` (n, 10))."""
    # Imported on use: scikit-learn takes a second of a cold start (results are kept).
    from sklearn import metrics as skm
    from sklearn.exceptions import UndefinedMetricWarning

    curves = []
    for k in range(NUM_CLASSES):
        positive = y_true == k  # (n,)
        with warnings.catch_warnings():
            # A class missing from a small test set has no ROC curve; its AUC is NaN below.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            fpr, tpr, thresholds = skm.roc_curve(positive, y_prob[:, k])
        defined = 0 < positive.sum() < len(y_true)
        auc = float(skm.auc(fpr, tpr)) if defined else float("nan")
        curves.append(RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=auc))
    return tuple(curves)


def macro_auc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """The macro average of the one-vs-rest AUCs; NaN when a class has no examples (undefined)."""
    from sklearn import metrics as skm

    if np.unique(y_true).size != NUM_CLASSES:
        return float("nan")
    labels = np.arange(NUM_CLASSES)
    return float(
        skm.roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro", labels=labels)
    )


@dataclass(frozen=True)
class PrCurve:
    """One-vs-rest precision-recall curve of one class; ``ap`` is NaN when the class is absent.

    As scikit-learn returns them: recall falls from 1 to 0 along the arrays, and the last point
    (precision 1, recall 0) has no threshold.
    """

    precision: np.ndarray  # (m,)
    recall: np.ndarray  # (m,)
    thresholds: np.ndarray  # (m - 1,)
    ap: float  # average precision: sum over thresholds of (recall step) x precision

    @property
    def prevalence(self) -> float:
        """The class's share of the images: the precision of taking every image for it."""
        return float(self.precision[0])


def pr_curves(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[PrCurve, ...]:
    """The one-vs-rest precision-recall curve and average precision of each class.

    ``y_true`` (n,) labels and ``y_prob`` (n, 10), as ``core.metrics.check_predictions``
    returns them.
    """
    from sklearn import metrics as skm

    curves = []
    for k in range(NUM_CLASSES):
        positive = y_true == k  # (n,)
        defined = bool(positive.any())
        with warnings.catch_warnings():
            if not defined:  # a class missing from a small test set has no recall: AP is NaN
                warnings.simplefilter("ignore")
            precision, recall, thresholds = skm.precision_recall_curve(positive, y_prob[:, k])
        ap = float(skm.average_precision_score(positive, y_prob[:, k])) if defined else math.nan
        curves.append(PrCurve(precision=precision, recall=recall, thresholds=thresholds, ap=ap))
    return tuple(curves)


def ap_table(curves: Mapping[str, Sequence[PrCurve]]) -> pd.DataFrame:
    """Average precision per class of every model (columns in the order given), and their mean.

    Indexed by class name, then ``MACRO`` (the mean over the classes, NaN when one is NaN).
    """
    import pandas as pd

    if not curves:
        raise ValueError("ap_table needs at least one model's curves")
    per_class = np.array([[c.ap for c in model] for model in curves.values()]).T  # (10, models)
    table = pd.DataFrame(
        np.vstack([per_class, per_class.mean(axis=0)]),
        index=[*CLASS_NAMES, MACRO],
        columns=list(curves),
    )
    table.index.name = "class"
    return table


def auc_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """One-vs-rest AUC per class of every model, their difference and the weakest class.

    Returns a DataFrame indexed by class name (the ten classes, then ``MACRO``) with one
    column of AUCs per model, in the order given; with two or more models, ``DIFFERENCE`` is
    the last model's AUC minus the first's. ``WEAKEST`` (bool) marks the class whose AUC,
    averaged over the models, is lowest (ties: the first such class; none when every AUC is
    NaN). The ``MACRO`` row holds each model's macro AUC as ``evaluate`` computed it (NaN when
    a class is missing from the test set) and is never the weakest.
    """
    import pandas as pd

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
