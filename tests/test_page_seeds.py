"""Several seeds on the pages, in AppTest: the Overview's mean ± std over seeds, its paired
verdict and per-class F1; the Training page's mean ± std bands; with one seed, how to get more.

The artifacts folder holds three report-protocol runs per model and one quick run per model
(tests/seedtools.py); every number is checked against scikit-learn and statistics on the stored
predictions and histories, read without core. The tables and the verdict are core.seeds' (whose
numbers tests/test_seeds.py checks on the same sweep): here, that the pages show them.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core import power, seeds
from core.artifacts import HISTORY_FILE, PROJECT_DIR
from core.models import MODEL_NAMES, REGISTRY
from core.published import BEST_PUBLISHED_NOTE, COURSE_REPORT
from tests import seedtools
from tests.apptools import markdown_tables
from tests.seedtools import SEEDS, charts, line_levels, run_id

# Crowd-sourced human accuracy and the course report's: the dotted lines of accuracy charts.
ACCURACY_LINES = sorted(
    [0.835, COURSE_REPORT["baseline"]["accuracy"], COURSE_REPORT["residual"]["accuracy"]]
)
NAMES = {model: REGISTRY[model].display_name for model in MODEL_NAMES}
COMMAND = "python -m core.train --model all --seeds 0-9"


@pytest.fixture(scope="module")
def root(seed_root):
    return seed_root


@pytest.fixture(scope="module")
def expected(root) -> dict[str, dict[int, dict]]:
    return seedtools.expected_seed_metrics(root)


@pytest.fixture(scope="module")
def summaries(root) -> dict[str, seeds.SeedSummary]:
    return seeds.summarize_collected(seeds.collect(root))


@pytest.fixture(scope="module")
def overview(root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_ARTIFACTS", str(root))
        yield seedtools.open_page(root, "pages/overview.py")


@pytest.fixture(scope="module")
def training(root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_ARTIFACTS", str(root))
        yield seedtools.open_page(root, "pages/training.py")


def tables(at) -> list:
    """Every table of the page as a DataFrame: data frames, ``st.table``s and the Markdown
    tables the Overview draws (``widgets.layout.static_table``)."""
    return [d.value for d in [*at.dataframe, *at.table]] + markdown_tables(at.markdown)


def table_with(at, column: str):
    (table,) = [t for t in tables(at) if column in t.columns]
    return table


def open_seed_tab(at, label: str):
    """Open one of the Overview's lazy tabs over seeds (only the open one is drawn)."""
    at.session_state["overview_seeds_tab"] = label
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_overview_shows_the_seed_tables(overview, summaries):
    """The mean ± std over seeds per model, and per class (core.seeds' tables), each in its
    tab; a closed tab is not drawn, so a cold start loads no chart."""
    assert "overview_seed_chart" not in charts(overview)
    pd.testing.assert_frame_equal(table_with(overview, "Seeds"), seeds.seed_table(summaries))
    open_seed_tab(overview, "F1 of each class")
    table = table_with(overview, f"{NAMES['baseline']} F1")
    pd.testing.assert_frame_equal(table, seeds.class_f1_table(summaries))
    assert not [t for t in tables(overview) if "Seeds" in t.columns]
    open_seed_tab(overview, "Mean ± std")


def test_overview_chart_has_every_seed_the_mean_and_the_reference_lines(overview, expected):
    spec = charts(open_seed_tab(overview, "Each seed (chart)"))["overview_seed_chart"]
    for model in MODEL_NAMES:
        accuracies = [expected[model][s]["accuracy"] for s in SEEDS]
        (dots,) = [t for t in spec["data"] if t["name"] == f"{NAMES[model]}: each seed"]
        np.testing.assert_allclose(seedtools.array(dots["y"]), accuracies, atol=1e-12)
        (mean,) = [t for t in spec["data"] if t["name"].startswith(f"{NAMES[model]}: mean")]
        assert mean["y"][0] == pytest.approx(statistics.mean(accuracies), abs=1e-12)
        assert mean["error_y"]["array"][0] == pytest.approx(statistics.stdev(accuracies))
    assert line_levels(spec) == pytest.approx(ACCURACY_LINES)
    assert BEST_PUBLISHED_NOTE in [c.value for c in overview.caption]
    open_seed_tab(overview, "Mean ± std")


def test_overview_states_both_verdicts_and_what_each_is_about(overview, summaries):
    verdict = seeds.paired_verdict(summaries)
    assert verdict.clear  # the sweep was built so that the residual wins beyond the spread
    successes = [s.value for s in overview.success]
    assert verdict.text in successes, successes  # a clear verdict is a success box
    # The chosen runs' verdict (McNemar, one test set) is still there.
    assert any("McNemar" in box.value for box in [*overview.success, *overview.info])
    notes = [m.value for m in overview.markdown]
    assert any(n.startswith("**The chosen runs**") and "same 10,000 test images" in n
               for n in notes)  # fmt: skip
    assert any(n.startswith("**Across seeds**") and "paired by seed" in n for n in notes)
    assert not any(COMMAND in c.value for c in overview.caption)


def test_overview_says_how_many_seeds_would_settle_it(overview, summaries, expected):
    """Under the seed verdict, once: the seeds a paired t-test needs and what the current ones
    can detect (core.power, whose numbers tests/test_power.py checks by simulation)."""
    sentence = power.seed_power_text(summaries)
    assert [c.value for c in overview.caption].count(sentence) == 1
    diffs = [expected["residual"][s]["accuracy"] - expected["baseline"][s]["accuracy"]
             for s in SEEDS]  # fmt: skip
    assert sentence.startswith(
        f"To detect a difference of {statistics.mean(diffs) * 100:+.2f} points "
        f"({NAMES['residual']} − {NAMES['baseline']}, as observed) with 80% power at the 5% level"
    ), sentence
    assert f"the current {len(SEEDS)} seeds can detect about" in sentence


