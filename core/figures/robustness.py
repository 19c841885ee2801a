"""Robustness: accuracy against corruption severity (small multiples, models overlaid) and the
paired difference of two models per corruption and severity. The numbers come from
``core.robustness``; nothing is computed here beyond scaling to percentage points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.style import NEUTRAL, apply_layout, model_labels, tint
from core.models import model_color, model_label

COLUMNS = 5
CLEAN = "clean"
ACCURACY_HOVER = "{}<br>{}<br>severity %{{x}}: accuracy %{{y:.1%}}<extra></extra>"


def robustness_figure(
    accuracy: Mapping[str, np.ndarray],
    titles: Mapping[str, str],
    names: Mapping[str, str] | Sequence[str] | None = None,
) -> go.Figure:
    """Accuracy against severity (0 = clean) in one small plot per corruption, models overlaid.

    ``accuracy``: per model, (corruptions, 1 + severities) as ``Robustness.accuracy`` gives it,
    rows in the order of ``titles`` (corruption name to its title).
    """
    keys = list(accuracy)
    labels = dict(zip(keys, model_labels(keys, names), strict=True))
    corruptions = list(titles)
    rows = -(-len(corruptions) // COLUMNS)
    fig = make_subplots(rows=rows, cols=COLUMNS, subplot_titles=list(titles.values()),
                        shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.025,
                        vertical_spacing=0.14)  # fmt: skip
    for k, name in enumerate(corruptions):
        row, col = k // COLUMNS + 1, k % COLUMNS + 1
        for key in keys:
            values = np.asarray(accuracy[key])[k]  # (1 + severities,)
            fig.add_trace(
                go.Scatter(
                    x=list(range(len(values))), y=values.tolist(), mode="lines+markers",
                    name=labels[key], legendgroup=key, showlegend=k == 0,
                    line={"color": model_color(key), "width": 2}, marker={"size": 6},
                    hovertemplate=ACCURACY_HOVER.format(labels[key], titles[name]),
                ),
                row=row, col=col,
            )  # fmt: skip
    low = min((float(np.min(a)) for a in accuracy.values()), default=0.0)
    fig.update_xaxes(tickvals=list(range(6)), range=[-0.3, 5.3], fixedrange=True)
    fig.update_yaxes(tickformat=".0%", range=[max(0.0, low - 0.05), 1.0], fixedrange=True)
    fig.update_xaxes(title="severity", row=rows)
    fig.update_yaxes(title="accuracy", col=1)
    fig.update_annotations(font_size=13)
    fig = apply_layout(fig, "Accuracy under each corruption", height=230 * rows + 150,
                       subtitle="Severity 0 is the clean test images; 5 the strongest",
                       hovermode="closest")  # fmt: skip
    fig.update_layout(margin_t=110)
    return fig


def _ci_text(row) -> str:
    return f"{row.difference * 100:+.2f} points (95% CI {row.ci_low * 100:+.2f} to {row.ci_high * 100:+.2f})"


def robustness_difference_figure(
    table: pd.DataFrame, titles: Mapping[str, str], name_a: str, name_b: str
) -> go.Figure:
    """The accuracy difference B - A per corruption, averaged over severities 1-5, with its
    interval; on top the clean difference, then every corruption together (the table's
    "mean" row whose corruption is not in ``titles``). ``table``: ``robustness.paired_table``."""
    label_a, label_b = model_label(name_a), model_label(name_b)
    clean = table[table["severity"] == "0"].iloc[:1].assign(corruption=CLEAN)
    means = table[table["severity"] == "mean"]
    overall = means[~means["corruption"].isin(list(titles))]  # every corruption together
    shown = pd.concat([clean, overall, means[means["corruption"].isin(list(titles))]],
                      ignore_index=True)  # fmt: skip
    words = {CLEAN: "clean images", **{c: "all corruptions" for c in overall["corruption"]}}
    y = [titles.get(c) or words[c] for c in shown["corruption"]]
    colors = [
        NEUTRAL if low <= 0 <= high else model_color(name_b if diff > 0 else name_a)
        for diff, low, high in zip(shown["difference"], shown["ci_low"], shown["ci_high"],
                                   strict=True)
    ]  # fmt: skip
    fig = go.Figure(
        go.Scatter(
            x=shown["difference"] * 100, y=y, mode="markers",
            marker={"color": colors, "size": 11, "symbol": "diamond"},
            error_x={"type": "data", "symmetric": False,
                     "array": (shown["ci_high"] - shown["difference"]) * 100,
                     "arrayminus": (shown["difference"] - shown["ci_low"]) * 100,
                     "color": NEUTRAL, "thickness": 1.5, "width": 4},
            customdata=[_ci_text(row) for row in shown.itertuples()],
            hovertemplate="%{y}: %{customdata}<extra></extra>", showlegend=False,
        )
    )  # fmt: skip
    fig.add_vline(x=0, line={"color": NEUTRAL, "dash": "dash", "width": 1})
    fig.update_yaxes(autorange="reversed", fixedrange=True)
    fig.update_xaxes(title=f"accuracy, {label_b} − {label_a} (points)", zeroline=False)
    return apply_layout(
        fig, f"Which model breaks first: {label_b} − {label_a}", height=120 + 34 * len(shown),
        subtitle=f"Mean over severities 1-5, 95% interval; right of 0: {label_b} keeps more",
    )  # fmt: skip


def robustness_severity_figure(
    table: pd.DataFrame, titles: Mapping[str, str], name_a: str, name_b: str
) -> go.Figure:
    """The difference B - A at every corruption and severity as a grid tinted towards the better
    model's colour; a dot marks cells whose 95% interval excludes 0."""
    label_a, label_b = model_label(name_a), model_label(name_b)
    per = table[~table["severity"].isin(["0", "mean"])]
    corruptions = list(dict.fromkeys(per["corruption"]))
    severities = sorted(dict.fromkeys(per["severity"]), key=int)
    grid = per.pivot(index="corruption", columns="severity")
    z = grid["difference"].loc[corruptions, severities].to_numpy() * 100
    low = grid["ci_low"].loc[corruptions, severities].to_numpy()
    high = grid["ci_high"].loc[corruptions, severities].to_numpy()
    clear = (low > 0) | (high < 0)
    text = [[f"{v:+.1f}" + (" •" if c else "") for v, c in zip(zr, cr, strict=True)]
            for zr, cr in zip(z, clear, strict=True)]  # fmt: skip
    hover = [
        [f"{titles.get(corr, corr)}, severity {sev}: {z[i, j]:+.2f} points "
         f"(95% CI {low[i, j] * 100:+.2f} to {high[i, j] * 100:+.2f})"
         for j, sev in enumerate(severities)]
        for i, corr in enumerate(corruptions)
    ]  # fmt: skip
    bound = max(float(np.nanmax(np.abs(z))) if z.size else 1.0, 1.0)
    scale = [[0.0, tint(model_color(name_a), 0.85)], [0.5, "#FFFFFF"],
             [1.0, tint(model_color(name_b), 0.85)]]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[f"severity {s}" for s in severities],
            y=[titles.get(c, c) for c in corruptions], text=text, texttemplate="%{text}",
            customdata=hover, hovertemplate="%{customdata}<extra></extra>",
            colorscale=scale, zmin=-bound, zmax=bound, xgap=2, ygap=2,
            colorbar={"title": {"text": "points"}, "thickness": 12},
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", fixedrange=True)
    fig.update_xaxes(fixedrange=True)
    return apply_layout(
        fig, f"{label_b} − {label_a} at each severity (points)", height=160 + 34 * len(corruptions),
        subtitle="Tinted towards the model that keeps more; • the 95% interval excludes 0",
    )  # fmt: skip
