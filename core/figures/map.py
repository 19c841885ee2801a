"""The projection map: every test image as a dot, coloured by its true class.

No maths: ``core.projection`` computes the coordinates, ``core.metrics`` the predictions. The
page passes ``on_select="rerun", selection_mode="points"`` to ``st.plotly_chart`` and turns the
event into test-image indices with ``selection.selected_indices``.

WebGL (``go.Scattergl``), not SVG: the browser built one SVG element per test image on every
visit, about a second for 10,000; one WebGL scene of them takes a few tenths, even on a software
renderer (a next visit of the Map: 1.4 s to 0.6 s in headless Chromium, SwiftShader). Hover, the
legend (a class or the rings hidden with a click) and click to select
(``clickmode="event+select"``) work on it as on SVG: the selection event carries each point's
``customdata``. Plotly's default of twice the screen's resolution is kept: at one, a further
0.2 s, the 4-pixel dots came out square.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from core.figures.style import apply_layout
from core.projection import Projection

# CARTO "Safe" (plotly.colors.qualitative.Safe), made to stay distinct with colour-vision
# deficiencies; Okabe & Ito has only eight colours, and the grey it ends with is left out.
CLASS_COLORS = (
    "#88CCEE",
    "#CC6677",
    "#DDCC77",
    "#117733",
    "#332288",
    "#AA4499",
    "#44AA99",
    "#999933",
    "#882255",
    "#661100",
)
MISTAKE_NAME = "misclassified"
POINT_SIZE = 4
# Room for the axis titles and the legend's two rows below the map at the dashboard's usual
# width, so that Plotly's automargin need not grow a margin: it then draws the whole map a
# second time (a sixth of its drawing; narrower windows, whose legend takes more rows, still
# grow it).
MAP_MARGIN = {"l": 44, "r": 10, "t": 90, "b": 88}
MISTAKE_SIZE = 7


def _axis_titles(proj: Projection) -> tuple[str, str]:
    if proj.method == "pca" and proj.explained_variance is not None:
        first, second = proj.explained_variance
        return f"PC 1 ({first:.0%} of variance)", f"PC 2 ({second:.0%} of variance)"
    label = proj.method.upper()
    return f"{label} 1", f"{label} 2"


def _hover(true_class: str) -> str:
    """The hover text of a point: its image, its class (``%{hovertext}`` on the rings), and
    what the model predicted (``text``)."""
    return f"image #%{{customdata}}<br>true: {true_class}<br>predicted: %{{text}}<extra></extra>"


def projection_figure(
    proj: Projection,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    title: str,
) -> go.Figure:
    """Every test image as a dot coloured by its true class (one legend entry per class), the
    misclassified ones ringed in black (their own legend entry, so they can be hidden).

    Each point's ``customdata`` is its image index, which ``selected_indices`` reads back from
    a Streamlit selection; its ``text`` is the predicted class name (and, on the rings, its
    ``hovertext`` the true one: a class's dots say theirs in the hover template).
    """
    coords = np.asarray(proj.coords)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(coords)
    if coords.shape != (n, 2) or y_true.shape != (n,) or y_pred.shape != (n,):
        raise ValueError(
            f"coords {coords.shape}, y_true {y_true.shape} and y_pred {y_pred.shape} must "
            "describe the same images: (n, 2), (n,), (n,)"
        )
    if len(class_names) > len(CLASS_COLORS):
        raise ValueError(f"at most {len(CLASS_COLORS)} classes, got {len(class_names)}")
    names = np.asarray(class_names, dtype=object)
    fig = go.Figure()

    def points(index: np.ndarray) -> dict:
        # Plain lists, read back as they are. The image index alone in customdata: the names
        # beside it made the figure a third larger and its copy per rerun twice as slow.
        return {
            "x": coords[index, 0],
            "y": coords[index, 1],
            "customdata": index.tolist(),
            "text": names[y_pred[index]].tolist(),
        }

    for k, class_name in enumerate(class_names):
        index = np.flatnonzero(y_true == k)
        fig.add_trace(
            go.Scattergl(
                **points(index),
                mode="markers",
                name=str(class_name),
                marker={"color": CLASS_COLORS[k], "size": POINT_SIZE, "opacity": 0.8},
                hovertemplate=_hover(str(class_name)),
            )
        )
    wrong = np.flatnonzero(y_true != y_pred)
    fig.add_trace(
        go.Scattergl(
            **points(wrong),
            hovertext=names[y_true[wrong]].tolist(),
            mode="markers",
            name=f"{MISTAKE_NAME} ({len(wrong):,})",
            marker={
                "symbol": "circle-open",
                "color": "black",
                "size": MISTAKE_SIZE,
                "line": {"width": 1},
            },
            hovertemplate=_hover("%{hovertext}"),
        )
    )
    x_title, y_title = _axis_titles(proj)
    # The axes' units mean nothing by themselves; only distances between points do.
    fig.update_xaxes(title=x_title, showticklabels=False, zeroline=False)
    fig.update_yaxes(title=y_title, showticklabels=False, zeroline=False)
    return apply_layout(
        fig,
        title,
        height=600,
        subtitle="One dot per test image, coloured by its true class; black rings: mistakes",
        clickmode="event+select",
        hovermode="closest",
        legend_itemsizing="constant",
        margin=MAP_MARGIN,
    )
