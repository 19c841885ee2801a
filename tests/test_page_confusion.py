"""The Confusion matrices page in AppTest: default cell, picking cells, filters, run switching."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import artifacts
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES
from tests import apptools
from tests.apptools import add_copied_run, gallery_count

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
    assert len(app.get("plotly_chart")) == 3  # two matrices and the difference


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
