"""Streamlit helpers shared by the pages: the sidebar run picker, cached reads, the guard.

Pages call ``selected_runs()`` first; it draws the run picker in the sidebar and returns the
chosen verified run of each model (None where a model has no usable run). Everything cached is
keyed on the run's identity and its manifest's time stamp, so a new or replaced run is picked up.
No TensorFlow here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import streamlit as st

from core import artifacts, figures, metrics
from core.data import load_dataset
from core.models import MODEL_NAMES, REGISTRY
from core.text import literal

TRAINING_PAGE = "pages/training.py"


# Session-state keys, defined once.
def run_key(model: str) -> str:
    """The chosen run id of ``model`` (persists across pages)."""
    return f"run_{model}"


def picker_key(model: str) -> str:
    return f"picker_{model}"


def _stamp(root: Path, model: str, run_id: str) -> int:
    try:
        return (root / model / run_id / artifacts.MANIFEST).stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(show_spinner=False, ttl=5)
def list_runs(model: str, root: str) -> list[artifacts.RunInfo]:
    return artifacts.list_runs(model, root)


@st.cache_data(show_spinner="Reading the run…", max_entries=16)
def _load_run(model: str, run_id: str, root: str, stamp: int) -> artifacts.Run:
    return artifacts.load_run(model, run_id, root)


@st.cache_data(show_spinner="Computing metrics…", max_entries=16)
def _evaluate(model: str, run_id: str, root: str, stamp: int) -> metrics.Evaluation:
    run = _load_run(model, run_id, root, stamp)
    return metrics.evaluate(run.y_true, run.y_prob)


@st.cache_data(show_spinner="Comparing…", max_entries=16)
def _compare(ids: tuple[tuple[str, str, int], ...], root: str) -> metrics.Comparison:
    (a, run_a, stamp_a), (b, run_b, stamp_b) = ids
    first, second = _load_run(a, run_a, root, stamp_a), _load_run(b, run_b, root, stamp_b)
    return metrics.compare(first.y_true, first.y_prob, second.y_prob)


def evaluation(run: artifacts.Run) -> metrics.Evaluation:
    """Cached metrics of one run."""
    root = str(run.path.parent.parent)
    return _evaluate(run.model, run.run_id, root, _stamp(Path(root), run.model, run.run_id))


def comparison(run_a: artifacts.Run, run_b: artifacts.Run) -> metrics.Comparison:
    """Cached paired comparison (McNemar, bootstrap CI) of two runs on the same test set."""
    root = str(run_a.path.parent.parent)
    ids = tuple((r.model, r.run_id, _stamp(Path(root), r.model, r.run_id)) for r in (run_a, run_b))
    return _compare(ids, root)


@st.cache_resource(show_spinner=False, max_entries=256)
def _figure(builder: str, *args, **kwargs):
    module, _, name = builder.rpartition(".")
    source = importlib.import_module(f"core.{module}") if module else figures
    return getattr(source, name)(*args, **kwargs)


def figure(builder: str, *args, **kwargs):
    """``core.figures.<builder>(*args, **kwargs)`` (or ``core.<module>.<builder>`` when named
    "module.builder"), built once per distinct input and shared.

    Plotly validates every property as a figure is built (50-400 ms for ours), which would be
    paid again on every click; hashing the inputs costs a few ms. Shared: never modify it.
    """
    return _figure(builder, *args, **kwargs)


@st.cache_resource(show_spinner="Loading the Fashion-MNIST test set…")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    """The real test images (10000, 28, 28) uint8 and labels, read once per server."""
    data = load_dataset(allow_download=False, test_only=True)
    return data.x_test, data.y_test


@st.cache_data(show_spinner=False, max_entries=4096)
def test_image_png(index: int, scale: int) -> bytes:
    """Test image ``index`` as PNG bytes, enlarged ``scale`` times (encoded once per server)."""
    x_test, _ = test_set()
    return figures.image_png(x_test[index], scale=scale)


def _run_label(info: artifacts.RunInfo) -> str:
    m = info.manifest
    p = m["protocol"]
    parts = [
        info.run_id[:15].replace("-", " ", 1),
        f"seed {p['seed']}",
        f"acc {m['test_metrics']['accuracy']:.4f}",
    ]
    if not p.get("follows_report"):
        parts.append(f"quick: {p['epochs']} ep, {p['train_images']} img")
    if info.is_default:
        parts.append("default")
    return " · ".join(parts)


def _leave_legacy_navigation() -> None:
    """Route a deep link on a fresh server through dashboard.py.

    Until some session has run ``st.navigation``, Streamlit treats a ``pages/`` folder as its
    legacy multipage app and runs a deep-linked page (say ``/confusion``) on its own: no page
    config, the legacy sidebar. Leaving that mode and rerunning lets the router take over.
    Once per process: AppTest resets the mode before every run, and a rerun there would drop
    the widget event being tested.
    """
    from streamlit.runtime.pages_manager import PagesManager

    global _left_legacy_navigation
    if PagesManager.uses_pages_directory and not _left_legacy_navigation:
        _left_legacy_navigation = True
        PagesManager.uses_pages_directory = False
        st.rerun()


_left_legacy_navigation = False


def selected_runs() -> dict[str, artifacts.Run | None]:
    """Draw the sidebar run picker and return the chosen verified run of every model."""
    _leave_legacy_navigation()
    root = str(artifacts.artifacts_root())
    chosen: dict[str, artifacts.Run | None] = {}
    st.sidebar.markdown("**Runs shown**")
    for model in MODEL_NAMES:
        infos = list_runs(model, root)
        good = {info.run_id: info for info in infos if info.ok}
        damaged = [info for info in infos if not info.ok]
        if not good:
            st.sidebar.caption(f"{REGISTRY[model].display_name}: no usable run")
            chosen[model] = None
        else:
            current = st.session_state.get(run_key(model))
            if current not in good:
                current = artifacts.default_run_id(model, root)
            st.session_state[run_key(model)] = current
            options = list(good)
            st.sidebar.selectbox(
                REGISTRY[model].display_name,
                options,
                index=options.index(current),
                format_func=lambda rid, good=good: _run_label(good[rid]),
                key=picker_key(model),
                on_change=_remember, args=(model,),
            )  # fmt: skip
            try:
                chosen[model] = _load_run(model, current, root, _stamp(Path(root), model, current))
            except artifacts.RunError as exc:  # damaged since it was listed
                st.sidebar.error(f"Cannot open this run: {literal(exc)}")
                chosen[model] = None
        if damaged:
            with st.sidebar.expander(f"{len(damaged)} damaged {model} run(s)"):
                for info in damaged:
                    st.text(f"{info.run_id}: {info.problem}")
                st.page_link(TRAINING_PAGE, label="Retrain", icon=":material/model_training:")
    return chosen


def _remember(model: str) -> None:
    st.session_state[run_key(model)] = st.session_state[picker_key(model)]


def require_runs(runs: dict[str, artifacts.Run | None], needed=MODEL_NAMES) -> None:
    """The guard: without a usable run of every needed model, say why (none yet, or only
    damaged ones, with the reason), link to Training, stop."""
    missing = [m for m in needed if runs.get(m) is None]
    if not missing:
        return
    root = str(artifacts.artifacts_root())
    never = []
    for model in missing:
        infos = list_runs(model, root)
        damaged = [info for info in infos if not info.ok]
        if len(damaged) < len(infos):  # a good run was listed, but failed to open just now
            st.error(
                f"The chosen run of {REGISTRY[model].display_name} cannot be opened (the "
                "sidebar says why). Pick another run there, or retrain on the Training page.",
                icon=":material/report:",
            )
            continue
        if not damaged:
            never.append(REGISTRY[model].display_name)
            continue
        reasons = "; ".join(f"{info.run_id}: {info.problem}" for info in damaged)
        st.error(
            f"{REGISTRY[model].display_name} has no usable run: "
            f"{'its only run is' if len(damaged) == 1 else 'all its runs are'} damaged, so "
            f"nothing of it is shown ({literal(reasons)}). Retrain it on the Training page.",
            icon=":material/report:",
        )
    if never:
        st.info(
            f"No usable run of {' and '.join(never)} yet. Train one on the Training page "
            "(or regenerate the shipped runs: `python -m core.train --model all`)."
        )
    st.page_link(TRAINING_PAGE, label="Go to Training", icon=":material/model_training:")
    st.stop()


def dataset_warning(runs: dict[str, artifacts.Run | None]) -> None:
    """Warn when the Fashion-MNIST files on disk changed since the shown runs were trained."""
    changes = sorted(
        {change for run in runs.values() if run is not None for change in
         artifacts.check_dataset(run)}
    )  # fmt: skip
    if changes:
        st.warning(
            "The Fashion-MNIST files have changed since these runs were trained, so the images "
            "shown may not be the ones they were scored on: "
            + "; ".join(literal(change) for change in changes)
            + ". Restore the original files (reinstall `dataset-fashion-mnist`, or delete the "
            "changed files so they are fetched again), or retrain on the Training page.",
            icon=":material/database:",
        )


def display_name(model: str) -> str:
    return REGISTRY[model].display_name


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _predictor(model: str, run_id: str, root: str, stamp: int):
    from core.predict import load_predictor

    return load_predictor(_load_run(model, run_id, root, stamp))


def predictor(run: artifacts.Run):
    """The run's model for fast inference (numpy; one shared, read-only copy per server)."""
    root = str(run.path.parent.parent)
    return _predictor(run.model, run.run_id, root, _stamp(Path(root), run.model, run.run_id))


def table_height(rows: int) -> int:
    """Pixels for st.dataframe to show ``rows`` rows and the header without scrolling."""
    return (rows + 1) * 35 + 3
