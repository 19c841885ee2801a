"""The ROC curves page in AppTest, on the tiny runs and on an empty artifacts folder."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from streamlit.testing.v1 import AppTest

from core import artifacts, metrics, selective
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES, REGISTRY

APP = str(Path(__file__).resolve().parent.parent / "dashboard.py")
PAGE = "pages/roc.py"


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    return at


ROC_CHARTS = ("roc_full", "roc_zoom", "roc_grid")  # not the calibration section's chart
CURVES, ABSTAIN, CALIBRATION = "ROC curves", "When to abstain", "Calibration"  # the page's tabs


def open_section(at: AppTest, section: str) -> None:
    """Open one of the page's lazy tabs (only the open one runs and is drawn)."""
    at.session_state["roc_section"] = section
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> list[dict]:
    """Every ROC chart on the page as its figure dict, in page order."""
    return [
        json.loads(el.proto.spec)
        for el in at.get("plotly_chart")
        if el.proto.id.rsplit("-", 1)[-1] in ROC_CHARTS
    ]


def array(value) -> np.ndarray:
    """A trace's data as numpy: Plotly writes numpy arrays as base64 typed arrays."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


@pytest.fixture(scope="module")
def app(tiny_root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_ARTIFACTS", str(tiny_root))
        yield open_page()


@pytest.fixture(scope="module")
def evaluations(tiny_root):
    runs = {name: artifacts.load_run(name, root=tiny_root) for name in MODEL_NAMES}
    return {name: (run, metrics.evaluate(run.y_true, run.y_prob)) for name, run in runs.items()}


def shown_aucs(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def check_class(at: AppTest, evaluations, class_name: str) -> None:
    k = CLASS_NAMES.index(class_name)
    figures_shown = charts(at)
    assert len(figures_shown) == 2  # the whole curve and the top-left corner
    full, corner = figures_shown
    assert full["layout"]["title"]["text"] == f"ROC curve, {class_name} vs the rest"
    assert "top-left corner" in corner["layout"]["title"]["text"]
    assert corner["layout"]["xaxis"]["range"][1] == pytest.approx(0.2)
    for name, (run, ev) in evaluations.items():
        auc = ev.roc[k].auc
        # Independent of core.metrics: scikit-learn's AUC on the stored probabilities (core
        # rescales float32 rows to sum to 1, which moves near-ties by ~1e-8).
        assert auc == pytest.approx(roc_auc_score(run.y_true == k, run.y_prob[:, k]), abs=1e-6)
        label = REGISTRY[name].display_name
        assert shown_aucs(at)[f"{label}: AUC for {class_name}"] == f"{auc:.4f}"
        trace = next(t for t in full["data"] if t["name"].startswith(label))
        assert trace["name"] == f"{label} (AUC {auc:.3f})"
        np.testing.assert_allclose(array(trace["x"]), ev.roc[k].fpr)
        np.testing.assert_allclose(array(trace["y"]), ev.roc[k].tpr)


def test_default_is_shirt_with_both_models(app, evaluations):
    open_section(app, CURVES)
    app.radio(key="roc_view").set_value("One class").run()
    app.selectbox(key="roc_class").set_value("Shirt").run()
    assert not app.exception
    check_class(app, evaluations, "Shirt")


def test_opens_on_shirt(tiny_root, monkeypatch):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tiny_root))
    at = open_page()
    assert not at.exception
    assert at.selectbox(key="roc_class").value == "Shirt"


def test_switching_class_changes_the_figure(app, evaluations):
    open_section(app, CURVES)
    app.radio(key="roc_view").set_value("One class").run()
    app.selectbox(key="roc_class").set_value("Shirt").run()
    before = charts(app)[0]
    app.selectbox(key="roc_class").set_value("Trouser").run()
    assert not app.exception
    after = charts(app)[0]
    assert before["data"] != after["data"]
    check_class(app, evaluations, "Trouser")


def test_grid_shows_all_ten_classes(app, evaluations):
    open_section(app, CURVES)
    app.radio(key="roc_view").set_value("All ten classes").run()
    assert not app.exception
    (grid,) = charts(app)
    titles = " ".join(a["text"] for a in grid["layout"]["annotations"])
    for class_name in CLASS_NAMES:
        assert class_name in titles
    assert len(grid["data"]) == len(CLASS_NAMES) * len(MODEL_NAMES)
    assert all(w.key != "roc_class" for w in app.selectbox)


def test_auc_table_and_macro_auc(app, evaluations):
    open_section(app, CURVES)
    app.radio(key="roc_view").set_value("One class").run()
    table, _ = tables_named(app, "class")  # AUC, then average precision
    labels = [REGISTRY[name].display_name for name in MODEL_NAMES]
    assert list(table.columns) == [*labels, f"{labels[1]} − {labels[0]}"]
    assert list(table.index) == [*CLASS_NAMES, "macro average"]
    means = np.zeros(len(CLASS_NAMES))
    for name, label in zip(MODEL_NAMES, labels, strict=True):
        _, ev = evaluations[name]
        np.testing.assert_allclose(table[label].iloc[:-1], ev.per_class_auc)
        assert table[label].iloc[-1] == pytest.approx(ev.macro_auc)
        assert shown_aucs(app)[f"{label}: macro AUC"] == f"{ev.macro_auc:.4f}"
        means += ev.per_class_auc / len(MODEL_NAMES)
    weakest = CLASS_NAMES[int(np.argmin(means))]
    assert any(c.value.startswith(f"Highlighted: {weakest},") for c in app.caption)


def test_empty_artifacts_folder_shows_the_guard(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tmp_path))
    at = open_page()
    assert not at.exception
    assert "No usable run" in at.info[0].value
    assert not at.get("plotly_chart")
    assert at.get("page_link")


# --- when should a model abstain? --------------------------------------------------------------


def chart(at: AppTest, key: str) -> dict:
    (spec,) = [
        json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.proto.id.endswith(key)
    ]
    return spec


def normalised(y_prob: np.ndarray) -> np.ndarray:
    """Stored float32 rows rescaled to sum to 1 in float64, as core reads every run: near-ties
    in the tiny runs' probabilities would otherwise rank differently."""
    y_prob = y_prob.astype(np.float64)
    return y_prob / y_prob.sum(axis=1, keepdims=True)


