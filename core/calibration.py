"""Calibration: does a model's confidence match how often it is right? (numpy, pandas.)

A model can be the more accurate one and still have the higher test loss: log loss punishes a
mistake by -log(probability given to the true class), so a few mistakes made with 99%
confidence can outweigh many correct answers. ``confident_mistakes`` measures exactly that share.
Inputs are ``y_true`` (n,) and ``y_prob`` (n, 10) as stored with each run; float32 softmax rows
are renormalised by ``core.metrics.check_predictions``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data import CLASS_NAMES, NUM_CLASSES
from core.metrics import check_predictions
from core.models import display_name

BINS = 15
CONFIDENT = 0.9
LOSS_PARTS = ("right", "wrong, less confident", "wrong, confident")
TOP_LABEL = "All classes (top label)"
ECE_CAPTION = (
    "Expected calibration error (ECE): the gap between confidence and accuracy in each of "
    f"{BINS} confidence bins, weighted by the bin's share of the test images. Top "
    "label: the predicted class's probability against whether the prediction is right; per "
    "class: that class's probability against whether it is the true class."
)


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    return int(bins)


def _bin_index(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1], closed on the right: bin 0 is [0, 1/bins], bin i is
    (i/bins, (i+1)/bins]; a value of exactly 1 falls in the last bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.digitize(values, edges[1:-1], right=True)  # (n,) in 0..bins-1


def _binned(values: np.ndarray, outcomes: np.ndarray, bins: int):
    """Per bin: count, mean value and mean outcome (NaN where empty); and the ECE."""
    index = _bin_index(values, bins)
    counts = np.bincount(index, minlength=bins)  # (bins,)
    sums = np.bincount(index, weights=values, minlength=bins)
    hits = np.bincount(index, weights=outcomes.astype(float), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_value = np.where(counts > 0, sums / counts, np.nan)
        mean_outcome = np.where(counts > 0, hits / counts, np.nan)
    # sum_b n_b / N * |acc_b - conf_b| = sum_b |hits_b - sums_b| / N (empty bins add nothing)
    ece = float(np.abs(hits - sums).sum() / values.size)
    return counts, mean_value, mean_outcome, ece


@dataclass(frozen=True)
class Reliability:
    """Top-label reliability diagram: per confidence bin, how often the top class was right."""

    edges: np.ndarray  # (bins + 1,) equal-width on [0, 1]
    counts: np.ndarray  # (bins,) images whose top-label confidence falls in the bin
    confidence: np.ndarray  # (bins,) mean confidence in the bin; NaN where empty
    accuracy: np.ndarray  # (bins,) share right in the bin; NaN where empty
    ece: float  # sum_b n_b / N |accuracy_b - confidence_b|
    n: int
    overall_accuracy: float
    overall_confidence: float  # mean top-label confidence

    @property
    def bins(self) -> int:
        return len(self.counts)

    @property
    def gap(self) -> np.ndarray:
        """Accuracy minus confidence per bin: negative where the model is over-confident."""
        return self.accuracy - self.confidence

    @property
    def over_confident(self) -> bool:
        """Whether the model is, on average, more confident than it is accurate."""
        return self.overall_confidence > self.overall_accuracy


def reliability(y_true, y_prob, bins: int = BINS) -> Reliability:
    """Bin the top-label confidence into ``bins`` equal-width bins; accuracy and ECE per bin."""
    bins = _check_bins(bins)
    y_true, y_prob = check_predictions(y_true, y_prob)
    confidence = y_prob.max(axis=1)  # (n,)
    right = y_prob.argmax(axis=1) == y_true  # (n,)
    counts, mean_conf, accuracy, ece = _binned(confidence, right, bins)
    return Reliability(
        edges=np.linspace(0.0, 1.0, bins + 1),
        counts=counts,
        confidence=mean_conf,
        accuracy=accuracy,
        ece=ece,
        n=int(y_true.size),
        overall_accuracy=float(right.mean()),
        overall_confidence=float(confidence.mean()),
    )


def ece(y_true, y_prob, bins: int = BINS) -> float:
    """Expected calibration error of the top label (equal-width bins)."""
    return reliability(y_true, y_prob, bins).ece


def classwise_ece(y_true, y_prob, bins: int = BINS) -> np.ndarray:
    """ECE of each class one-vs-rest, shape (10,): ``y_prob[:, k]`` against ``y_true == k``."""
    bins = _check_bins(bins)
    y_true, y_prob = check_predictions(y_true, y_prob)
    return np.array([_binned(y_prob[:, k], y_true == k, bins)[3] for k in range(NUM_CLASSES)])


def image_losses(y_true, y_prob) -> np.ndarray:
    """Each image's log loss, -log p(true class), shape (n,); their mean is the test loss."""
    y_true, y_prob = check_predictions(y_true, y_prob)
    eps = np.finfo(y_prob.dtype).eps  # clipped as scikit-learn's log_loss does
    p_true = np.clip(y_prob[np.arange(y_true.size), y_true], eps, 1 - eps)  # (n,)
    return -np.log(p_true)


