"""Label issues by three rules: a gallery filter, a table whose rows open the inspector, and what
the inspector adds (cleanlab's verdict, the nearest training images in pixel space).

The maths is in ``core.labelissues`` and ``core.neighbours``; this module caches and draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import streamlit as st

from core import artifacts, labelissues, neighbours
from core.data import CLASS_NAMES
from core.figures import image_png
from core.models import display_name
from core.text import literal
from widgets import cached, layout
from widgets import explain as explain_view

NONE, AGREE, CLEANLAB, DUPLICATE = "none", "agree", "cleanlab", "duplicate"
RULES = (NONE, AGREE, CLEANLAB, DUPLICATE)
RULE_LABELS = {
    NONE: "none",
    AGREE: "the models confidently agree on another class",
    CLEANLAB: "confident learning (cleanlab)",
    DUPLICATE: "near-duplicate in the training set",
}
RULE_HELP = (
    "Which test images may carry a wrong label. **Models agree**: every model gives the same "
    "other class with at least 90% confidence. **Confident learning** (cleanlab): the labels "
    "the mean of the models' test probabilities believes least, as many per class as its "
    "estimated noise rates say. **Near-duplicate**: a training image of almost the same pixels "
    f"(L2 on pixels/255 under {labelissues.NEAR_DUPLICATE_DISTANCE:g}); where its label differs, "
    "one of the two is wrong."
)
PIXEL_SCALE = 3  # 28 px -> 84 px per training image shown


def _identities(runs: Mapping[str, artifacts.Run]) -> tuple:
    return tuple(cached.run_key(r) for r in runs.values())


def _train_readable(container=st) -> bool:
    """Whether the training images can be read; says why not in ``container`` otherwise."""
    try:
        explain_view.train_images()
    except Exception as exc:  # a missing or damaged data set must not end the page
        container.error(
            f"The Fashion-MNIST training images could not be read ({literal(exc, 300)}), so "
            "test images cannot be compared with them. Install Debian's "
            "`dataset-fashion-mnist` or set `FASHION_MNIST_DIR`, then reload."
        )
        return False
    return True


def _probs(identities: tuple) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    loaded = [cached.load_run(identity) for identity in identities]
    return loaded[0].y_true, {r.model: r.y_prob for r in loaded}


# ----------------------------------------------------------------------------------------------
# Cached computations


@st.cache_data(show_spinner="Confident learning (cleanlab)…", max_entries=16)
def _confident(identities: tuple) -> dict[str, np.ndarray]:
    return labelissues.confident_learning_all(*_probs(identities))


@st.cache_data(show_spinner=False, max_entries=16)
def _confident_table(identities: tuple) -> pd.DataFrame:
    return labelissues.confident_learning_table(*_probs(identities))


def confident_issues(runs: Mapping[str, artifacts.Run]) -> dict[str, np.ndarray]:
    """cleanlab's ranked issues per model and ``labelissues.COMBINED``, cached per runs."""
    return _confident(_identities(runs))


_IDENTITY: dict[int, tuple[np.ndarray, str]] = {}


def _data_key(x: np.ndarray) -> str:
    """``neighbours.data_key``, hashed once per array object: the images are read once per
    server, and hashing 60,000 of them on every rerun would cost ~0.1 s. The stored reference
    keeps the array alive, so its id cannot be reused by another one."""
    held = _IDENTITY.get(id(x))
    if held is None or held[0] is not x:
        if len(_IDENTITY) >= 8:
            _IDENTITY.clear()
        held = _IDENTITY[id(x)] = (x, neighbours.data_key(x))
    return held[1]


@st.cache_resource(show_spinner=False, max_entries=4)
def _pixel_search(root: str, test_key: str, train_key: str) -> labelissues.PixelNeighbours:
    x_test, _ = cached.test_set()
    x_train, _ = explain_view.train_images()
    found = labelissues.cached_pixel_neighbours(x_test, x_train, root=root)
    if found is not None:  # a quick read: no progress bar
        return found
    bar = st.progress(0.0, text="Finding each test image's nearest training images in pixel "
                      "space, once per data set (under a minute)…")  # fmt: skip
    try:
        return labelissues.pixel_neighbours(
            x_test, x_train, root=root, progress=lambda f: bar.progress(f)
        )
    finally:
        bar.empty()


def pixel_search() -> labelissues.PixelNeighbours:
    """Every test image's nearest training images in pixel space, searched once per data set
    and kept in the artifacts folder's cache."""
    x_test, _ = cached.test_set()
    x_train, _ = explain_view.train_images()
    root = str(artifacts.artifacts_root())
    return _pixel_search(root, _data_key(x_test), _data_key(x_train))


