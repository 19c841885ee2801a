"""Compare: per-class metrics side by side, where the models agree, whether the gap is chance."""

from functools import partial

import numpy as np
import streamlit as st

from core import comparison as tables
from core import figures, gallery
from core.metrics import AGREEMENT_PARTS
from core.models import display_name
from widgets import analysis, cached, charts, layout, picker, urlstate
from widgets.gallery import clickable_chart, gallery_ui, load_test_images, url_formats, url_keys

PART = "agreement_part"  # one of AGREEMENT_PARTS, or None
PICKER = "agreement_part_select"
PART_UI = "compare_part_ui"  # the fragment of the agreement matrix and its gallery


def _set_part(part) -> None:
    """Show ``part``'s images: only the agreement matrix and its gallery rerun."""
    st.session_state[PART] = part
    st.session_state["compare_gallery_page"] = 1
    st.rerun(PART_UI)


def part_ui(result, runs: dict, evals: dict) -> None:
    """The agreement matrix, clickable, what its parts say, and the chosen part's images."""
    (a, run_a), (b, run_b) = runs.items()
    part = gallery.parse_part(st.session_state.get(PART))
    st.session_state[PART] = st.session_state[PICKER] = part
    chart, notes = st.columns([3, 2])
    clickable_chart(
        chart, charts.agreement_figure(result.agreement, a, b, selected=part),
        "agreement_chart", figures.selected_part, _set_part,
    )  # fmt: skip
    only_a, only_b = result.agreement["only_a"], result.agreement["only_b"]
    notes.markdown(
        f"The two off-diagonal cells, **{only_a:,}** images only {display_name(a)} gets right and "
        f"**{only_b:,}** only {display_name(b)} gets right, are the *discordant pairs*: the only "
        f"images on which the two accuracies differ. McNemar's test asks whether a {only_a:,} : "
        f"{only_b:,} split is too uneven for a coin toss; images both get right or both get wrong "
        "say nothing about which model is better."
    )
    names = tables.part_labels(a, b)
    notes.selectbox(
        "Show the images of", AGREEMENT_PARTS, index=None, placeholder="click a cell or choose…",
        format_func=lambda p: f"{names[p]} ({result.agreement[p]:,})", key=PICKER, bind="query-params",
        on_change=lambda: _set_part(st.session_state[PICKER]),
    )  # fmt: skip
    y_true, y_pred_a, y_pred_b = run_a.y_true, evals[a].y_pred, evals[b].y_pred
    if part is not None and load_test_images(y_true) is not None:
        items = gallery.gallery_items(
            y_true, {a: run_a.y_prob, b: run_b.y_prob}, np.arange(len(y_true))
        )
        members = partial(gallery.part_members, y_true, y_pred_a, y_pred_b, part)
        gallery_ui(items, "compare_gallery", members, runs=runs)


st.title("Compare the two models")
st.caption("Both models on the same test images: per class, image by image, and in total.")
url_done = urlstate.watch(
    "compare",
    (*picker.url_keys(), PICKER, *url_keys("compare_gallery")),
    url_formats("compare_gallery"),
)  # the view is its link
runs = picker.selected_pair()  # the two models compared, A first
picker.require_runs(runs)

a, b = runs
y_true = runs[a].y_true
if not gallery.same_labels(y_true, runs[b].y_true):
    st.error("The chosen runs were scored on different test sets; pick runs of the same one.")
    st.stop()
evals = {name: cached.evaluation(runs[name]) for name in (a, b)}
result = cached.comparison(runs[a], runs[b])
label_a, label_b = display_name(a), display_name(b)

st.subheader("Is the difference real?")
(st.success if result.significant else st.info)(
    result.verdict(label_a, label_b), icon=":material/balance:"
)
level = f"{(1 - result.alpha) * 100:g}%"
left, middle, right = st.columns(3)
left.metric(f"Accuracy, {label_b} − {label_a}", f"{result.difference * 100:+.2f} points")
middle.metric(
    f"{level} bootstrap interval", f"{result.ci_low * 100:+.2f} to {result.ci_high * 100:+.2f}"
)
right.metric("McNemar's p-value", f"{result.mcnemar_p:.3g}")
st.caption(
    f"The p-value is the chance of the models splitting their disagreements at least this "
    f"unevenly if they were equally accurate; the interval holds the accuracy differences that "
    f"{level} of resamples of the {result.n:,} test images give."
)

st.subheader("Per-class metrics side by side")
table = tables.per_class_table(evals[a], evals[b], a, b)
deltas = tables.diff_columns(table)
styled = (
    table.style.format("{:.4f}")
    .format("{:+.4f}", subset=deltas)
    .format("{:,}", subset=["Support"])
    .map(tables.diff_css, subset=deltas, name_a=a, name_b=b)
)
st.dataframe(
    styled, width="stretch", height=layout.table_height(len(table)), key="compare_per_class"
)
st.caption(f"Δ = {label_b} − {label_a}, tinted in the colour of the model that does better.")
st.download_button(
    "Download the comparison (CSV)", tables.comparison_csv(evals[a], evals[b], result, a, b),
    file_name=f"compare_{runs[a].run_id}_{runs[b].run_id}.csv", mime="text/csv",
    key="compare_download", icon=":material/download:",
)  # fmt: skip
st.download_button(
    "Download this comparison (HTML)", lambda: analysis.export_html(runs),
    file_name=f"compare_{runs[a].run_id}_{runs[b].run_id}.html", mime="text/html",
    key="compare_export_download", icon=":material/description:",
    help="Metrics, statistics, calibration, seeds and the main figures; opens offline.",
)  # fmt: skip
st.plotly_chart(charts.f1_bars_figure({n: e.per_class for n, e in evals.items()}), key="compare_f1")

st.subheader("Image by image")
st.fragment(part_ui, key=PART_UI)(result, runs, evals)
url_done()
