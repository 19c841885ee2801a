"""core.roc: ROC curves and AUCs checked against the Mann-Whitney statistic, and the per-class
AUC table against scikit-learn directly; precision-recall curves against counts by hand."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from core import metrics, roc
from core.data import CLASS_NAMES, NUM_CLASSES
from core.roc import DIFFERENCE, MACRO, WEAKEST, auc_table, weakest_class


def _predictions(seed: int, signal: float, n: int = 600, weak_class: int | None = None):
    rng = np.random.default_rng(seed)
    y_true = np.arange(n) % NUM_CLASSES
    logits = rng.normal(size=(n, NUM_CLASSES))  # (n, 10)
    boost = np.full(n, signal)
    if weak_class is not None:
        boost[y_true == weak_class] = 0.2  # this class barely stands out
    logits[np.arange(n), y_true] += boost
    y_prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, y_prob


@pytest.fixture(scope="module")
def evaluations():
    y_true, prob_a = _predictions(0, 1.5, weak_class=6)
    _, prob_b = _predictions(1, 2.5, weak_class=6)
    return {
        "baseline": (y_true, prob_a, metrics.evaluate(y_true, prob_a)),
        "residual": (y_true, prob_b, metrics.evaluate(y_true, prob_b)),
    }


def test_auc_table_matches_scikit_learn(evaluations):
    table = auc_table({name: ev for name, (_, _, ev) in evaluations.items()})
    assert list(table.index) == [*CLASS_NAMES, MACRO]
    assert list(table.columns) == ["baseline", "residual", DIFFERENCE, WEAKEST]
    for name, (y_true, y_prob, _) in evaluations.items():
        for k, class_name in enumerate(CLASS_NAMES):
            expected = roc_auc_score(y_true == k, y_prob[:, k])
            assert table.loc[class_name, name] == pytest.approx(expected, abs=1e-12)
        assert table.loc[MACRO, name] == pytest.approx(
            roc_auc_score(y_true, y_prob, multi_class="ovr"), abs=1e-12
        )
    np.testing.assert_allclose(table[DIFFERENCE], table["residual"] - table["baseline"])


def test_weakest_is_the_class_with_the_lowest_mean_auc(evaluations):
    table = auc_table({name: ev for name, (_, _, ev) in evaluations.items()})
    assert table[WEAKEST].sum() == 1
    assert weakest_class(table) == "Shirt"
    assert not table.loc[MACRO, WEAKEST]
    mean = table.loc[list(CLASS_NAMES), ["baseline", "residual"]].mean(axis=1)
    assert mean.idxmin() == "Shirt"


def test_one_model_has_no_difference_column(evaluations):
    _, _, ev = evaluations["baseline"]
    table = auc_table({"baseline": ev})
    assert list(table.columns) == ["baseline", WEAKEST]
    assert weakest_class(table) == "Shirt"


def test_a_class_missing_from_the_test_set_is_never_weakest():
    y_true, y_prob = _predictions(2, 0.5, weak_class=3)
    keep = y_true != 0  # no T-shirt/top at all: its AUC is undefined (NaN)
    y_true, y_prob = y_true[keep], y_prob[keep]
    table = auc_table({"baseline": metrics.evaluate(y_true, y_prob)})
    assert np.isnan(table.loc["T-shirt/top", "baseline"])
    assert np.isnan(table.loc[MACRO, "baseline"])
    assert weakest_class(table) == "Dress"


def test_auc_table_needs_an_evaluation():
    with pytest.raises(ValueError, match="at least one evaluation"):
        auc_table({})


def test_auc_matches_mann_whitney_on_random_data():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, NUM_CLASSES, 500)
    y_prob = rng.dirichlet(np.ones(NUM_CLASSES), size=500)
    y_prob[np.arange(500), y_true] += 0.5  # some skill
    y_prob /= y_prob.sum(axis=1, keepdims=True)
    curves = roc.roc_curves(y_true, y_prob)

    # AUC = U / (n_pos * n_neg), U the Mann-Whitney statistic of positives over negatives.
    by_hand = []
    for k in range(NUM_CLASSES):
        pos, neg = y_prob[y_true == k, k], y_prob[y_true != k, k]
        by_hand.append(stats.mannwhitneyu(pos, neg).statistic / (pos.size * neg.size))
    np.testing.assert_allclose([c.auc for c in curves], by_hand)
    assert roc.macro_auc(y_true, y_prob) == pytest.approx(np.mean(by_hand))
    for curve in curves:
        assert curve.fpr.shape == curve.tpr.shape == curve.thresholds.shape
        assert curve.fpr[0] == curve.tpr[0] == 0 and curve.fpr[-1] == curve.tpr[-1] == 1
    assert len(curves) == NUM_CLASSES
    ev = metrics.evaluate(y_true, y_prob)  # what the pages read keeps exactly these
    np.testing.assert_allclose(ev.per_class_auc, by_hand)
    assert ev.macro_auc == roc.macro_auc(y_true, y_prob)


# --- precision-recall --------------------------------------------------------------------------


def test_average_precision_matches_scikit_learn(evaluations):
    curves = {}
    for name, (y_true, y_prob, _) in evaluations.items():
        curves[name] = roc.pr_curves(*metrics.check_predictions(y_true, y_prob))
        for k, curve in enumerate(curves[name]):
            assert curve.ap == pytest.approx(average_precision_score(y_true == k, y_prob[:, k]))
            assert curve.prevalence == pytest.approx(np.mean(y_true == k))
            assert curve.precision.shape == curve.recall.shape
            assert curve.thresholds.shape == (curve.recall.size - 1,)
    table = roc.ap_table(curves)
    assert list(table.index) == [*CLASS_NAMES, MACRO] and list(table.columns) == list(curves)
    for name, model in curves.items():
        np.testing.assert_allclose(table[name].iloc[:-1], [c.ap for c in model])
        assert table.loc[MACRO, name] == pytest.approx(np.mean([c.ap for c in model]))
    with pytest.raises(ValueError, match="at least one model"):
        roc.ap_table({})


def test_pr_curve_points_against_precision_and_recall_by_hand():
    y_true, y_prob = _predictions(3, 1.0, n=200)
    k = 4
    curve = roc.pr_curves(y_true, y_prob)[k]
    positive = y_true == k
    for i in (0, 5, len(curve.thresholds) // 2, len(curve.thresholds) - 1):
        t = curve.thresholds[i]
        taken = y_prob[:, k] >= t  # the images taken for class k at this threshold
        caught = 0
        for is_taken, is_positive in zip(taken, positive, strict=True):
            caught += int(is_taken and is_positive)
        assert curve.precision[i] == pytest.approx(caught / taken.sum())
        assert curve.recall[i] == pytest.approx(caught / positive.sum())
    assert curve.precision[-1] == 1 and curve.recall[-1] == 0  # scikit-learn's end point


def test_a_class_missing_has_no_average_precision():
    y_true, y_prob = _predictions(4, 1.0)
    keep = y_true != 2
    curves = roc.pr_curves(y_true[keep], y_prob[keep])
    assert np.isnan(curves[2].ap)
    assert np.isnan(roc.ap_table({"baseline": curves}).loc[MACRO, "baseline"])
    assert not np.isnan(curves[3].ap)
