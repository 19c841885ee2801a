"""Text from outside the program (file names, file contents, error messages) made safe to show.

Streamlit renders the text of ``st.error``, ``st.warning``, ``st.markdown`` and their kin as
Markdown: a file named ``![x](https://example.com/t.png).png`` would load a remote image, and an
underscore or an asterisk in a path turns into italics. ``literal`` puts such text in a code
span, where Markdown shows every character as it is (no links, images, HTML, emphasis, LaTeX or
colour directives). No Streamlit here: pages call it, tests check it.
"""

from __future__ import annotations

import re

LIMIT = 300  # characters shown of one piece of outside text


def literal(text: object, limit: int = LIMIT, keep_end: bool = False) -> str:
    """``text`` as a Markdown code span that shows it verbatim, on one line, at most ``limit``
    characters: longer text is cut at its end, or at its start with ``keep_end`` (for the
    tail of a log, whose last line says most)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    if len(text) > limit:
        text = "…" + text[1 - limit :] if keep_end else text[: limit - 1] + "…"
    if not text.strip():
        text = repr(text)
    # A fence longer than any run of backticks inside; spaces keep an edge backtick apart from
    # the fence (CommonMark strips one space on each side when both are there).
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# Every ASCII punctuation character may be backslash-escaped in CommonMark, and escaped it is
# shown as itself: no emphasis, links, HTML, LaTeX ($), colour or icon directives (:), and no
# cell break (|) in a table.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: object) -> str:
    """``text`` as Markdown that shows it verbatim on one line (every punctuation mark
    escaped), for a table cell, where a code span would look like code."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return _PUNCTUATION.sub(r"\\\1", text)


Rows = tuple[list[str], list[list[str]]]  # a small table of text: header, rows (label first)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` under ``header``, every cell shown as its
    text (``plain``).

    The Overview's small tables are Markdown rather than ``st.table``: ``st.table`` imports
    pandas (0.35 s of a cold start, for a few rows of text). A cell's text is
    ``str(value)``, so format numbers first; None shows as an empty cell.
    """
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} cells")

    def line(cells) -> str:
        return "| " + " | ".join("" if c is None else plain(c) for c in cells) + " |"

    return "\n".join([line(header), "|" + " --- |" * len(header), *map(line, rows)])


def rows_frame(table: Rows):
    """A ``Rows`` table as a pandas DataFrame of text, indexed by the rows' labels (the index
    named by the first header cell, None when it is empty)."""
    import pandas as pd

    header, rows = table
    index = pd.Index([row[0] for row in rows], name=header[0] or None)
    return pd.DataFrame([row[1:] for row in rows], index=index, columns=header[1:])
