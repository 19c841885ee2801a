"""Images shown as one HTML block of inline PNGs (the galleries, the Overview's samples).

Light on purpose (no pandas, no Plotly): the Overview's first screen imports it.
"""

from __future__ import annotations

import base64
import html
import struct

import streamlit as st

# The gallery grid: tiles side by side, wrapping; captions as small as st.caption's.
GRID_CSS = (
    ".gallery-grid{display:flex;flex-wrap:wrap;gap:0.75rem 1rem;align-items:flex-start}"
    ".gallery-grid figure{margin:0}"
    ".gallery-grid img{display:block;image-rendering:pixelated}"
    ".gallery-grid figcaption{font-size:0.8rem;opacity:0.65;margin-top:0.25rem;"
    "overflow-wrap:anywhere}"
)


def image_grid(
    pngs: list[bytes], captions: list[str], alts: list[str], key: str, scale: int = 1
) -> None:
    """PNG images, each ``scale`` times its own size, with its caption (and ``alts`` as alt
    text), as one HTML block of inline images.

    Hand-written because ``st.image`` with a list sends each image as a media file that the
    browser fetches on its own: 24 requests and layouts per gallery page. One block of data
    URIs is one element; a synthetic page's click took 0.27 s against 0.37 s, and
    bench/results.md has the Confusion page's. ``scale`` enlarges in the browser, every pixel a
    crisp block (``image-rendering: pixelated``): a 28 px image sent as it is, shown at 168 px,
    is less than half the bytes of one enlarged before sending, and less for the browser to
    read on every click (about 10 ms of a gallery click's main thread). ``key`` names the
    block's container (``.st-key-<key>``); images are ``figure img``, captions ``figcaption``.
    """
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    tiles = "".join(
        f'<figure style="width:{width}px"><img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
        f'width="{width}" height="{height}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for png, caption, alt in zip(pngs, captions, alts, strict=True)
        for width, height in [(scale * side for side in png_size(png))]
    )
    st.container(key=key).html(f"<style>{GRID_CSS}</style><div class='gallery-grid'>{tiles}</div>")


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its header (IHDR is always the first chunk)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return width, height
