"""core.roc: the per-class AUC table, checked against scikit-learn directly."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core import metrics
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
