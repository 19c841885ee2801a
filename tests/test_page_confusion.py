"""The Confusion matrices page in AppTest: default cell, picking cells, filters, run switching."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import artifacts
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES
from tests import apptools
from tests.apptools import add_copied_run, gallery_count
from tests.seedtools import array
from widgets import charts

PAGE = "pages/confusion.py"
SHIRT, TSHIRT = CLASS_NAMES.index("Shirt"), CLASS_NAMES.index("T-shirt/top")
COPIED = "20000101-000000-seed0-copy"  # a baseline run holding the residual run's predictions


def open_page(root, monkeypatch) -> AppTest:
    return apptools.open_page(root, monkeypatch, PAGE)


def matrix_shown(at: AppTest, position: int) -> np.ndarray:
    """The counts drawn in the page's ``position``-th confusion heatmap."""
    spec = json.loads(at.get("plotly_chart")[position].proto.spec)
    return np.array([[int(v.replace(",", "")) for v in row] for row in spec["data"][0]["text"]])


@pytest.fixture(scope="module")
def preds(tiny_root):
    """Labels and each model's predictions, read from the run files (independent of the page)."""
    runs = {name: artifacts.load_run(name, root=tiny_root) for name in MODEL_NAMES}
    y_true = runs["baseline"].y_true
    return y_true, {name: run.y_prob.argmax(axis=1) for name, run in runs.items()}


@pytest.fixture(scope="module")
def app(tiny_root):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield open_page(tiny_root, monkeypatch)


def show(at: AppTest, cell) -> AppTest:
    for key, value in (("confusion_gallery_disagree", False), ("confusion_gallery_page", 1)):
        at.session_state[key] = value
    at.session_state["confusion_cell"] = cell
    at.run()
    assert not at.exception
    return at


def count(y_true, y_pred, true_class, pred_class) -> int:
    return int(((y_true == true_class) & (y_pred == pred_class)).sum())


def test_empty_artifacts_folder_shows_the_guard(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    assert "No usable run" in at.info[0].value
    assert not at.get("plotly_chart")


def test_opens_on_true_shirt_predicted_t_shirt_by_the_baseline(app, preds):
    y_true, y_pred = preds
    assert app.session_state["confusion_cell"] == (SHIRT, TSHIRT, "baseline")
    assert app.selectbox(key="confusion_true").value == SHIRT
    assert app.selectbox(key="confusion_pred").value == TSHIRT
    assert app.selectbox(key="confusion_source").value == "baseline"
    assert gallery_count(app) == count(y_true, y_pred["baseline"], SHIRT, TSHIRT)
    assert len(app.get("plotly_chart")) == 2  # both models' matrices (the difference: a view)


def test_the_difference_matrix_is_drawn_when_its_view_is_chosen(app, preds):
    y_true, y_pred = preds
    app.session_state["confusion_normalise"] = True
    app.run()
    app.session_state["confusion_view"] = "Difference"
    app.run()
    assert not app.exception
    (chart,) = app.get("plotly_chart")  # only the chosen view's matrix is drawn
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (y_true, y_pred["residual"]), 1)
    np.add.at(expected, (y_true, y_pred["baseline"]), -1)
    shown = json.loads(chart.proto.spec)["data"][0]["z"]  # a list of rows, or a typed array
    np.testing.assert_array_equal(array(shown).reshape(10, 10), expected)
    assert "confusion_normalise" not in [t.key for t in app.toggle]  # for the two matrices...
    app.session_state["confusion_view"] = "Both models"
    app.run()
    assert len(app.get("plotly_chart")) == 2
    assert app.toggle(key="confusion_normalise").value  # ...its choice kept while hidden
    app.toggle(key="confusion_normalise").set_value(False).run()  # as the next test expects


def outlined_cell(at: AppTest, position: int) -> tuple[int, int]:
    """The (true, predicted) cell whose outline the page's style rule draws over the
    ``position``-th matrix: the rule is ``charts.outline_css`` of that matrix's chart and
    cell (where it lands on the drawn matrix, the browser tests check)."""
    (rule,) = [h.proto.body for h in at.get("html") if "svg-container::after" in h.proto.body]
    key = re.search(r"\.st-key-(\S+) \.svg-container", rule).group(1)
    assert key.startswith(f"confusion_chart_{MODEL_NAMES[position]}_")
    cells = [(t, p) for t in range(10) for p in range(10)
             if rule == f"<style>{charts.outline_css(key, (t, p))}</style>"]  # fmt: skip
    (cell,) = cells
    return cell


def test_swap_reruns_only_the_cell_and_its_gallery(app, preds, monkeypatch):
    """A Swap is a fragment rerun: the page above the matrices (the run picker, the metrics)
    does not run again, no matrix is sent again, and the outline moves by its style rule."""
    from widgets import picker

    y_true, y_pred = preds
    show(app, (SHIRT, TSHIRT, "residual"))
    assert outlined_cell(app, 1) == (SHIRT, TSHIRT)
    page_runs = []
    real = picker.selected_pair
    monkeypatch.setattr(picker, "selected_pair", lambda: page_runs.append(1) or real())
    app.button(key="confusion_swap").click().run()
    assert not app.exception
    assert page_runs == []  # the page body did not run
    assert app.session_state["confusion_cell"] == (TSHIRT, SHIRT, "residual")
    assert gallery_count(app) == count(y_true, y_pred["residual"], TSHIRT, SHIRT)
    assert not app.get("plotly_chart")  # the matrices were not sent again
    assert outlined_cell(app, 1) == (TSHIRT, SHIRT)  # by the style rule alone
    app.run()  # a whole run draws the matrices again, the outline on the swapped cell
    assert page_runs == [1]
    assert outlined_cell(app, 1) == (TSHIRT, SHIRT)


