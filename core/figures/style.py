"""What every figure shares: fonts, margins, the legend's place, neutral grey, tints, labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from core.models import model_color, model_label

NEUTRAL = "#7F7F7F"
FONT = {"family": "Source Sans Pro, Segoe UI, Helvetica, Arial, sans-serif", "size": 13}
HOVER_LABEL = {"bgcolor": "white", "font": {"color": "#262730"}}


def apply_layout(fig: go.Figure, title: str, height: int, subtitle: str | None = None, **layout):
    """Fonts, margins, template and legend shared by every figure; returns ``fig``."""
    title_spec: dict = {"text": title, "x": 0, "xanchor": "left"}
    if subtitle:
        title_spec["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": "#555"}}
    fig.update_layout(
        title=title_spec,
        height=height,
        template="plotly_white",
        font=FONT,
        margin={"l": 10, "r": 10, "t": 90 if subtitle else 60, "b": 10},
        # Below everything, in the figure's own margin: long legends never cover the title.
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
        hoverlabel=HOVER_LABEL,
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    fig.update_layout(**layout)
    return fig


def tint(hex_color: str, alpha: float = 0.45) -> str:
    """``#RRGGBB`` as a translucent ``rgba(...)``."""
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def diagonal_line(name: str) -> go.Scatter:
    """The dashed line y = x from (0, 0) to (1, 1): chance on a ROC curve, perfect calibration."""
    return go.Scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        name=name,
        line={"color": NEUTRAL, "dash": "dash", "width": 1},
        hoverinfo="skip",
    )


def model_line(key: str, x, y, name: str, hovertemplate: str, **scatter) -> go.Scatter:
    """A model's curve: a line in its colour, grouped in the legend by ``key``."""
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        name=name,
        legendgroup=key,
        line={"color": model_color(key), "width": 2},
        hovertemplate=hovertemplate,
        **scatter,
    )


def model_labels(keys: Sequence[str], names: Mapping[str, str] | Sequence[str] | None):
    """Display labels of ``keys``: from a mapping, a list in the same order, or the registry."""
    if names is None:
        return [model_label(key) for key in keys]
    if isinstance(names, Mapping):
        return [names.get(key, model_label(key)) for key in keys]
    names = list(names)
    if len(names) != len(keys):
        raise ValueError(f"{len(keys)} results but {len(names)} names")
    return names
