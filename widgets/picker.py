"""The sidebar run picker and the guard every results page starts with.

Pages call ``selected_runs()`` first; it draws the run picker in the sidebar and returns the
chosen verified run of each model (None where a model has no usable run). No TensorFlow here.
"""

from __future__ import annotations

import streamlit as st

from core import artifacts
from core.models import MODEL_NAMES, REGISTRY
from core.text import literal
from widgets import cached, nav


# Session-state keys, defined once.
def chosen_key(model: str) -> str:
    """The chosen run id of ``model`` (persists across pages)."""
    return f"run_{model}"


def picker_key(model: str) -> str:
    return f"picker_{model}"


@st.cache_data(show_spinner=False, ttl=5)
def list_runs(model: str, root: str) -> list[artifacts.RunInfo]:
    return artifacts.list_runs(model, root)


def selected_runs() -> dict[str, artifacts.Run | None]:
    """Draw the sidebar run picker and return the chosen verified run of every model."""
    nav.route_deep_link()
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
            current = st.session_state.get(chosen_key(model))
            if current not in good:
                current = artifacts.default_run_id(model, root)
            st.session_state[chosen_key(model)] = current
            options = list(good)
            st.sidebar.selectbox(
                REGISTRY[model].display_name,
                options,
                index=options.index(current),
                format_func=lambda rid, good=good: good[rid].label(compact=True),
                key=picker_key(model),
                on_change=_remember, args=(model,),
            )  # fmt: skip
            try:
                chosen[model] = cached.load_run(cached.key_of(model, current, root))
            except artifacts.RunError as exc:  # damaged since it was listed
                st.sidebar.error(f"Cannot open this run: {literal(exc)}")
                chosen[model] = None
        if damaged:
            with st.sidebar.expander(f"{len(damaged)} damaged {model} run(s)"):
                for info in damaged:
                    st.text(f"{info.run_id}: {info.problem}")
                st.page_link(nav.TRAINING, label="Retrain", icon=":material/model_training:")
    return chosen


def _remember(model: str) -> None:
    st.session_state[chosen_key(model)] = st.session_state[picker_key(model)]


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
    st.page_link(nav.TRAINING, label="Go to Training", icon=":material/model_training:")
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
