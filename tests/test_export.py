"""core.export: the self-contained HTML export, parsed back and checked piece by piece."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy import stats

from core import artifacts, calibration, export, power, seeds, selective
from core.metrics import evaluate
from core.models import MODEL_NAMES, display_name, model_label

HOSTILE = "<script>alert(1)</script>"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
VOID |= {"track", "wbr"}


class Page(HTMLParser):
    """What a browser would see: elements (checked to nest properly), text, tables, scripts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.doctype = None
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value) of src and href
        self.h2: list[str] = []
        self.sections: list[tuple[str, str]] = []  # (id, h2 text)
        self.toc: list[tuple[str, str]] = []  # (href, text)
        self.tables: list[list[list[str]]] = []  # every row of every table, header rows too
        self.bodies: list[list[list[str]]] = []  # the rows in each table's <tbody>
        self.scripts: list[str] = []
        self.text: list[str] = []
        self.title = ""
        self._buffer: list[str] | None = None
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements {self.stack}"

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if name in attrs:
                self.links.append((tag, name, attrs[name]))
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "section":
            self.sections.append((attrs.get("id"), None))
        if tag == "table":
            self.tables.append([])
            self.bodies.append([])
        if tag == "tr":
            self.tables[-1].append([])
            if "tbody" in self.stack:
                self.bodies[-1].append(self.tables[-1][-1])
        if tag in ("h2", "td", "th", "script", "title", "a"):
            self._buffer = []
            self._href = attrs.get("href")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        text = "".join(self._buffer or [])
        if tag == "h2":
            self.h2.append(text)
            if self.sections and self.sections[-1][1] is None and "section" in self.stack:
                self.sections[-1] = (self.sections[-1][0], text)
        elif tag in ("td", "th"):
            self.tables[-1][-1].append(text)
        elif tag == "script":
            self.scripts.append(text)
        elif tag == "title":
            self.title = text
        elif tag == "a" and "nav" in self.stack:
            self.toc.append((self._href, text))
        if tag in ("h2", "td", "th", "script", "title", "a"):
            self._buffer = None

    def handle_data(self, data):
        self.text.append(data)
        if self._buffer is not None:
            self._buffer.append(data)


def plotly_bundles(page: Page) -> int:
    return sum("plotly.js v" in script for script in page.scripts)


def new_plots(page: Page) -> int:
    return sum(script.count("Plotly.newPlot(") for script in page.scripts)


@pytest.fixture(scope="module")
def runs(tiny_root) -> dict[str, artifacts.Run]:
    return {name: artifacts.load_run(name, root=tiny_root) for name in MODEL_NAMES}


@pytest.fixture(scope="module")
def document(runs):
    sections = export.comparison_sections(runs)
    text = export.html_document("Fashion-MNIST comparison", sections, export.export_meta(runs))
    return sections, text, Page(text)


# ----------------------------------------------------------------------------------------------
# The general builder


def test_export_is_one_valid_offline_document(document):
    sections, text, page = document
    assert text.startswith("<!DOCTYPE html>") and page.doctype == "DOCTYPE html"
    assert not page.errors
    assert len(page.ids) == len(set(page.ids))  # anchors are unique
    # Nothing is fetched: no src at all, and every href is an anchor into the file.
    assert [link for link in page.links if link[1] == "src"] == []
    assert {value[:1] for _, _, value in page.links} == {"#"}
    assert "http://" not in "".join(v for _, _, v in page.links)
    n_figures = sum(len(s.figures) for s in sections)
    assert plotly_bundles(page) == 1 and new_plots(page) == n_figures
    # The bundle comes before the first figure's drawing call.
    first_plot = next(i for i, s in enumerate(page.scripts) if "Plotly.newPlot(" in s)
    assert "plotly.js v" in "".join(page.scripts[: first_plot + 1])


def test_every_section_is_in_the_contents_with_its_tables(document):
    sections, _, page = document
    titles = [s.title for s in sections]
    assert titles == [
        export.RUNS_TITLE,
        export.METRICS_TITLE,
        export.STATISTICS_TITLE,
        export.CONFUSION_TITLE,
        export.ROC_TITLE,
        export.F1_TITLE,
        export.TRAINING_TITLE,
    ]
    assert [title for _, title in page.sections] == titles
    assert page.toc == [(f"#{sid}", title) for sid, title in page.sections]
    assert page.h2 == ["Contents", *titles]
    assert len(page.tables) == sum(len(s.tables) for s in sections)
    # Each table in the file holds its DataFrame's header and every row.
    tables = [t for s in sections for t in s.tables]
    for frame, parsed, body in zip(tables, page.tables, page.bodies, strict=True):
        levels = frame.index.nlevels
        assert parsed[0][levels:] == [str(c) for c in frame.columns]
        assert len(body) == len(frame)
        labels = [i if levels > 1 else (i,) for i in frame.index]
        assert [row[:levels] for row in body] == [[str(v) for v in i] for i in labels]
        assert all(len(row) == levels + len(frame.columns) for row in body)


