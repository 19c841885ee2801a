"""The sidebar pickers (the compared pair, a run of each model) and the guard every results
page starts with.

Pages that show every model call ``selected_runs()`` first: it draws the pickers in the sidebar
and returns the chosen verified run of each registered model (None where a model has no usable
run; ``usable`` keeps the others and names those). Comparison pages call ``selected_pair()``:
the two chosen models' runs, A first. With more than two models registered the sidebar has a
pair picker (default ``core.models.DEFAULT_PAIR``); with two there is nothing to choose. The
guard, ``require_runs``, needs runs of the pair only. No TensorFlow here.
"""

from __future__ import annotations

import streamlit as st

from core import artifacts, models
from core.models import DEFAULT_PAIR, MODEL_NAMES, REGISTRY, display_name
from core.text import literal
from widgets import cached, nav

Runs = dict[str, artifacts.Run | None]
# Session-state keys, defined once: the compared models (persist across pages), their pickers.
PAIR_KEYS = ("pair_a", "pair_b")
PAIR_PICKERS = ("pair_picker_a", "pair_picker_b")


def chosen_key(model: str) -> str:
    """The chosen run id of ``model`` (persists across pages)."""
    return f"run_{model}"


def picker_key(model: str) -> str:
    """The run picker's key, and so its URL parameter (``?picker_baseline=...``)."""
    return f"picker_{model}"


def url_keys() -> tuple[str, ...]:
    """The sidebar's URL parameters, on every page: the pair and the runs shown."""
    return (*PAIR_PICKERS, *(picker_key(model) for model in MODEL_NAMES))


def chosen_pair() -> tuple[str, str]:
    """The two registered models the comparison pages compare, A first (the sidebar's choice,
    else ``DEFAULT_PAIR``)."""
    a, b = (st.session_state.get(key) for key in PAIR_KEYS)
    if a not in REGISTRY:
        a = DEFAULT_PAIR[0]
    if b not in REGISTRY or b == a:
        b = next(m for m in (*DEFAULT_PAIR, *MODEL_NAMES) if m != a)
    return a, b


def pair_ui() -> tuple[str, str]:
    """With more than two models, the sidebar's pair picker (A, then B among the others);
    returns the chosen pair. With two, draws nothing: they are the pair."""
    pair = chosen_pair()
    st.session_state[PAIR_KEYS[0]], st.session_state[PAIR_KEYS[1]] = pair
    if len(MODEL_NAMES) > 2:
        st.sidebar.markdown("**Models compared**")
        for slot, (key, label) in enumerate(zip(PAIR_PICKERS, ("Compare", "with"), strict=True)):
            st.session_state[key] = pair[slot]  # follows choices made on other pages
            shown = st.sidebar.selectbox(
                label, [m for m in MODEL_NAMES if slot == 0 or m != pair[0]],
                format_func=display_name, key=key, on_change=_remember_pair, args=(slot,),
                bind="query-params",  # a link names the pair (on its first load it wins)
                help="Pages that compare two models (Confusion, ROC & calibration, Compare, "
                "Map, ...) and the Overview's verdict compare these two; Overview, Training and "
                "Predict show every model.",
            )  # fmt: skip
            if shown != pair[slot]:  # seeded from a link: it becomes the choice
                _remember_pair(slot)
                pair = chosen_pair()
    return pair


def _remember_pair(slot: int) -> None:
    a, b = chosen_pair()
    picked = st.session_state[PAIR_PICKERS[slot]]
    if slot == 1:
        b = picked
    elif picked != a:
        a, b = picked, (a if picked == b else b)  # A takes B's model: they swap
    st.session_state[PAIR_KEYS[0]], st.session_state[PAIR_KEYS[1]] = a, b


def selected_pair() -> Runs:
    """Draw the pair picker and the pair's run pickers; the chosen run of each of the two
    models, A first (None where one has no usable run: ``require_runs`` stops there)."""
    nav.route_deep_link()
    return _run_pickers(pair_ui())


def selected_runs() -> Runs:
    """Draw the pair picker and every model's run picker; the chosen verified run of every
    registered model (None where a model has no usable run)."""
    nav.route_deep_link()
    pair_ui()
    return _run_pickers(MODEL_NAMES)


def usable(runs: Runs) -> dict[str, artifacts.Run]:
    """The models of ``runs`` that have a run; says which have none, so they are not missed."""
    missing = [display_name(m) for m, run in runs.items() if run is None]
    if missing:
        st.caption(
            f"No usable run of {' or '.join(missing)} yet, so "
            f"{'it is' if len(missing) == 1 else 'they are'} not shown here: train one on the "
            "Training page."
        )
    return {m: run for m, run in runs.items() if run is not None}


@st.cache_data(show_spinner=False, ttl=5)
def list_runs(model: str, root: str) -> list[artifacts.RunInfo]:
    return artifacts.list_runs(model, root)


def _run_pickers(names) -> Runs:
    root = str(artifacts.artifacts_root())
    chosen: Runs = {}
    if models.REGISTRY_ERROR:  # $FMNIST_EXTRA_MODELS could not be used: say why, on every page
        st.sidebar.error(
            f"Extra models not loaded: {literal(models.REGISTRY_ERROR)}", icon=":material/error:"
        )
    st.sidebar.markdown("**Runs shown**")
    for model in names:
        infos = list_runs(model, root)
        good = {info.run_id: info for info in infos if info.ok}
        damaged = [info for info in infos if not info.ok]
        if not good:
            st.sidebar.caption(f"{REGISTRY[model].display_name}: no usable run")
            chosen[model] = None
        else:
            default = artifacts.default_of(infos)  # the listing above, not a second one
            current = st.session_state.get(chosen_key(model))
            if current not in good:
                current = default
            st.session_state[chosen_key(model)] = current
            # The default run first: a link without this parameter means the default run.
            options = sorted(good, key=lambda rid: rid != default)
            st.session_state[picker_key(model)] = current  # a link's run wins on its first load
            shown = st.sidebar.selectbox(
                REGISTRY[model].display_name,
                options,
                format_func=lambda rid, good=good: good[rid].label(compact=True),
                key=picker_key(model),
                on_change=_remember, args=(model,),
                bind="query-params",  # the runs shown are part of every view's link
            )  # fmt: skip
            if shown in good and shown != current:  # seeded from a link: it becomes the choice
                current = st.session_state[chosen_key(model)] = shown
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


def require_runs(runs: Runs, needed=None) -> None:
    """The guard: without a usable run of every needed model (default: the compared pair),
    say why (none yet, or only damaged ones, with the reason), link to Training, stop."""
    missing = [m for m in (chosen_pair() if needed is None else needed) if runs.get(m) is None]
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


def dataset_warning(runs: Runs) -> None:
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
