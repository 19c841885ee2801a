"""Map of the test set: each model's learned features in 2-D; click a point to inspect it."""

import streamlit as st

from core import projection
from core.data import CLASS_NAMES
from core.figures import selected_indices
from core.models import display_name
from widgets import charts, picker, urlstate
from widgets.explain import cached_projection, image_detail_ui, test_projection
from widgets.gallery import clickable_chart
from widgets.labelissues import issue_detail_ui, issues_table_ui

METHOD_LABELS = {"pca": "PCA", "umap": "UMAP"}
PICKED = "map_picked"  # the test image inspected below the map
INSPECT_PART = "map_inspect_part"  # the fragment of the label-error table and the image


def _first_index(event) -> int | None:
    return (selected_indices(event) or [None])[0]


def _inspect(index: int) -> None:
    """A click on a point: inspect its image; the map is not sent again."""
    st.session_state[PICKED] = index
    st.rerun(INSPECT_PART)


def map_ui(runs: dict) -> None:
    """The chosen model's map, by the chosen projection; a click inspects the point."""
    left, right = st.columns(2)
    model = left.radio("Model", list(runs), format_func=display_name, horizontal=True,
                       key="map_model", bind="query-params")  # fmt: skip
    methods = projection.available_methods()
    method = right.radio("Projection", methods, format_func=METHOD_LABELS.get, horizontal=True,
                         key="map_method", bind="query-params")  # fmt: skip
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
    clickable_chart(st, figure, f"map_chart_{model}_{method}", _first_index, _inspect)
    origin = "from cache" if proj.from_cache else f"computed in {proj.seconds:.0f} s"
    st.caption(f"{METHOD_LABELS[method]} of the {proj.n:,} test images ({origin}).")


def inspect_ui(runs: dict) -> None:
    """The suspected label errors, and the test image picked there, on the map or by number."""
    run = next(iter(runs.values()))
    st.subheader("Suspected label errors")
    issues_table_ui(runs, key="map_issues", picked_key=PICKED)

    index = st.number_input(
        "Inspect test image", 0, len(run.y_true) - 1, value=None, step=1, key=PICKED,
        bind="query-params",
        placeholder="Click a point or a row above, or type a test image's number",
    )  # fmt: skip
    if index is not None:
        st.subheader(f"Test image {index}: {CLASS_NAMES[int(run.y_true[index])]}")
        with st.container(border=True):
            image_detail_ui(runs, int(index), key="map_detail")
            issue_detail_ui(runs, int(index))


st.title("Map of the test set")
st.caption(
    "The 10,000 test images placed by what each model computes just before its output layer, "
    "coloured by their label; rings mark the model's mistakes. Click a point to inspect it."
)
url_done = urlstate.watch(
    "map",
    (*picker.url_keys(), "map_model", "map_method", "map_issues_rule", PICKED),
    {"map_model": display_name, "map_method": METHOD_LABELS.get},
)  # the view is its link
runs = picker.selected_pair()  # the two models compared, A first
picker.require_runs(runs)

# The map and the inspected image rerun alone: a click on a point redraws only the image.
st.fragment(map_ui, key="map_part")(runs)
st.fragment(inspect_ui, key=INSPECT_PART)(runs)
url_done()
