"""Confusion matrices: where each model errs, where one beats the other, the images of a cell."""

import numpy as np
import streamlit as st

from core import figures, gallery
from core.data import CLASS_NAMES
from core.models import display_name
from widgets import cached, charts, picker, urlstate
from widgets.gallery import (
    chart_element_key,
    clickable_chart,
    gallery_ui,
    load_test_images,
    part_keys,
    url_formats,
    url_keys,
)

CELL = "confusion_cell"  # (true, predicted, source); source: a model, or gallery.EITHER
PICKERS = ("confusion_true", "confusion_pred", "confusion_source")
CELL_MENU = "confusion_cell_menu"  # the popover that holds the pickers
CELL_PART = "confusion_cell_part"  # the fragment under the matrices: pickers and caption
GALLERY = "confusion_gallery"
VIEW, BOTH, DIFFERENCE = "confusion_view", "Both models", "Difference"  # the matrices shown
SHIRT, TSHIRT = CLASS_NAMES.index("Shirt"), CLASS_NAMES.index("T-shirt/top")


def chart_key(source: str) -> str:
    """The ``clickable_chart`` key of ``source``'s matrix (a model, or gallery.EITHER)."""
    return f"confusion_chart_{source}"


def _set_cell(cell: tuple) -> None:
    """Show ``cell``: only the part under the matrices and the gallery's page of images rerun
    (the gallery's filters too where the source changes; the matrices never: their outline
    moves by a style rule, ``charts.outline_css``)."""
    old = st.session_state.get(CELL)
    st.session_state[CELL] = cell
    st.session_state[f"{GALLERY}_page"] = 1
    whole, page = part_keys(GALLERY)
    same_source = isinstance(old, tuple) and len(old) == 3 and old[2] == cell[2]
    st.rerun([CELL_PART, page if same_source else whole])


def _pick() -> None:
    _set_cell(tuple(st.session_state[key] for key in PICKERS))


def _swap() -> None:
    true_class, pred_class, source = st.session_state[CELL]
    _set_cell((pred_class, true_class, source))


def matrices_ui(evals: dict, labels: dict) -> None:
    """Both models' matrices or their difference, clickable (the shown cell's outline is a
    style rule, ``charts.outline_css``)."""
    a, b = list(evals)[:2]
    # A segmented control, not st.tabs: only the chosen view is drawn (a matrix is a third of
    # the page's drawing time), and a tab panel costs every later click of the page its
    # search for a focusable child through the matrices' SVG (react-aria's
    # useHasTabbableChild: about 15 ms of the browser's main thread per click, bench/results.md).
    row = st.container(horizontal=True, vertical_alignment="center")
    view = row.segmented_control(
        "Matrices", [BOTH, DIFFERENCE], default=BOTH, required=True,
        key=VIEW, bind="query-params", label_visibility="collapsed",
    )  # fmt: skip
    if view == DIFFERENCE:
        figure = charts.confusion_difference_figure(evals[a].confusion, evals[b].confusion, a, b)
        clickable_chart(st, figure, chart_key(gallery.EITHER), figures.selected_cell,
                        lambda picked: _set_cell((*picked, gallery.EITHER)))  # fmt: skip
        return
    normalise = row.toggle(
        "Share of each true class (row-normalised)",
        key="confusion_normalise",
        bind="query-params",
        persist_state="page",
    )
    for column, name in zip(st.columns(len(evals)), evals, strict=True):
        figure = charts.confusion_figure(evals[name].confusion, labels[name], normalise)
        clickable_chart(column, figure, chart_key(name), figures.selected_cell,
                        lambda picked, name=name: _set_cell((*picked, name)))  # fmt: skip


