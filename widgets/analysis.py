"""Streamlit helpers for several seeds and calibration: cached reads and the tables pages show.

The maths lives in ``core.seeds`` and ``core.calibration``; here it is cached, keyed (like
``cached.evaluation``) on run ids and their manifests' time stamps, so a new or replaced run is
picked up, and its results are laid out as tables and sentences. No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from core import artifacts, calibration, figures, seeds
from core.artifacts import RunInfo
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES, display_name
from core.report import REPORT
from widgets import cached

if TYPE_CHECKING:
    import plotly.graph_objects as go

SEEDS_COMMAND = "python -m core.train --model all --seeds 0-4"
SEED_COLUMNS = {"accuracy": "Test accuracy", "loss": "Test loss", "macro_f1": "Macro F1"}
TOP_LABEL = "All classes (top label)"
ECE_CAPTION = (
    "Expected calibration error (ECE): the gap between confidence and accuracy in each of "
    f"{calibration.BINS} confidence bins, weighted by the bin's share of the test images. Top "
    "label: the predicted class's probability against whether the prediction is right; per "
    "class: that class's probability against whether it is the true class."
)
CHOSEN_RUNS_NOTE = (
    "**The chosen runs** (one per model, picked in the sidebar), scored on the same 10,000 "
    "test images: could the difference between them be chance on these images?"
)
ACROSS_SEEDS_NOTE = (
    "**Across seeds**: every seed of the report's protocol trained for both models, the models "
    "paired by seed: does the difference hold from one random start of training to the next?"
)

Collected = dict[str, dict[int, RunInfo]]
Summary = seeds.SeedSummary


# --- several seeds ----------------------------------------------------------------------------


@st.cache_data(show_spinner=False, ttl=5)
def seed_runs(root: str) -> Collected:
    """Per model, per seed, one intact run of the report's protocol (``core.seeds.collect``)."""
    return seeds.collect(root)


def _ids(model: str, infos: Mapping[int, RunInfo]) -> tuple[tuple[int, str, int], ...]:
    return tuple((seed, cached.run_key(info)) for seed, info in infos.items())


@st.cache_data(show_spinner="Summarising the seeds…", max_entries=32)
def _summary(model: str, ids: tuple, root: str, _infos: Mapping[int, RunInfo]) -> Summary:
    return seeds.summarize(seeds.load_seed_runs(_infos))


@st.cache_data(show_spinner="Averaging the training curves over seeds…", max_entries=32)
def _curves(model: str, ids: tuple, root: str, _infos: Mapping[int, RunInfo]) -> pd.DataFrame:
    return seeds.curves(list(seeds.load_seed_runs(_infos).values()))


def summaries(collected: Collected, root: str) -> dict[str, seeds.SeedSummary]:
    """Cached ``core.seeds.summarize`` of every model that has at least one seed."""
    return {
        model: _summary(model, _ids(model, infos), root, infos)
        for model, infos in collected.items()
        if infos
    }


def seed_curves(collected: Collected, root: str) -> dict[str, pd.DataFrame]:
    """Cached ``core.seeds.curves`` (per-epoch mean and std over seeds) of every model."""
    return {
        model: _curves(model, _ids(model, infos), root, infos)
        for model, infos in collected.items()
        if infos
    }


def has_spread(collected: Collected) -> bool:
    """Whether some model has two or more seeds, so that a spread can be shown."""
    return any(len(infos) >= 2 for infos in collected.values())


def labels(keys) -> dict[str, str]:
    """Display names of ``keys`` (model names), for a figure's ``names``."""
    return {key: display_name(key) for key in keys}


def more_seeds_text(collected: Collected) -> str:
    """One line: how many seeds of the report's protocol there are, and how to get more."""
    most = max((len(infos) for infos in collected.values()), default=0)
    have = "No run follows" if most == 0 else "Only one seed per model follows"
    return (
        f"Across seeds: {have} the report's protocol yet, so how much the results vary from one "
        f"random seed to the next is unknown. Train more with `{SEEDS_COMMAND}` "
        "(seeds already trained are skipped)."
    )


