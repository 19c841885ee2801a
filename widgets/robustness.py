"""The Robustness page's parts: the test images it runs on, the first visit's computation (an
estimate from a timed first batch, then progress), cached tables and figures, the flip gallery.

What is computed lives in ``core.robustness``; this module reads caches and draws widgets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import streamlit as st

from core import figures, robustness
from core.artifacts import Run, RunError
from core.data import CLASS_NAMES
from core.modelfile import UnsupportedModel
from core.models import display_name
from core.text import literal
from widgets import cached
from widgets.charts import shared
from widgets.gallery import load_test_images

# Session-state keys, defined once.
COMPUTE = "robustness_compute"
ESTIMATES = "robustness_estimates"  # {(run keys, images): seconds}, timed once per session
CORRUPTION = "robustness_corruption"
SEVERITY = "robustness_severity"
FLIP_MODEL = "robustness_flip_model"
PAGE = "robustness_gallery_page"
URL_KEYS = (CORRUPTION, SEVERITY, FLIP_MODEL, PAGE)  # bound to the URL

PER_PAGE = 24
SCALE = 4  # 28 px -> 112 px per image, two per tile
GAP = 2  # white pixels between the clean and the corrupted image
MARGIN = 5  # and after them, before the next pair

accuracy_figure = shared(figures.robustness_figure)
difference_figure = shared(figures.robustness_difference_figure)
severity_figure = shared(figures.robustness_severity_figure)


@st.cache_resource(show_spinner="Choosing the test images…", max_entries=4)
def _subset(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_test, y_test = cached.test_set()
    indices = robustness.subset_indices(y_test, size)
    arrays = x_test[indices], y_test[indices], indices
    for array in arrays:
        array.flags.writeable = False  # shared by every session
    return arrays


def test_images(runs: Mapping[str, Run]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The page's images, labels and test-set positions (``robustness.PAGE_IMAGES`` of them),
    or None after saying why the test images cannot be used."""
    first = next(iter(runs.values()))
    if load_test_images(first.y_true) is None:
        return None
    return _subset(robustness.PAGE_IMAGES)


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_result(key: cached.RunKey, size: int) -> robustness.Robustness | None:
    images, labels, indices = _subset(size)
    return robustness.read_cached(cached.load_run(key), images, labels, indices)


def _estimate(runs: Mapping[str, Run], predictors, images: np.ndarray) -> float:
    key = (tuple(cached.run_key(run) for run in runs.values()), len(images))
    estimates = st.session_state.setdefault(ESTIMATES, {})
    if key not in estimates:
        with st.spinner("Timing a first batch…"):
            estimates[key] = robustness.estimate_seconds(predictors, images)
    return estimates[key]