def tables_named(at: AppTest, index_name: str) -> list[pd.DataFrame]:
    """The page's small tables (static ``st.table``) whose index is ``index_name``."""
    return [d.value for d in at.table if d.value.index.name == index_name]


def table_named(at: AppTest, index_name: str) -> pd.DataFrame:
    (table,) = tables_named(at, index_name)
    return table


@pytest.mark.parametrize("threshold", [0.5, 0.9, 0.99])
def test_threshold_slider_says_how_much_each_model_answers(app, evaluations, threshold):
    open_section(app, ABSTAIN)
    slider = app.slider(key="roc_abstain_threshold")
    assert (slider.min, slider.max) == (0.5, 0.99)
    slider.set_value(threshold).run()
    assert not app.exception
    shown = [m.value for m in app.markdown]
    coverage = chart(app, "roc_coverage_chart")
    for name, (run, _) in evaluations.items():
        label = REGISTRY[name].display_name
        curve = selective.risk_coverage(run.y_true, run.y_prob)
        point = selective.abstain(curve, threshold)
        assert selective.abstention_text(label, point) in shown
        # independent of core: count and score the images at least this sure
        prob = normalised(run.y_prob)
        sure = prob.max(axis=1) >= threshold
        assert point.answered == int(sure.sum())
        if sure.any():
            right = prob.argmax(axis=1)[sure] == run.y_true[sure]
            assert point.accuracy == pytest.approx(right.mean())
            (marker,) = [t for t in coverage["data"] if t["name"].startswith(f"{label} at ≥")]
            assert marker["x"] == [pytest.approx(point.coverage)]
            assert marker["y"] == [pytest.approx(point.accuracy)]
        (line,) = [t for t in coverage["data"] if t["name"].startswith(f"{label} (AURC")]
        np.testing.assert_allclose(array(line["y"]), curve.accuracy)


