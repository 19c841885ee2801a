"""Streamlit helpers for several seeds and the HTML export: cached reads.

The maths, tables and sentences live in ``core.seeds`` and ``core.export``; here they are
cached, keyed (like ``cached.evaluation``) on run ids and their manifests' time stamps, so a new
or replaced run is picked up. No TensorFlow here, and nothing the Overview's first screen does
not use at import (no pandas, no Plotly: a cold start imports them only for a chart or a
computation). One run's calibration and curves: ``widgets.scoring``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import streamlit as st

from core import artifacts, seeds
from core.artifacts import RunInfo
from core.published import ACCURACY_REFERENCES, BEST_PUBLISHED_NOTE, reference_lines
from widgets import cached
from widgets.layout import static_table

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

Summary = seeds.SeedSummary


# --- several seeds ----------------------------------------------------------------------------


@st.cache_data(show_spinner=False, ttl=5)
def seed_runs(root: str) -> seeds.Collected:
    """Per model, per seed, one intact run of the report's protocol (``core.seeds.collect``)."""
    return seeds.collect(root)


def _ids(infos: Mapping[int, RunInfo]) -> tuple[tuple[int, cached.RunKey], ...]:
    return tuple((seed, cached.run_key(info)) for seed, info in infos.items())


@st.cache_data(show_spinner="Averaging the training curves over seeds…", max_entries=32)
def _curves(model: str, ids: tuple, root: str, _infos: Mapping[int, RunInfo]) -> pd.DataFrame:
    return seeds.curves(list(seeds.load_seed_runs(_infos).values()))


@st.cache_resource(show_spinner="Summarising the seeds…", max_entries=16)
def _summaries(ids: tuple, root: str, _collected: seeds.Collected) -> dict[str, Summary]:
    return seeds.kept_summaries(_collected, root)


def summaries(collected: seeds.Collected, root: str) -> dict[str, Summary]:
    """Cached ``core.seeds.summarize`` of every model that has at least one seed (kept under
    the artifacts folder: a cold start reads one small file)."""
    ids = tuple((model, _ids(infos)) for model, infos in collected.items())
    return _summaries(ids, root, collected)


@st.cache_resource(show_spinner=False, max_entries=16)
def _verdicts(ids: tuple, pair: tuple[str, str], root: str, _collected, _summaries):
    return seeds.kept_seed_verdicts(_collected, _summaries, pair, root)


def seed_verdicts(
    collected: seeds.Collected, summaries: Mapping[str, Summary], pair, root: str
) -> seeds.SeedVerdicts:
    """The paired-by-seed verdict on ``pair`` and the seeds it would need (``core.seeds``:
    kept under the artifacts folder; SciPy is imported only to compute them)."""
    ids = tuple((model, _ids(infos)) for model, infos in collected.items() if model in pair)
    return _verdicts(ids, tuple(pair), root, collected, summaries)


def seed_curves(collected: seeds.Collected, root: str) -> dict[str, pd.DataFrame]:
    """Cached ``core.seeds.curves`` (per-epoch mean and std over seeds) of every model."""
    return {
        model: _curves(model, _ids(infos), root, infos)
        for model, infos in collected.items()
        if infos
    }


SEED_TABS = ("Mean ± std", "Each seed (chart)", "F1 of each class")


def seeds_ui(summaries: Mapping[str, Summary]) -> None:
    """The Overview's figures over seeds in lazy tabs: only the open one is computed and drawn,
    so a cold start loads no chart script (Plotly's is 4.7 MB: a second of the first screen)."""
    table, chart, per_class = st.tabs(SEED_TABS, key="overview_seeds_tab", on_change="rerun")
    if table.open:
        with table:
            st.caption(
                "Each model's test figures over its seeds: mean ± standard deviation (n − 1)."
            )
            static_table(seeds.seed_rows(summaries), key="overview_seed_table")
    if chart.open:
        with chart:
            from widgets import charts  # Plotly: imported when the chart is opened

            figure = charts.seed_metric_figure(summaries, metric="accuracy",
                                               references=ACCURACY_REFERENCES)  # fmt: skip
            st.plotly_chart(figure, width="stretch", key="overview_seed_chart")
            st.caption(BEST_PUBLISHED_NOTE)
    if per_class.open:
        with per_class:
            static_table(seeds.class_f1_rows(summaries), key="overview_class_f1_table")


# --- training curves with their reference lines ------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=64)
def _curves_figure(inputs: dict, metric: str, lines: dict) -> go.Figure:
    from core import figures

    fig = figures.training_curves_figure(**inputs, metric=metric)
    return figures.add_reference_lines(fig, lines, percent=metric == "accuracy")


def training_curves_figure(inputs: dict, metric: str) -> go.Figure:
    """``figures.training_curves_figure`` with ``published.reference_lines(metric)`` drawn as
    the seed charts draw them; built once per input and shared (never modify it)."""
    return _curves_figure(inputs, metric, reference_lines(metric))


# --- the shareable export ---------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=4)
def _export(keys: tuple[cached.RunKey, ...], _runs: Mapping[str, artifacts.Run]) -> str:
    from core import export  # SciPy (the seed statistics): imported when an export is asked for

    return export.export_html(_runs, keys[0].root)


def export_html(runs: Mapping[str, artifacts.Run]) -> str:
    """``core.export.export_html`` of the chosen runs and the seeds beside them (their artifacts
    folder), cached per runs."""
    return _export(tuple(cached.run_key(run) for run in runs.values()), runs)
