"""Confusion matrices: where each model errs, where one beats the other, the images of a cell."""

import streamlit as st

from core import figures, gallery
from core.data import CLASS_NAMES
from core.models import display_name
from widgets import cached, charts, picker
from widgets.gallery import clickable_chart, gallery_ui, load_test_images

CELL = "confusion_cell"  # (true, predicted, source); source: a model, or gallery.EITHER
PICKERS = ("confusion_true", "confusion_pred", "confusion_source")
SHIRT, TSHIRT = CLASS_NAMES.index("Shirt"), CLASS_NAMES.index("T-shirt/top")


def _set_cell(cell: tuple) -> None:
    st.session_state[CELL] = cell
    st.session_state["confusion_gallery_page"] = 1


def _pick() -> None:
    _set_cell(tuple(st.session_state[key] for key in PICKERS))


def _swap() -> None:
    true_class, pred_class, source = st.session_state[CELL]
    _set_cell((pred_class, true_class, source))


st.title("Confusion matrices")
st.caption(
    "Rows are the true class, columns the predicted class, over the test images. Click a cell, "
    "or pick one below the matrices, to see exactly the images in it."
)
runs = picker.selected_runs()
picker.require_runs(runs)

names = list(runs)
a, b = names[:2]
y_true = runs[a].y_true
if not gallery.same_labels(y_true, runs[b].y_true):
    st.error("The chosen runs were scored on different test sets; pick runs of the same one.")
    st.stop()
evals = {name: cached.evaluation(run) for name, run in runs.items()}
preds = {name: evaluation.y_pred for name, evaluation in evals.items()}
labels = {name: display_name(name) for name in names} | {gallery.EITHER: "Either (difference)"}
cell = gallery.parse_cell(st.session_state.get(CELL), labels) or (SHIRT, TSHIRT, a)
st.session_state[CELL] = cell
true_class, pred_class, source = cell
for key, value in zip(PICKERS, cell, strict=True):
    st.session_state[key] = value

normalise = st.toggle("Share of each true class (row-normalised)", key="confusion_normalise")
both, difference = st.tabs(["Both models", f"Difference: {labels[b]} − {labels[a]}"])
for column, name in zip(both.columns(len(names)), names, strict=True):
    figure = charts.confusion_figure(
        evals[name].confusion,
        labels[name],
        normalise,
        cell[:2] if source == name else None,
    )
    clickable_chart(
        column, figure, f"confusion_chart_{name}", figures.selected_cell,
        lambda picked, name=name: _set_cell((*picked, name)),
    )  # fmt: skip
figure = charts.confusion_difference_figure(
    evals[a].confusion,
    evals[b].confusion,
    a,
    b,
    cell[:2] if source == gallery.EITHER else None,
)
clickable_chart(
    difference, figure, "confusion_chart_difference", figures.selected_cell,
    lambda picked: _set_cell((*picked, gallery.EITHER)),
)  # fmt: skip

st.subheader(f"True {CLASS_NAMES[true_class]}, predicted {CLASS_NAMES[pred_class]}")
classes = list(range(len(CLASS_NAMES)))
columns = st.columns(4, vertical_alignment="bottom")
columns[0].selectbox(
    "True class", classes, format_func=CLASS_NAMES.__getitem__, key=PICKERS[0], on_change=_pick
)
columns[1].selectbox(
    "Predicted class", classes, format_func=CLASS_NAMES.__getitem__, key=PICKERS[1], on_change=_pick
)
columns[2].selectbox(
    "Predictions of", list(labels), format_func=labels.get, key=PICKERS[2], on_change=_pick
)
columns[3].button(
    "Swap true ↔ predicted", key="confusion_swap", on_click=_swap, icon=":material/swap_horiz:",
    help=f"Show true {CLASS_NAMES[pred_class]} predicted as {CLASS_NAMES[true_class]}",
)  # fmt: skip

st.caption(gallery.cell_caption(y_true, preds, labels, true_class, pred_class, source))
images = load_test_images(y_true)
if images is not None:
    members = gallery.cell_members(y_true, preds, true_class, pred_class, source)
    items = gallery.gallery_items(y_true, {n: r.y_prob for n, r in runs.items()}, members)
    conf_model = source if source in runs else None
    gallery_ui(items, images, key="confusion_gallery", conf_model=conf_model, runs=runs)
