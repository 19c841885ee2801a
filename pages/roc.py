"""ROC curves: how well each model ranks one class above the rest, with AUC per class, and
precision-recall beside them; when a model should abstain (accuracy against coverage); then
calibration: whether each model is as often right as it is confident."""

import pandas as pd
import streamlit as st

from core.calibration import (
    ECE_CAPTION,
    calibration_text,
    ece_table,
    mistakes_table,
    styled_mistakes,
)
from core.data import CLASS_NAMES
from core.models import display_name
from core.roc import AP_CAPTION, DIFFERENCE, WEAKEST, ap_table, auc_table, weakest_class
from core.selective import (
    SELECTIVE_CAPTION,
    THRESHOLD,
    THRESHOLD_RANGE,
    abstain,
    abstention_text,
    aurc_table,
    top_k_table,
)
from widgets import cached, charts, picker, scoring, urlstate

DEFAULT_CLASS = "Shirt"  # the hardest Fashion-MNIST class for both models
VIEWS = ("One class", "All ten classes")
SECTIONS = ("ROC curves", "When to abstain", "Calibration")  # lazy tabs: one is drawn
HIGHLIGHT = {"background-color": "rgba(213, 94, 0, 0.18)", "font-weight": "bold"}


def table(data, key: str) -> None:
    """A small table as static HTML (``.st-key-<key>``): a canvas grid costs the browser far
    more to draw, and these few rows need neither scrolling nor sorting."""
    st.container(key=key).table(data)


@st.fragment
def abstain_ui(curves: dict) -> None:
    """The threshold slider: per model, how much it answers and how often right, on the curve."""
    threshold = st.slider(
        "Answer only when at least this sure (top-class probability)",
        *THRESHOLD_RANGE, THRESHOLD, step=0.01, key="roc_abstain_threshold", bind="query-params",
    )  # fmt: skip
    points = {name: abstain(curve, threshold) for name, curve in curves.items()}
    for name, point in points.items():
        st.markdown(abstention_text(display_name(name), point))
    st.plotly_chart(
        charts.accuracy_coverage_figure(curves, points), width="stretch", key="roc_coverage_chart"
    )


@st.fragment  # the view and the class rerun these curves alone
def curves_ui(evals: dict, prs: dict) -> None:
    """One class's ROC (whole and corner) and precision-recall curves, or all ten ROC curves."""
    names = list(evals)
    view = st.radio("Show", VIEWS, horizontal=True, key="roc_view", bind="query-params")
    if view == VIEWS[0]:
        class_name = st.selectbox(
            "Class",
            CLASS_NAMES,
            index=CLASS_NAMES.index(DEFAULT_CLASS),
            key="roc_class",
            bind="query-params",
        )
        k = CLASS_NAMES.index(class_name)
        curves = {name: ev.roc[k] for name, ev in evals.items()}
        for column, name in zip(st.columns(len(names) + 2)[: len(names)], names, strict=True):
            column.metric(f"{display_name(name)}: AUC for {class_name}", f"{curves[name].auc:.4f}")
        full, corner = st.columns(2)
        full.plotly_chart(charts.roc_figure(curves, class_name), width="stretch", key="roc_full")
        corner.plotly_chart(
            charts.roc_figure(curves, class_name, zoom=True), width="stretch", key="roc_zoom"
        )
        st.caption("Right: the top-left corner (few false positives, most true positives caught).")
        pr_area, ap_area = st.columns(2)
        pr_area.plotly_chart(
            charts.pr_figure({n: prs[n][k] for n in names}, class_name),
            width="stretch",
            key="roc_pr",
        )
        for name in names:
            ap_area.metric(f"{display_name(name)}: AP for {class_name}", f"{prs[name][k].ap:.4f}")
        ap_area.caption(AP_CAPTION)
    else:
        st.plotly_chart(charts.roc_grid_figure(evals), width="stretch", key="roc_grid")


