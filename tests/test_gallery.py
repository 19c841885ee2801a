"""core.gallery and core.comparison on hand-made arrays, checked against independent counts."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from core import comparison, gallery, metrics
from core.data import CLASS_NAMES, NUM_CLASSES

RNG = np.random.default_rng(7)
N = 600
Y_TRUE = RNG.integers(0, NUM_CLASSES, N)
# Mostly right, so the diagonal is heavy and off-diagonal cells are small, as with real models.
PROBS = {}
for _name, _right in (("baseline", 0.7), ("residual", 0.8)):
    _prob = RNG.dirichlet(np.ones(NUM_CLASSES), size=N)
    _boost = RNG.random(N) < _right
    _prob[_boost, Y_TRUE[_boost]] += 2.0
    PROBS[_name] = _prob / _prob.sum(axis=1, keepdims=True)
PREDS = {name: prob.argmax(axis=1) for name, prob in PROBS.items()}
NAMES = {"baseline": "Baseline", "residual": "Residual"}

# Five images by hand: true labels, and the two models' probabilities of their top class.
HAND_TRUE = np.array([6, 6, 6, 0, 6])


def hand_probs() -> dict[str, np.ndarray]:
    def prob(pairs):
        out = np.zeros((len(pairs), NUM_CLASSES))
        for row, (k, p) in enumerate(pairs):
            out[row, k] = p
            out[row, (k + 1) % NUM_CLASSES] = 1 - p
        return out

    return {
        "baseline": prob([(0, 0.81), (0, 0.55), (6, 0.90), (0, 0.99), (0, 0.62)]),
        "residual": prob([(6, 0.55), (0, 0.70), (6, 0.95), (0, 0.98), (2, 0.51)]),
    }


# --- cells and parts --------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["baseline", "residual"])
def test_cell_members_equal_the_confusion_counts_in_every_cell(source):
    counts = confusion_matrix(Y_TRUE, PREDS[source], labels=range(NUM_CLASSES))
    for t in range(NUM_CLASSES):
        for p in range(NUM_CLASSES):
            members = gallery.cell_members(Y_TRUE, PREDS, t, p, source)
            assert len(members) == counts[t, p]
            assert np.all(Y_TRUE[members] == t) and np.all(PREDS[source][members] == p)
            assert np.all(np.diff(members) > 0)  # sorted, no repeats


def test_difference_cells_hold_either_models_images_and_split_into_the_difference():
    conf_a = confusion_matrix(Y_TRUE, PREDS["baseline"], labels=range(NUM_CLASSES))
    conf_b = confusion_matrix(Y_TRUE, PREDS["residual"], labels=range(NUM_CLASSES))
    for t in range(NUM_CLASSES):
        for p in range(NUM_CLASSES):
            members = gallery.cell_members(Y_TRUE, PREDS, t, p, gallery.EITHER)
            in_cell = np.equal(Y_TRUE, t) & ((PREDS["baseline"] == p) | (PREDS["residual"] == p))
            np.testing.assert_array_equal(members, np.flatnonzero(in_cell))
            split = gallery.cell_breakdown(Y_TRUE, PREDS["baseline"], PREDS["residual"], t, p)
            assert split["both"] + split["only_a"] + split["only_b"] == len(members)
            assert split["only_b"] - split["only_a"] == conf_b[t, p] - conf_a[t, p]
            assert split["both"] + split["only_a"] == conf_a[t, p]


def test_cell_members_refuse_unknown_sources_and_classes():
    with pytest.raises(ValueError, match=r"unknown source 'svm'"):
        gallery.cell_members(Y_TRUE, PREDS, 0, 0, "svm")
    with pytest.raises(ValueError, match=r"true_class must lie in 0\.\.9, got 10"):
        gallery.cell_members(Y_TRUE, PREDS, 10, 0, "baseline")


def test_cell_captions_name_the_count_and_the_split():
    t, p = 6, 0
    n_a = int((np.equal(Y_TRUE, t) & (PREDS["baseline"] == p)).sum())
    text = gallery.cell_caption(Y_TRUE, PREDS, NAMES, t, p, "baseline")
    assert text == (
        f"The {n_a:,} test images of true Shirt that Baseline predicts as T-shirt/top, "
        "the number in its matrix cell."
    )
    split = gallery.cell_breakdown(Y_TRUE, PREDS["baseline"], PREDS["residual"], t, p)
    text = gallery.cell_caption(Y_TRUE, PREDS, NAMES, t, p, gallery.EITHER)
    assert f"{split['only_a']:,} only by Baseline and {split['only_b']:,} only by Residual" in text
    assert text.endswith(f"the cell reads {split['only_b']:,} − {split['only_a']:,}.")


def test_part_members_equal_the_agreement_counts():
    result = metrics.compare(Y_TRUE, PROBS["baseline"], PROBS["residual"], n_resamples=200)
    seen = []
    for part in metrics.AGREEMENT_PARTS:
        members = gallery.part_members(Y_TRUE, PREDS["baseline"], PREDS["residual"], part)
        assert len(members) == result.agreement[part]
        seen.extend(members)
    assert sorted(seen) == list(range(N))  # the parts cover every image once


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((6, 0, "baseline"), (6, 0, "baseline")),
        ([np.int64(3), 4.0, "difference"], (3, 4, "difference")),
        ((6, 0, "svm"), None),
        ((10, 0, "baseline"), None),
        ((6, 0), None),
        (None, None),
        ("cell", None),
    ],
)
def test_parse_cell(value, expected):
    assert gallery.parse_cell(value, ["baseline", "residual", "difference"]) == expected


def test_parse_part():
    assert gallery.parse_part("only_a") == "only_a"
    assert gallery.parse_part("nobody") is None
    assert gallery.parse_part(None) is None


# --- gallery rows -----------------------------------------------------------------------------


def test_gallery_items_hold_predictions_confidences_and_agreement():
    items = gallery.gallery_items(HAND_TRUE, hand_probs(), [0, 1, 2, 4])
    assert list(items.columns) == [
        "index", "true", "pred_baseline", "conf_baseline", "pred_residual", "conf_residual",
        "agree",
    ]  # fmt: skip
    assert items["index"].tolist() == [0, 1, 2, 4]
    assert items["pred_baseline"].tolist() == [0, 0, 6, 0]
    assert items["pred_residual"].tolist() == [6, 0, 6, 2]
    np.testing.assert_allclose(items["conf_baseline"], [0.81, 0.55, 0.90, 0.62])
    np.testing.assert_allclose(items["conf_residual"], [0.55, 0.70, 0.95, 0.51])
    assert items["agree"].tolist() == [False, True, True, False]
    assert gallery.models_of(items) == ["baseline", "residual"]


def test_gallery_items_of_no_images_and_bad_input():
    empty = gallery.gallery_items(HAND_TRUE, hand_probs(), np.array([], dtype=int))
    assert empty.empty and "agree" in empty
    with pytest.raises(ValueError, match=r"indices must lie in 0\.\.4"):
        gallery.gallery_items(HAND_TRUE, hand_probs(), [5])
    with pytest.raises(ValueError, match=r"baseline: y_prob must have shape \(5, 10\)"):
        gallery.gallery_items(HAND_TRUE, {"baseline": np.zeros((4, 10))}, [0])


def test_filters():
    items = gallery.gallery_items(HAND_TRUE, hand_probs(), range(5))
    assert gallery.filter_items(items)["index"].tolist() == [0, 1, 2, 3, 4]
    disagree = gallery.filter_items(items, disagree_only=True)
    assert disagree["index"].tolist() == [0, 4]
    # Inclusive at both ends.
    ranged = gallery.filter_items(items, conf_range=(0.55, 0.81), model="baseline")
    assert ranged["index"].tolist() == [0, 1, 4]
    both = gallery.filter_items(items, True, (0.5, 0.6), "residual")
    assert both["index"].tolist() == [0, 4]
    assert gallery.filter_items(items, True, (0.0, 0.52), "residual")["index"].tolist() == [4]


def test_the_disagree_filter_counts_disagreements_in_a_cell():
    members = gallery.cell_members(Y_TRUE, PREDS, 6, 0, "baseline")
    items = gallery.gallery_items(Y_TRUE, PROBS, members)
    expected = int((PREDS["residual"][members] != 0).sum())
    assert len(gallery.filter_items(items, disagree_only=True)) == expected


def test_filter_errors():
    items = gallery.gallery_items(HAND_TRUE, hand_probs(), range(5))
    with pytest.raises(ValueError, match=r"0 <= low <= high <= 1"):
        gallery.filter_items(items, conf_range=(0.8, 0.2), model="baseline")
    with pytest.raises(ValueError, match=r"needs one of the gallery's models"):
        gallery.filter_items(items, conf_range=(0.2, 0.8))
    with pytest.raises(ValueError, match=r"got 'svm'"):
        gallery.filter_items(items, conf_range=(0.2, 0.8), model="svm")


def test_sorting_by_confidence_with_ties_in_test_set_order():
    items = gallery.gallery_items(HAND_TRUE, hand_probs(), range(5))
    shuffled = items.sample(frac=1, random_state=3)
    assert gallery.sort_items(shuffled)["index"].tolist() == [0, 1, 2, 3, 4]
    up = gallery.sort_items(shuffled, "baseline", "ascending")
    assert up["index"].tolist() == [1, 4, 0, 2, 3]
    down = gallery.sort_items(shuffled, "residual", "descending")
    assert down["index"].tolist() == [3, 2, 1, 0, 4]
    tied = gallery.gallery_items(np.zeros(3, dtype=int), {"m": np.full((3, 10), 0.1)}, [2, 0, 1])
    assert gallery.sort_items(tied, "m", "descending")["index"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"order must be one of"):
        gallery.sort_items(items, "baseline", "random")
    with pytest.raises(ValueError, match=r"sorting by confidence needs"):
        gallery.sort_items(items, None, "ascending")


def test_paging():
    items = gallery.gallery_items(Y_TRUE, PROBS, range(50))
    first, n_pages = gallery.page(items, 1, 24)
    assert n_pages == 3 and first["index"].tolist() == list(range(24))
    last, _ = gallery.page(items, 3, 24)
    assert last["index"].tolist() == [48, 49]
    assert gallery.page(items, 99, 24)[0]["index"].tolist() == [48, 49]  # clamped
    assert gallery.page(items, 0, 24)[0]["index"].tolist() == list(range(24))
    pages = [gallery.page(items, k, 7)[0] for k in range(1, gallery.page(items, 1, 7)[1] + 1)]
    assert pd.concat(pages)["index"].tolist() == list(range(50))  # every image exactly once
    assert gallery.page(items.iloc[:0], 1, 24)[1] == 1
    with pytest.raises(ValueError, match=r"per_page must be at least 1, got 0"):
        gallery.page(items, 1, 0)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((50, 1, 24), "Showing 1–24 of 50 images"),
        ((50, 3, 24), "Showing 49–50 of 50 images"),
        ((50, 9, 24), "Showing 49–50 of 50 images"),
        ((2400, 2, 24, 2400), "Showing 25–48 of 2,400 images"),
        ((7, 1, 24, 12), "Showing 1–7 of 7 images (the filters hide 5 of 12)"),
        ((0, 1, 24, 12), "No images to show (the filters hide 12 of 12)"),
    ],
)
def test_page_label(args, text):
    assert gallery.page_label(*args) == text


def test_caption():
    items = gallery.gallery_items(HAND_TRUE, hand_probs(), [0])
    row = items.iloc[0]
    assert (
        gallery.caption(row, NAMES)
        == "true Shirt · Baseline: T-shirt/top 81% · Residual: Shirt 55%"
    )
    assert gallery.caption(row.to_dict(), {"residual": "R"}) == "true Shirt · R: Shirt 55%"


def test_same_labels():
    assert gallery.same_labels(Y_TRUE, Y_TRUE.copy())
    assert not gallery.same_labels(Y_TRUE, Y_TRUE[:-1])
    assert not gallery.same_labels(Y_TRUE, (Y_TRUE + 1) % NUM_CLASSES)


# --- the comparison table and its CSV ---------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated():
    evals = {name: metrics.evaluate(Y_TRUE, prob) for name, prob in PROBS.items()}
    result = metrics.compare(Y_TRUE, PROBS["baseline"], PROBS["residual"], n_resamples=500)
    return evals, result


def test_comparison_csv_parses_back_with_every_class_and_the_overall_rows(evaluated):
    evals, result = evaluated
    text = comparison.comparison_csv(
        evals["baseline"], evals["residual"], result, "baseline", "residual"
    )
    table = pd.read_csv(io.StringIO(text))
    assert list(table.columns) == ["row", "metric", "baseline", "residual", "difference"]
    per_class = table.set_index(["row", "metric"])
    for name in (*CLASS_NAMES, "macro avg", "weighted avg"):
        for metric in ("precision", "recall", "f1", "support"):
            assert (name, metric) in per_class.index
    shirt = per_class.loc[("Shirt", "f1")]
    per_class_a, per_class_b = evals["baseline"].per_class, evals["residual"].per_class
    assert shirt["baseline"] == pytest.approx(per_class_a.loc["Shirt", "f1"])
    assert shirt["residual"] == pytest.approx(per_class_b.loc["Shirt", "f1"])
    assert shirt["difference"] == pytest.approx(
        per_class_b.loc["Shirt", "f1"] - per_class_a.loc["Shirt", "f1"]
    )
    assert per_class.loc[("Shirt", "support"), "baseline"] == (Y_TRUE == 6).sum()
    accuracy = per_class.loc[("overall", "accuracy")]
    assert accuracy["baseline"] == pytest.approx((PREDS["baseline"] == Y_TRUE).mean())
    assert accuracy["difference"] == pytest.approx(result.difference)
    assert per_class.loc[("overall", "loss"), "residual"] == pytest.approx(evals["residual"].loss)
    assert per_class.loc[("overall", "macro_auc"), "baseline"] == pytest.approx(
        evals["baseline"].macro_auc
    )
    paired = per_class.loc["paired comparison", "difference"]
    assert paired["mcnemar_p"] == pytest.approx(result.mcnemar_p)
    assert paired["ci95_low"] == pytest.approx(result.ci_low)
    assert paired["ci95_high"] == pytest.approx(result.ci_high)
    assert paired["agreement_only_baseline_right"] == result.agreement["only_a"]
    assert paired["agreement_only_residual_right"] == result.agreement["only_b"]
    assert paired.filter(like="agreement_").sum() == N


def test_per_class_table_and_its_colours(evaluated):
    evals, _ = evaluated
    table = comparison.per_class_table(evals["baseline"], evals["residual"], "baseline", "residual")
    assert len(table) == NUM_CLASSES + 2
    assert comparison.diff_columns(table) == ["Precision Δ", "Recall Δ", "F1 Δ"]
    shirt_f1 = evals["residual"].per_class.loc["Shirt", "f1"]
    assert table.loc["Shirt", "F1 · Residual CNN"] == shirt_f1
    np.testing.assert_allclose(
        table["F1 Δ"], evals["residual"].per_class["f1"] - evals["baseline"].per_class["f1"]
    )
    better_b = comparison.diff_css(0.1, "baseline", "residual")
    better_a = comparison.diff_css(-0.01, "baseline", "residual")
    assert better_b == "background-color: rgba(230,159,0,0.75)"  # residual's orange, full tint
    assert better_a.startswith("background-color: rgba(0,114,178,0.27")  # baseline's blue
    assert comparison.diff_css(0.0, "baseline", "residual") == ""
    assert comparison.diff_css(float("nan"), "baseline", "residual") == ""


def test_part_labels():
    labels = comparison.part_labels("baseline", "residual")
    assert labels == {
        "both_right": "both right",
        "only_a": "only Baseline CNN right",
        "only_b": "only Residual CNN right",
        "both_wrong": "both wrong",
    }


def test_gallery_modules_do_not_import_tensorflow():
    code = (
        "import sys, widgets.gallery, core.gallery, core.comparison; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
