"""Training: per-epoch curves of one run per model, and of several seeds; labelled reference
lines (the course report's figures, human accuracy) for either."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.figures.style import NEUTRAL, apply_layout, model_labels, tint
from core.models import MODEL_NAMES, REGISTRY, model_color, model_label
from core.published import REFERENCE_COLORS

if TYPE_CHECKING:
    from core.seeds import SeedSummary

METRICS = ("accuracy", "loss")


def _infer_steps_per_epoch(name: str, records: list[dict]) -> float:
    """From step records alone: an epoch's last record is written at step = epoch * steps."""
    epochs = {int(r["epoch"]) for r in records}
    finished = [e for e in epochs if e < max(epochs)]
    if not finished:
        raise ValueError(
            f"{name}: cannot tell the steps per epoch from step records of one epoch; "
            "pass steps_per_epoch (the live log's start record holds it)"
        )
    first = min(finished)
    return max(int(r["step"]) for r in records if int(r["epoch"]) == first) / first


def training_curves_figure(
    histories: dict[str, list[dict]],
    steps: dict[str, list[dict]] | None = None,
    metric: str = "accuracy",
    references: dict[str, float] | None = None,
    steps_per_epoch: int | dict[str, int] | None = None,
) -> go.Figure:
    """Per-epoch train (solid) and held-out test (dashed) curves of every model on one x axis.

    ``histories`` maps a model to its epoch records (``epoch``, ``loss``, ``accuracy``,
    ``test_loss``, ``test_accuracy``). ``steps`` maps a model to its live-log step records
    (``epoch``, ``step``, ``total_steps``, ``loss``, ``accuracy``; ``step`` counts from the start
    of training), drawn as thin lines at x = step / steps_per_epoch, a fractional epoch.
    ``steps_per_epoch`` is one number for all models or one per model (the live log's start
    record holds it); when omitted it is read off the step records, which works once a second
    epoch has begun. ``references`` draws labelled horizontal dotted lines (e.g. the report's).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    fig = go.Figure()
    for name, records in histories.items():
        color, label = model_color(name), model_label(name)
        x = [r["epoch"] for r in records]
        for key, part, dash in (
            (metric, "train", "solid"),
            (f"test_{metric}", "held-out test (monitoring only)", "dash"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[r.get(key) for r in records],
                    mode="lines+markers",
                    name=f"{label}: {part}",
                    legendgroup=name,
                    line={"color": color, "dash": dash, "width": 2},
                    marker={"size": 6},
                    hovertemplate=f"{label}, {part}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
                )
            )
    for name, records in (steps or {}).items():
        if not records:
            continue
        if isinstance(steps_per_epoch, Mapping):
            per_epoch = steps_per_epoch.get(name) or _infer_steps_per_epoch(name, records)
        else:
            per_epoch = steps_per_epoch or _infer_steps_per_epoch(name, records)
        label = model_label(name)
        fig.add_trace(
            go.Scatter(
                x=[r["step"] / per_epoch for r in records],
                y=[r[metric] for r in records],
                mode="lines",
                name=f"{label}: train, per step (running mean)",
                legendgroup=name,
                line={"color": model_color(name), "width": 1},
                opacity=0.55,
                hovertemplate=f"{label}, step %{{customdata}}<br>%{{y:.4f}}<extra></extra>",
                customdata=[r["step"] for r in records],
            )
        )
    for i, (text, value) in enumerate((references or {}).items()):
        color = model_color(text) if text in histories or text in MODEL_NAMES else NEUTRAL
        fig.add_hline(
            y=value,
            line={"color": color, "dash": "dot", "width": 1.5},
            annotation_text=f"{text}: {value:.4g}",
            annotation_position="top left" if i % 2 == 0 else "bottom right",
            annotation_font={"size": 11, "color": color},
        )
    fig.update_xaxes(title="epoch", rangemode="tozero", dtick=1)
    fig.update_yaxes(title=metric, tickformat=".1%" if metric == "accuracy" else None)
    return apply_layout(fig, f"Training {metric} per epoch", height=460, hovermode="closest")


def _reference_color(label: str, colors: Mapping[str, str] | None) -> str:
    if colors and label in colors:
        return colors[label]
    if label in REFERENCE_COLORS:
        return REFERENCE_COLORS[label]
    if label in MODEL_NAMES or label in {spec.display_name for spec in REGISTRY.values()}:
        return model_color(label)
    return NEUTRAL


def add_reference_lines(
    fig: go.Figure,
    references: Mapping[str, float] | None,
    colors: Mapping[str, str] | None = None,
    percent: bool = True,
) -> go.Figure:
    """Labelled dotted horizontal lines, e.g. ``published.ACCURACY_REFERENCES``; returns ``fig``.

    Labels are staggered so that neighbours never share a spot: taken from the lowest line up,
    they alternate left and right. Every label sits just above its line (one under the lowest
    line would run into the axis' tick labels), so two labels on one side never face each other
    across the gap between their lines; a light backing keeps them legible over data.
    """
    items = sorted((references or {}).items(), key=lambda item: item[1])
    for i, (label, value) in enumerate(items):
        color = _reference_color(label, colors)
        side = "left" if i % 2 == 0 else "right"
        text = f"{label}: {value * 100:.4g}%" if percent else f"{label}: {value:.4g}"
        fig.add_hline(
            y=value,
            line={"color": color, "dash": "dot", "width": 1.5},
            annotation_text=text,
            annotation_position=f"top {side}",
            annotation_font={"size": 11, "color": color},
            annotation_bgcolor="rgba(255,255,255,0.75)",
            name=label,
        )
    return fig


SEED_METRIC_LABELS = {
    "accuracy": "Test accuracy",
    "loss": "Test loss (log loss)",
    "macro_f1": "Macro F1",
}


def _seed_values(summary: SeedSummary, metric: str) -> tuple[pd.Series, float, float]:
    if metric in summary.per_seed.columns:
        row = summary.summary.loc[metric]
        return summary.per_seed[metric], float(row["mean"]), float(row["std"])
    if metric in summary.per_class_f1.columns:
        row = summary.class_summary.loc[metric]
        return summary.per_class_f1[metric], float(row["mean"]), float(row["std"])
    raise ValueError(
        f"metric must be one of {tuple(SEED_METRIC_LABELS)} or a class name, got {metric!r}"
    )


def seed_metric_figure(
    summaries: Mapping[str, SeedSummary],
    names: Mapping[str, str] | Sequence[str] | None = None,
    metric: str = "accuracy",
    references: Mapping[str, float] | None = None,
) -> go.Figure:
    """One point per seed for each model, beside its mean ± one standard deviation.

    ``metric``: "accuracy", "loss", "macro_f1", or a class name (that class's F1).
    ``references`` draws labelled dotted lines (e.g. ``ACCURACY_REFERENCES``).
    """
    fig = go.Figure()
    keys = list(summaries)
    labels = model_labels(keys, names)
    percent = metric == "accuracy"
    fmt = ".2%" if percent else ".4f"
    single = False
    for i, (key, label) in enumerate(zip(keys, labels, strict=True)):
        values, mean, std = _seed_values(summaries[key], metric)
        seeds = [int(s) for s in values.index]
        # Seeds side by side left of the model's slot, the mean to its right (layout only).
        offsets = np.linspace(-0.3, -0.05, len(seeds)) if len(seeds) > 1 else np.array([-0.15])
        color = model_color(key)
        fig.add_trace(
            go.Scatter(
                x=i + offsets,
                y=values.to_numpy(dtype=float),
                customdata=seeds,
                mode="markers",
                name=f"{label}: each seed",
                legendgroup=key,
                marker={"color": color, "size": 9, "opacity": 0.75, "symbol": "circle"},
                hovertemplate=f"{label}, seed %{{customdata}}<br>%{{y:{fmt}}}<extra></extra>",
            )
        )
        no_spread = math.isnan(std)
        single = single or no_spread
        spread = "one seed, no spread" if no_spread else f"± {std:{fmt}} (std)"
        fig.add_trace(
            go.Scatter(
                x=[i + 0.15],
                y=[mean],
                error_y={
                    "type": "data",
                    "array": [0.0 if no_spread else std],
                    "visible": not no_spread,
                    "color": color,
                    "thickness": 2,
                    "width": 8,
                },
                mode="markers",
                name=f"{label}: mean ± std of {len(seeds)} seed{'s' if len(seeds) != 1 else ''}",
                legendgroup=key,
                marker={"color": color, "size": 13, "symbol": "diamond", "line": {"width": 1}},
                hovertemplate=f"{label}, mean %{{y:{fmt}}} {spread}<extra></extra>",
            )
        )
    add_reference_lines(fig, references, percent=percent)
    title_metric = SEED_METRIC_LABELS.get(metric, f"F1 of {metric}")
    fig.update_xaxes(
        tickvals=list(range(len(keys))), ticktext=labels, range=[-0.6, len(keys) - 0.4]
    )
    fig.update_yaxes(title=title_metric, tickformat=".1%" if percent else None)
    subtitle = "Dots: one run per seed; diamond and bar: mean ± one standard deviation"
    if single:
        subtitle += "<br>Only one seed for some model: its spread cannot be estimated"
    return apply_layout(
        fig, f"{title_metric} across seeds", height=480, subtitle=subtitle, hovermode="closest"
    )


def seed_curves_figure(
    curves: Mapping[str, pd.DataFrame],
    names: Mapping[str, str] | Sequence[str] | None = None,
    metric: str = "accuracy",
    references: Mapping[str, float] | None = None,
) -> go.Figure:
    """Per-epoch mean over seeds (train solid, held-out test dashed) with a ± one std band.

    ``curves`` maps a model to ``core.seeds.curves(...)``: index epoch, ``<metric>_mean``,
    ``<metric>_std``, ``test_<metric>_mean``, ``test_<metric>_std``, ``n``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    fig = go.Figure()
    keys = list(curves)
    for key, label in zip(keys, model_labels(keys, names), strict=True):
        frame = curves[key]
        color = model_color(key)
        epochs = [int(e) for e in frame.index]
        n = int(frame["n"].max()) if "n" in frame and len(frame) else 0
        for column, part, dash in (
            (metric, "train", "solid"),
            (f"test_{metric}", "held-out test", "dash"),
        ):
            mean = frame[f"{column}_mean"].to_numpy(dtype=float)
            std = frame[f"{column}_std"].to_numpy(dtype=float)
            band = ~np.isnan(std)
            if band.any():
                x_band = [e for e, b in zip(epochs, band, strict=True) if b]
                upper, lower = (mean + std)[band], (mean - std)[band]  # the band's edges
                fig.add_trace(
                    go.Scatter(
                        x=x_band + x_band[::-1],
                        y=np.concatenate([upper, lower[::-1]]),
                        fill="toself",
                        fillcolor=tint(color, 0.18 if dash == "solid" else 0.1),
                        line={"width": 0},
                        mode="lines",
                        name=f"{label}: {part} ± 1 std",
                        legendgroup=key,
                        showlegend=False,
                        hoverinfo="skip",
                    )
                )
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=mean,
                    customdata=np.nan_to_num(std, nan=0.0),
                    mode="lines+markers",
                    name=f"{label}: {part} (mean of {n} seed{'s' if n != 1 else ''})",
                    legendgroup=key,
                    line={"color": color, "dash": dash, "width": 2},
                    marker={"size": 6},
                    hovertemplate=(
                        f"{label}, {part}<br>epoch %{{x}}: %{{y:.4f}} ± %{{customdata:.4f}}"
                        "<extra></extra>"
                    ),
                )
            )
    add_reference_lines(fig, references, percent=metric == "accuracy")
    fig.update_xaxes(title="epoch", dtick=1)
    fig.update_yaxes(title=metric, tickformat=".1%" if metric == "accuracy" else None)
    return apply_layout(
        fig,
        f"Training {metric} per epoch, mean over seeds",
        height=460,
        subtitle="Line: mean over seeds; band: ± one standard deviation",
        hovermode="closest",
    )
