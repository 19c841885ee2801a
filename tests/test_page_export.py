"""The Compare page's download: widgets.analysis.export_html is core.export.export_html of the
chosen runs and of the seeds in their artifacts folder, built once per choice of runs.

What the export holds is checked in tests/test_export.py (on the same seed sweep).
"""

from __future__ import annotations

import pytest

from core import artifacts, export, seeds
from core.models import MODEL_NAMES
from tests.seedtools import run_id
from widgets import analysis


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """The artifacts folder of every ``export.export_html`` call (which still runs)."""
    folders, real = [], export.export_html

    def export_html(runs, root):
        folders.append(str(root))
        return real(runs, root)

    monkeypatch.setattr(export, "export_html", export_html)
    return folders


def test_download_is_the_export_of_the_runs_folder_built_once(seed_root, calls):
    # seed_root is this session's own folder: no earlier call can have cached these runs.
    runs = {m: artifacts.load_run(m, root=seed_root) for m in MODEL_NAMES}
    html = analysis.export_html(runs)
    assert calls == [str(seed_root)]  # the seeds come from the chosen runs' folder
    verdict = seeds.paired_verdict(seeds.summarize_collected(seeds.collect(seed_root)))
    assert verdict.text in html
    assert analysis.export_html(runs) == html and calls == [str(seed_root)]  # cached
    other = {**runs, "residual": artifacts.load_run("residual", run_id(1), seed_root)}
    assert analysis.export_html(other) != html and len(calls) == 2  # another choice: rebuilt
