"""core.calibration: reliability bins, ECE, class-wise ECE and confident mistakes, by hand; and
the tables of two models, on the seed sweep of tests/seedtools.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from core import artifacts, calibration
from core.data import NUM_CLASSES
from core.models import MODEL_NAMES, REGISTRY
from tests import seedtools
from tests.seedtools import run_id

LABELS = list(range(NUM_CLASSES))


def rows(confidences, right, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Images whose top class gets ``confidence`` and every other class an equal share.

    Image i has label i % 10; its top class is the label when ``right[i]``, else the next class.
    """
    confidences = np.asarray(confidences, dtype=float)
    n = confidences.size
    y_true = np.arange(n) % NUM_CLASSES
    top = np.where(right, y_true, (y_true + 1) % NUM_CLASSES)
    y_prob = np.repeat(((1 - confidences) / (NUM_CLASSES - 1))[:, None], NUM_CLASSES, axis=1)
    y_prob[np.arange(n), top] = confidences
    return y_true, y_prob.astype(dtype)


# Eight images, five bins of width 0.2; worked out by hand below.
HAND_CONF = [0.30, 0.35, 0.50, 0.70, 0.75, 0.65, 0.95, 0.92]
HAND_RIGHT = [True, False, True, True, True, False, True, False]


def test_reliability_by_hand():
    y_true, y_prob = rows(HAND_CONF, HAND_RIGHT)
    rel = calibration.reliability(y_true, y_prob, bins=5)
    np.testing.assert_allclose(rel.edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert rel.counts.tolist() == [0, 2, 1, 3, 2]
    # bin 1: 0.30 right, 0.35 wrong; bin 2: 0.50 right; bin 3: 0.70, 0.75 right, 0.65 wrong;
    # bin 4: 0.95 right, 0.92 wrong.
    np.testing.assert_allclose(rel.confidence[1:], [0.325, 0.5, 0.7, 0.935])
    np.testing.assert_allclose(rel.accuracy[1:], [0.5, 1.0, 2 / 3, 0.5])
    assert math.isnan(rel.confidence[0]) and math.isnan(rel.accuracy[0])
    # ECE = (2 * 0.175 + 1 * 0.5 + 3 * 1/30 + 2 * 0.435) / 8 = 1.82 / 8
    assert rel.ece == pytest.approx(0.2275, abs=1e-12)
    assert calibration.ece(y_true, y_prob, bins=5) == pytest.approx(0.2275, abs=1e-12)
    assert rel.n == 8 and rel.overall_accuracy == 5 / 8
    assert rel.overall_confidence == pytest.approx(sum(HAND_CONF) / 8)
    np.testing.assert_allclose(rel.gap[1:], [0.175, 0.5, -1 / 30, -0.435], atol=1e-12)


def test_bins_are_closed_on_the_right_and_one_lands_in_the_last():
    y_true, y_prob = rows([0.2, 0.4, 1.0, 0.6], [True] * 4)
    rel = calibration.reliability(y_true, y_prob, bins=5)
    assert rel.counts.tolist() == [1, 1, 1, 0, 1]


def test_float32_softmax_rows_are_accepted():
    y_true, y_prob = rows(HAND_CONF, HAND_RIGHT, dtype=np.float32)
    y_prob[0] *= 1 + 3e-7  # a float32 softmax row off by a few ulps
    rel = calibration.reliability(y_true, y_prob, bins=5)
    assert rel.ece == pytest.approx(0.2275, abs=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        calibration.reliability(y_true, y_prob * 0.5, bins=5)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        calibration.reliability(y_true, y_prob, bins=0)


def test_perfectly_calibrated_by_construction_has_zero_ece():
    # Per confidence level, exactly that share right: 10 at 0.8 (8 right), 5 at 0.6 (3 right),
    # 20 at 0.95 (19 right).
    conf = [0.8] * 10 + [0.6] * 5 + [0.95] * 20
    right = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 2 + [True] * 19 + [False]
    y_true, y_prob = rows(conf, right)
    assert calibration.ece(y_true, y_prob) == pytest.approx(0, abs=1e-12)


def test_sampled_calibrated_model_has_small_ece():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 100_000)
    right = rng.random(conf.size) < conf  # right with probability equal to its confidence
    y_true, y_prob = rows(conf, right)
    rel = calibration.reliability(y_true, y_prob)
    assert rel.ece < 0.01
    filled = rel.counts > 0
    np.testing.assert_allclose(rel.accuracy[filled], rel.confidence[filled], atol=0.03)


def test_over_confident_model():
    # Always 95% sure, right 70% of the time: ECE = |0.70 - 0.95| = 0.25.
    y_true, y_prob = rows([0.95] * 100, [True] * 70 + [False] * 30)
    rel = calibration.reliability(y_true, y_prob)
    assert rel.ece == pytest.approx(0.25)
    assert rel.over_confident and rel.counts.sum() == 100 and rel.counts[14] == 100
    assert rel.gap[14] == pytest.approx(-0.25)


def independent_classwise_ece(y_true, y_prob, bins):
    """Plain Python loops: bin = the smallest b with p <= (b + 1) / bins."""
    result = []
    for k in range(NUM_CLASSES):
        groups = [[] for _ in range(bins)]
        for label, row in zip(y_true, y_prob, strict=True):
            p = float(row[k])
            b = next(b for b in range(bins) if p <= (b + 1) / bins or b == bins - 1)
            groups[b].append((p, label == k))
        total = 0.0
        for group in groups:
            if group:
                conf = sum(p for p, _ in group) / len(group)
                freq = sum(hit for _, hit in group) / len(group)
                total += len(group) / len(y_true) * abs(freq - conf)
        result.append(total)
    return np.array(result)


def test_classwise_ece_by_hand_and_against_loops():
    # Class 0 gets 0.8, 0.6, 0.3, 0.1; labels 0, 1, 0, 2. Two bins: (0.5, 1] holds 0.8 (a 0)
    # and 0.6 (not): |0.5 - 0.7| = 0.2; [0, 0.5] holds 0.3 (a 0) and 0.1 (not): |0.5 - 0.2| = 0.3.
    # ECE of class 0 = 2/4 * 0.2 + 2/4 * 0.3 = 0.25.
    p0 = np.array([0.8, 0.6, 0.3, 0.1])
    y_prob = np.repeat(((1 - p0) / 9)[:, None], NUM_CLASSES, axis=1)
    y_prob[:, 0] = p0
    y_true = np.array([0, 1, 0, 2])
    result = calibration.classwise_ece(y_true, y_prob, bins=2)
    assert result.shape == (NUM_CLASSES,)
    assert result[0] == pytest.approx(0.25)
    np.testing.assert_allclose(result, independent_classwise_ece(y_true, y_prob, 2), atol=1e-12)

    rng = np.random.default_rng(3)
    y_prob = rng.dirichlet(np.full(NUM_CLASSES, 0.3), size=300)
    y_true = rng.integers(0, NUM_CLASSES, 300)
    np.testing.assert_allclose(
        calibration.classwise_ece(y_true, y_prob, bins=15),
        independent_classwise_ece(y_true, y_prob, 15),
        atol=1e-12,
    )


def test_confident_mistakes_by_hand():
    y_true, y_prob = rows(HAND_CONF, HAND_RIGHT)
    result = calibration.confident_mistakes(y_true, y_prob, threshold=0.9)
    # Mistakes: 0.35, 0.65, 0.92; only the last at >= 90% confidence.
    assert result.n == 8 and result.mistakes == 3 and result.confident == 1
    assert result.share_of_images == 1 / 8 and result.share_of_mistakes == 1 / 3
    assert result.accuracy == 5 / 8
    # Log loss of each image: -log(confidence) when right, -log((1 - confidence) / 9) when wrong.
    losses = [
        -math.log(c) if r else -math.log((1 - c) / 9)
        for c, r in zip(HAND_CONF, HAND_RIGHT, strict=True)
    ]
    total = sum(losses)
    assert result.loss == pytest.approx(total / 8)
    assert result.loss == pytest.approx(skm.log_loss(y_true, y_prob, labels=LABELS))
    assert result.loss_share == pytest.approx(-math.log(0.08 / 9) / total)
    wrong = [loss for loss, r in zip(losses, HAND_RIGHT, strict=True) if not r]
    assert result.mistakes_loss_share == pytest.approx(sum(wrong) / total)
    table = result.breakdown
    assert list(table.index) == list(calibration.LOSS_PARTS)
    assert table["images"].tolist() == [5, 2, 1]
    assert table["share_of_images"].sum() == pytest.approx(1)
    assert table["share_of_loss"].sum() == pytest.approx(1)
    assert table["loss_sum"].sum() == pytest.approx(total)
    # A lower threshold counts the 0.65 mistake too (0.92 >= 0.6 and 0.65 >= 0.6).
    assert calibration.confident_mistakes(y_true, y_prob, threshold=0.6).confident == 2
    with pytest.raises(ValueError, match="threshold"):
        calibration.confident_mistakes(y_true, y_prob, threshold=0)


def test_a_certain_mistake_is_clipped_like_scikit_learn():
    y_true, y_prob = rows([1.0, 0.9, 0.8], [False, True, True])  # first: all mass on a wrong class
    losses = calibration.image_losses(y_true, y_prob)
    assert losses[0] == pytest.approx(-math.log(np.finfo(np.float64).eps))
    assert losses.mean() == pytest.approx(skm.log_loss(y_true, y_prob, labels=LABELS))
    result = calibration.confident_mistakes(y_true, y_prob)
    assert result.confident == 1 and result.loss_share == pytest.approx(losses[0] / losses.sum())


def test_no_mistakes_at_all():
    y_true, y_prob = rows([0.99] * 5, [True] * 5)
    result = calibration.confident_mistakes(y_true, y_prob)
    assert result.mistakes == 0 and math.isnan(result.share_of_mistakes)
    assert result.loss_share == 0 and result.share_of_images == 0


def test_calibration_text_explains_higher_accuracy_with_higher_loss():
    # A: 80 right at 70%, 20 wrong at 60%. B: 90 right at 99%, 10 wrong at 99.99%.
    a = calibration.calibrate(*rows([0.7] * 80 + [0.6] * 20, [True] * 80 + [False] * 20))
    b = calibration.calibrate(*rows([0.99] * 90 + [0.9999] * 10, [True] * 90 + [False] * 10))
    loss_a = (80 * -math.log(0.7) + 20 * -math.log(0.4 / 9)) / 100
    loss_b = (90 * -math.log(0.99) + 10 * -math.log(0.0001 / 9)) / 100
    assert a.mistakes.loss == pytest.approx(loss_a) and b.mistakes.loss == pytest.approx(loss_b)
    assert loss_b > loss_a
    share_b = 10 * -math.log(0.0001 / 9) / (100 * loss_b)
    assert b.mistakes.loss_share == pytest.approx(share_b) and a.mistakes.loss_share == 0
    assert a.classwise_ece.shape == (NUM_CLASSES,)
    text = calibration.calibration_text({"baseline": a, "residual": b}, ("Baseline", "Residual"))
    assert text.startswith(
        "Residual is more accurate than Baseline (90.00% vs 80.00%) and yet has the higher "
        f"test loss ({loss_b:.3f} vs {loss_a:.3f})."
    )
    assert f"10.0% of Residual's, carrying {share_b:.0%} of its." in text
    assert "0.0% of Baseline's test images, carrying 0% of its total log loss" in text
    # A: bins at 0.7 (all right) and 0.6 (all wrong): ECE = 0.8 * 0.3 + 0.2 * 0.6 = 0.36; mean
    # confidence 0.68 < accuracy 0.8. B: one bin, |0.9 - 0.99099| = 0.09099; 0.99099 > 0.9.
    assert a.reliability.ece == pytest.approx(0.36) and b.reliability.ece == pytest.approx(0.09099)
    assert "36.0% for Baseline (under-confident on average)" in text
    assert "9.1% for Residual (over-confident)" in text and "outweigh a higher accuracy" in text
    # Swapped: the more accurate model is still named first, its numbers first.
    swapped = calibration.calibration_text({"r": b, "b": a}, ("Residual", "Baseline"))
    assert swapped.startswith("Residual is more accurate than Baseline (90.00% vs 80.00%)")
    same = calibration.calibration_text({"x": a, "y": a}, ("X", "Y"))
    assert same.startswith(f"X and Y are equally accurate (80.00%); test loss {loss_a:.3f} vs")
    assert "outweigh" not in same
    with pytest.raises(ValueError, match="two models"):
        calibration.calibration_text({"baseline": a})


# --- tables, one column per model: the seed-0 runs of the seed sweep ---------------------------

NAMES = {model: REGISTRY[model].display_name for model in MODEL_NAMES}
MISTAKE_ROWS = {
    "Test accuracy": "accuracy",
    "Test loss (mean log loss)": "loss",
    "Confident mistakes (≥ 90%): share of test images": "confident_share",
    "Confident mistakes (≥ 90%): share of all mistakes": "confident_of_mistakes",
    "Confident mistakes (≥ 90%): share of the total log loss": "confident_loss_share",
    "All mistakes: share of the total log loss": "mistakes_loss_share",
}


@pytest.fixture(scope="module")
def expected(seed_root) -> dict[str, dict]:
    return seedtools.expected_calibration(seed_root, seed=0)


@pytest.fixture(scope="module")
def results(seed_root) -> dict[str, calibration.Calibration]:
    runs = {m: artifacts.load_run(m, run_id(0), root=seed_root) for m in MODEL_NAMES}
    return {m: calibration.calibrate(r.y_true, r.y_prob) for m, r in runs.items()}


def test_ece_table_matches_an_independent_computation(results, expected):
    table = calibration.ece_table(results)
    assert list(table.columns) == [NAMES[m] for m in MODEL_NAMES]
    assert table.index[0] == "All classes (top label)" and len(table) == 11
    assert (
        table.index[0] == calibration.TOP_LABEL and table.index.name == "expected calibration error"
    )
    for model in MODEL_NAMES:
        np.testing.assert_allclose(table[NAMES[model]], expected[model]["ece"], atol=1e-9)


def test_confident_mistakes_and_their_share_of_the_loss(results, expected):
    table = calibration.mistakes_table(results)
    assert list(table.index) == list(MISTAKE_ROWS) and table.index.name == "test set"
    for model in MODEL_NAMES:
        for row, key in MISTAKE_ROWS.items():
            assert table.loc[row, NAMES[model]] == pytest.approx(expected[model][key], abs=1e-9)
    # Built so: every residual mistake is confident, no baseline mistake is.
    assert table.loc["Confident mistakes (≥ 90%): share of all mistakes"].tolist() == [0.0, 1.0]


def test_styled_mistakes_shows_shares_as_percentages_and_the_loss_to_four_decimals(results):
    table = calibration.mistakes_table(results)
    shown = calibration.styled_mistakes(table).to_html()
    for model in MODEL_NAMES:
        column = table[NAMES[model]]
        assert f">{column['Test accuracy']:.2%}<" in shown
        assert f">{column['Test loss (mean log loss)']:.4f}<" in shown
        share = column["All mistakes: share of the total log loss"]
        assert f">{share:.2%}<" in shown
    empty = calibration.mistakes_table({})
    assert list(empty.index) == list(MISTAKE_ROWS) and empty.empty  # threshold by default: 90%
