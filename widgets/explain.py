"""Why a prediction: Grad-CAM tiles, suspected label errors and nearest training images.

Shared by the galleries, the Map page and the Predict page. The maths is in ``core.explain``
and ``core.neighbours`` (numpy on the saved model, no TensorFlow); this module caches per run
and per image and draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import streamlit as st

from core import artifacts, explain, neighbours, projection
from core.data import CLASS_NAMES, load_dataset
from core.models import display_name
from widgets import cached

TILE_SCALE = 4  # 28 px -> 112 px per panel in gallery strips
DETAIL_SCALE = 6
NEIGHBOURS = 8
GAP = 4  # white pixels between the panels of a strip


# ----------------------------------------------------------------------------------------------
# Grad-CAM


@st.cache_data(show_spinner=False, max_entries=8192)
def _test_cam(identity: tuple, index: int, class_index: int) -> np.ndarray:
    x_test, _ = cached.test_set()
    pixels = (x_test[index : index + 1] / 255).astype(np.float32)
    return explain.grad_cam(cached.predictor(cached.load_run(identity)), pixels, class_index)[
        0
    ]  # (28, 28)


def test_cam(run: artifacts.Run, index: int, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM (28, 28) of test image ``index`` for ``class_index`` (default: the run's own
    prediction), cached per run, image and class."""
    if class_index is None:
        class_index = int(run.y_prob[index].argmax())
    return _test_cam(cached.run_key(run), int(index), int(class_index))


def _strip(panels: list[np.ndarray]) -> np.ndarray:
    """RGB panels (h, w, 3) side by side with white gaps."""
    height = panels[0].shape[0]
    gap = np.full((height, GAP, 3), 255, np.uint8)
    parts = [panels[0]]
    for panel in panels[1:]:
        parts += [gap, panel]
    return np.concatenate(parts, axis=1)


def _grey(image: np.ndarray, scale: int) -> np.ndarray:
    big = np.kron(image, np.ones((scale, scale), np.uint8))
    return np.repeat(big[..., None], 3, axis=2)