def test_header_names_the_runs_and_versions(document, runs):
    _, _, page = document
    text = " ".join(page.text)
    for name, run in runs.items():
        assert f"{model_label(name)}: {run.model}/{run.run_id}" in text
    for package in ("numpy", "scikit-learn", "plotly"):
        assert f"{package}: " in text
    assert "Generated" in text and page.title == "Fashion-MNIST comparison"


def test_metric_numbers_match_an_independent_computation(document, runs):
    sections, _, page = document
    tables = [t for s in sections for t in s.tables]
    position = next(i for i, t in enumerate(tables) if t is sections[1].tables[0])
    rows = {row[0]: row[1:] for row in page.bodies[position]}
    for name, run in runs.items():
        accuracy = float(np.mean(run.y_prob.argmax(axis=1) == run.y_true))
        assert rows[model_label(name)][1] == f"{accuracy:.4f}"
    # McNemar's p from scipy directly, on the images exactly one model gets right.
    a, b = (runs[name].y_prob.argmax(axis=1) == runs[name].y_true for name in MODEL_NAMES)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    stats_table = sections[2].tables[0]
    pair = ("Baseline CNN", "Residual CNN")
    assert stats_table.index.tolist() == [pair]
    assert stats_table.loc[pair, "McNemar p"] == pytest.approx(p)
    assert stats_table.loc[pair, ["only A right", "only B right"]].tolist() == [only_a, only_b]
    verdict = sections[2].paragraphs[-1]
    assert verdict.startswith(("Baseline CNN", "Residual CNN")) and "McNemar" in verdict
    assert verdict in " ".join(page.text)


def test_hostile_text_is_shown_never_run(runs):
    hostile_run = dataclasses.replace(runs["baseline"], run_id=HOSTILE)
    hostile_runs = {"baseline": hostile_run, "residual": runs["residual"]}
    names = {"baseline": HOSTILE + " & co", "residual": '"><img src=x onerror=alert(2)>'}
    sections = export.comparison_sections(hostile_runs, names)
    sections.append(
        export.Section(
            HOSTILE,
            [HOSTILE, "a < b > c & d"],
            [pd.DataFrame({HOSTILE: [HOSTILE]}, index=pd.Index([HOSTILE], name=HOSTILE))],
            [go.Figure(go.Bar(x=[HOSTILE], y=[1]), layout={"title": {"text": HOSTILE}})],
        )
    )
    meta = export.export_meta(hostile_runs, names) | {HOSTILE: HOSTILE}
    text = export.html_document(HOSTILE, sections, meta)
    page = Page(text)
    assert "<script>alert" not in text and "<img src=x" not in text
    assert not page.errors
    # Only plotly's own scripts: its bundle, its config line, one call per figure.
    n_figures = sum(len(s.figures) for s in sections)
    assert len(page.scripts) == 2 + n_figures
    assert [link for link in page.links if link[1] == "src"] == []
    # Escaped text reads back as the very characters given.
    shown = "".join(page.text)
    assert page.title == HOSTILE and page.h2[-1] == HOSTILE
    assert f"{HOSTILE} & co: baseline/{HOSTILE}" in shown  # the header's run list
    assert "a < b > c & d" in shown and '"><img src=x onerror=alert(2)>' in shown
    assert [HOSTILE, HOSTILE] in page.tables[-1]
    assert page.toc[-1] == ("#section-8", HOSTILE)


def test_a_key_that_is_not_a_model_name_reaches_figures_only_as_escaped_json(runs):
    key = "<img src=x onerror=alert(3)>"
    sections = export.comparison_sections({key: runs["baseline"], "residual": runs["residual"]})
    text = export.html_document("t", sections, {})
    assert "<img src=x" not in text and "\\u003cimg src=x onerror=alert(3)\\u003e" in text
    assert not Page(text).errors


def test_general_sections_without_figures_carry_no_plotly():
    table = pd.DataFrame({"x": [1.5, float("nan")]}, index=["a", "b"])
    sections = [export.Section("One", ["first", "second"], [table]), export.Section("Two")]
    text = export.html_document("Plain", sections, {"generated": "2026-01-01", "note": ["p", "q"]})
    page = Page(text)
    assert page.h2 == ["Contents", "One", "Two"] and plotly_bundles(page) == 0
    assert page.tables == [[["", "x"], ["a", "1.5000"], ["b", "n/a"]]]
    assert page.toc == [("#section-1", "One"), ("#section-2", "Two")]
    shown = " ".join(page.text)
    assert "2026-01-01" in shown and "note" in shown and "first" in shown and "second" in shown


