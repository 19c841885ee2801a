"""The image gallery both the Confusion and the Compare page open: filters, order, pages, images.

What is shown is computed in ``core.gallery``; this module only draws widgets and images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import streamlit as st

from core import explain, gallery
from core.artifacts import Run
from core.models import display_name
from core.text import literal
from widgets import cached
from widgets import explain as explain_view

PER_PAGE = 24
SCALE = 6  # 28 px -> 168 px, every pixel a crisp block
ORDER_LABELS = {
    "index": "test-set order",
    "ascending": "least confident first",
    "descending": "most confident first",
}


def clickable_chart(container, figure, key: str, read: Callable, on_pick: Callable) -> None:
    """A Plotly chart whose clicks call ``on_pick(read(selection))``; empty selections are ignored.

    ``read`` is ``figures.selected_cell`` or ``figures.selected_part``. A click on the selected
    point would clear the selection, so after each pick this chart alone gets a fresh key (an
    empty selection): every click is a new pick. Other changes keep the key, so the browser
    updates the chart in place instead of drawing it anew.
    """
    version_key = f"{key}__version"
    chart_key = f"{key}_{st.session_state.get(version_key, 0)}"

    def clicked() -> None:
        value = read(st.session_state.get(chart_key))
        if value is not None:
            st.session_state[version_key] = st.session_state.get(version_key, 0) + 1
            on_pick(value)

    container.plotly_chart(figure, key=chart_key, on_select=clicked, selection_mode="points")


def load_test_images(y_true) -> np.ndarray | None:
    """The test images matching the run's labels, or None after saying what is wrong."""
    try:
        x_test, y_test = cached.test_set()
    except Exception as exc:  # a missing or damaged dataset must not end the page
        st.error(
            f"The Fashion-MNIST test images could not be read ({literal(exc, 600)}). Install "
            "Debian's `dataset-fashion-mnist` or set `FASHION_MNIST_DIR`, then reload."
        )
        return None
    if not gallery.same_labels(y_true, y_test):
        st.error(
            "These runs were scored on a different test set than the Fashion-MNIST test "
            "images found here, so their images cannot be shown. Retrain on the Training page."
        )
        return None
    return x_test


def gallery_ui(
    items: pd.DataFrame,
    images: np.ndarray,
    key: str,
    conf_model: str | None = None,
    runs: Mapping[str, Run] | None = None,
) -> None:
    """Filters, order, paging and the images of one gallery (rows of ``gallery_items``).

    ``conf_model`` fixes the model whose confidence the range filter and the order use (the
    matrix the cell came from); None lets the reader choose it. With the gallery's ``runs``,
    images can be shown with each model's Grad-CAM, narrowed to suspected label errors, and
    inspected one by one.
    """
    models = gallery.models_of(items)
    names = {model: display_name(model) for model in models}
    if items.empty:
        st.info("No test images here.", icon=":material/image_not_supported:")
        return
    left, middle, right, far = st.columns([1.3, 1.2, 2, 1.3], vertical_alignment="bottom")
    disagree = left.toggle(
        "Only disagreements",
        key=f"{key}_disagree",
        help="Only images the two models classify differently.",
    )
    if conf_model is not None:
        st.session_state[f"{key}_conf_model"] = conf_model
    chosen = middle.selectbox(
        "Confidence of",
        models,
        format_func=names.get,
        key=f"{key}_conf_model",
        disabled=conf_model is not None,
        help="The model whose confidence in its own prediction the range and the order use.",
    )
    low, high = right.slider(
        "Confidence in its prediction", 0, 100, (0, 100), step=5, format="%d%%", key=f"{key}_conf"
    )
    order = far.selectbox("Order", gallery.ORDERS, format_func=ORDER_LABELS.get, key=f"{key}_order")
    shown = gallery.filter_items(items, disagree, (low / 100, high / 100), chosen)
    cams = False
    if runs:
        left, right = st.columns(2)
        cams = left.toggle("Show Grad-CAM", key=f"{key}_cams", help=explain.HEATMAP_LEGEND)
        if right.toggle(
            "Only suspected label errors",
            key=f"{key}_suspects",
            help="Images every model gives the same other class with at least 90% confidence: "
            "the label may be wrong rather than the models.",
        ):
            shown = shown[shown["index"].isin(explain_view.suspects(runs))]
    shown = gallery.sort_items(shown, chosen, order)
    n_pages = gallery.page(shown, 1, PER_PAGE)[1]
    page_key = f"{key}_page"
    if not 1 <= st.session_state.get(page_key, 1) <= n_pages:  # a smaller cell than before
        st.session_state[page_key] = 1
    pager, label = st.columns([1, 5], vertical_alignment="bottom")
    number = pager.number_input("Page", 1, n_pages, step=1, key=page_key)
    label.caption(gallery.page_label(len(shown), number, PER_PAGE, total=len(items)))
    rows, _ = gallery.page(shown, number, PER_PAGE)
    if rows.empty:
        st.info("No image passes the filters: widen the confidence range or show all.")
        return
    records = rows.to_dict("records")
    if cams:
        st.caption(explain_view.strip_caption(runs) + " " + explain.HEATMAP_LEGEND)
        st.image(
            [explain_view.cam_strip_png(runs, int(r["index"])) for r in records],
            caption=[gallery.caption(r, names) for r in records],
            width=(28 * explain_view.TILE_SCALE + explain_view.GAP) * (len(runs) + 1),
            output_format="PNG",
        )
    else:
        st.image(
            [cached.test_image_png(int(r["index"]), SCALE) for r in records],
            caption=[gallery.caption(r, names) for r in records],
            width=28 * SCALE,  # fixed: otherwise each image widens to its caption
            output_format="PNG",
        )
    if runs:
        picked = st.selectbox(
            "Inspect one image: Grad-CAM for the predicted and the true class, nearest training "
            "images",
            [int(r["index"]) for r in records],
            index=None,
            placeholder="Pick an image of this page",
            format_func=lambda i: f"test image {i}",
            key=f"{key}_inspect",
        )
        if picked is not None:
            with st.container(border=True):
                explain_view.image_detail_ui(runs, picked, key=f"{key}_detail")
