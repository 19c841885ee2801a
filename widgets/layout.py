"""Small layout helpers shared by the pages."""

from __future__ import annotations

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
