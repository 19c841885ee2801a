"""core.metrics against hand-computed numbers and independent computations."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from core import metrics
from core.data import CLASS_NAMES, NUM_CLASSES

# Six images, classes 0..2 only; the other seven columns hold zero probability.
SMALL_TRUE = np.array([0, 0, 1, 1, 2, 2])
SMALL_PROB = np.zeros((6, NUM_CLASSES))
SMALL_PROB[:, :3] = [
    [0.7, 0.2, 0.1],  # predicted 0, right
    [0.3, 0.6, 0.1],  # predicted 1, wrong
    [0.2, 0.5, 0.3],  # predicted 1, right
    [0.1, 0.8, 0.1],  # predicted 1, right
    [0.1, 0.2, 0.7],  # predicted 2, right
    [0.6, 0.1, 0.3],  # predicted 0, wrong
]


def one_hot_prob(y_pred: np.ndarray) -> np.ndarray:
    """Probabilities (n, 10) whose argmax is y_pred: 0.91 on the prediction, 0.01 elsewhere."""
    prob = np.full((len(y_pred), NUM_CLASSES), 0.01)
    prob[np.arange(len(y_pred)), y_pred] = 0.91
    return prob


def random_prob(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.dirichlet(np.ones(NUM_CLASSES), size=n)


def paired_predictions(counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' probabilities with the given agreement counts (all labels 0)."""
    right, wrong = 0, 1
    pairs = {
        "both_right": (right, right),
        "only_a": (right, wrong),
        "only_b": (wrong, right),
        "both_wrong": (wrong, wrong),
    }
    pred_a = np.concatenate([np.full(counts.get(k, 0), pairs[k][0]) for k in pairs])
    pred_b = np.concatenate([np.full(counts.get(k, 0), pairs[k][1]) for k in pairs])
    return np.zeros(len(pred_a), dtype=int), one_hot_prob(pred_a), one_hot_prob(pred_b)


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p by hand: 2 * P(X <= min(b, c)), X ~ Binomial(b + c, 1/2)."""
    m = b + c
    if m == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(m, k) for k in range(min(b, c) + 1)) / 2**m)


# --- check_predictions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y_true", "y_prob", "message"),
    [
        (np.zeros((2, 2), dtype=int), np.full((4, 10), 0.1), r"y_true must be 1-D"),
        (np.array([], dtype=int), np.zeros((0, 10)), r"y_true is empty"),
        (np.array([0.0, 1.0]), np.full((2, 10), 0.1), r"integer class labels, got dtype float64"),
        (np.array([0, 10]), np.full((2, 10), 0.1), r"must lie in 0\.\.9, found 10"),
        (np.array([-1, 0]), np.full((2, 10), 0.1), r"must lie in 0\.\.9, found -1"),
        (np.array([0, 1]), np.full((2, 3), 1 / 3), r"shape \(n, 10\) = \(2, 10\), got \(2, 3\)"),
        (np.array([0, 1]), np.full((3, 10), 0.1), r"= \(2, 10\), got \(3, 10\)"),
        (np.array([0, 1]), np.full((2, 10), np.nan), r"non-finite"),
        (np.array([0, 1]), np.full((2, 10), np.inf), r"non-finite"),
        (np.array([0]), np.array([[-0.1, 1.1] + [0.0] * 8]), r"negative"),
        (np.array([0, 1]), np.array([[0.1] * 10, [0.2] * 10]), r"row 1 sums to 2 \(1 rows off\)"),
    ],
)
def test_check_predictions_names_the_problem(y_true, y_prob, message):
    with pytest.raises(ValueError, match=message):
        metrics.check_predictions(y_true, y_prob)


def test_check_predictions_accepts_float32_softmax_and_renormalises():
    y_prob = np.full((3, NUM_CLASSES), 0.1, dtype=np.float32) * np.float32(1.0004)
    y_true, checked = metrics.check_predictions(np.array([1, 2, 3], dtype=np.uint8), y_prob)
    assert y_true.dtype == np.int64
    np.testing.assert_allclose(checked.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_headline_keeps_its_keys():
    result = metrics.headline(SMALL_TRUE, SMALL_PROB)
    assert result.keys() == {"n", "accuracy", "loss"}
    assert result["n"] == 6


# --- evaluate ---------------------------------------------------------------------------------


def test_evaluate_small_case_by_hand():
    ev = metrics.evaluate(SMALL_TRUE, SMALL_PROB)

    assert ev.n == 6
    assert ev.accuracy == pytest.approx(4 / 6)
    loss = -np.mean(np.log([0.7, 0.3, 0.5, 0.8, 0.7, 0.3]))
    assert ev.loss == pytest.approx(loss)
    np.testing.assert_array_equal(ev.y_pred, [0, 1, 1, 1, 2, 0])

    expected = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    expected[0, 0] = expected[0, 1] = 1  # true 0: one right, one called 1
    expected[1, 1] = 2
    expected[2, 2] = expected[2, 0] = 1  # true 2: one right, one called 0
    np.testing.assert_array_equal(ev.confusion, expected)
    assert ev.confusion.dtype.kind == "i"

    # Precision = right / predicted, recall = right / true, F1 = harmonic mean.
    precision = [1 / 2, 2 / 3, 1 / 1]
    recall = [1 / 2, 2 / 2, 1 / 2]
    f1 = [0.5, 0.8, 2 / 3]
    head = ev.per_class.iloc[:3]
    np.testing.assert_allclose(head["precision"], precision)
    np.testing.assert_allclose(head["recall"], recall)
    np.testing.assert_allclose(head["f1"], f1)
    np.testing.assert_array_equal(ev.per_class["support"].iloc[:NUM_CLASSES], [2, 2, 2] + [0] * 7)
    # Macro averages over all ten classes (absent ones score 0); weighted over the three present.
    assert ev.per_class.loc["macro avg", "precision"] == pytest.approx(sum(precision) / 10)
    assert ev.per_class.loc["weighted avg", "f1"] == pytest.approx(sum(f1) / 3)
    assert ev.per_class.loc["weighted avg", "support"] == 6
    assert ev.hardest_class == CLASS_NAMES[3]  # absent classes score F1 = 0

    # AUC = share of (positive, negative) pairs ranked right, ties counting half:
    # class 0: (4 + 3) / 8; class 1: (3 + 4) / 8; class 2: (4 + 3.5) / 8.
    np.testing.assert_allclose(ev.per_class_auc[:3], [7 / 8, 7 / 8, 7.5 / 8])
    assert np.isnan(ev.per_class_auc[3:]).all()
    assert math.isnan(ev.macro_auc)


def test_per_class_layout():
    table = metrics.evaluate(SMALL_TRUE, SMALL_PROB).per_class
    assert list(table.index) == [*CLASS_NAMES, "macro avg", "weighted avg"]
    assert list(table.columns) == ["precision", "recall", "f1", "support"]
    assert table["support"].dtype == np.int64


def test_hardest_class_is_lowest_f1():
    rng = np.random.default_rng(1)
    y_true = np.repeat(np.arange(NUM_CLASSES), 20)
    y_pred = y_true.copy()
    y_pred[y_true == 6] = rng.integers(0, NUM_CLASSES, 20)  # shirts guessed at random
    y_pred[y_pred == 6] = 0  # and never right
    ev = metrics.evaluate(y_true, one_hot_prob(y_pred))
    assert ev.hardest_class == "Shirt"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_indices_match_confusion(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, NUM_CLASSES, 300)
    ev = metrics.evaluate(y_true, random_prob(rng, 300))
    for t in range(NUM_CLASSES):
        for p in range(NUM_CLASSES):
            idx = metrics.cell_indices(y_true, ev.y_pred, t, p)
            assert len(idx) == ev.confusion[t, p]
            assert (np.diff(idx) > 0).all()
            assert (y_true[idx] == t).all() and (ev.y_pred[idx] == p).all()


def test_cell_indices_rejects_unknown_class():
    with pytest.raises(ValueError, match=r"pred_class must lie in 0\.\.9, got 10"):
        metrics.cell_indices(SMALL_TRUE, SMALL_TRUE, 0, 10)


def test_per_class_diff():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, NUM_CLASSES, 200)
    eval_a = metrics.evaluate(y_true, random_prob(rng, 200))
    eval_b = metrics.evaluate(y_true, random_prob(rng, 200))
    diff = metrics.per_class_diff(eval_a, eval_b)
    assert list(diff.index) == list(eval_a.per_class.index)
    for metric in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(diff[f"{metric}_a"], eval_a.per_class[metric])
        np.testing.assert_array_equal(diff[f"{metric}_b"], eval_b.per_class[metric])
        np.testing.assert_allclose(
            diff[f"{metric}_diff"], eval_b.per_class[metric] - eval_a.per_class[metric]
        )
    np.testing.assert_array_equal(diff["support"], eval_a.per_class["support"])

    other = metrics.evaluate(SMALL_TRUE, SMALL_PROB)
    with pytest.raises(ValueError, match="different test sets"):
        metrics.per_class_diff(eval_a, other)


# --- compare ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("only_a", "only_b"), [(1, 9), (9, 1), (0, 6), (3, 3), (2, 12), (0, 0), (40, 25)]
)
def test_mcnemar_matches_hand_binomial(only_a, only_b):
    counts = {"both_right": 30, "only_a": only_a, "only_b": only_b, "both_wrong": 5}
    y_true, prob_a, prob_b = paired_predictions(counts)
    result = metrics.compare(y_true, prob_a, prob_b)
    assert result.agreement == counts
    assert result.mcnemar_p == pytest.approx(exact_mcnemar(only_a, only_b), rel=1e-12)
    assert result.difference == pytest.approx((only_b - only_a) / result.n)


def test_mcnemar_worked_example():
    assert exact_mcnemar(1, 9) == 0.021484375
    result = metrics.compare(*paired_predictions({"only_a": 1, "only_b": 9}))
    assert result.mcnemar_p == pytest.approx(0.021484375)
    assert result.significant


def test_identical_models_are_not_different():
    rng = np.random.default_rng(4)
    y_true, y_prob = rng.integers(0, NUM_CLASSES, 100), random_prob(rng, 100)
    result = metrics.compare(y_true, y_prob, y_prob)
    assert result.mcnemar_p == 1.0 and not result.significant
    assert result.difference == result.ci_low == result.ci_high == 0.0


def test_agreement_counts_sum_to_n_and_match_masks():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, NUM_CLASSES, 400)
    prob_a, prob_b = random_prob(rng, 400), random_prob(rng, 400)
    result = metrics.compare(y_true, prob_a, prob_b, n_resamples=100)
    assert sum(result.agreement.values()) == result.n == 400
    masks = [
        metrics.agreement_mask(y_true, prob_a.argmax(1), prob_b.argmax(1), part)
        for part in metrics.AGREEMENT_PARTS
    ]
    assert [int(m.sum()) for m in masks] == [result.agreement[p] for p in metrics.AGREEMENT_PARTS]
    np.testing.assert_array_equal(np.sum(masks, axis=0), 1)  # the parts partition the images


def test_agreement_mask_rejects_unknown_part():
    with pytest.raises(ValueError, match="unknown agreement part 'only_c'"):
        metrics.agreement_mask(SMALL_TRUE, SMALL_TRUE, SMALL_TRUE, "only_c")


def _skilled_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model A right ~88% of the time, model B ~90%, errors partly shared."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, NUM_CLASSES, n)
    shared = rng.random(n)
    pred_a = np.where(shared < 0.88, y_true, (y_true + 1) % NUM_CLASSES)
    pred_b = np.where(rng.random(n) < 0.5, pred_a, np.where(rng.random(n) < 0.9, y_true, 0))
    return y_true, one_hot_prob(pred_a), one_hot_prob(pred_b)


def test_bootstrap_ci_contains_difference_and_is_deterministic():
    data = _skilled_pair(2000, seed=6)
    first, again = metrics.compare(*data, seed=7), metrics.compare(*data, seed=7)
    assert first.ci_low <= first.difference <= first.ci_high
    assert first.ci_low < first.ci_high
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)


def test_bootstrap_ci_narrows_with_more_data():
    small = metrics.compare(*_skilled_pair(1000, seed=8))
    large = metrics.compare(*_skilled_pair(16_000, seed=8))
    # The width shrinks like 1 / sqrt(n): 16 times the data, a quarter of the width.
    assert large.ci_high - large.ci_low < 0.5 * (small.ci_high - small.ci_low)


def test_bootstrap_agrees_with_scipy_bootstrap():
    y_true, prob_a, prob_b = _skilled_pair(400, seed=9)
    ours = metrics.compare(y_true, prob_a, prob_b, n_resamples=20_000, seed=10)
    d = (prob_b.argmax(1) == y_true).astype(float) - (prob_a.argmax(1) == y_true)
    ref = stats.bootstrap(
        (d,), np.mean, n_resamples=20_000, method="percentile", rng=np.random.default_rng(11)
    ).confidence_interval
    # Same bootstrap distribution; different random draws move the ends by about one step (1/n).
    assert ours.ci_low == pytest.approx(ref.low, abs=3 / 400)
    assert ours.ci_high == pytest.approx(ref.high, abs=3 / 400)


def test_compare_is_fast_at_test_set_size():
    data = _skilled_pair(10_000, seed=12)
    start = time.perf_counter()
    metrics.compare(*data)
    assert time.perf_counter() - start < 0.5


def test_compare_checks_both_models():
    with pytest.raises(ValueError, match="non-finite"):
        metrics.compare(SMALL_TRUE, SMALL_PROB, np.full_like(SMALL_PROB, np.nan))


# --- verdict ----------------------------------------------------------------------------------


def _comparison(difference, p, low, high):
    return metrics.Comparison(
        n=10_000,
        accuracy_a=0.9,
        accuracy_b=0.9 + difference,
        difference=difference,
        agreement={part: 0 for part in metrics.AGREEMENT_PARTS},
        mcnemar_p=p,
        ci_low=low,
        ci_high=high,
    )


@pytest.mark.parametrize(
    ("comparison", "expected"),
    [
        (
            _comparison(0.010, 0.003, 0.005, 0.015),
            (
                "Residual CNN is 1.0 points more accurate than Baseline CNN"
                " (95% CI 0.5 to 1.5 points); McNemar's exact test gives p = 0.003,"
                " so the difference is unlikely to be chance."
            ),
        ),
        (
            _comparison(0.002, 0.41, -0.003, 0.007),
            (
                "Residual CNN is 0.2 points more accurate than Baseline CNN"
                " (95% CI -0.3 to 0.7 points), but McNemar's exact test gives p = 0.41,"
                " so the difference could well be chance."
            ),
        ),
        (
            _comparison(-0.012, 1e-6, -0.017, -0.007),
            (
                "Baseline CNN is 1.2 points more accurate than Residual CNN"
                " (95% CI 0.7 to 1.7 points); McNemar's exact test gives p < 0.001,"
                " so the difference is unlikely to be chance."
            ),
        ),
        (
            _comparison(0.0, 1.0, -0.004, 0.004),
            (
                "Baseline CNN and Residual CNN are equally accurate"
                " (95% CI of the difference -0.4 to 0.4 points), but McNemar's exact test"
                " gives p = 1, so the difference could well be chance."
            ),
        ),
    ],
)
def test_verdict_wording(comparison, expected):
    assert comparison.verdict("Baseline CNN", "Residual CNN") == expected


def test_significance_follows_alpha():
    y_true, prob_a, prob_b = paired_predictions({"only_a": 1, "only_b": 9})  # p = 0.0215
    assert metrics.compare(y_true, prob_a, prob_b, alpha=0.05).significant
    assert not metrics.compare(y_true, prob_a, prob_b, alpha=0.01).significant


# --- import cost ------------------------------------------------------------------------------


def test_importing_metrics_does_not_import_tensorflow():
    code = "import sys, core.metrics; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["False", "False"]
