"""The Compare page's HTML report, built from runs with three seeds per model: one file that
holds every section, the chosen runs' numbers and the paired-by-seed verdict, and opens offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from core import artifacts, calibration, seeds
from core.models import MODEL_NAMES
from tests import seedtools
from widgets import analysis


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings, self.sources, self.inline_scripts = [], [], 0
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_heading = tag in ("h1", "h2")
        for name in ("src", "href"):
            if attrs.get(name):
                self.sources.append(attrs[name])
        if tag == "script" and not attrs.get("src"):
            self.inline_scripts += 1

    def handle_endtag(self, tag):
        self._in_heading = False

    def handle_data(self, data):
        if self._in_heading and data.strip():
            self.headings.append(data.strip())


@pytest.fixture(scope="module")
def root(tmp_path_factory, dataset):
    return seedtools.make_seed_root(tmp_path_factory.mktemp("report") / "artifacts", dataset)


def test_report_holds_every_section_and_opens_offline(root):
    runs = {m: artifacts.load_run(m, root=root) for m in MODEL_NAMES}
    html = analysis.report_html(runs)
    reader = _Reader()
    reader.feed(html)
    for title in ("Test metrics", "Is the difference real?", "Confusion", "Calibration", "Seeds"):
        assert any(title in h for h in reader.headings), (title, reader.headings)
    assert not [s for s in reader.sources if re.match(r"(https?:)?//", s)]  # nothing fetched
    assert html.count("Plotly.newPlot") >= 4 and reader.inline_scripts >= 4
    # The numbers are the runs': the calibration error of each model, and the seeds' verdict.
    for run in runs.values():
        ece = calibration.reliability(run.y_true, run.y_prob).ece
        assert f"{ece:.4f}" in html
    collected = seeds.collect(root)
    summaries = {m: seeds.summarize(seeds.load_seed_runs(i)) for m, i in collected.items()}
    result = seeds.paired(summaries["baseline"], summaries["residual"])
    assert seeds.paired_verdict_text(result, ("Baseline CNN", "Residual CNN")) in html
