"""Selective prediction: when should a model abstain? (numpy, pandas.)

A model that may decline to answer keeps its most confident predictions (confidence = the top
class's probability) and abstains on the rest. Keeping the ``k`` most confident of ``n`` test
images gives a coverage ``k / n`` and an accuracy on the kept ones; their risk is 1 − accuracy.
The area under the risk-coverage curve (AURC, Geifman & El-Yaniv 2017) is the mean risk over
``k = 1..n``; the optimal AURC is what a perfect ranking (every right answer before every
mistake) reaches at the same accuracy, and their difference, the excess AURC (E-AURC, Geifman
et al. 2019, Ding et al. 2020), says how much the confidence ranking itself loses.

Order: confidence descending, ties in image order (a stable sort), so every number is
deterministic. Inputs are ``y_true`` (n,) and ``y_prob`` (n, 10) as stored with each run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.metrics import check_predictions
from core.models import display_name

THRESHOLD = 0.9  # the slider's default: answer only when at least 90% sure
THRESHOLD_RANGE = (0.5, 0.99)
TOP_K = (1, 2, 3)
SELECTIVE_CAPTION = (
    "A model may decline to answer when unsure. Keeping only its most confident predictions "
    "(confidence: the predicted class's probability) trades coverage (the share of test images "
    "answered) for accuracy on the answered ones. AURC: the area under the risk-coverage curve, "
    "risk = 1 − accuracy of the kept predictions, averaged over every coverage (lower is better); "
    "the optimal AURC is what a perfect ranking (every right answer before every mistake) reaches "
    "at the same accuracy, and the excess AURC is what the model's confidence ranking loses."
)


def confidence_order(y_prob: np.ndarray) -> np.ndarray:
    """Image indices by top-label confidence, highest first; ties keep image order (n,)."""
    return np.argsort(-y_prob.max(axis=1), kind="stable")


@dataclass(frozen=True)
class RiskCoverage:
    """Accuracy of the ``k`` most confident predictions for every ``k = 1..n``."""

    coverage: np.ndarray  # (n,) k / n
    accuracy: np.ndarray  # (n,) share right among the k most confident
    confidence: np.ndarray  # (n,) the k-th most confident prediction's confidence (descending)
    aurc: float  # mean of the risk (1 - accuracy) over k = 1..n
    optimal_aurc: float  # the AURC of a perfect ranking with the same number of mistakes

    @property
    def n(self) -> int:
        return int(self.coverage.size)

    @property
    def risk(self) -> np.ndarray:
        """Selective risk, 1 − accuracy of the kept predictions (n,)."""
        return 1.0 - self.accuracy

    @property
    def overall_accuracy(self) -> float:
        """Accuracy when answering every image (coverage 1)."""
        return float(self.accuracy[-1])

    @property
    def excess_aurc(self) -> float:
        """AURC minus the optimal AURC: what the confidence ranking loses (0 = perfect)."""
        return self.aurc - self.optimal_aurc


def optimal_aurc(n: int, mistakes: int) -> float:
    """The AURC of a perfect ranking of ``n`` predictions with ``mistakes`` wrong ones.

    The right ones come first (risk 0), then for ``k > n - mistakes`` the risk is
    ``(k - (n - mistakes)) / k``; for large ``n`` this tends to Geifman et al.'s
    ``r + (1 - r) ln(1 - r)`` with ``r = mistakes / n``.
    """
    if not 0 <= mistakes <= n or n < 1:
        raise ValueError(f"need 0 <= mistakes <= n and n >= 1, got n={n}, mistakes={mistakes}")
    right = n - mistakes
    k = np.arange(right + 1, n + 1)  # (mistakes,)
    return float(((k - right) / k).sum() / n)


def risk_coverage(y_true, y_prob) -> RiskCoverage:
    """The accuracy-coverage (and risk-coverage) curve of one model, with its AURC."""
    y_true, y_prob = check_predictions(y_true, y_prob)
    order = confidence_order(y_prob)  # (n,)
    right = (y_prob.argmax(axis=1) == y_true)[order]  # (n,) in kept order
    kept = np.arange(1, y_true.size + 1)  # (n,)
    accuracy = np.cumsum(right) / kept
    return RiskCoverage(
        coverage=kept / y_true.size,
        accuracy=accuracy,
        confidence=y_prob.max(axis=1)[order],
        aurc=float((1.0 - accuracy).mean()),
        optimal_aurc=optimal_aurc(int(y_true.size), int((~right).sum())),
    )


@dataclass(frozen=True)
class Abstention:
    """What a model does when it answers only at or above a confidence ``threshold``."""

    threshold: float
    answered: int  # images whose confidence >= threshold
    n: int
    accuracy: float  # on the answered images; NaN when none is answered

    @property
    def coverage(self) -> float:
        """The share of the images answered."""
        return self.answered / self.n


def abstain(curve: RiskCoverage, threshold: float) -> Abstention:
    """Answer the images with confidence >= ``threshold``: how many, and how often right.

    The answered images are the ``answered`` most confident ones, so the point lies on
    ``curve`` at ``coverage[answered - 1]``.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    # confidence is descending: count the values >= threshold from the front
    answered = int(np.searchsorted(-curve.confidence, -threshold, side="right"))
    accuracy = float(curve.accuracy[answered - 1]) if answered else float("nan")
    return Abstention(float(threshold), answered, curve.n, accuracy)


