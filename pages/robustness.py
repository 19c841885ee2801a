"""Robustness: both models on corrupted test images; which breaks first, and is it chance?"""

import streamlit as st

from core import robustness
from core.models import display_name
from widgets import layout, picker, urlstate
from widgets import robustness as view

st.title("Robustness: which model breaks first?")
st.caption(
    f"Both models on {robustness.PAGE_IMAGES:,} test images (a fixed stratified sample of the "
    f"10,000, {robustness.PAGE_IMAGES // 10:,} per class, the same for every run) under ten "
    "corruptions at five severities, in the spirit of Fashion-MNIST-C: severity 0 is the clean "
    "images. Computed once per run and kept with it."
)
url_done = urlstate.watch(
    "robustness", (*picker.url_keys(), *view.URL_KEYS)
)  # the view is its link
runs = picker.selected_pair()  # the two models compared, A first
picker.require_runs(runs)

a, b = runs
results = view.results_ui(runs)
if results is None:
    st.stop()
try:
    table, errors = view.paired(results[a], results[b], view.pair_key(runs))
except ValueError as exc:  # cached on other images: cannot be paired
    st.error(f"These results cannot be compared image by image: {exc}.")
    st.stop()
titles = robustness.titles()

for line in robustness.robustness_text(table, errors, a, b, results[a].n):
    st.markdown(f"- {line}")
accuracy = {key: result.accuracy() for key, result in results.items()}
st.plotly_chart(view.accuracy_figure(accuracy, titles), key="robustness_chart_accuracy")
with st.expander("What each severity means"):
    st.dataframe(
        {c.title: [c.level_text(s) for s in robustness.SEVERITIES]
         for c in robustness.CORRUPTIONS.values()},
        width="stretch", key="robustness_levels",
    )  # fmt: skip

st.subheader("The paired difference")
left, right = st.columns(2)
left.plotly_chart(view.difference_figure(table, titles, a, b), key="robustness_chart_difference")
right.plotly_chart(view.severity_figure(table, titles, a, b), key="robustness_chart_severity")
summary = robustness.summary_table(table, errors, a, b)
percent = [c for c in summary if c.startswith(("accuracy", "flip rate", "CE", "relative"))]
st.dataframe(
    summary.style.format("{:.1%}", subset=percent).format(
        "{:+.2f}", subset=["difference (points)", "95% CI low", "95% CI high"]
    ),
    width="stretch", height=layout.table_height(len(summary)), key="robustness_table",
)  # fmt: skip
st.caption(
    f"Mean over severities 1-5. Difference: {display_name(b)} − {display_name(a)}, with a 95% "
    "normal interval paired over the images (each image's difference averaged over the "
    "severities first). Flip rate: of the images a model gets right clean, the share it gets "
    f"wrong corrupted. CE: {display_name(b)}'s errors under the corruption over "
    f"{display_name(a)}'s (below 100%: fewer); relative CE counts only the errors the "
    "corruption adds to each model's clean errors."
)

st.subheader("Images that flip")
view.flip_gallery_ui(results)
url_done()
