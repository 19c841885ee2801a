"""The Map page in AppTest: every test image placed, mistakes ringed, the suspects listed, an image
inspected; the projection is kept with the run and read back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core import artifacts, projection
from core.neighbours import suspect_labels
from tests import apptools


@pytest.fixture(scope="module")
def map_root(tiny_root, tmp_path_factory):
    """A copy of the tiny runs: the page writes its projections into the runs' cache folders."""
    root = tmp_path_factory.mktemp("map") / "artifacts"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("cache", ".*"))
    for model in ("baseline", "residual"):
        shutil.copy2(tiny_root / model / artifacts.DEFAULT_POINTER, root / model)
    return root


def test_map_places_every_test_image_and_lists_the_suspects(map_root, monkeypatch):
    tiny_root = map_root
    at = apptools.open_page(tiny_root, monkeypatch, "pages/map.py")
    assert not at.exception
    run = artifacts.load_run("baseline", root=tiny_root)
    (chart,) = at.get("plotly_chart")
    traces = json.loads(chart.proto.spec)["data"]
    assert {t["type"] for t in traces} == {"scattergl"}  # WebGL: 10,000 points drawn fast
    *classes, rings = traces  # one trace per class, then the mistakes' rings
    shown = sorted(int(i) for t in classes for i in t["customdata"])  # customdata: the index
    assert shown == list(range(len(run.y_true)))  # every test image once, by its index
    ringed = {int(i) for i in rings["customdata"]}
    mistakes = set(np.flatnonzero(run.y_prob.argmax(axis=1) != run.y_true).tolist())
    assert ringed == mistakes
    # kept with the run: the page's projection is the one on disk
    stored = projection.cached(run, "pca")
    assert stored is not None and stored.coords.shape == (len(run.y_true), 2)
    runs = {m: artifacts.load_run(m, root=tiny_root) for m in ("baseline", "residual")}
    expected = suspect_labels(run.y_true, {m: r.y_prob for m, r in runs.items()})
    (table,) = at.dataframe
    assert sorted(table.value["index"].tolist()) == expected.tolist()


def test_an_image_picked_on_the_map_is_inspected(map_root, monkeypatch):
    at = apptools.open_page(map_root, monkeypatch, "pages/map.py")
    at.session_state["map_picked"] = 7
    at.run()
    assert not at.exception
    assert any("**Test image 7**" in m.value for m in at.markdown)