def test_a_second_figure_section_does_not_inline_plotly_again():
    figures = [go.Figure(go.Scatter(x=[1, 2], y=[3, 4])) for _ in range(3)]
    sections = [export.Section("A", figures=figures[:2]), export.Section("B", figures=figures[2:])]
    page = Page(export.html_document("Figures", sections, {}))
    assert plotly_bundles(page) == 1 and new_plots(page) == 3


def test_single_run_and_mismatched_runs(runs):
    titles = [s.title for s in export.comparison_sections({"baseline": runs["baseline"]})]
    assert export.STATISTICS_TITLE not in titles and export.F1_TITLE in titles
    other = dataclasses.replace(runs["residual"], y_true=np.roll(runs["residual"].y_true, 1))
    with pytest.raises(ValueError, match=r"other test labels .* cannot be compared"):
        export.comparison_sections({"baseline": runs["baseline"], "residual": other})
    with pytest.raises(ValueError, match=r"at least one run"):
        export.comparison_sections({})


# ----------------------------------------------------------------------------------------------
# The dashboard's export: the comparison, calibration and the seeds


def test_export_html_in_one_call(runs, tiny_root):
    text = export.export_html(runs, tiny_root)
    page = Page(text)
    assert page.title == "Fashion-MNIST: baseline vs residual CNN" and plotly_bundles(page) == 1
    ev = evaluate(runs["residual"].y_true, runs["residual"].y_prob)
    assert f"{ev.accuracy:.4f}" in "".join(page.text)
    # The tiny runs follow no report protocol: the seeds section says how to get some.
    assert page.h2[-3:] == [export.CALIBRATION_TITLE, export.ABSTAIN_TITLE, export.SEEDS_TITLE]
    assert seeds.more_seeds_text(seeds.collect(tiny_root)) in page.text


def test_export_holds_every_section_and_opens_offline(seed_root):
    """Runs with three seeds per model: one file that holds every section, the chosen runs'
    numbers and the paired-by-seed verdict, and opens offline."""
    runs = {m: artifacts.load_run(m, root=seed_root) for m in MODEL_NAMES}
    html = export.export_html(runs, seed_root)
    page = Page(html)
    for title in ("Test metrics", "Is the difference real?", "Confusion", "Calibration", "Seeds"):
        assert any(title in h for h in page.h2), (title, page.h2)
    assert not [v for _, _, v in page.links if re.match(r"(https?:)?//", v)]  # nothing fetched
    assert [link for link in page.links if link[1] == "src"] == []  # every script is inline
    assert html.count("Plotly.newPlot") >= 4 and len(page.scripts) >= 4
    # The numbers are the runs': the calibration error of each model, and the seeds' verdict.
    for run in runs.values():
        ece = calibration.reliability(run.y_true, run.y_prob).ece
        assert f"{ece:.4f}" in html
    collected = seeds.collect(seed_root)
    summaries = {m: seeds.summarize(seeds.load_seed_runs(i)) for m, i in collected.items()}
    result = seeds.paired(summaries["baseline"], summaries["residual"])
    assert seeds.paired_verdict_text(result, ("Baseline CNN", "Residual CNN")) in html
    assert html.count(power.seed_power_text(summaries)) == 1  # in the Seeds section only
    # The calibration text names the models as the page does.
    assert "Residual CNN is more accurate than Baseline CNN" in html


def test_export_says_when_each_model_would_abstain(runs, tiny_root):
    """The abstention section: each model's share answered at the default threshold, counted
    here by hand, and top-2 accuracy counted over argsort."""
    html = export.export_html(runs, tiny_root)
    for model, run in runs.items():
        prob = run.y_prob / run.y_prob.sum(axis=1, keepdims=True)
        sure = prob.max(axis=1) >= selective.THRESHOLD
        right = prob.argmax(axis=1) == run.y_true
        if sure.any():
            expected = (f"answering {sure.mean():.1%} of the images ({int(sure.sum()):,} of "
                        f"{len(sure):,}), accuracy is {right[sure].mean():.2%}.")  # fmt: skip
        else:
            expected = f"answers none of the {len(sure):,}."
        assert f"{display_name(model)} at ≥ 90% confidence:" in html and expected in html
        top2 = np.mean([y in np.argsort(-p)[:2] for y, p in zip(run.y_true, prob, strict=True)])
        assert f">{top2:.4f}<" in html  # the top-k table's cell, four decimals