def abstention_text(label: str, result: Abstention) -> str:
    """One sentence: at this threshold, how much a model answers and how often it is right."""
    start = f"{label} at ≥ {result.threshold:.0%} confidence:"
    if not result.answered:
        return f"{start} no image is that sure, so it answers none of the {result.n:,}."
    return (
        f"{start} answering {result.coverage:.1%} of the images ({result.answered:,} of "
        f"{result.n:,}), accuracy is {result.accuracy:.2%}."
    )


def top_k_accuracy(y_true, y_prob, ks: tuple[int, ...] = TOP_K) -> np.ndarray:
    """Share of images whose true class is among the ``k`` most probable, for each ``k`` (len(ks),).

    Ties between classes keep class order (a stable sort), as ``confidence_order`` does.
    """
    y_true, y_prob = check_predictions(y_true, y_prob)
    ranked = np.argsort(-y_prob, axis=1, kind="stable")  # (n, 10) classes, most probable first
    rank = np.argmax(ranked == y_true[:, None], axis=1)  # (n,) 0 = top-1
    return np.array([float((rank < k).mean()) for k in ks])


# --- tables, one column per model (by display name) --------------------------------------------


def aurc_table(curves: Mapping[str, RiskCoverage]) -> pd.DataFrame:
    """Accuracy, AURC, optimal AURC and excess AURC per model (columns by display name)."""
    rows = {
        "Accuracy (answering every image)": lambda c: c.overall_accuracy,
        "AURC (area under risk-coverage)": lambda c: c.aurc,
        "Optimal AURC at that accuracy": lambda c: c.optimal_aurc,
        "Excess AURC (AURC − optimal)": lambda c: c.excess_aurc,
    }
    return pd.DataFrame(
        {display_name(model): [get(c) for get in rows.values()] for model, c in curves.items()},
        index=pd.Index(list(rows), name="selective prediction"),
    )


def top_k_table(accuracies: Mapping[str, np.ndarray], ks: tuple[int, ...] = TOP_K) -> pd.DataFrame:
    """``top_k_accuracy`` of several models: rows top-1, top-2, ...; columns by display name."""
    return pd.DataFrame(
        {display_name(model): np.asarray(acc, dtype=float) for model, acc in accuracies.items()},
        index=pd.Index([f"Top-{k}" for k in ks], name="accuracy"),
    )
