"""Your own test set on screen: the Predict page's "Add to my test set", and the My test set
page's scores, confusion matrices, gallery, explanations, export and import.

The store and the scoring are ``core.testset``; this module runs the models (cached per run and
per set content) and draws. Changing the set (add, remove, import) is off for visitors of an
exposed dashboard, as training is (``core.access``). No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import streamlit as st

from core import access, figures
from core import testset as store
from core.artifacts import Run, RunError, artifacts_root
from core.data import CLASS_NAMES
from core.modelfile import UnsupportedModel
from core.models import display_name
from core.text import literal
from widgets import cached, charts, nav
from widgets.access import UNLOCKED
from widgets.explain import input_cams_ui
from widgets.gallery import clickable_chart

# Session-state keys, defined once.
ADD_LABEL = "testset_add_label"  # Predict: the class the user says is right
ADD_FOR = "testset_add_for"  # Predict: the input that label was defaulted for
MESSAGE = "testset_message"  # (kind, text) to show once, after a change made in a callback
CELL = "testset_cell"  # (true, predicted, model): the gallery shows that confusion cell only
EXPLAIN = "testset_explain"  # the item whose Grad-CAM is shown
UPLOADS = "testset_uploads"  # bumped after an import, so the uploader starts empty
PAGE = "testset_page"

PAGE_SIZE = 30
COLUMNS = 6
THUMB_SCALE = 3  # 28 px -> 84 px


def may_change() -> bool:
    """Whether this session may change the set (as the Training page's operator lock says)."""
    policy = access.access_for(st.get_option("server.address"))
    return policy.may_change(st.session_state.get(UNLOCKED, False))


def _reason(exc: Exception) -> str:
    """Why a change failed: the store's own sentence, or the system's error shown verbatim."""
    return str(exc) if isinstance(exc, store.TestSetError) else literal(exc)


def _store_root() -> str:
    return str(artifacts_root())


# ----------------------------------------------------------------------------------------------
# Predict: add the current input


def consensus(probs: Mapping[str, np.ndarray]) -> int:
    """The class the models agree on; where they disagree, the highest mean probability."""
    return int(np.mean([np.asarray(p, dtype=np.float64) for p in probs.values()], axis=0).argmax())


def add_to_testset_ui(pixels: np.ndarray, probs: Mapping[str, np.ndarray], source: str) -> None:
    """The class the user says is right (default: the models' consensus) and "Add to my test
    set", which keeps this 28x28 input with that label."""
    digest = store.pixels_sha256(store.to_uint8(pixels))
    if st.session_state.get(ADD_FOR) != digest:  # a new input: default to what the models say
        st.session_state[ADD_FOR] = digest
        st.session_state[ADD_LABEL] = consensus(probs)
    allowed = may_change()
    label_column, button_column = st.columns([2, 1], vertical_alignment="bottom")
    label_column.selectbox(
        "The right class of this garment", list(range(len(CLASS_NAMES))),
        format_func=CLASS_NAMES.__getitem__, key=ADD_LABEL,
        help="Defaults to what the models say; change it if they are wrong.",
    )  # fmt: skip
    clicked = button_column.button(
        "Add to my test set", key="testset_add", icon=":material/playlist_add:",
        disabled=not allowed, width="stretch",
    )  # fmt: skip
    if not allowed:
        st.caption("Adding to the test set is off for visitors; unlock it on My test set.")
    if clicked and allowed:  # a disabled button's click could still be forged: checked here too
        try:
            done = store.add(pixels, int(st.session_state[ADD_LABEL]), source, _store_root())
        except (store.TestSetError, OSError) as exc:
            st.error(f"Not added: {_reason(exc)}", icon=":material/error:")
        else:
            item = done.item
            if done.duplicate:
                st.info(f"This image is already in your test set, labelled {item.label_name}.")
            else:
                st.success(f"Added to your test set as {item.label_name}.", icon=":material/check:")
    st.page_link(nav.TESTSET, label="Open my test set", icon=":material/fact_check:")


# ----------------------------------------------------------------------------------------------
# My test set: reading, running the models


def load_ui() -> store.TestSet:
    """The verified set; stops with the reason when its manifest cannot be read."""
    try:
        testset = store.load(_store_root())
    except store.TestSetError as exc:
        st.error(str(exc), icon=":material/report:")
        st.stop()
    message = st.session_state.pop(MESSAGE, None)
    if message is not None:
        kind, text = message
        (st.success if kind == "success" else st.error)(text)
    if testset.problems:
        lines = "\n".join(f"- {literal(i)}: {why}" for i, why in testset.problems)
        st.warning(
            f"{len(testset.problems)} item(s) failed their checksum check, so they are left out "
            f"of everything below:\n{lines}",
            icon=":material/report:",
        )
        st.button(
            "Remove the damaged items", key="testset_remove_damaged", disabled=not may_change(),
            on_click=_remove, args=tuple(i for i, _ in testset.problems),
        )  # fmt: skip
    return testset


def empty_ui() -> None:
    st.info(
        "Your test set is empty. On the Predict page, draw or upload a garment (or pick a test "
        "image), say which class it is, and press “Add to my test set”. Or import a zip below."
    )
    st.page_link(nav.PREDICT, label="Go to Predict", icon=":material/draw:")


def predictors_ui(runs: Mapping[str, Run]) -> dict:
    """Every run's model for inference; stops with a message when one cannot be loaded."""
    try:
        return {name: cached.predictor(run) for name, run in runs.items()}
    except (RunError, UnsupportedModel) as exc:
        st.error(f"A model cannot be loaded for prediction: {literal(exc)}. Retrain it on the "
                 "Training page.")  # fmt: skip
        st.stop()


@st.cache_data(show_spinner="Running the models on your test set…", max_entries=64)
def _probs(key: cached.RunKey, digest: str, _pixels: np.ndarray) -> np.ndarray:
    return cached.predictor(cached.load_run(key)).predict(_pixels)  # (n, 10)


def predictions(runs: Mapping[str, Run], testset: store.TestSet) -> dict[str, np.ndarray]:
    """Each model's probabilities (n, 10) for the set's items, cached per run and set."""
    return {
        name: _probs(cached.run_key(run), testset.digest, testset.pixels)
        for name, run in runs.items()
    }


# ----------------------------------------------------------------------------------------------
# Scores


def scores_ui(
    testset: store.TestSet, probs: Mapping[str, np.ndarray], pair: tuple[str, str]
) -> dict[str, store.ModelScore]:
    """Accuracy of every model with its 95% interval, and the paired test of the pair."""
    scores = store.score_models(testset.labels, probs)
    st.dataframe(
        [
            {
                "Model": display_name(name),
                "Accuracy": score.accuracy,
                "95% interval": f"{score.ci_low:.1%} to {score.ci_high:.1%}",
                "Right": f"{score.correct} of {score.n}",
            }
            for name, score in scores.items()
        ],
        column_config={"Accuracy": st.column_config.NumberColumn(format="percent")},
        hide_index=True,
        key="testset_scores",
    )
    st.caption(
        "The interval is Wilson's score interval for a proportion: with a few dozen items it "
        "is wide, and two models' intervals overlapping says little on its own; the paired "
        "test below compares them on the same items."
    )
    a, b = pair
    if a in probs and b in probs:
        comparison = store.compare_pair(testset.labels, probs[a], probs[b])
        parts = comparison.agreement
        st.markdown(f"**{display_name(b)} against {display_name(a)}, on your items.** "
                    + comparison.verdict(display_name(a), display_name(b)))  # fmt: skip
        st.caption(
            f"Both right on {parts['both_right']}, only {display_name(a)} on {parts['only_a']}, "
            f"only {display_name(b)} on {parts['only_b']}, both wrong on {parts['both_wrong']}. "
            "McNemar's exact test looks only at the items where one is right and the other "
            "wrong: with few of those it cannot tell the models apart."
        )
    return scores


def _set_cell(cell: tuple) -> None:
    st.session_state[CELL] = cell
    st.session_state[PAGE] = 1


def confusion_ui(scores: Mapping[str, store.ModelScore]) -> None:
    """Each model's confusion matrix on the set; a click on a cell filters the gallery."""
    cell = st.session_state.get(CELL)
    columns = st.columns(len(scores))
    for column, (name, score) in zip(columns, scores.items(), strict=True):
        picked = cell[:2] if cell and cell[2] == name else None
        figure = charts.confusion_figure(score.confusion, display_name(name), False, picked)
        clickable_chart(
            column, figure, f"testset_confusion_{name}", figures.selected_cell,
            lambda value, name=name: _set_cell((*value, name)),
        )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Items: gallery, remove, explain


def _remove(*item_ids: str) -> None:
    if not may_change():
        return
    try:
        removed = store.remove(item_ids, _store_root())
    except (store.TestSetError, OSError) as exc:
        st.session_state[MESSAGE] = ("error", f"Nothing removed: {_reason(exc)}")
        return
    if st.session_state.get(EXPLAIN) in item_ids:
        st.session_state.pop(EXPLAIN)
    st.session_state[MESSAGE] = ("success", f"Removed {removed} item(s) from your test set.")


def _explain(item_id: str) -> None:
    st.session_state[EXPLAIN] = item_id


def _clear_cell() -> None:
    st.session_state.pop(CELL, None)


def _shown(testset: store.TestSet, scores: Mapping[str, store.ModelScore]) -> np.ndarray:
    """Indices of the items the gallery shows: all, or one confusion cell's."""
    cell = st.session_state.get(CELL)
    if not cell or cell[2] not in scores:
        return np.arange(len(testset))
    true_class, pred_class, name = cell
    chosen = (testset.labels == true_class) & (scores[name].y_pred == pred_class)
    st.caption(
        f"Items labelled {CLASS_NAMES[true_class]} that {display_name(name)} calls "
        f"{CLASS_NAMES[pred_class]}: {int(chosen.sum())} of {len(testset)}."
    )
    st.button("Show every item", key="testset_show_all", on_click=_clear_cell)
    return np.flatnonzero(chosen)


def _table_titles(probs: Mapping[str, np.ndarray]) -> dict[str, str]:
    titles = {"id": "Id", "label": "Label", "added": "Added (UTC)", "source": "Source"}
    for name in probs:
        for part in ("predicted", "confidence", "right"):
            titles[f"{name} {part}"] = f"{display_name(name)}: {part}"
    return titles


def gallery_ui(
    testset: store.TestSet, probs: Mapping[str, np.ndarray], scores: Mapping[str, store.ModelScore]
) -> None:
    """Every item with its label, each model's prediction and confidence, Why? and Remove."""
    shown = _shown(testset, scores)
    if st.toggle("Show as a table", key="testset_table"):
        table = store.items_table(testset, probs).iloc[shown]
        st.dataframe(table.rename(columns=_table_titles(probs)), hide_index=True)
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    page = 1
    if pages > 1:
        page = int(st.number_input("Page", 1, pages, key=PAGE, step=1))
    allowed = may_change()
    start = (min(page, pages) - 1) * PAGE_SIZE
    visible = shown[start : start + PAGE_SIZE]
    for row in range(0, len(visible), COLUMNS):
        for column, index in zip(st.columns(COLUMNS), visible[row : row + COLUMNS], strict=False):
            item = testset.items[index]
            column.image(figures.image_png(testset.pixels[index], scale=THUMB_SCALE))
            column.markdown(f"**{item.label_name}**")
            for name, prob in probs.items():
                predicted = int(prob[index].argmax())
                mark = "✓" if predicted == item.label else "✗"
                column.caption(
                    f"{mark} {display_name(name)}: {CLASS_NAMES[predicted]} "
                    f"{prob[index, predicted]:.0%}"
                )
            column.button("Why?", key=f"testset_why_{item.id}", on_click=_explain,
                          args=(item.id,), help="Grad-CAM of every model")  # fmt: skip
            column.button("Remove", key=f"testset_remove_{item.id}", on_click=_remove,
                          args=(item.id,), disabled=not allowed)  # fmt: skip


def explain_ui(models: Mapping, testset: store.TestSet, probs: Mapping[str, np.ndarray]) -> None:
    """Grad-CAM of every model for the item whose Why? was pressed."""
    index = testset.index_of(st.session_state.get(EXPLAIN) or "")
    if index is None:
        st.caption("Press “Why?” under an item to see where each model looked.")
        return
    item = testset.items[index]
    source = literal(item.source or "unknown source")
    st.markdown(
        f"**Why: the item labelled {item.label_name}** (added {item.added:%Y-%m-%d %H:%M} UTC, "
        f"{source})"
    )
    input_cams_ui(models, testset.pixels[index], {n: p[index] for n, p in probs.items()})


# ----------------------------------------------------------------------------------------------
# Export and import


@st.cache_data(show_spinner=False, max_entries=8)
def _zip(digest: str, _testset: store.TestSet) -> bytes:
    return store.export_zip(_testset)


def _import() -> None:
    upload = st.session_state.get(_upload_key())
    if upload is None or not may_change():
        return
    mode = st.session_state.get("testset_import_mode", "merge")
    try:
        result = store.import_zip(upload.getvalue(), mode, _store_root())
    except (store.TestSetError, OSError) as exc:
        st.session_state[MESSAGE] = (
            "error",
            f"{literal(upload.name)} was not imported: {_reason(exc)}",
        )
        return
    st.session_state[UPLOADS] = st.session_state.get(UPLOADS, 0) + 1  # an empty uploader next
    st.session_state[MESSAGE] = ("success", result.summary())


def _upload_key() -> str:
    return f"testset_upload_{st.session_state.get(UPLOADS, 0)}"


def transfer_ui(testset: store.TestSet) -> None:
    """Download the set as a zip of PNGs with labels.csv; import such a zip (merge or replace)."""
    allowed = may_change()
    download, upload = st.columns(2)
    with download:
        st.markdown("**Download**")
        st.download_button(
            f"Download the set ({len(testset)} items, zip)", _zip(testset.digest, testset),
            file_name=store.EXPORT_NAME, mime="application/zip", key="testset_download",
            disabled=not len(testset), icon=":material/download:",
        )  # fmt: skip
        st.caption(
            f"PNGs (28×28, 8-bit greyscale, light garment on black, as Fashion-MNIST) and "
            f"{store.CSV_NAME} with the columns file,label,source (labels as class names)."
        )
    with upload:
        st.markdown("**Import**")
        st.file_uploader(
            "A zip of 28×28 greyscale PNGs with a labels CSV (file,label; class names or "
            "indices 0-9)", type=["zip"], key=_upload_key(), disabled=not allowed,
        )  # fmt: skip
        st.radio(
            "Into the set", store.IMPORT_MODES, key="testset_import_mode", horizontal=True,
            format_func={"merge": "Add to it (skip images it has)",
                         "replace": f"Replace it (its {len(testset)} items go)"}.get,
        )  # fmt: skip
        st.button(
            "Import", key="testset_import", on_click=_import, icon=":material/upload:",
            disabled=not allowed or st.session_state.get(_upload_key()) is None,
        )  # fmt: skip