def _png(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@st.cache_data(show_spinner=False, max_entries=4096)
def _strip_png(identities: tuple, index: int, scale: int) -> bytes:
    x_test, _ = cached.test_set()
    image = x_test[index]
    panels = [_grey(image, scale)]
    for identity in identities:
        run = cached.load_run(identity)
        cam = test_cam(run, index)
        panels.append(explain.overlay(image, cam, scale=scale))
    return _png(_strip(panels))


def cam_strip_png(runs: Mapping[str, artifacts.Run], index: int, scale: int = TILE_SCALE) -> bytes:
    """Test image ``index``, then each model's Grad-CAM for its own prediction, as one PNG."""
    return _strip_png(tuple(cached.run_key(r) for r in runs.values()), int(index), scale)


def strip_caption(runs: Mapping[str, artifacts.Run]) -> str:
    names = ", then ".join(display_name(m) for m in runs)
    return f"Each strip: the image, then Grad-CAM of {names}, each for its own prediction."


def input_cams_ui(models: Mapping, pixels: np.ndarray, probs: Mapping[str, np.ndarray]) -> None:
    """Grad-CAM of a prepared input (28, 28) float for every model's predicted class."""
    image = np.rint(pixels * 255).astype(np.uint8)
    columns = st.columns(len(models) + 1)
    columns[0].image(_png(_grey(image, DETAIL_SCALE)), caption="Input")
    for column, (name, model) in zip(columns[1:], models.items(), strict=True):
        predicted = int(np.argmax(probs[name]))
        cam = explain.grad_cam(model, pixels[None].astype(np.float32), predicted)[0]
        column.image(
            _png(explain.overlay(image, cam, scale=DETAIL_SCALE)),
            caption=f"{display_name(name)}: why {CLASS_NAMES[predicted]}",
        )
    st.caption(explain.HEATMAP_LEGEND)


# ----------------------------------------------------------------------------------------------
# Suspected label errors


@st.cache_data(show_spinner=False, max_entries=16)
def _suspects(identities: tuple, threshold: float) -> np.ndarray:
    runs = [cached.load_run(identity) for identity in identities]
    return neighbours.suspect_labels(
        runs[0].y_true, {r.model: r.y_prob for r in runs}, threshold=threshold
    )


def suspects(runs: Mapping[str, artifacts.Run], threshold: float = 0.9) -> np.ndarray:
    """Test images every model confidently (>= threshold) gives the same other class."""
    return _suspects(tuple(cached.run_key(r) for r in runs.values()), threshold)


# ----------------------------------------------------------------------------------------------
# Nearest training images


@st.cache_resource(show_spinner=False)
def train_images() -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 training images (uint8) and labels, read once per server."""
    data = load_dataset(allow_download=False)
    return data.x_train, data.y_train


@st.cache_resource(show_spinner=False, max_entries=4)
def _train_features(identity: tuple) -> np.ndarray:
    run = cached.load_run(identity)
    x_train, _ = train_images()
    bar = st.progress(0.0, text=f"Computing {display_name(run.model)}'s features of the "
                      "60,000 training images, once for this run (a few minutes)…")  # fmt: skip
    try:
        return neighbours.train_features(
            run, cached.predictor(run), x_train, progress=lambda f: bar.progress(f)
        )
    finally:
        bar.empty()


def features_ready(run: artifacts.Run) -> bool:
    """Whether the run's training features are already on disk (no minutes-long wait)."""
    return neighbours.features_path(run).is_file()


def nearest_ui(run: artifacts.Run, pixels: np.ndarray, label: int | None = None) -> None:
    """The nearest training images of one input (28, 28) float in ``run``'s penultimate space."""
    features = _train_features(cached.run_key(run))
    query = cached.predictor(run).penultimate(pixels[None].astype(np.float32))
    index, distance = neighbours.nearest_training(query, features, k=NEIGHBOURS)
    x_train, y_train = train_images()
    labels = [int(y_train[i]) for i in index[0]]
    if label is not None:
        same = sum(lab == label for lab in labels)
        st.caption(
            f"{same} of {NEIGHBOURS} nearest training images are labelled "
            f"{CLASS_NAMES[label]} (cosine distance in the layer before the output)."
        )
    st.image(
        [_png(_grey(x_train[i], 3)) for i in index[0]],
        caption=[
            f"{CLASS_NAMES[lab]} · {d:.3f}" for lab, d in zip(labels, distance[0], strict=True)
        ],
        width=84,
    )


# ----------------------------------------------------------------------------------------------
# One test image, inspected


def image_detail_ui(runs: Mapping[str, artifacts.Run], index: int, key: str) -> None:
    """A test image with each model's prediction, its Grad-CAM for the predicted and the true
    class, whether the label is suspect, and (on request) the nearest training images."""
    x_test, y_test = cached.test_set()
    true = int(y_test[index])
    image = x_test[index]
    st.markdown(f"**Test image {index}**, labelled **{CLASS_NAMES[true]}**")
    if index in set(suspects(runs).tolist()):
        st.warning(
            "Suspected label error: every model gives the same other class with at least 90% "
            "confidence. Compare it with its nearest training images below.",
            icon=":material/flag:",
        )
    columns = st.columns(len(runs) + 1)
    columns[0].image(_png(_grey(image, DETAIL_SCALE)), caption=f"label: {CLASS_NAMES[true]}")
    for column, (name, run) in zip(columns[1:], runs.items(), strict=True):
        predicted = int(run.y_prob[index].argmax())
        confidence = float(run.y_prob[index, predicted])
        shown = [predicted] if predicted == true else [predicted, true]
        with column:
            st.markdown(f"**{display_name(name)}**: {CLASS_NAMES[predicted]} ({confidence:.0%})")
            st.image(
                [_png(explain.overlay(image, test_cam(run, index, c), scale=3)) for c in shown],
                caption=[f"why {CLASS_NAMES[c]}" for c in shown],
                width=84 * 3 // 2,
            )
    st.caption(explain.HEATMAP_LEGEND)
    ready = all(features_ready(run) for run in runs.values())
    if st.toggle(
        "Show the nearest training images",
        key=f"{key}_neighbours",
        help=None
        if ready
        else "The first time, each model's features of the 60,000 training "
        "images are computed and kept with the run: a few minutes.",
    ):
        pixels = (image / 255).astype(np.float32)
        for name, run in runs.items():
            st.markdown(f"**{display_name(name)}**: nearest training images")
            nearest_ui(run, pixels, true)


# ----------------------------------------------------------------------------------------------
# Map of the test set


def cached_projection(run: artifacts.Run, method: str):
    """The run's stored projection by ``method``, or None (never computes)."""
    return projection.cached(run, method)


@st.cache_data(show_spinner=False, max_entries=16)
def _projection(identity: tuple, method: str):
    run = cached.load_run(identity)
    x_test, _ = cached.test_set()
    with st.spinner(f"Placing the test images by {method.upper()} (once per run)…"):
        return projection.project(run, cached.predictor(run), x_test, method)


def test_projection(run: artifacts.Run, method: str):
    """The run's test images in 2-D by ``method``, computed once and kept with the run."""
    return _projection(cached.run_key(run), method)