@dataclass(frozen=True)
class ConfidentMistakes:
    """Mistakes made with top-label confidence >= ``threshold``, and their part of the loss."""

    threshold: float
    n: int
    accuracy: float
    loss: float  # mean log loss over all images (the test loss)
    mistakes: int
    confident: int  # mistakes with confidence >= threshold
    breakdown: pd.DataFrame  # index LOSS_PARTS; images, share_of_images, loss_sum, share_of_loss

    @property
    def share_of_images(self) -> float:
        """Confident mistakes as a share of all images."""
        return self.confident / self.n

    @property
    def share_of_mistakes(self) -> float:
        """Confident mistakes as a share of all mistakes (NaN when there are none)."""
        return self.confident / self.mistakes if self.mistakes else math.nan

    @property
    def loss_share(self) -> float:
        """The share of the total log loss that comes from the confident mistakes."""
        return float(self.breakdown.loc["wrong, confident", "share_of_loss"])

    @property
    def mistakes_loss_share(self) -> float:
        """The share of the total log loss that comes from all mistakes."""
        return float(self.breakdown.loc[list(LOSS_PARTS[1:]), "share_of_loss"].sum())


def confident_mistakes(y_true, y_prob, threshold: float = CONFIDENT) -> ConfidentMistakes:
    """Count confident mistakes and split the total log loss into right, wrong, confidently
    wrong images."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    y_true, y_prob = check_predictions(y_true, y_prob)
    losses = image_losses(y_true, y_prob)  # (n,)
    confidence = y_prob.max(axis=1)  # (n,)
    wrong = y_prob.argmax(axis=1) != y_true  # (n,)
    confident = wrong & (confidence >= threshold)
    masks = {
        "right": ~wrong,
        "wrong, less confident": wrong & ~confident,
        "wrong, confident": confident,
    }
    total = float(losses.sum())
    breakdown = pd.DataFrame(
        {
            "images": [int(m.sum()) for m in masks.values()],
            "share_of_images": [float(m.mean()) for m in masks.values()],
            "loss_sum": [float(losses[m].sum()) for m in masks.values()],
            "share_of_loss": [
                float(losses[m].sum() / total) if total > 0 else math.nan for m in masks.values()
            ],
        },
        index=pd.Index(list(LOSS_PARTS), name="part"),
    )
    return ConfidentMistakes(
        threshold=float(threshold),
        n=int(y_true.size),
        accuracy=float((~wrong).mean()),
        loss=float(losses.mean()),
        mistakes=int(wrong.sum()),
        confident=int(confident.sum()),
        breakdown=breakdown,
    )


@dataclass(frozen=True)
class Calibration:
    """Everything the calibration view shows about one model."""

    reliability: Reliability
    classwise_ece: np.ndarray  # (10,)
    mistakes: ConfidentMistakes


def calibrate(y_true, y_prob, bins: int = BINS, threshold: float = CONFIDENT) -> Calibration:
    """Reliability bins, class-wise ECE and confident mistakes of one model."""
    return Calibration(
        reliability=reliability(y_true, y_prob, bins),
        classwise_ece=classwise_ece(y_true, y_prob, bins),
        mistakes=confident_mistakes(y_true, y_prob, threshold),
    )


def calibration_text(
    results: Mapping[str, Calibration],
    names: Mapping[str, str] | Sequence[str] | None = None,
    pair: Sequence[str] | None = None,
) -> str:
    """Plain sentences comparing the calibration of two models of ``results``: ``pair`` (two of
    its keys, A first), or its only two. ``names`` are their labels: a mapping from key, or a
    sequence in the order of ``results``; by default the keys themselves."""
    keys = list(results)
    if pair is None:
        if len(keys) != 2:
            raise ValueError(
                f"calibration_text compares two models, got {len(keys)} ({', '.join(keys)}); "
                "with more, say which two with pair="
            )
        pair = keys
    key_a, key_b = pair
    for key in (key_a, key_b):
        if key not in results:
            raise ValueError(f"no calibration of {key!r} to compare; have: {', '.join(keys)}")
    if key_a == key_b:
        raise ValueError(f"calibration_text compares two different models, got {key_a!r} twice")
    if names is None:
        labels = dict(zip(keys, keys, strict=True))
    elif isinstance(names, Mapping):
        labels = {key: names.get(key, key) for key in keys}
    else:
        if len(names) != len(keys):
            raise ValueError(f"{len(names)} names for {len(keys)} models")
        labels = dict(zip(keys, names, strict=True))
    a, b = results[key_a], results[key_b]
    name_a, name_b = labels[key_a], labels[key_b]
    ma, mb = a.mistakes, b.mistakes
    threshold = f"{ma.threshold:.0%}"
    # Name the more accurate model first, and give both numbers in that order.
    first, second = (
        ((name_b, mb), (name_a, ma)) if mb.accuracy > ma.accuracy else ((name_a, ma), (name_b, mb))
    )
    if first[1].accuracy == second[1].accuracy:
        lead = f"{name_a} and {name_b} are equally accurate ({ma.accuracy:.2%})"
    else:
        lead = (
            f"{first[0]} is more accurate than {second[0]} "
            f"({first[1].accuracy:.2%} vs {second[1].accuracy:.2%})"
        )
    more_accurate_higher_loss = (mb.accuracy - ma.accuracy) * (mb.loss - ma.loss) > 0
    loss = f"{first[1].loss:.3f} vs {second[1].loss:.3f}"
    if more_accurate_higher_loss:
        lead += f" and yet has the higher test loss ({loss})."
    else:
        lead += f"; test loss {loss}."
    detail = (
        f" Mistakes made with at least {threshold} confidence: {ma.share_of_images:.1%} of "
        f"{name_a}'s test images, carrying {ma.loss_share:.0%} of its total log loss; "
        f"{mb.share_of_images:.1%} of {name_b}'s, carrying {mb.loss_share:.0%} of its."
    )
    ra, rb = a.reliability, b.reliability

    def tendency(r: Reliability) -> str:
        return "over-confident" if r.over_confident else "under-confident"

    calib = (
        f" Expected calibration error: {ra.ece:.1%} for {name_a} ({tendency(ra)} on average), "
        f"{rb.ece:.1%} for {name_b} ({tendency(rb)})."
    )
    why = ""
    if more_accurate_higher_loss:
        why = (
            " Log loss punishes a confident mistake far more than it rewards a confident right "
            "answer, so a few very confident mistakes can outweigh a higher accuracy."
        )
    return lead + detail + calib + why


# --- tables, one column per model (by display name) --------------------------------------------


def ece_table(results: Mapping[str, Calibration]) -> pd.DataFrame:
    """Rows: the top-label ECE, then each class's one-vs-rest ECE; one column per model."""
    return pd.DataFrame(
        {
            display_name(model): [c.reliability.ece, *map(float, c.classwise_ece)]
            for model, c in results.items()
        },
        index=pd.Index([TOP_LABEL, *CLASS_NAMES], name="expected calibration error"),
    )