@st.cache_data(show_spinner=False, max_entries=256)
def _nearest_one(train_key: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    x_test, _ = cached.test_set()
    x_train, _ = explain_view.train_images()
    found = labelissues.search_pixel_neighbours(x_test[index : index + 1], x_train)
    return found[0][0], found[1][0]


def issue_indices(runs: Mapping[str, artifacts.Run], rule: str) -> np.ndarray | None:
    """The test images ``rule`` flags (None for ``NONE``)."""
    if rule == AGREE:
        return explain_view.suspects(runs)
    if rule == CLEANLAB:
        return confident_issues(runs)[labelissues.COMBINED]
    if rule == DUPLICATE:
        return labelissues.near_duplicates(pixel_search())
    if rule == NONE:
        return None
    raise ValueError(f"unknown rule {rule!r}; choose one of: {', '.join(RULES)}")


# ----------------------------------------------------------------------------------------------
# Gallery filter


def gallery_filter_ui(container, shown: pd.DataFrame, runs, key: str) -> pd.DataFrame:
    """A choice of label-issue rule in ``container``; the gallery rows it keeps."""
    rule = container.selectbox(
        "Only suspected label errors, by",
        RULES,
        format_func=RULE_LABELS.get,
        key=key,
        bind="query-params",
        help=RULE_HELP,
    )
    if rule == DUPLICATE and not _train_readable(container):
        return shown
    flagged = issue_indices(runs, rule)
    if flagged is None:
        return shown
    return shown[shown["index"].isin(flagged)]


# ----------------------------------------------------------------------------------------------
# Table


def _table(runs: Mapping[str, artifacts.Run], rule: str) -> tuple[pd.DataFrame, str]:
    """The rule's table (an ``index`` column first among its keys) and a caption for it."""
    y_true, probs = _probs(_identities(runs))
    if rule == AGREE:
        table = neighbours.suspect_table(y_true, probs)
        return table, (
            f"{len(table):,} test images that every model gives the same other class with at "
            "least 90% confidence, surest first."
        )
    if rule == CLEANLAB:
        found = confident_issues(runs)
        table = _confident_table(_identities(runs))
        alone = ", ".join(f"{display_name(m)} {len(found[m]):,}" for m in runs)
        agree = explain_view.suspects(runs)
        shared = int(np.isin(agree, table["index"]).sum())
        return table, (
            f"{len(table):,} test images that confident learning (cleanlab) flags on the mean "
            "of the models' probabilities, the label it believes least first (each model "
            f"alone: {alone}; {shared} of the {len(agree)} images the models confidently agree "
            "on are among them). `suggested` is the mean's top class."
        )
    if rule == DUPLICATE:
        found = pixel_search()
        _, y_test = cached.test_set()
        _, y_train = explain_view.train_images()
        table = labelissues.duplicate_table(found, y_test, y_train)
        counts = labelissues.duplicate_counts(found, y_test, y_train)
        origin = "read from the cache" if found.from_cache else f"searched in {found.seconds:.0f} s"
        return table, (
            f"{counts.near:,} test images whose nearest training image lies under "
            f"{labelissues.NEAR_DUPLICATE_DISTANCE:g} (L2 distance on pixels/255), nearest "
            f"first: {counts.exact} identical, {counts.near_other_label} labelled otherwise "
            f"than their twin. Nearest training images of all {len(y_test):,} {origin}."
        )
    raise ValueError(f"unknown rule {rule!r}")


def issues_table_ui(runs: Mapping[str, artifacts.Run], key: str, picked_key: str) -> None:
    """A choice of rule and its table; selecting a row puts its test index in
    ``st.session_state[picked_key]``, on the click only: later picks elsewhere (the map) stand."""
    rule = st.selectbox(
        "Rule",
        RULES[1:],
        format_func=RULE_LABELS.get,
        key=f"{key}_rule",
        bind="query-params",
        help=RULE_HELP,
    )
    if rule == DUPLICATE and not _train_readable():
        return
    table, caption = _table(runs, rule)
    st.caption(caption + " Select a row to inspect it below: its nearest training images help "
               "judge whether the label or the models are wrong.")  # fmt: skip
    table_key = f"{key}_{rule}"  # one per rule: a row chosen in one table is not in another
    event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                         height=layout.table_height(8), key=table_key)  # fmt: skip
    row = event.selection.rows[0] if event.selection.rows else None
    seen = f"{table_key}__seen"
    if row != st.session_state.get(seen):  # a new click; a kept selection picks nothing again
        st.session_state[seen] = row
        if row is not None:
            st.session_state[picked_key] = int(table.iloc[row]["index"])


# ----------------------------------------------------------------------------------------------
# Inspector


def issue_detail_ui(runs: Mapping[str, artifacts.Run], index: int) -> None:
    """What the other rules say of test image ``index``: cleanlab's rank, and its nearest
    training images in pixel space with their labels and distances."""
    _, y_test = cached.test_set()
    true = int(y_test[index])
    combined = confident_issues(runs)[labelissues.COMBINED]
    rank = np.flatnonzero(combined == index)
    if rank.size:
        mean = labelissues.combined_probabilities(_probs(_identities(runs))[1])[index]
        st.warning(
            f"Confident learning (cleanlab) flags this label: rank {int(rank[0]) + 1} of "
            f"{len(combined):,}; the models' mean gives {CLASS_NAMES[true]} {mean[true]:.1%} "
            f"and {CLASS_NAMES[int(mean.argmax())]} {mean.max():.1%}.",
            icon=":material/flag:",
        )
    if not _train_readable():
        return
    x_train, y_train = explain_view.train_images()
    nearest, distance = _nearest_one(_data_key(x_train), int(index))
    threshold = labelissues.NEAR_DUPLICATE_DISTANCE
    if distance[0] < threshold:
        twin = int(nearest[0])
        same = "the same label" if int(y_train[twin]) == true else (
            f"another label, {CLASS_NAMES[int(y_train[twin])]}: one of the two is wrong"
        )  # fmt: skip
        st.warning(
            f"Near-duplicate of training image {twin} (distance {distance[0]:.3f}), with {same}.",
            icon=":material/content_copy:",
        )
    st.markdown("**Nearest training images in pixel space**")
    st.caption(
        f"L2 distance on pixels/255; under {threshold:g} counts as a near-duplicate, 0 is "
        "the same image."
    )
    st.image(
        [image_png(x_train[i], scale=PIXEL_SCALE) for i in nearest],
        caption=[
            f"#{i} {CLASS_NAMES[int(y_train[i])]} · {d:.3f}"
            for i, d in zip(nearest, distance, strict=True)
        ],
        width=28 * PIXEL_SCALE,
    )
