"""The Robustness page in AppTest: from a precomputed cache (figures, table, flip gallery), and a
first visit that times a batch, says how long, computes with progress and keeps the result."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import artifacts, robustness, runcache
from core.predict import load_predictor
from tests import apptools

MODELS = ("baseline", "residual")
N = 200  # the page's images in these tests


def _copy(tiny_root, target):
    shutil.copytree(tiny_root, target, ignore=shutil.ignore_patterns("cache", ".*"))
    for model in MODELS:
        shutil.copy2(tiny_root / model / artifacts.DEFAULT_POINTER, target / model)
    return target


@pytest.fixture(scope="module")
def cached_root(tiny_root, dataset, tmp_path_factory):
    """A copy of the tiny runs with their robustness on N test images already cached."""
    root = _copy(tiny_root, tmp_path_factory.mktemp("robust_page") / "artifacts")
    indices = robustness.subset_indices(dataset.y_test, N)
    runs = {m: artifacts.load_run(m, root=root) for m in MODELS}
    results = robustness.evaluate_runs(
        runs, {m: load_predictor(r) for m, r in runs.items()},
        dataset.x_test[indices], dataset.y_test[indices], indices,
    )  # fmt: skip
    return root, results


def test_the_page_shows_the_cached_results(cached_root, monkeypatch):
    root, results = cached_root
    monkeypatch.setattr(robustness, "PAGE_IMAGES", N)
    at = apptools.open_page(root, monkeypatch, "pages/robustness.py")
    assert not at.exception and not at.button  # nothing to compute
    table = robustness.paired_table(results["baseline"], results["residual"])
    clean = table[table["severity"] == "0"].iloc[0]
    text = " ".join(m.value for m in at.markdown)
    assert f"clean accuracy {clean['accuracy_a']:.1%} (Baseline CNN)" in text
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert len(charts) == 3
    baseline_blur = results["baseline"].accuracy()[1]
    assert charts[0]["data"][2]["y"] == pytest.approx(baseline_blur.tolist())
    summary = next(frame.value for frame in at.dataframe if "relative CE" in frame.value)
    assert len(summary) == 11
    # the flip gallery: Gaussian noise at severity 3, the baseline's flips, by default
    flips = results["baseline"].flips("gaussian_noise", 3)
    caption = next(c.value for c in at.caption if "gets right clean are wrong" in c.value)
    assert caption.startswith(f"{len(flips):,} of the")
    shown = [img.caption for element in at.get("image") for img in element.proto.imgs]
    expected = results["baseline"].indices[flips[: len(shown)]]
    assert shown and [int(c.split()[0][1:]) for c in shown] == expected.tolist()


def test_the_gallery_follows_its_choices(cached_root, monkeypatch):
    root, results = cached_root
    monkeypatch.setattr(robustness, "PAGE_IMAGES", N)
    at = apptools.open_page(root, monkeypatch, "pages/robustness.py")
    at.selectbox(key="robustness_corruption").set_value("inversion")
    at.select_slider(key="robustness_severity").set_value(5)
    at.radio(key="robustness_flip_model").set_value("residual")
    at.run()
    assert not at.exception
    flips = results["residual"].flips("inversion", 5)
    caption = next(c.value for c in at.caption if "gets right clean are wrong" in c.value)
    assert caption.startswith(f"{len(flips):,} of the") and "inversion at severity 5" in caption


def test_a_first_visit_says_how_long_then_computes_with_progress(
    tiny_root, dataset, tmp_path, monkeypatch
):
    root = _copy(tiny_root, tmp_path / "artifacts")
    monkeypatch.setattr(robustness, "PAGE_IMAGES", 30)
    at = apptools.open_page(root, monkeypatch, "pages/robustness.py")
    assert not at.exception
    (info,) = [i.value for i in at.info if "forward passes" in i.value]
    assert f"{robustness.total_passes(30, 2):,} forward passes" in info and "about" in info
    assert not at.get("plotly_chart")  # nothing shown before it is computed
    seen = []
    real = robustness.evaluate_runs

    def watched(*args, progress=None, **kwargs):  # records what the page's bar is told
        def relay(done, total):
            seen.append((done, total))
            progress(done, total)

        return real(*args, progress=relay, **kwargs)

    monkeypatch.setattr(robustness, "evaluate_runs", watched)
    at.button(key="robustness_compute").click().run()
    assert not at.exception
    assert seen[-1] == (robustness.total_passes(30, 2),) * 2
    assert any("Computed in" in s.value for s in at.success)
    assert len(at.get("plotly_chart")) == 3
    for model in MODELS:
        run = artifacts.load_run(model, root=root)
        assert runcache.cache_file(run, robustness.cache_name(30)).is_file()
    stored = robustness.read_cached(artifacts.load_run("baseline", root=root), n_images=30)
    assert np.array_equal(stored.indices, robustness.subset_indices(dataset.y_test, 30))


def test_the_page_needs_no_tensorflow():
    code = (
        "import sys; import core.robustness, core.figures.robustness, widgets.robustness; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, check=True)  # fmt: skip
    assert done.stdout.strip() == "False"
