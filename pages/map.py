"""Map of the test set: each model's learned features in 2-D; click a point to inspect it."""

import streamlit as st

from core import projection
from core.data import CLASS_NAMES
from core.figures import selected_indices
from core.models import display_name
from core.neighbours import suspect_table
from widgets import charts, layout, picker
from widgets.explain import cached_projection, image_detail_ui, test_projection

METHOD_LABELS = {"pca": "PCA", "umap": "UMAP"}
PICKED = "map_picked"  # the test image inspected below the map

st.title("Map of the test set")
st.caption(
    "The 10,000 test images placed by what each model computes just before its output layer, "
    "coloured by their label; rings mark the model's mistakes. Click a point to inspect it."
)
runs = picker.selected_runs()
picker.require_runs(runs)

left, right = st.columns(2)
model = left.radio("Model", list(runs), format_func=display_name, horizontal=True,
                   key="map_model")  # fmt: skip
methods = projection.available_methods()
method = right.radio("Projection", methods, format_func=METHOD_LABELS.get, horizontal=True,
                     key="map_method")  # fmt: skip
run = runs[model]
if cached_projection(run, method) is None and method != "pca":
    st.info("UMAP is computed once per run and kept with it: about a minute or two here.")
    if not st.button("Compute the UMAP map", key="map_compute"):
        st.stop()
try:
    proj = test_projection(run, method)
except projection.ProjectionUnavailable as exc:
    st.error(str(exc))
    st.stop()
title = f"{display_name(model)}: {METHOD_LABELS[method]} of the test set"
figure = charts.projection_figure(proj, run.y_true, run.y_prob.argmax(axis=1),
                                  CLASS_NAMES, title)  # fmt: skip
event = st.plotly_chart(figure, width="stretch", key=f"map_chart_{model}_{method}",
                        on_select="rerun", selection_mode="points")  # fmt: skip
picked = selected_indices(event)
if picked:
    st.session_state[PICKED] = picked[0]
origin = "from cache" if proj.from_cache else f"computed in {proj.seconds:.0f} s"
st.caption(f"{METHOD_LABELS[method]} of the {proj.n:,} test images ({origin}).")

st.subheader("Suspected label errors")
table = suspect_table(run.y_true, {m: r.y_prob for m, r in runs.items()})
st.caption(
    f"{len(table):,} test images that every model gives the same other class with at least 90% "
    "confidence. Select a row to inspect it: its nearest training images help judge whether "
    "the label or the models are wrong."
)
rows = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                    height=layout.table_height(8), key="map_suspects")  # fmt: skip
if rows.selection.rows:
    st.session_state[PICKED] = int(table.iloc[rows.selection.rows[0]]["index"])

index = st.session_state.get(PICKED)
if index is not None and 0 <= index < len(run.y_true):
    st.subheader(f"Test image {index}: {CLASS_NAMES[int(run.y_true[index])]}")
    with st.container(border=True):
        image_detail_ui(runs, int(index), key="map_detail")