def mistakes_table(results: Mapping[str, Calibration]) -> pd.DataFrame:
    """Accuracy, test loss, and how much of the loss the confident mistakes carry, per model."""
    threshold = next(iter(results.values())).mistakes.threshold if results else CONFIDENT
    confident = f"Confident mistakes (≥ {threshold:.0%})"
    rows = {
        "Test accuracy": lambda m: m.accuracy,
        "Test loss (mean log loss)": lambda m: m.loss,
        f"{confident}: share of test images": lambda m: m.share_of_images,
        f"{confident}: share of all mistakes": lambda m: m.share_of_mistakes,
        f"{confident}: share of the total log loss": lambda m: m.loss_share,
        "All mistakes: share of the total log loss": lambda m: m.mistakes_loss_share,
    }
    return pd.DataFrame(
        {
            display_name(model): [get(c.mistakes) for get in rows.values()]
            for model, c in results.items()
        },
        index=pd.Index(list(rows), name="test set"),
    )


def styled_mistakes(table: pd.DataFrame):
    """``mistakes_table`` formatted: shares as percentages, the loss with four decimals."""
    loss = [row for row in table.index if row.startswith("Test loss")]
    shares = [row for row in table.index if row not in loss]
    return table.style.format("{:.2%}", subset=pd.IndexSlice[shares, :], na_rep="–").format(
        "{:.4f}", subset=pd.IndexSlice[loss, :], na_rep="–"
    )