def paired_verdict(summaries: Mapping[str, seeds.SeedSummary]) -> tuple[str, bool]:
    """The paired-by-seed verdict on the first two models, and whether its interval is clear of
    zero (two or more seeds, one model better beyond the seed-to-seed spread)."""
    a, b = MODEL_NAMES[:2]
    names = (display_name(a), display_name(b))
    missing = [display_name(m) for m in (a, b) if m not in summaries]
    if missing:
        return (
            f"No seed of the report's protocol was trained for {' and '.join(missing)}, so the "
            "models cannot be compared seed by seed.",
            False,
        )
    result = seeds.paired(summaries[a], summaries[b])
    clear = result.n >= 2 and (result.ci_low > 0 or result.ci_high < 0)
    return seeds.paired_verdict_text(result, names), clear


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.4f} (one seed)" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def seed_table(summaries: Mapping[str, seeds.SeedSummary]) -> pd.DataFrame:
    """One row per model: mean ± std (ddof=1) over seeds of each test metric, and the seeds."""
    rows = {}
    for model, summary in summaries.items():
        row = {
            label: _mean_std(summary.mean(metric), summary.std(metric))
            for metric, label in SEED_COLUMNS.items()
        }
        row["Seeds"] = f"{summary.n} ({', '.join(str(s) for s in summary.seeds)})"
        rows[display_name(model)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def class_f1_table(summaries: Mapping[str, seeds.SeedSummary]) -> pd.DataFrame:
    """One row per class: each model's F1, mean ± std over its seeds."""
    columns = {
        f"{display_name(model)} F1": [
            _mean_std(s.class_summary.loc[name, "mean"], s.class_summary.loc[name, "std"])
            for name in CLASS_NAMES
        ]
        for model, s in summaries.items()
    }
    return pd.DataFrame(columns, index=pd.Index(list(CLASS_NAMES), name="class"))


# --- reference lines ---------------------------------------------------------------------------


def references(metric: str, models=MODEL_NAMES) -> dict[str, float]:
    """Dotted lines for a chart of ``metric``: for accuracy, humans and the report; for loss,
    the report's figures (labelled as ``figures.REFERENCE_COLORS`` colours them)."""
    if metric == "accuracy":
        return dict(figures.ACCURACY_REFERENCES)
    return {
        f"Report: {figures.model_label(m)}": REPORT[m][metric]
        for m in models
        if metric in REPORT.get(m, {})
    }


def curves_caption(metric: str) -> str:
    """What the dotted lines of a training-curves chart are, and what the test curves are not."""
    text = "Dotted lines: the report's final test figures"
    text += " and crowd-sourced human accuracy." if metric == "accuracy" else "."
    text += " Held-out test curves are monitoring only; nothing is selected on them."
    return f"{text} {figures.BEST_PUBLISHED_NOTE}" if metric == "accuracy" else text


@st.cache_resource(show_spinner=False, max_entries=64)
def _curves_figure(inputs: dict, metric: str, lines: dict) -> go.Figure:
    fig = figures.training_curves_figure(**inputs, metric=metric)
    return figures.add_reference_lines(fig, lines, percent=metric == "accuracy")


def training_curves_figure(inputs: dict, metric: str) -> go.Figure:
    """``figures.training_curves_figure`` with ``references(metric)`` drawn as the seed charts
    draw them; built once per input and shared (never modify it)."""
    return _curves_figure(inputs, metric, references(metric))


# --- calibration -------------------------------------------------------------------------------


@st.cache_data(show_spinner="Checking calibration…", max_entries=16)
def _calibrate(key: cached.RunKey) -> calibration.Calibration:
    run = cached.load_run(key)
    return calibration.calibrate(run.y_true, run.y_prob)


def calibrate(run: artifacts.Run) -> calibration.Calibration:
    """Cached reliability bins, class-wise ECE and confident mistakes of one run."""
    return _calibrate(cached.run_key(run))


def ece_table(results: Mapping[str, calibration.Calibration]) -> pd.DataFrame:
    """Rows: the top-label ECE, then each class's one-vs-rest ECE; one column per model."""
    return pd.DataFrame(
        {
            display_name(model): [c.reliability.ece, *map(float, c.classwise_ece)]
            for model, c in results.items()
        },
        index=pd.Index([TOP_LABEL, *CLASS_NAMES], name="expected calibration error"),
    )


def mistakes_table(results: Mapping[str, calibration.Calibration]) -> pd.DataFrame:
    """Accuracy, test loss, and how much of the loss the confident mistakes carry, per model."""
    threshold = (
        next(iter(results.values())).mistakes.threshold if results else calibration.CONFIDENT
    )
    confident = f"Confident mistakes (≥ {threshold:.0%})"
    rows = {
        "Test accuracy": lambda m: m.accuracy,
        "Test loss (mean log loss)": lambda m: m.loss,
        f"{confident}: share of test images": lambda m: m.share_of_images,
        f"{confident}: share of all mistakes": lambda m: m.share_of_mistakes,
        f"{confident}: share of the total log loss": lambda m: m.loss_share,
        "All mistakes: share of the total log loss": lambda m: m.mistakes_loss_share,
    }
    return pd.DataFrame(
        {
            display_name(model): [get(c.mistakes) for get in rows.values()]
            for model, c in results.items()
        },
        index=pd.Index(list(rows), name="test set"),
    )


def styled_mistakes(table: pd.DataFrame):
    """``mistakes_table`` formatted: shares as percentages, the loss with four decimals."""
    loss = [row for row in table.index if row.startswith("Test loss")]
    shares = [row for row in table.index if row not in loss]
    return table.style.format("{:.2%}", subset=pd.IndexSlice[shares, :], na_rep="–").format(
        "{:.4f}", subset=pd.IndexSlice[loss, :], na_rep="–"
    )


# --- the shareable report ---------------------------------------------------------------------


def report_sections(runs: Mapping[str, artifacts.Run]) -> list:
    """The comparison of the chosen runs (core.export), then calibration and the seeds."""
    from core import export

    names = labels(runs)
    sections = export.comparison_sections(runs, names)
    results = {model: calibrate(run) for model, run in runs.items()}
    sections.append(
        export.Section(
            "Calibration",
            [calibration.calibration_text(results, names), ECE_CAPTION],
            [mistakes_table(results), ece_table(results)],
            [figures.reliability_figure({m: c.reliability for m, c in results.items()}, names)],
        )
    )
    root = str(next(iter(runs.values())).path.parent.parent)
    collected = seed_runs(root)
    if has_spread(collected):
        found = summaries(collected, root)
        verdict, _ = paired_verdict(found)
        sections.append(
            export.Section(
                "Seeds",
                [ACROSS_SEEDS_NOTE.replace("**", ""), verdict, figures.BEST_PUBLISHED_NOTE],
                [seed_table(found), class_f1_table(found)],
                [
                    figures.seed_metric_figure(
                        found, labels(found), "accuracy", references("accuracy", list(found))
                    )
                ],
            )
        )
    else:
        sections.append(export.Section("Seeds", [more_seeds_text(collected)]))
    return sections


@st.cache_data(show_spinner=False, max_entries=4)
def _report(ids: tuple, root: str, _runs: Mapping[str, artifacts.Run]) -> str:
    from core import export

    meta = export.report_meta(_runs, labels(_runs))
    return export.report_html(
        "Fashion-MNIST: baseline vs residual CNN", report_sections(_runs), meta
    )


def report_html(runs: Mapping[str, artifacts.Run]) -> str:
    """The comparison as one self-contained HTML file (plotly.js inlined), cached per runs."""
    root = str(next(iter(runs.values())).path.parent.parent)
    ids = tuple(cached.run_key(r) for r in runs.values())
    return _report(ids, root, runs)