def roc_section(runs: dict, labels: dict) -> None:
    """The curves, then AUC and average precision per class."""
    evals = {name: cached.evaluation(run) for name, run in runs.items()}
    names = list(runs)
    prs = {name: scoring.pr_curves(run) for name, run in runs.items()}
    curves_ui(evals, prs)

    st.subheader("AUC per class")
    aucs = auc_table(evals)
    weakest = weakest_class(aucs)
    shown = aucs.drop(columns=WEAKEST).rename(columns=labels)
    styled = shown.style.format("{:.4f}", na_rep="–")
    if DIFFERENCE in aucs:
        styled = styled.format("{:+.4f}", subset=[labels[DIFFERENCE]], na_rep="–")
    if weakest is not None:
        styled = styled.set_properties(subset=pd.IndexSlice[[weakest], :], **HIGHLIGHT)
    table(styled, "roc_auc_table")
    if weakest is not None:
        st.caption(
            f"Highlighted: {weakest}, the class with the lowest AUC averaged over the models."
        )
    for column, name in zip(st.columns(len(names) + 2)[: len(names)], names, strict=True):
        column.metric(f"{display_name(name)}: macro AUC", f"{evals[name].macro_auc:.4f}")

    st.subheader("Average precision per class")
    table(ap_table(prs).rename(columns=labels).style.format("{:.4f}", na_rep="–"), "roc_ap_table")


def abstain_section(runs: dict) -> None:
    """Accuracy against coverage at a threshold; AURC and top-k accuracy."""
    st.caption(SELECTIVE_CAPTION)
    coverages = {name: scoring.risk_coverage(run) for name, run in runs.items()}
    abstain_ui(coverages)
    aurc, top = st.columns(2)
    with aurc:
        table(aurc_table(coverages).style.format("{:.4f}"), "roc_aurc_table")
    top_k = {name: scoring.top_k_accuracy(run) for name, run in runs.items()}
    with top:
        table(top_k_table(top_k).style.format("{:.2%}"), "roc_top_k_table")


def calibration_section(runs: dict, labels: dict) -> None:
    """Reliability, why the more accurate model can have the higher loss, ECE per class."""
    st.caption(
        "Is each model as often right as it is confident? Test loss (log loss) punishes a "
        "mistake by how sure the model was, so a few very confident mistakes can give the more "
        "accurate model the higher test loss."
    )
    names = list(runs)
    calibrations = {name: scoring.calibrate(run) for name, run in runs.items()}
    st.info(calibration_text(calibrations, [labels[n] for n in names]), icon=":material/target:")
    reliabilities = {name: c.reliability for name, c in calibrations.items()}
    st.plotly_chart(
        charts.reliability_figure(reliabilities, {n: labels[n] for n in names}),
        width="stretch", key="roc_reliability_chart",
    )  # fmt: skip
    mistakes, ece = st.columns(2)
    with mistakes:
        table(styled_mistakes(mistakes_table(calibrations)), "roc_mistakes_table")
    with ece:
        table(ece_table(calibrations).style.format("{:.2%}"), "roc_ece_table")
        st.caption(ECE_CAPTION)


st.title("ROC curves, each class against the rest")
st.caption(
    "For one class, a ROC curve shows the share of its images a model catches (true positive "
    "rate) against the share of other images it wrongly takes for that class (false positive "
    "rate), as the probability threshold falls. AUC 1 is a perfect ranking, 0.5 is chance."
)
url_done = urlstate.watch(
    "roc",
    (*picker.url_keys(), "roc_section", "roc_abstain_threshold", "roc_view", "roc_class"),
)  # the view is its link
runs = picker.selected_pair()  # the two models compared, A first
picker.require_runs(runs)

names = list(runs)
labels = {name: display_name(name) for name in names}
if len(names) > 1:
    labels[DIFFERENCE] = f"{labels[names[-1]]} − {labels[names[0]]}"
# Lazy tabs bound to the URL: only the open section runs and is drawn.
curves_tab, abstain_tab, calibration_tab = st.tabs(SECTIONS, key="roc_section", bind="query-params")
if curves_tab.open:
    with curves_tab:
        roc_section(runs, labels)
if abstain_tab.open:
    with abstain_tab:
        abstain_section(runs)
if calibration_tab.open:
    with calibration_tab:
        calibration_section(runs, labels)
url_done()