def results_ui(runs: Mapping[str, Run]) -> dict[str, robustness.Robustness] | None:
    """Every run's robustness, from its cache; where one is missing, say how long computing
    takes (timed here), offer to start, and show progress. None until all are there."""
    data = test_images(runs)
    if data is None:
        return None
    images, labels, indices = data
    results = {key: _cached_result(cached.run_key(run), len(images)) for key, run in runs.items()}
    missing = {key: runs[key] for key, result in results.items() if result is None}
    if not missing:
        return results  # type: ignore[return-value]
    try:
        predictors = {key: cached.predictor(run) for key, run in missing.items()}
    except (RunError, UnsupportedModel) as exc:
        st.error(f"The model cannot be run here: {literal(exc, 600)}", icon=":material/report:")
        return None
    seconds = _estimate(missing, predictors, images)
    passes = robustness.total_passes(len(images), len(missing))
    who = " and ".join(display_name(key) for key in missing)
    st.info(
        f"Robustness is not computed yet for {who}. It takes {passes:,} forward passes "
        f"({len(images):,} test images, clean and under {len(robustness.CORRUPTIONS)} "
        f"corruptions at {len(robustness.SEVERITIES)} severities, {len(missing)} model"
        f"{'s' if len(missing) > 1 else ''}): **{robustness.duration_text(seconds)}** on this "
        "machine, timed on a first batch. It is done once and kept with the runs.",
        icon=":material/timer:",
    )
    if not st.button("Compute robustness now", key=COMPUTE, type="primary"):
        return None
    bar = st.progress(0.0, text="Corrupting the first images…")
    start, shown = time.perf_counter(), [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - shown[0] < 0.25 and done < total:  # a few updates a second are enough
            return
        shown[0] = now
        elapsed = now - start
        left = elapsed / done * (total - done)
        bar.progress(
            done / total,
            text=f"{done:,} of {total:,} forward passes · {elapsed:.0f} s so far · "
            f"{robustness.duration_text(left)} left",
        )

    computed = robustness.evaluate_runs(
        missing, predictors, images, labels, indices, progress=progress
    )
    _cached_result.clear()
    bar.empty()
    st.success(
        f"Computed in {time.perf_counter() - start:.0f} s and kept with the runs.",
        icon=":material/check_circle:",
    )
    results.update(computed)
    return results  # type: ignore[return-value]


@st.cache_data(show_spinner=False, max_entries=16)
def paired(_a: robustness.Robustness, _b: robustness.Robustness, key: tuple):
    """``robustness.paired_table`` and ``corruption_errors`` of the pair ``key`` names."""
    return robustness.paired_table(_a, _b), robustness.corruption_errors(_a, _b)


def pair_key(runs: Mapping[str, Run]) -> tuple:
    """What the pair's cached tables are keyed on: the runs and the number of images."""
    return (*(cached.run_key(run) for run in runs.values()), robustness.PAGE_IMAGES)


@st.cache_resource(show_spinner="Corrupting the images…", max_entries=8)
def _corrupted(corruption: str, severity: int, size: int) -> np.ndarray:
    images, _, _ = _subset(size)
    out = robustness.corrupt(images, corruption, severity)  # the same images the models saw
    out.flags.writeable = False
    return out


def _pair_png(clean: np.ndarray, corrupted: np.ndarray) -> bytes:
    gap, margin = (np.full((clean.shape[0], k), 255, np.uint8) for k in (GAP, MARGIN))
    return figures.image_png(np.hstack([clean, gap, corrupted, margin]), scale=SCALE)


@st.fragment
def flip_gallery_ui(results: Mapping[str, robustness.Robustness]) -> None:
    """Images a model gets right clean and wrong corrupted, clean and corrupted side by side."""
    titles = robustness.titles()
    names = {key: display_name(key) for key in results}
    st.session_state.setdefault(CORRUPTION, robustness.CORRUPTION_NAMES[0])
    st.session_state.setdefault(SEVERITY, 3)
    left, middle, right = st.columns([1.2, 1.5, 1.5], vertical_alignment="bottom")
    corruption = left.selectbox("Corruption", robustness.CORRUPTION_NAMES,
                                format_func=titles.get, key=CORRUPTION, bind="query-params")  # fmt: skip
    severity = middle.select_slider(
        "Severity", robustness.SEVERITIES, key=SEVERITY, bind="query-params"
    )
    model = right.radio("Flips of", list(results), format_func=names.get, horizontal=True,
                        key=FLIP_MODEL, bind="query-params")  # fmt: skip
    chosen = results[model]
    items = robustness.flip_items(results, model, corruption, severity)
    clean_right = int((chosen.clean == chosen.y_true).sum())
    level = robustness.CORRUPTIONS[corruption].level_text(severity)
    st.caption(
        f"{len(items):,} of the {clean_right:,} images {names[model]} gets right clean are wrong "
        f"under {titles[corruption].lower()} at severity {severity} ({level}): "
        f"{len(items) / max(clean_right, 1):.1%}. Left: the clean image, right: corrupted; "
        "under each, every model's answer on the clean → the corrupted image."
    )
    if items.empty:
        st.info("No image flips here.", icon=":material/image_not_supported:")
        return
    n_pages = -(-len(items) // PER_PAGE)
    if not 1 <= st.session_state.get(PAGE, 1) <= n_pages:
        st.session_state[PAGE] = 1
    number = st.number_input("Page", 1, n_pages, step=1, key=PAGE, bind="query-params",
                             help=f"{PER_PAGE} images a page")  # fmt: skip
    rows = items.iloc[(number - 1) * PER_PAGE : number * PER_PAGE].to_dict("records")
    images, _, _ = _subset(robustness.PAGE_IMAGES)
    corrupted = _corrupted(corruption, severity, robustness.PAGE_IMAGES)
    st.image(
        [_pair_png(images[r["position"]], corrupted[r["position"]]) for r in rows],
        caption=[robustness.flip_caption(r, names, CLASS_NAMES) for r in rows],
        width=(28 * 2 + GAP + MARGIN) * SCALE,
        output_format="PNG",
    )
