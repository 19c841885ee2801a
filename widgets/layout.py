"""Small layout helpers shared by the pages."""

from __future__ import annotations

import html

import streamlit as st

from core.text import Rows, markdown_table


def table_height(rows: int) -> int:
    """Pixels for st.dataframe to show ``rows`` rows and the header without scrolling."""
    return (rows + 1) * 35 + 3


def static_table(table: Rows, key: str) -> None:
    """A small table of text (a header, then rows with their label first) as Markdown, in a
    container keyed ``key`` (``.st-key-<key> table`` in the page).

    Not ``st.table``: it imports pandas, 0.35 s of a cold start for a few rows of text that
    are already formatted (``core.text.markdown_table`` escapes every cell).
    """
    header, rows = table
    st.container(key=key).markdown(markdown_table(header, rows))


# Laid out and sized as st.metric draws its numbers: a label, then the value in large type.
METRIC_CSS = (
    ".metric-grid{display:grid;grid-template-columns:repeat(var(--cols),minmax(0,1fr));gap:1rem}"
    ".metric-grid dt{font-size:0.875rem;margin:0 0 0.125rem 0}"
    ".metric-grid dt abbr{text-decoration:underline dotted;cursor:help}"
    ".metric-grid dd{font-size:2.25rem;line-height:1.25;margin:0;white-space:nowrap;"
    "overflow:hidden;text-overflow:ellipsis}"
)


def metric_grid(metrics: list[tuple[str, str, str | None]], key: str, columns: int = 3) -> None:
    """Numbers with their labels, as ``st.metric`` shows them, ``columns`` to a row, in one
    HTML block (a ``dl``) in a container keyed ``key``: ``metrics`` are (label, value, help or
    None); a help text is the label's tooltip.

    Hand-written because twelve ``st.metric`` elements (each a Markdown label, a value and a
    tooltip for React to build) cost the browser's main thread 70-90 ms more of a fresh
    Overview load than these two lists (30 alternated loads), for twelve numbers that never
    change on the page. Every text is escaped.
    """
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")

    def label(text: str, help: str | None) -> str:
        if help is None:
            return html.escape(text)
        return f'<abbr title="{html.escape(help)}">{html.escape(text)}</abbr>'

    tiles = "".join(
        f"<div><dt>{label(name, help)}</dt><dd>{html.escape(value)}</dd></div>"
        for name, value, help in metrics
    )
    st.container(key=key).html(
        f'<style>{METRIC_CSS}</style><dl class="metric-grid" '
        f'style="--cols:{int(columns)};margin:0 0 1rem 0;padding:0">'
        f"{tiles}</dl>"
    )
