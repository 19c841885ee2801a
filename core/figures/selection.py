"""Clicks on figures: what makes cells clickable, and reading Streamlit's selection events back.

Streamlit reports no selection for clicks on a heatmap itself, so clickable heatmaps carry an
invisible scatter of square markers over their cells (``click_overlay``), each holding its cell
in ``customdata``. The page passes ``on_select="rerun", selection_mode="points"`` to
``st.plotly_chart``; the readers here turn the event it returns into a cell, a part or images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from core.data import NUM_CLASSES
from core.metrics import AGREEMENT_PARTS


def click_overlay(x: list, y: list, customdata: list, hovertext: list[str], size: float):
    """Invisible square markers over heatmap cells: clicks on them reach Streamlit as points."""
    invisible = {"marker": {"opacity": 0}}
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        marker={"symbol": "square", "size": size, "color": "#444444", "opacity": 0},
        # A plain list: a numpy array would reach the page as a dict keyed "0", "1".
        customdata=customdata,
        text=hovertext,
        hovertemplate="%{text}<extra></extra>",
        selected=invisible,
        unselected=invisible,
        showlegend=False,
        name="cells",
    )


def outline_cell(fig: go.Figure, x: float, y: float) -> None:
    """Outline the cell centred on (x, y) white under black: it stands out on light and dark."""
    box = {"type": "rect", "xref": "x", "yref": "y", "x0": x - 0.5, "x1": x + 0.5}
    box |= {"y0": y - 0.5, "y1": y + 0.5, "fillcolor": "rgba(0,0,0,0)"}
    fig.add_shape(box | {"line": {"color": "white", "width": 5}})
    fig.add_shape(box | {"line": {"color": "black", "width": 2}})


def selected_points(event) -> list:
    """The selected points of a Streamlit plotly selection event (dict or attribute style)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, IndexError):
        try:
            points = event.selection.points
        except AttributeError:
            return []
    return list(points or [])


def _first_point(event) -> Mapping | None:
    """The first selected point of a Streamlit plotly selection event, or None."""
    points = selected_points(event)
    if not points:
        return None
    point = points[0]
    return point if isinstance(point, Mapping) else None


def _customdata_items(point: Mapping) -> list | None:
    data = point.get("customdata")
    if data is None:
        return None
    if isinstance(data, Mapping):  # a numpy row arrives keyed by position: {"0": .., "1": ..}
        return [data[key] for key in sorted(data, key=lambda k: int(k))]
    if isinstance(data, str):
        return [data]
    if isinstance(data, Sequence):
        return list(data)
    return [data]


def selected_cell(selection_event) -> tuple[int, int] | None:
    """(true, predicted) of the clicked confusion cell in a ``st.plotly_chart`` event, or None."""
    point = _first_point(selection_event)
    if point is None:
        return None
    items = _customdata_items(point)
    if items is None or len(items) < 2:
        # Older Streamlit versions drop customdata; the overlay's x is predicted, y is true.
        if "x" not in point or "y" not in point:
            return None
        items = [point["y"], point["x"]]
    try:
        cell = (int(items[0]), int(items[1]))
    except (TypeError, ValueError):
        return None
    if not all(0 <= v < NUM_CLASSES for v in cell):
        return None
    return cell


def selected_part(selection_event) -> str | None:
    """The clicked part of ``agreement_figure`` ('both_right', 'only_a', ...), or None."""
    point = _first_point(selection_event)
    if point is None:
        return None
    items = _customdata_items(point)
    if not items:
        return None
    part = items[0]
    return part if part in AGREEMENT_PARTS else None


def selected_indices(selection_event) -> list[int]:
    """Test-image indices of the points selected in ``projection_figure``, in selection order,
    each once (an image can be selected both as its class's dot and as a mistake's ring)."""
    indices: list[int] = []
    seen: set[int] = set()
    for point in selected_points(selection_event):
        if not isinstance(point, Mapping):
            continue
        items = _customdata_items(point)
        if not items:
            continue
        try:
            index = int(items[0])
        except (TypeError, ValueError):
            continue
        if index >= 0 and index not in seen:
            seen.add(index)
            indices.append(index)
    return indices
