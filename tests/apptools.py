"""Helpers for AppTest page tests: open a page through the router, add runs, read galleries."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
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