def test_slider_changes_the_sentence(app, evaluations):
    open_section(app, ABSTAIN)
    app.slider(key="roc_abstain_threshold").set_value(0.5).run()
    low = [m.value for m in app.markdown if "confidence: answering" in m.value]
    app.slider(key="roc_abstain_threshold").set_value(0.99).run()
    high = [m.value for m in app.markdown if "confidence:" in m.value]
    assert len(low) == len(high) == len(MODEL_NAMES)
    assert all("≥ 50%" in s for s in low) and all("≥ 99%" in s for s in high)
    assert set(low).isdisjoint(high)


def test_abstain_tables_are_core_selective_and_roc_tables(app, evaluations):
    open_section(app, ABSTAIN)
    runs = {name: run for name, (run, _) in evaluations.items()}
    curves = {n: selective.risk_coverage(r.y_true, r.y_prob) for n, r in runs.items()}
    pd.testing.assert_frame_equal(table_named(app, "selective prediction"),
                                  selective.aurc_table(curves))  # fmt: skip
    top_k = table_named(app, "accuracy")
    for name, run in runs.items():
        label = REGISTRY[name].display_name
        ranked = np.argsort(-normalised(run.y_prob), axis=1, kind="stable")
        for k in (1, 2, 3):
            hits = (ranked[:, :k] == run.y_true[:, None]).any(axis=1).mean()
            assert top_k.loc[f"Top-{k}", label] == pytest.approx(hits)
    open_section(app, CURVES)
    _, ap = tables_named(app, "class")  # AUC, then AP
    assert list(ap.index) == [*CLASS_NAMES, "macro average"]
    for name, run in runs.items():
        label = REGISTRY[name].display_name
        prob = normalised(run.y_prob)
        for k, class_name in enumerate(CLASS_NAMES):
            expected = average_precision_score(run.y_true == k, prob[:, k])
            assert ap.loc[class_name, label] == pytest.approx(expected, abs=1e-12)


def test_pr_curve_beside_the_roc_curves_follows_the_class(app, evaluations):
    open_section(app, CURVES)
    app.radio(key="roc_view").set_value("One class").run()
    for class_name in ("Shirt", "Bag"):
        app.selectbox(key="roc_class").set_value(class_name).run()
        assert not app.exception
        pr = chart(app, "roc_pr")
        assert class_name in pr["layout"]["title"]["text"]
        k = CLASS_NAMES.index(class_name)
        for name, (run, _) in evaluations.items():
            label = REGISTRY[name].display_name
            ap = average_precision_score(run.y_true == k, normalised(run.y_prob)[:, k])
            (trace,) = [t for t in pr["data"] if t["name"].startswith(label)]
            assert trace["name"] == f"{label} (AP {ap:.3f})"
            assert shown_aucs(app)[f"{label}: AP for {class_name}"] == f"{ap:.4f}"
    app.selectbox(key="roc_class").set_value("Shirt").run()


def test_only_the_open_section_is_computed_and_drawn_and_it_is_the_link(app, tiny_root):
    """Three lazy tabs bound to the URL: a visit draws one section; a link opens its section."""
    drawn = {}
    for section in (CURVES, ABSTAIN, CALIBRATION):
        open_section(app, section)
        drawn[section] = {el.proto.id.rsplit("-", 1)[-1] for el in app.get("plotly_chart")}
    assert drawn[ABSTAIN] == {"roc_coverage_chart"}
    assert drawn[CALIBRATION] == {"roc_reliability_chart"}
    assert drawn[CURVES] and drawn[CURVES] <= {"roc_full", "roc_zoom", "roc_pr", "roc_grid"}
    open_section(app, CURVES)

    with pytest.MonkeyPatch.context() as mp:  # a link to the Calibration tab, opened fresh
        mp.setenv("FMNIST_ARTIFACTS", str(tiny_root))
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.query_params["roc_section"] = CALIBRATION
        at.switch_page(PAGE).run()
    assert not at.exception
    assert {el.proto.id.rsplit("-", 1)[-1] for el in at.get("plotly_chart")} == {
        "roc_reliability_chart"
    }
    assert not [c for c in at.caption if "ignored" in c.value.lower()]  # nothing was refused
