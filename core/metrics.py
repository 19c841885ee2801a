"""Metrics from labels and predicted probabilities (numpy, scikit-learn, scipy; no TensorFlow).

Everything here takes ``y_true`` (n,) integer labels and ``y_prob`` (n, 10) class probabilities,
as stored with each run, and returns plain arrays, dataclasses and DataFrames; drawing them is
``core.figures``' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from core.data import CLASS_NAMES, NUM_CLASSES
from core.roc import RocCurve, macro_auc, roc_curves

if TYPE_CHECKING:
    import pandas as pd

LABELS = np.arange(NUM_CLASSES)
SUM_TOLERANCE = 1e-3
AGREEMENT_PARTS = ("both_right", "only_a", "only_b", "both_wrong")
PER_CLASS_COLUMNS = ("precision", "recall", "f1", "support")
PER_CLASS_ROWS = (*CLASS_NAMES, "macro avg", "weighted avg")


def check_predictions(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and probabilities; return int64 labels (n,), normalised floats (n, 10)."""
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y_true.shape}")
    if y_true.size == 0:
        raise ValueError("y_true is empty: need at least one prediction")
    if not np.issubdtype(y_true.dtype, np.integer):
        raise ValueError(f"y_true must hold integer class labels, got dtype {y_true.dtype}")
    if y_true.min() < 0 or y_true.max() >= NUM_CLASSES:
        bad = y_true[(y_true < 0) | (y_true >= NUM_CLASSES)][0]
        raise ValueError(f"y_true labels must lie in 0..{NUM_CLASSES - 1}, found {bad}")
    expected = (y_true.size, NUM_CLASSES)
    if y_prob.shape != expected:
        raise ValueError(
            f"y_prob must have shape (n, {NUM_CLASSES}) = {expected}, got {y_prob.shape}"
        )
    if not np.issubdtype(y_prob.dtype, np.number):
        raise ValueError(f"y_prob must be numeric, got dtype {y_prob.dtype}")
    y_prob = y_prob.astype(np.float64)
    if not np.isfinite(y_prob).all():
        raise ValueError("y_prob has non-finite values (NaN or inf)")
    if (y_prob < 0).any():
        raise ValueError("y_prob has negative values; expected probabilities")
    sums = y_prob.sum(axis=1)  # (n,)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"y_prob rows must sum to 1 within {SUM_TOLERANCE:g}; "
            f"row {row} sums to {sums[row]:.6g} ({int(off.sum())} rows off)"
        )
    # float32 softmax rows are off by ~1e-7; scikit-learn's own checks are stricter than ours.
    return y_true.astype(np.int64), y_prob / sums[:, None]


def headline(y_true: np.ndarray, y_prob: np.ndarray) -> dict:
    """Accuracy and log loss (the report's 'test loss') of one model, with the sample count."""
    # Imported on use: SciPy and scikit-learn take 1 s of a cold start (results are kept).
    from sklearn import metrics as skm

    y_true, y_prob = check_predictions(y_true, y_prob)
    return {
        "n": len(y_true),
        "accuracy": float(skm.accuracy_score(y_true, y_prob.argmax(axis=1))),
        "loss": float(skm.log_loss(y_true, y_prob, labels=LABELS)),
    }


# --- one model --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Everything the results pages show about one model on one test set."""

    n: int
    accuracy: float
    loss: float  # log loss, natural log
    y_pred: np.ndarray  # (n,)
    confusion: np.ndarray  # (10, 10) int; rows = true class, columns = predicted class
    # (12, 4): rows PER_CLASS_ROWS (10 classes, "macro avg", "weighted avg"), columns
    # PER_CLASS_COLUMNS (precision, recall, f1, support); ``per_class`` is it as a DataFrame.
    per_class_values: np.ndarray
    roc: tuple[RocCurve, ...]  # 10, one-vs-rest
    macro_auc: float

    @cached_property
    def per_class(self) -> pd.DataFrame:
        """``per_class_values`` indexed by class ("class"), support as integers. Built on first
        use: the Overview needs only ``f1`` and imports no pandas."""
        import pandas as pd

        table = pd.DataFrame(
            self.per_class_values,
            index=pd.Index(list(PER_CLASS_ROWS), name="class"),
            columns=list(PER_CLASS_COLUMNS),
        )
        return table.astype({"support": "int64"})

    def f1(self, row: str) -> float:
        """F1 of class ``row``, or of "macro avg" / "weighted avg"."""
        return float(
            self.per_class_values[PER_CLASS_ROWS.index(row), PER_CLASS_COLUMNS.index("f1")]
        )

    @property
    def macro_f1(self) -> float:
        return self.f1("macro avg")

    @property
    def per_class_auc(self) -> np.ndarray:
        """One-vs-rest AUC of each class, shape (10,)."""
        return np.array([curve.auc for curve in self.roc])

    @property
    def hardest_class(self) -> str:
        """Name of the class with the lowest F1 (the first such, as pandas' ``idxmin``)."""
        f1 = self.per_class_values[:NUM_CLASSES, PER_CLASS_COLUMNS.index("f1")]
        return CLASS_NAMES[int(np.argmin(f1))]