def test_the_matrices_show_both_models_counts(app, preds):
    y_true, y_pred = preds
    for position, name in enumerate(MODEL_NAMES):
        expected = np.zeros((10, 10), dtype=int)
        np.add.at(expected, (y_true, y_pred[name]), 1)
        np.testing.assert_array_equal(matrix_shown(app, position), expected)


def test_one_click_swaps_to_true_t_shirt_predicted_shirt(app, preds):
    y_true, y_pred = preds
    show(app, (SHIRT, TSHIRT, "baseline"))
    app.button(key="confusion_swap").click().run()
    assert app.session_state["confusion_cell"] == (TSHIRT, SHIRT, "baseline")
    assert gallery_count(app) == count(y_true, y_pred["baseline"], TSHIRT, SHIRT)


def test_selectboxes_choose_the_cell(app, preds):
    y_true, y_pred = preds
    show(app, (SHIRT, TSHIRT, "baseline"))
    app.selectbox(key="confusion_true").set_value(CLASS_NAMES.index("Pullover"))
    app.selectbox(key="confusion_pred").set_value(CLASS_NAMES.index("Coat"))
    app.selectbox(key="confusion_source").set_value("residual").run()
    assert not app.exception
    cell = (CLASS_NAMES.index("Pullover"), CLASS_NAMES.index("Coat"), "residual")
    assert app.session_state["confusion_cell"] == cell
    assert gallery_count(app) == count(y_true, y_pred["residual"], *cell[:2])


def test_a_cell_set_in_session_state_updates_pickers_and_pages(app, preds):
    y_true, y_pred = preds
    show(app, (SHIRT, SHIRT, "residual"))
    n = count(y_true, y_pred["residual"], SHIRT, SHIRT)
    assert app.selectbox(key="confusion_true").value == SHIRT
    assert app.selectbox(key="confusion_source").value == "residual"
    assert gallery_count(app) == n
    if n > 24:
        app.number_input(key="confusion_gallery_page").set_value(2).run()
        assert any(c.value.startswith(f"Showing 25–{min(48, n)} of") for c in app.caption)


def test_the_disagree_filter_keeps_the_cells_disagreements(app, preds):
    y_true, y_pred = preds
    off = np.zeros((10, 10), dtype=int)
    np.add.at(off, (y_true, y_pred["baseline"]), 1)
    np.fill_diagonal(off, 0)
    true_class, pred_class = np.unravel_index(off.argmax(), off.shape)  # the biggest mistake
    show(app, (int(true_class), int(pred_class), "baseline"))
    in_cell = (y_true == true_class) & (y_pred["baseline"] == pred_class)
    assert gallery_count(app) == in_cell.sum()
    app.toggle(key="confusion_gallery_disagree").set_value(True).run()
    disagreements = int((in_cell & (y_pred["residual"] != y_pred["baseline"])).sum())
    assert gallery_count(app) == disagreements
    app.toggle(key="confusion_gallery_disagree").set_value(False).run()


def test_a_difference_cell_shows_either_models_images(app, preds):
    y_true, y_pred = preds
    show(app, (SHIRT, TSHIRT, "difference"))
    either = (y_true == SHIRT) & ((y_pred["baseline"] == TSHIRT) | (y_pred["residual"] == TSHIRT))
    assert gallery_count(app) == either.sum()
    assert any("only by Residual CNN" in c.value for c in app.caption)
    assert not app.selectbox(key="confusion_gallery_conf_model").disabled


def test_confidence_range_sort_and_normalising_run_cleanly(app):
    show(app, (SHIRT, SHIRT, "baseline"))
    total = gallery_count(app)
    app.slider(key="confusion_gallery_conf").set_value((0, 50))
    app.selectbox(key="confusion_gallery_order").set_value("descending")
    app.toggle(key="confusion_normalise").set_value(True).run()
    assert not app.exception
    assert gallery_count(app) <= total
    app.slider(key="confusion_gallery_conf").set_value((0, 100))
    app.selectbox(key="confusion_gallery_order").set_value("index")
    app.toggle(key="confusion_normalise").set_value(False).run()


def test_a_malformed_cell_falls_back_to_the_default(app):
    show(app, ("Shirt", None, "svm"))
    assert app.session_state["confusion_cell"] == (SHIRT, TSHIRT, "baseline")


def test_changing_the_sidebar_run_changes_the_numbers(tiny_root, tmp_path, monkeypatch, preds):
    y_true, y_pred = preds
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_root, root)
    add_copied_run(root, "baseline", "residual", COPIED)
    at = open_page(root, monkeypatch)
    assert gallery_count(at) == count(y_true, y_pred["baseline"], SHIRT, TSHIRT)
    before = matrix_shown(at, 0)
    at.session_state["run_baseline"] = COPIED
    at.run()
    assert not at.exception
    assert gallery_count(at) == count(y_true, y_pred["residual"], SHIRT, TSHIRT)
    after = matrix_shown(at, 0)
    np.testing.assert_array_equal(after, matrix_shown(at, 1))  # now the residual's counts
    assert not np.array_equal(before, after)
