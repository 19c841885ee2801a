"""core.published: the course report's numbers, human accuracy, and ours set beside them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss

from core import metrics, published
from core.data import CLASS_NAMES, NUM_CLASSES


def test_accuracy_references_and_note():
    refs = published.ACCURACY_REFERENCES
    assert sorted(refs.values()) == [0.835, 0.9122, 0.922]
    human = next(k for k, v in refs.items() if v == 0.835)
    assert "crowd-sourced" in human.lower() and "README" in human
    assert refs["Report: Baseline CNN"] == 0.9122 and refs["Report: Residual CNN"] == 0.9220
    note = published.BEST_PUBLISHED_NOTE
    assert "96" in note and "97" in note and "roughly" in note and "approximate" in note


@pytest.fixture(scope="module")
def evaluations():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, NUM_CLASSES, 600)
    out = {}
    for name, skill in (("baseline", 0.6), ("residual", 1.2)):
        prob = rng.dirichlet(np.full(NUM_CLASSES, 0.5), size=len(y_true))
        prob[np.arange(len(y_true)), y_true] += skill
        prob /= prob.sum(axis=1, keepdims=True)
        out[name] = (y_true, prob, metrics.evaluate(y_true, prob))
    return out


def test_course_report_table_sets_ours_beside_the_report(evaluations):
    table = published.course_report_table({n: ev for n, (_, _, ev) in evaluations.items()})
    assert list(table.index) == list(published.COURSE_REPORT_ROWS.values())
    assert list(table.columns) == [
        "baseline report",
        "baseline ours",
        "residual report",
        "residual ours",
    ]
    shirt, tshirt = CLASS_NAMES.index("Shirt"), CLASS_NAMES.index("T-shirt/top")
    for name, (y_true, prob, _) in evaluations.items():
        given, ours = table[f"{name} report"], table[f"{name} ours"]
        assert given["Test accuracy"] == published.COURSE_REPORT[name]["accuracy"]
        assert given["Macro AUC"] == 0.99 and given["T-shirt/top predicted as Shirt"] == 101
        y_pred = prob.argmax(axis=1)
        assert ours["Test accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert ours["Test loss"] == pytest.approx(log_loss(y_true, prob, labels=range(10)))
        f1 = f1_score(y_true, y_pred, average=None, labels=range(10))
        assert ours["Shirt F1"] == pytest.approx(f1[shirt])
        assert ours["Hardest class (lowest F1)"] == CLASS_NAMES[int(f1.argmin())]
        counts = confusion_matrix(y_true, y_pred, labels=range(10))
        assert ours["T-shirt/top predicted as Shirt"] == counts[tshirt, shirt]


def test_course_report_table_text_prints_four_decimals_and_dashes(evaluations):
    text = published.course_report_table_text({"vgg": evaluations["baseline"][2]})
    assert text.loc["Test accuracy", "vgg report"] == "–"  # the report has no such model
    assert text.loc["Macro AUC", "vgg report"] == "0.9900"
    assert text.loc["Hardest class (lowest F1)", "vgg report"] == "Shirt"
    assert text.loc["T-shirt/top predicted as Shirt", "vgg report"] == "101"
    header, rows = published.course_report_rows({"vgg": evaluations["baseline"][2]})
    assert header == ["", *text.columns]
    assert rows == [[label, *text.loc[label]] for label in text.index]


def test_reference_lines_for_loss_are_the_course_report_s():
    assert published.reference_lines("loss", ["residual"]) == {"Report: Residual CNN": 0.3039}
    assert published.reference_lines("accuracy") == published.ACCURACY_REFERENCES


def test_reference_lines_are_a_copy_and_the_curves_caption_says_what_they_are():
    assert published.reference_lines("accuracy") is not published.ACCURACY_REFERENCES
    loss = {"Report: Baseline CNN": 0.2574, "Report: Residual CNN": 0.3039}
    assert published.reference_lines("loss") == loss  # every registered model by default
    text = published.curves_caption("accuracy")
    assert "human accuracy" in text and text.endswith(published.BEST_PUBLISHED_NOTE)
    text = published.curves_caption("loss")
    assert text.startswith("Dotted lines: the report's final test figures.")
    assert "monitoring only" in text and "human" not in text and "published" not in text
