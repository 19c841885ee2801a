"""The Compare page in AppTest: the test's numbers, agreement galleries, the CSV, run switching."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.memory_media_file_storage import _calculate_file_id
from streamlit.testing.v1 import AppTest

from core import artifacts, comparison, metrics
from core.data import CLASS_NAMES
from tests import apptools
from tests.apptools import add_copied_run, gallery_count

PAGE = "pages/compare.py"
COPIED = "20000101-000000-seed0-copy"  # a baseline run holding the residual run's predictions


def open_page(root, monkeypatch) -> AppTest:
    return apptools.open_page(root, monkeypatch, PAGE)


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture(scope="module")
def runs(tiny_root):
    return {name: artifacts.load_run(name, root=tiny_root) for name in ("baseline", "residual")}


@pytest.fixture(scope="module")
def expected(runs):
    """The paired comparison computed here, independently of the page."""
    a, b = runs["baseline"], runs["residual"]
    return metrics.compare(a.y_true, a.y_prob, b.y_prob)


@pytest.fixture(scope="module")
def app(tiny_root):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield open_page(tiny_root, monkeypatch)


def show_part(at: AppTest, part) -> AppTest:
    at.session_state["compare_gallery_page"] = 1
    at.session_state["agreement_part"] = part
    at.run()
    assert not at.exception
    return at


def test_empty_artifacts_folder_shows_the_guard(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    assert "No usable run" in at.info[0].value
    assert not at.get("download_button")


def test_shows_the_tests_numbers_and_a_verdict(app, runs, expected):
    a, b = runs["baseline"], runs["residual"]
    right_a = a.y_prob.argmax(axis=1) == a.y_true
    right_b = b.y_prob.argmax(axis=1) == b.y_true
    difference = right_b.mean() - right_a.mean()
    shown = metric_values(app)
    assert shown["Accuracy, Residual CNN − Baseline CNN"] == f"{difference * 100:+.2f} points"
    assert shown["McNemar's p-value"] == f"{expected.mcnemar_p:.3g}"
    low, high = expected.ci_low * 100, expected.ci_high * 100
    assert shown["95% bootstrap interval"] == f"{low:+.2f} to {high:+.2f}"
    verdict = expected.verdict("Baseline CNN", "Residual CNN")
    assert verdict in [e.value for e in (*app.success, *app.info)]
    discordant = f"{expected.agreement['only_a']:,} : {expected.agreement['only_b']:,}"
    assert any(discordant in m.value for m in app.markdown)


def test_the_per_class_table_holds_every_class_and_the_differences(app, runs):
    table = app.dataframe[0].value
    for name in (*CLASS_NAMES, "macro avg", "weighted avg"):
        assert name in table.index
    assert {"F1 · Baseline CNN", "F1 · Residual CNN", "F1 Δ", "Support"} <= set(table.columns)
    f1 = {
        name: metrics.evaluate(run.y_true, run.y_prob).per_class["f1"] for name, run in runs.items()
    }
    np.testing.assert_allclose(table["F1 Δ"], f1["residual"] - f1["baseline"], atol=1e-9)
    assert app.get("plotly_chart")  # the F1 bars and the agreement table


def test_no_gallery_until_a_part_is_chosen(app):
    show_part(app, None)
    assert gallery_count(app) is None
    assert app.selectbox(key="agreement_part_select").value is None


@pytest.mark.parametrize("part", metrics.AGREEMENT_PARTS)
def test_a_part_set_in_session_state_opens_its_gallery(app, expected, part):
    show_part(app, part)
    assert gallery_count(app) == expected.agreement[part]
    assert app.selectbox(key="agreement_part_select").value == part


def test_the_selectbox_chooses_the_part_and_pages_through_it(app, expected):
    show_part(app, None)
    app.selectbox(key="agreement_part_select").set_value("both_right").run()
    assert app.session_state["agreement_part"] == "both_right"
    n = expected.agreement["both_right"]
    assert gallery_count(app) == n
    if n > 24:
        app.number_input(key="compare_gallery_page").set_value(2).run()
        assert any(c.value.startswith(f"Showing 25–{min(48, n)} of") for c in app.caption)
    # Both right means both predicted the true class: they never disagree there.
    app.toggle(key="compare_gallery_disagree").set_value(True).run()
    assert gallery_count(app) == 0
    app.toggle(key="compare_gallery_disagree").set_value(False).run()


def test_a_malformed_part_shows_no_gallery(app):
    show_part(app, "everyone")
    assert not app.exception
    assert gallery_count(app) is None


def test_the_download_button_carries_this_comparison_as_csv(app, runs, expected):
    button = app.get("download_button")[0]
    assert button.label == "Download the comparison (CSV)"
    assert button.proto.url.endswith(".csv")
    evals = {name: metrics.evaluate(run.y_true, run.y_prob) for name, run in runs.items()}
    text = comparison.comparison_csv(
        evals["baseline"], evals["residual"], expected, "baseline", "residual"
    )
    name = f"compare_{runs['baseline'].run_id}_{runs['residual'].run_id}.csv"
    # The button's media file id is a hash of its data, MIME type and file name.
    file_id = _calculate_file_id(text.encode(), "text/csv", name)
    assert Path(button.proto.url).stem == file_id


def test_changing_the_sidebar_run_changes_the_numbers(tiny_root, tmp_path, monkeypatch, expected):
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_root, root)
    add_copied_run(root, "baseline", "residual", COPIED)
    at = open_page(root, monkeypatch)
    assert metric_values(at)["McNemar's p-value"] == f"{expected.mcnemar_p:.3g}"
    at.session_state["run_baseline"] = COPIED
    at.session_state["agreement_part"] = "only_a"
    at.run()
    assert not at.exception
    # Both runs now hold the same predictions: no discordant pairs, no difference.
    shown = metric_values(at)
    assert shown["Accuracy, Residual CNN − Baseline CNN"] == "+0.00 points"
    assert shown["McNemar's p-value"] == "1"
    assert gallery_count(at) == 0