def _per_class(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``Evaluation.per_class_values``: precision, recall, F1 and support of each class, then
    their macro and weighted averages (support: all images)."""
    from sklearn import metrics as skm

    # zero_division=0: a class never predicted has precision 0 (scikit-learn's value, unwarned).
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=LABELS, zero_division=0.0
    )
    rows = [np.stack([precision, recall, f1, support], axis=1).astype(np.float64)]
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=LABELS, average=average, zero_division=0.0
        )
        rows.append(np.array([[p, r, f, len(y_true)]], np.float64))
    return np.concatenate(rows)


def evaluate(y_true, y_prob) -> Evaluation:
    """Confusion matrix, per-class metrics and ROC curves of one model."""
    from sklearn import metrics as skm

    y_true, y_prob = check_predictions(y_true, y_prob)
    y_pred = y_prob.argmax(axis=1)  # (n,)
    return Evaluation(
        **headline(y_true, y_prob),
        y_pred=y_pred,
        confusion=skm.confusion_matrix(y_true, y_pred, labels=LABELS),
        per_class_values=_per_class(y_true, y_pred),
        roc=roc_curves(y_true, y_prob),
        macro_auc=macro_auc(y_true, y_prob),
    )


def cell_indices(y_true, y_pred, true_class: int, pred_class: int) -> np.ndarray:
    """Sorted indices of the test images in one confusion cell (true row, predicted column)."""
    for name, value in (("true_class", true_class), ("pred_class", pred_class)):
        if not 0 <= value < NUM_CLASSES:
            raise ValueError(f"{name} must lie in 0..{NUM_CLASSES - 1}, got {value}")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.flatnonzero((y_true == true_class) & (y_pred == pred_class))


def per_class_diff(eval_a: Evaluation, eval_b: Evaluation) -> pd.DataFrame:
    """Two per-class tables side by side: ``<metric>_a``, ``_b``, ``_diff`` (b - a), ``support``."""
    import pandas as pd

    a, b = eval_a.per_class, eval_b.per_class
    if not a["support"].equals(b["support"]):
        raise ValueError("the two evaluations were made on different test sets (supports differ)")
    columns = {}
    for metric in PER_CLASS_COLUMNS[:-1]:
        columns[f"{metric}_a"] = a[metric]
        columns[f"{metric}_b"] = b[metric]
        columns[f"{metric}_diff"] = b[metric] - a[metric]
    columns["support"] = a["support"]
    return pd.DataFrame(columns, index=a.index)


# --- two models on the same test set ----------------------------------------------------------


def agreement_mask(y_true, y_pred_a, y_pred_b, part: str) -> np.ndarray:
    """Boolean mask (n,) of the images in one part of ``AGREEMENT_PARTS``."""
    right_a = np.asarray(y_pred_a) == np.asarray(y_true)  # (n,)
    right_b = np.asarray(y_pred_b) == np.asarray(y_true)  # (n,)
    masks = {
        "both_right": right_a & right_b,
        "only_a": right_a & ~right_b,
        "only_b": ~right_a & right_b,
        "both_wrong": ~right_a & ~right_b,
    }
    if part not in masks:
        raise ValueError(f"unknown agreement part {part!r}; expected one of {AGREEMENT_PARTS}")
    return masks[part]


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of model A and model B on the same images."""

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float  # accuracy_b - accuracy_a
    agreement: dict[str, int]  # keys AGREEMENT_PARTS
    mcnemar_p: float  # exact McNemar test on the discordant pairs
    ci_low: float  # bootstrap CI of `difference`, confidence 1 - alpha
    ci_high: float
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        """Whether McNemar's test rejects 'equally accurate' at level ``alpha``."""
        return bool(self.mcnemar_p < self.alpha)

    def verdict(self, name_a: str, name_b: str) -> str:
        """One plain sentence on which model is more accurate and whether that could be chance."""
        level = f"{(1 - self.alpha) * 100:g}% CI"
        p = "p < 0.001" if self.mcnemar_p < 0.001 else f"p = {self.mcnemar_p:.3g}"
        # Report the difference as a positive number of percentage points for the better model.
        points = round(abs(self.difference) * 100, 1)
        low, high = self.ci_low * 100, self.ci_high * 100
        if points == 0:
            claim = f"{name_a} and {name_b} are equally accurate ({level} of the difference"
        elif self.difference > 0:
            claim = f"{name_b} is {points:.1f} points more accurate than {name_a} ({level}"
        else:
            claim = f"{name_a} is {points:.1f} points more accurate than {name_b} ({level}"
            low, high = -high, -low
        claim += f" {low:.1f} to {high:.1f} points)"
        test = f"McNemar's exact test gives {p}"
        if self.significant:
            return f"{claim}; {test}, so the difference is unlikely to be chance."
        return f"{claim}, but {test}, so the difference could well be chance."


def _paired_bootstrap_ci(
    right_a: np.ndarray, right_b: np.ndarray, n_resamples: int, seed: int, confidence: float
) -> tuple[float, float]:
    # Resampling images i.i.d. and averaging the per-image difference d = right_b - right_a
    # (values +1, -1, 0) is a one-sample bootstrap of the mean. A resample's mean depends only on
    # how many +1 and -1 it drew, a multinomial draw, so we draw those counts directly: the same
    # bootstrap distribution as scipy.stats.bootstrap(method="percentile") (checked in the tests),
    # but O(n_resamples) instead of O(n * n_resamples); scipy's index generation alone takes
    # about 1 s for n = n_resamples = 10,000.
    # Percentile rather than BCa: BCa needs a jackknife over all n images, and its bias and skew
    # corrections are negligible for a mean over thousands of images.
    n = right_a.size
    d = right_b.astype(np.int64) - right_a.astype(np.int64)  # (n,)
    counts = np.bincount(d + 1, minlength=3)  # (3,): number of -1, 0, +1
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_resamples)  # (n_resamples, 3)
    means = (draws[:, 2] - draws[:, 0]) / n  # (n_resamples,)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def compare(
    y_true, y_prob_a, y_prob_b, n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05
) -> Comparison:
    """Accuracy difference of B over A with an exact McNemar test and a paired bootstrap CI."""
    y_true, y_prob_a = check_predictions(y_true, y_prob_a)
    _, y_prob_b = check_predictions(y_true, y_prob_b)
    y_pred_a, y_pred_b = y_prob_a.argmax(axis=1), y_prob_b.argmax(axis=1)  # (n,) each
    agreement = {
        part: int(agreement_mask(y_true, y_pred_a, y_pred_b, part).sum())
        for part in AGREEMENT_PARTS
    }
    discordant = agreement["only_a"] + agreement["only_b"]
    # Exact McNemar: under "equally accurate" each discordant image is a fair coin toss.
    if discordant:
        from scipy import stats  # imported on use, as scikit-learn above

        mcnemar_p = float(stats.binomtest(agreement["only_a"], discordant, 0.5).pvalue)
    else:
        mcnemar_p = 1.0
    right_a, right_b = y_pred_a == y_true, y_pred_b == y_true
    ci_low, ci_high = _paired_bootstrap_ci(right_a, right_b, n_resamples, seed, 1 - alpha)
    accuracy_a, accuracy_b = float(right_a.mean()), float(right_b.mean())
    return Comparison(
        n=int(y_true.size),
        accuracy_a=accuracy_a,
        accuracy_b=accuracy_b,
        difference=accuracy_b - accuracy_a,
        agreement=agreement,
        mcnemar_p=mcnemar_p,
        ci_low=ci_low,
        ci_high=ci_high,
        alpha=alpha,
    )
