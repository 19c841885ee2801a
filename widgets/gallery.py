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
from widgets import labelissues as labelissues_view
from widgets.images import image_grid

PER_PAGE = 24
SCALE = 6  # 28 px -> 168 px, every pixel a crisp block
ORDER_LABELS = {
    "index": "test-set order",
    "ascending": "least confident first",
    "descending": "most confident first",
}


def chart_element_key(key: str) -> str:
    """The element key (``.st-key-<it>`` in the page) of ``clickable_chart(..., key, ...)``."""
    return f"{key}_chart"


def clickable_chart(container, figure, key: str, read: Callable, on_pick: Callable) -> str:
    """A Plotly chart whose clicks call ``on_pick(read(selection))``; returns its element key.

    ``read`` is ``figures.selected_cell`` or ``figures.selected_part``. The chart keeps its
    key, so a pick never makes the browser draw it anew (a new key did: most of a click's
    time). A click on the point picked last deselects it, an empty selection: that is a pick of
    the same point again (as is a double click, which also clears the selection).
    """
    chart_key, last_key = chart_element_key(key), f"{key}__picked"

    def clicked() -> None:
        value = read(st.session_state.get(chart_key))
        if value is None:
            value = st.session_state.get(last_key)
        if value is not None:
            st.session_state[last_key] = value
            on_pick(value)

    container.plotly_chart(figure, key=chart_key, on_select=clicked, selection_mode="points")
    return chart_key


def url_keys(key: str) -> tuple[str, ...]:
    """The URL parameters of gallery ``key``: its filters, order, page and inspected image."""
    parts = ("disagree", "conf_model", "conf", "order", "cams", "suspects", "page", "inspect")
    return tuple(f"{key}_{part}" for part in parts)


def url_formats(key: str) -> dict:
    """How gallery ``key``'s choices read in the URL (``core.urlstate.ignored``)."""
    return {f"{key}_order": ORDER_LABELS.get, f"{key}_conf_model": display_name}


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


def part_keys(key: str) -> tuple[str, str]:
    """The fragment keys of gallery ``key``: the whole gallery, and its page of images alone
    (``st.rerun`` either from a callback that changes what the gallery shows)."""
    return f"{key}_part", f"{key}_page_part"


def gallery_ui(
    items: pd.DataFrame,
    key: str,
    members: Callable[[], np.ndarray],
    conf_model: Callable[[], str | None] | None = None,
    runs: Mapping[str, Run] | None = None,
) -> None:
    """Filters, order, paging and the images of one gallery.

    ``items`` (rows of ``gallery_items``) are every image the gallery can show; the filters
    run on them. ``members()`` gives the test-set indices it shows now (a cell, a part): the
    page of images reads it each time it runs, so a callback that changes only what is shown
    reruns that page alone (``part_keys(key)[1]``), not the filters. ``conf_model()`` (read
    when the filters run) fixes the model whose confidence the range filter and the order use
    (the matrix the cell came from); None, or a None from it, lets the reader choose it. With the gallery's ``runs``, images can be shown
    with each model's Grad-CAM, narrowed to suspected label errors, and inspected one by one.
    """
    whole, _ = part_keys(key)
    st.fragment(_filters_ui, key=whole)(items, key, members, conf_model, runs)