def test_training_bands_are_the_mean_and_std_of_the_histories(training, root):
    at = training
    assert "train_replay_chart" in charts(at)
    toggle = at.toggle(key="train_seed_bands")
    assert toggle.value is False and not toggle.proto.disabled
    toggle.set_value(True).run()
    assert not at.exception
    shown = charts(at)
    assert "train_replay_chart" not in shown
    assert all(w.key != "train_overlay" for w in at.multiselect)
    spec = shown["train_seed_chart"]
    assert {t["legendgroup"] for t in spec["data"]} == set(MODEL_NAMES)
    for model in MODEL_NAMES:
        histories = [
            json.loads((root / model / run_id(s) / HISTORY_FILE).read_text())["epochs"]
            for s in SEEDS
        ]
        for column, part in (("accuracy", "train"), ("test_accuracy", "held-out test")):
            per_epoch = np.array([[r[column] for r in h] for h in histories])  # (seeds, epochs)
            (line,) = [t for t in spec["data"]
                       if t["name"] == f"{NAMES[model]}: {part} (mean of 3 seeds)"]  # fmt: skip
            np.testing.assert_allclose(seedtools.array(line["y"]), per_epoch.mean(axis=0))
            (band,) = [t for t in spec["data"] if t["name"] == f"{NAMES[model]}: {part} ± 1 std"]
            std = per_epoch.std(axis=0, ddof=1)
            edges = np.concatenate([per_epoch.mean(0) + std, (per_epoch.mean(0) - std)[::-1]])
            np.testing.assert_allclose(seedtools.array(band["y"]), edges)
    assert line_levels(spec) == pytest.approx(ACCURACY_LINES)
    assert any(BEST_PUBLISHED_NOTE in c.value for c in at.caption)
    at.radio(key="train_metric").set_value("loss").run()
    spec = charts(at)["train_seed_chart"]
    assert spec["layout"]["yaxis"]["title"]["text"] == "loss"
    assert line_levels(spec) == pytest.approx(sorted(COURSE_REPORT[m]["loss"] for m in MODEL_NAMES))
    at.toggle(key="train_seed_bands").set_value(False).run()
    at.radio(key="train_metric").set_value("accuracy").run()
    assert "train_replay_chart" in charts(at) and at.multiselect(key="train_overlay")


def test_training_runs_chart_has_the_accuracy_references(training):
    training.toggle(key="train_seed_bands").set_value(False).run()
    training.radio(key="train_metric").set_value("accuracy").run()
    spec = charts(training)["train_replay_chart"]
    assert line_levels(spec) == pytest.approx(ACCURACY_LINES)
    assert any(BEST_PUBLISHED_NOTE in c.value for c in training.caption)


@pytest.fixture
def fewer_seeds(root, tmp_path, monkeypatch):
    """A copy of the sweep keeping only the report runs of ``seeds`` (and the quick runs)."""

    def copy(keep: tuple[int, ...]):
        target = tmp_path / f"keep-{len(keep)}"
        shutil.copytree(root, target)
        for model in MODEL_NAMES:
            for seed in set(SEEDS) - set(keep):
                shutil.rmtree(target / model / run_id(seed))
        monkeypatch.setenv("FMNIST_ARTIFACTS", str(target))
        return target

    return copy


def test_one_seed_says_how_to_get_more(fewer_seeds):
    target = fewer_seeds((0,))
    at = seedtools.open_page(target, "pages/overview.py")
    (line,) = [c.value for c in at.caption if COMMAND in c.value]
    assert line.startswith("Across seeds: Only one seed per model follows the report's protocol")
    assert "overview_seed_chart" not in charts(at)
    assert not [t for t in tables(at) if "Seeds" in t.columns]
    assert not any(m.value.startswith("**Across seeds**") for m in at.markdown)
    assert not any("paired t-test needs" in c.value for c in at.caption)
    assert any("McNemar" in box.value for box in [*at.success, *at.info])


def test_without_report_runs_the_bands_cannot_be_chosen(fewer_seeds):
    target = fewer_seeds(())
    at = seedtools.open_page(target, "pages/training.py")
    toggle = at.toggle(key="train_seed_bands")
    assert toggle.proto.disabled and COMMAND in toggle.proto.help
    assert "train_replay_chart" in charts(at)  # the quick runs' curves, as before
    at = seedtools.open_page(target, "pages/overview.py")
    assert any(c.value.startswith("Across seeds: No run follows") for c in at.caption)


PROBE = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("dashboard.py", default_timeout=120)
at.run()
errors = []
for page in ("pages/overview.py", "pages/roc.py", "pages/training.py"):
    at.switch_page(page).run()
    if page.endswith("training.py"):
        at.toggle(key="train_seed_bands").set_value(True).run()
    errors += [e.value for e in at.exception]
shown = sorted(c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart"))
print(json.dumps({"errors": errors, "shown": shown,
                  "heavy": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}))
"""


def test_seed_and_calibration_views_never_import_tensorflow(root):
    env = {**os.environ, "FMNIST_ARTIFACTS": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and result["heavy"] == []
    assert "train_seed_chart" in result["shown"]  # the bands were drawn in that process
