"""Test images: a captioned grid as a figure (one image as PNG bytes: ``core.png``)."""

from __future__ import annotations

import base64

import numpy as np
import plotly.graph_objects as go

from core.figures.style import apply_layout
from core.png import image_png  # core.figures.image_png, as before


def sample_grid_figure(images: np.ndarray, labels: list[str], columns: int = 10) -> go.Figure:
    """Grayscale images (k, 28, 28) uint8 in a grid, pixels crisp, with a caption under each.

    A caption may hold ``<br>`` (or ``\\n``) for a second line; hovering a tile shows it too.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (k, height, width), got {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), got dtype {images.dtype}")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    captions = [str(label).replace("\n", "<br>") for label in labels]
    fig = go.Figure()
    if len(images) == 0:
        fig.add_annotation(
            text="No images", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return apply_layout(fig, "", height=120)
    k, height, width = images.shape
    columns = min(columns, k)
    rows = -(-k // columns)
    gap = 4  # pixels between tiles
    lines = max(caption.count("<br>") + 1 for caption in captions)
    caption_px = 7 * lines + 3  # room under each tile, in image pixels
    row_px, col_px = height + caption_px, width + gap
    canvas = np.full((rows * row_px, columns * col_px - gap), 255, dtype=np.uint8)  # white gaps
    centres_x, centres_y, notes = [], [], []
    for i, image in enumerate(images):
        top, left = (i // columns) * row_px, (i % columns) * col_px
        canvas[top : top + height, left : left + width] = image
        centres_x.append(left + (width - 1) / 2)  # pixel i is centred on x = i
        centres_y.append(top + (height - 1) / 2)
        notes.append(
            {"text": captions[i], "x": left + (width - 1) / 2, "y": top + height, "xref": "x",
             "yref": "y", "showarrow": False, "yanchor": "top", "font": {"size": 11}}
        )  # fmt: skip
    fig.update_layout(annotations=notes)  # at once: add_annotation costs ~20 ms per call
    # One PNG rather than z: a few kB instead of a JSON number per pixel. With zsmooth off the
    # browser draws it with image-rendering: pixelated, so every pixel stays a crisp block.
    source = "data:image/png;base64," + base64.b64encode(image_png(canvas, scale=1)).decode()
    fig.add_trace(go.Image(source=source, zsmooth=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=centres_x,
            y=centres_y,
            mode="markers",
            text=captions,
            customdata=list(range(k)),
            marker={"symbol": "square", "size": 40, "opacity": 0, "color": "#444444"},
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(visible=False, range=[-0.5, canvas.shape[1] - 0.5], fixedrange=True)
    fig.update_yaxes(
        visible=False, range=[canvas.shape[0] - 0.5, -0.5], scaleanchor="x", fixedrange=True
    )
    scale = 2.3  # screen pixels per image pixel at a typical page width
    fig = apply_layout(fig, "", height=int(canvas.shape[0] * scale) + 40)
    fig.update_layout(margin={"t": 30, "b": 10, "l": 0, "r": 0})  # t: room for the mode bar
    return fig
