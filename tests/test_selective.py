"""core.selective: risk-coverage, AURC, abstaining at a threshold and top-k accuracy, each checked
against a plain computation (loops over sorted lists), not against core itself."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core import selective
from core.data import NUM_CLASSES
from core.models import MODEL_NAMES, REGISTRY


def make_predictions(seed: int, n: int = 300, signal: float = 1.5, ties: bool = False):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, NUM_CLASSES, n)
    logits = rng.normal(size=(n, NUM_CLASSES))  # (n, 10)
    logits[np.arange(n), y_true] += signal
    if ties:  # rounded logits: many images share a confidence, some rows tie between classes
        logits = np.round(logits)
    y_prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, y_prob


def brute_force_accuracies(y_true, y_prob) -> list[float]:
    """For each k, the accuracy of the k most confident (ties: lower image index first).

    Rows are first rescaled to sum to 1, as every stored run's are (core.metrics).
    """
    y_prob = y_prob / y_prob.sum(axis=1, keepdims=True)
    rows = [(-max(p), i) for i, p in enumerate(y_prob.tolist())]
    order = [i for _, i in sorted(rows)]
    accuracies = []
    for k in range(1, len(order) + 1):
        right = 0
        for i in order[:k]:
            right += int(np.argmax(y_prob[i]) == y_true[i])
        accuracies.append(right / k)
    return accuracies


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_risk_coverage_against_brute_force(seed, ties):
    y_true, y_prob = make_predictions(seed, n=120, ties=ties)
    curve = selective.risk_coverage(y_true, y_prob)
    expected = brute_force_accuracies(y_true, y_prob)
    np.testing.assert_allclose(curve.accuracy, expected, atol=1e-12)
    np.testing.assert_allclose(curve.risk, 1 - np.array(expected), atol=1e-12)
    np.testing.assert_allclose(curve.coverage, np.arange(1, 121) / 120)
    assert np.all(np.diff(curve.confidence) <= 0)
    # AURC by direct summation of the risks over every coverage
    total = 0.0
    for accuracy in expected:
        total += 1 - accuracy
    assert curve.aurc == pytest.approx(total / len(expected), abs=1e-12)
    assert curve.overall_accuracy == pytest.approx(np.mean(y_prob.argmax(1) == y_true))
    assert curve.excess_aurc == pytest.approx(curve.aurc - curve.optimal_aurc)
    assert curve.excess_aurc >= -1e-12


def test_ties_are_broken_by_image_order():
    """Equal confidences: the earlier image is kept first, whatever the labels."""
    y_prob = np.full((4, NUM_CLASSES), 0.05)
    y_prob[:, 0] = 0.55  # every image predicts class 0 with the same confidence
    curve = selective.risk_coverage(np.array([1, 0, 0, 1]), y_prob)
    np.testing.assert_allclose(curve.accuracy, [0, 1 / 2, 2 / 3, 2 / 4])
    again = selective.risk_coverage(np.array([1, 0, 0, 1]), y_prob)
    np.testing.assert_array_equal(curve.accuracy, again.accuracy)


def test_optimal_aurc_on_a_constructed_case():
    """A perfect ranking (every right answer more confident) reaches the optimum: excess 0."""
    n, mistakes = 10, 3
    y_true = np.zeros(n, dtype=int)
    y_prob = np.full((n, NUM_CLASSES), 0.0)
    confidence = np.linspace(0.95, 0.6, n)  # (n,) descending
    y_prob[:, 0] = confidence
    y_prob[:, 1] = 1 - confidence
    y_prob[n - mistakes :, [0, 1]] = y_prob[n - mistakes :, [1, 0]]  # the 3 least sure: wrong
    curve = selective.risk_coverage(y_true, y_prob)
    # by hand: risk 0 for k <= 7, then 1/8, 2/9, 3/10; mean over k = 1..10
    by_hand = (1 / 8 + 2 / 9 + 3 / 10) / 10
    assert selective.optimal_aurc(n, mistakes) == pytest.approx(by_hand)
    assert curve.aurc == pytest.approx(by_hand)
    assert curve.optimal_aurc == pytest.approx(by_hand)
    assert curve.excess_aurc == pytest.approx(0, abs=1e-15)
    # the worst ranking for the same accuracy (the 3 surest are the mistakes): far above it
    worst = np.zeros_like(y_prob)
    worst[:, 0], worst[:, 1] = confidence, 1 - confidence
    worst[:mistakes, [0, 1]] = worst[:mistakes, [1, 0]]
    curve = selective.risk_coverage(y_true, worst)
    assert curve.optimal_aurc == pytest.approx(by_hand)
    by_hand = (3 + sum(3 / k for k in range(4, 11))) / 10
    assert curve.aurc == pytest.approx(by_hand)
    assert curve.excess_aurc > 0.5


def test_optimal_aurc_edges_and_the_continuous_formula():
    assert selective.optimal_aurc(5, 0) == 0
    assert selective.optimal_aurc(4, 4) == pytest.approx(1.0)
    r = 0.1  # Geifman et al.: r + (1 - r) ln(1 - r) for large n
    assert selective.optimal_aurc(100_000, 10_000) == pytest.approx(
        r + (1 - r) * math.log(1 - r), abs=1e-4
    )
    with pytest.raises(ValueError, match="mistakes <= n"):
        selective.optimal_aurc(3, 4)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.9, 0.99])
def test_abstain_counts_and_scores_the_sure_ones(threshold):
    y_true, y_prob = make_predictions(2, n=400, ties=True)
    curve = selective.risk_coverage(y_true, y_prob)
    result = selective.abstain(curve, threshold)
    sure = [i for i in range(len(y_true)) if y_prob[i].max() / y_prob[i].sum() >= threshold]
    assert result.answered == len(sure)
    assert result.n == 400 and result.coverage == len(sure) / 400
    if sure:
        right = sum(int(np.argmax(y_prob[i]) == y_true[i]) for i in sure)
        assert result.accuracy == pytest.approx(right / len(sure))
        # the point lies on the curve
        assert curve.coverage[result.answered - 1] == pytest.approx(result.coverage)
        assert curve.accuracy[result.answered - 1] == pytest.approx(result.accuracy)
    else:
        assert math.isnan(result.accuracy)


def test_abstention_text():
    answered = selective.Abstention(threshold=0.9, answered=8766, n=10_000, accuracy=0.951974)
    assert selective.abstention_text("Baseline CNN", answered) == (
        "Baseline CNN at ≥ 90% confidence: answering 87.7% of the images (8,766 of 10,000), "
        "accuracy is 95.20%."
    )
    none = selective.Abstention(threshold=0.99, answered=0, n=50, accuracy=math.nan)
    assert "answers none of the 50" in selective.abstention_text("X", none)
    with pytest.raises(ValueError, match="threshold must lie in"):
        selective.abstain(selective.risk_coverage(*make_predictions(0, n=20)), 1.5)


@pytest.mark.parametrize("ties", [False, True])
def test_top_k_accuracy_against_a_loop_over_argsort(ties):
    y_true, y_prob = make_predictions(3, n=250, signal=0.5, ties=ties)
    shown = selective.top_k_accuracy(y_true, y_prob, ks=(1, 2, 3, 10))
    expected = []
    for k in (1, 2, 3, 10):
        hits = 0
        for i in range(len(y_true)):
            ranked = np.argsort(-y_prob[i], kind="stable")
            hits += int(y_true[i] in ranked[:k])
        expected.append(hits / len(y_true))
    np.testing.assert_allclose(shown, expected)
    assert shown[0] == pytest.approx(np.mean(y_prob.argmax(1) == y_true))
    assert shown[-1] == 1.0


def test_tables_have_a_column_per_model():
    curves, top_k = {}, {}
    for seed, model in enumerate(MODEL_NAMES):
        y_true, y_prob = make_predictions(seed)
        curves[model] = selective.risk_coverage(y_true, y_prob)
        top_k[model] = selective.top_k_accuracy(y_true, y_prob)
    names = [REGISTRY[m].display_name for m in MODEL_NAMES]
    table = selective.aurc_table(curves)
    assert list(table.columns) == names
    for model, name in zip(MODEL_NAMES, names, strict=True):
        c = curves[model]
        assert list(table[name]) == [c.overall_accuracy, c.aurc, c.optimal_aurc, c.excess_aurc]
    expected = pd.DataFrame(
        {name: top_k[m] for m, name in zip(MODEL_NAMES, names, strict=True)},
        index=pd.Index(["Top-1", "Top-2", "Top-3"], name="accuracy"),
    )
    pd.testing.assert_frame_equal(selective.top_k_table(top_k), expected)