def cell_ui(labels: dict, y_true, preds: dict) -> None:
    """The shown cell: its pickers, its outline in its matrix, what it holds."""
    cell = st.session_state[CELL]
    for key, value in zip(PICKERS, cell, strict=True):
        st.session_state[key] = value
    heading = st.empty()
    classes = list(range(len(CLASS_NAMES)))
    # One flex row, not st.columns: a click reruns this part, and each column is one more
    # element for the browser to replace. The pickers are in a popover: the browser draws a
    # closed popover's content only when it opens, and three select lists, two of them changed
    # by every Swap, were 15-30 ms of a Swap click's main thread (bench/results.md).
    row = st.container(horizontal=True, vertical_alignment="bottom")
    menu = row.popover("Choose a cell", icon=":material/grid_view:", key=CELL_MENU)
    shown = (
        menu.selectbox("True class", classes, format_func=CLASS_NAMES.__getitem__,
                       key=PICKERS[0], bind="query-params", on_change=_pick),
        menu.selectbox("Predicted class", classes, format_func=CLASS_NAMES.__getitem__,
                       key=PICKERS[1], bind="query-params", on_change=_pick),
        menu.selectbox("Predictions of", list(labels), format_func=labels.get,
                       key=PICKERS[2], bind="query-params", on_change=_pick),
    )  # fmt: skip
    if shown != cell:  # a link's cell (the URL seeds the pickers on its first load)
        cell = st.session_state[CELL] = shown
    true_class, pred_class, source = cell
    heading.subheader(f"True {CLASS_NAMES[true_class]}, predicted {CLASS_NAMES[pred_class]}")
    charts.show_outline(chart_element_key(chart_key(source)), cell[:2], source == gallery.EITHER)
    # No tooltip: the pointer rests on this button after a click, and redrawing a shown tooltip
    # took 15-30 ms of a Swap click's 125-155 ms in the browser's main thread (Chromium's
    # TaskDuration); the heading above names the new cell.
    row.button("Swap true ↔ predicted", key="confusion_swap", on_click=_swap,
               icon=":material/swap_horiz:")  # fmt: skip
    st.caption(gallery.cell_caption(y_true, preds, labels, true_class, pred_class, source))


def cell_members() -> np.ndarray:
    """The test images of the shown cell (read when the gallery's page runs)."""
    return gallery.cell_members(y_true, preds, *st.session_state[CELL])


def cell_model() -> str | None:
    """The model whose matrix holds the shown cell; None for the difference matrix."""
    source = st.session_state[CELL][2]
    return source if source in runs else None


st.title("Confusion matrices")
st.caption(
    "Rows are the true class, columns the predicted class, over the test images. Click a cell, "
    "or choose one by name below the matrices, to see exactly the images in it."
)
url_done = urlstate.watch(
    "confusion",
    (*picker.url_keys(), *PICKERS, VIEW, "confusion_normalise", *url_keys(GALLERY)),
    {PICKERS[0]: CLASS_NAMES.__getitem__, PICKERS[1]: CLASS_NAMES.__getitem__}
    | url_formats(GALLERY),
)  # the view is its link
runs = picker.selected_pair()  # the two models compared, A first
picker.require_runs(runs)

names = list(runs)
a, b = names
y_true = runs[a].y_true
if not gallery.same_labels(y_true, runs[b].y_true):
    st.error("The chosen runs were scored on different test sets; pick runs of the same one.")
    st.stop()
evals = {name: cached.evaluation(run) for name, run in runs.items()}
preds = {name: evaluation.y_pred for name, evaluation in evals.items()}
labels = {name: display_name(name) for name in names} | {gallery.EITHER: "Either (difference)"}
st.session_state[CELL] = gallery.parse_cell(st.session_state.get(CELL), labels) or (
    SHIRT, TSHIRT, a
)  # fmt: skip

# Fragments: a pick reruns only the part under the matrices and the gallery's page (_set_cell).
st.fragment(matrices_ui, key="confusion_matrices")(evals, labels)
st.fragment(cell_ui, key=CELL_PART)(labels, y_true, preds)
if load_test_images(y_true) is not None:
    items = gallery.gallery_items(
        y_true, {n: r.y_prob for n, r in runs.items()}, np.arange(len(y_true))
    )
    gallery_ui(items, GALLERY, cell_members, conf_model=cell_model, runs=runs)
url_done()