def _filters_ui(items, key, members, conf_model, runs) -> None:
    models = gallery.models_of(items)
    names = {model: display_name(model) for model in models}
    left, middle, right, far = st.columns([1.3, 1.2, 2, 1.3], vertical_alignment="bottom")
    disagree = left.toggle(
        "Only disagreements",
        key=f"{key}_disagree",
        bind="query-params",
        help="Only images the two models classify differently.",
    )
    fixed = conf_model() if conf_model is not None else None
    if fixed is not None:
        st.session_state[f"{key}_conf_model"] = fixed
    chosen = middle.selectbox(
        "Confidence of",
        models,
        format_func=names.get,
        key=f"{key}_conf_model",
        bind="query-params",
        disabled=fixed is not None,
        help="The model whose confidence in its own prediction the range and the order use.",
    )
    low, high = right.slider(
        "Confidence in its prediction",
        0,
        100,
        (0, 100),
        step=5,
        format="%d%%",
        key=f"{key}_conf",
        bind="query-params",
    )
    order = far.selectbox(
        "Order",
        gallery.ORDERS,
        format_func=ORDER_LABELS.get,
        key=f"{key}_order",
        bind="query-params",
    )
    passing = gallery.filter_items(items, disagree, (low / 100, high / 100), chosen)
    cams = False
    if runs:
        left, right = st.columns(2)
        cams = left.toggle(
            "Show Grad-CAM", key=f"{key}_cams", bind="query-params", help=explain.HEATMAP_LEGEND
        )
        passing = labelissues_view.gallery_filter_ui(right, passing, runs, key=f"{key}_suspects")
    passing = gallery.sort_items(passing, chosen, order)
    view = {"names": names, "cams": cams, "runs": runs}
    st.fragment(_page_ui, key=part_keys(key)[1])(passing, key, members, view)


def _page_ui(passing: pd.DataFrame, key: str, members, view: dict) -> None:
    """The shown images that pass the filters (``passing``, in order), one page of them."""
    shown_now = members()
    if not len(shown_now):
        st.info("No test images here.", icon=":material/image_not_supported:")
        return
    shown = passing[passing["index"].isin(shown_now)]
    n_pages = gallery.page(shown, 1, PER_PAGE)[1]
    page_key = f"{key}_page"
    if not 1 <= st.session_state.get(page_key, 1) <= n_pages:  # a smaller cell than before
        st.session_state[page_key] = 1
    pager = st.container(horizontal=True, vertical_alignment="bottom")  # one element, not three
    number = pager.number_input(
        "Page", 1, n_pages, step=1, key=page_key, bind="query-params", width=160
    )
    pager.caption(gallery.page_label(len(shown), number, PER_PAGE, total=len(shown_now)))
    rows, _ = gallery.page(shown, number, PER_PAGE)
    if rows.empty:
        st.info("No image passes the filters: widen the confidence range or show all.")
        return
    records = rows.to_dict("records")
    runs, names = view["runs"], view["names"]
    captions = [gallery.caption(r, names) for r in records]
    alts = [f"Test image {int(r['index'])}: {c}" for r, c in zip(records, captions, strict=True)]
    if view["cams"]:
        st.caption(explain_view.strip_caption(runs) + " " + explain.HEATMAP_LEGEND)
        strips = [explain_view.cam_strip_png(runs, int(r["index"])) for r in records]
        image_grid(strips, captions, alts, key=f"{key}_images")
    else:
        pngs = cached.test_images_png(tuple(int(r["index"]) for r in records))
        image_grid(list(pngs), captions, alts, key=f"{key}_images", scale=SCALE)
    if runs:
        inspect_ui(runs, [int(r["index"]) for r in records], key)


@st.fragment  # picking an image, or its nearest neighbours, reruns only the inspected image
def inspect_ui(runs: Mapping[str, Run], indices: list[int], key: str) -> None:
    """Pick one of ``indices`` (the gallery page's images) and inspect it."""
    # The list is in a popover: the browser draws a closed popover's content only when it is
    # opened, and a select list whose options change with every page cost each gallery click
    # (a Swap, a page turn) about 10 ms of the browser's main thread (bench/results.md).
    shown = st.session_state.get(f"{key}_inspect")
    label = f"Inspecting test image {shown}" if shown in indices else "Inspect one image"
    with st.popover(label, icon=":material/zoom_in:", key=f"{key}_inspect_menu"):
        picked = st.selectbox(
            "An image of this page: Grad-CAM for the predicted and the true class, nearest "
            "training images",
            indices,
            index=None,
            placeholder="Pick an image of this page",
            format_func=lambda i: f"test image {i}",
            key=f"{key}_inspect",
            bind="query-params",
        )
    if picked is not None:
        with st.container(border=True):
            explain_view.image_detail_ui(runs, picked, key=f"{key}_detail")
            labelissues_view.issue_detail_ui(runs, picked)
