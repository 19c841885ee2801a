"""Helpers for AppTest page tests: open a page through the router, add runs, read galleries."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import artifacts

APP = str(Path(__file__).resolve().parent.parent / "dashboard.py")


def open_page(root, monkeypatch, page: str) -> AppTest:
    """``page`` (e.g. "pages/compare.py") of the whole app over the artifacts folder ``root``."""
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def add_copied_run(root, model: str, source: str, run_id: str) -> None:
    """A verified run of ``model`` whose stored test predictions are ``source``'s."""
    base, other = artifacts.load_run(model, root=root), artifacts.load_run(source, root=root)
    with artifacts.RunWriter(model, run_id, root) as writer:
        for name in (artifacts.MODEL_FILE, artifacts.LIVE_LOG):
            shutil.copyfile(base.path / name, writer.file(name))
        writer.save_history(base.history)
        writer.save_predictions(other.y_true, other.y_prob)
        writer.commit(replace(base.manifest, run_id=run_id))


def gallery_count(at: AppTest) -> int | None:
    """N of the gallery's 'Showing i–j of N images' (0 when it shows none), None without one."""
    for caption in at.caption:
        match = re.match(r"Showing [\d,]+–[\d,]+ of ([\d,]+) images", caption.value)
        if match:
            return int(match.group(1).replace(",", ""))
        if caption.value.startswith("No images to show"):
            return 0
    if any("No test images here" in info.value for info in at.info):
        return 0
    return None


def _cells(line: str) -> list[str]:
    """The cells of one Markdown table line, backslash escapes undone."""
    cells, cell, chars = [], "", iter(line.strip().strip("|"))
    for ch in chars:
        if ch == "\\":
            cell += next(chars, "")
        elif ch == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    return [*cells, cell.strip()]


def markdown_tables(elements):
    """Every Markdown table (``core.text.markdown_table``) among AppTest ``elements`` (e.g.
    ``at.markdown``) as a DataFrame of text (``core.text.rows_frame``): its first column is the
    index, named by its header cell (None when empty)."""
    from core.text import rows_frame

    tables = []
    for element in elements:
        lines = element.value.splitlines()
        if len(lines) < 2 or not lines[0].startswith("| ") or "--- |" not in lines[1]:
            continue
        header, *rows = [_cells(line) for line in [lines[0], *lines[2:]]]
        tables.append(rows_frame((header, rows)))
    return tables


class _MetricGridReader(HTMLParser):
    """The (label, value) pairs of ``widgets.layout.metric_grid``'s ``dl.metric-grid``."""

    def __init__(self):
        super().__init__()
        self.pairs, self._open, self._text, self._in_grid = [], None, "", False

    def handle_starttag(self, tag, attrs):
        if tag == "dl" and ("class", "metric-grid") in attrs:
            self._in_grid = True
        elif self._in_grid and tag in ("dt", "dd"):
            self._open, self._text = tag, ""

    def handle_endtag(self, tag):
        if tag == "dl":
            self._in_grid = False
        elif tag == self._open == "dt":
            self.pairs.append([self._text.strip(), None])
        elif tag == self._open == "dd":
            self.pairs[-1][1] = self._text.strip()
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open:
            self._text += data


def metric_tiles(node) -> list[tuple[str, str]]:
    """(label, value) of every number a ``widgets.layout.metric_grid`` shows under AppTest
    ``node`` (e.g. ``at.main``), in page order; a label's tooltip is not part of it."""
    reader = _MetricGridReader()
    for block in node.get("html"):
        reader.feed(block.proto.body)
    return [(label, value) for label, value in reader.pairs]
