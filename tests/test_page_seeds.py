"""Several seeds on the pages, in AppTest: the Overview's mean ± std over seeds, its paired
verdict and per-class F1; the Training page's mean ± std bands; with one seed, how to get more.

The artifacts folder holds three report-protocol runs per model and one quick run per model
(tests/seedtools.py); every number is checked against scikit-learn, statistics and scipy on the
stored predictions and histories, read here without core.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from core import figures
from core.artifacts import HISTORY_FILE, PROJECT_DIR
from core.models import MODEL_NAMES, REGISTRY
from core.report import REPORT
from tests import seedtools
from tests.seedtools import SEEDS, charts, line_levels, run_id

LABELS = list(range(10))
NAMES = {model: REGISTRY[model].display_name for model in MODEL_NAMES}
COMMAND = "python -m core.train --model all --seeds 0-4"


@pytest.fixture(scope="module")
def root(tmp_path_factory, dataset):
    return seedtools.make_seed_root(tmp_path_factory.mktemp("seeds") / "artifacts", dataset)


@pytest.fixture(scope="module")
def expected(root) -> dict[str, dict[int, dict]]:
    """Per model, per seed: accuracy, log loss, macro F1 and per-class F1 by scikit-learn."""
    results = {}
    for model in MODEL_NAMES:
        results[model] = {}
        for seed in SEEDS:
            y_true, y_prob = seedtools.stored_predictions(root, model, run_id(seed))
            y_pred = y_prob.argmax(axis=1)
            results[model][seed] = {
                "accuracy": float(np.mean(y_pred == y_true)),
                "loss": float(skm.log_loss(y_true, y_prob, labels=LABELS)),
                "macro_f1": float(skm.f1_score(y_true, y_pred, average="macro", labels=LABELS)),
                "class_f1": skm.f1_score(y_true, y_pred, average=None, labels=LABELS),
            }
    return results


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


def table_with(at, column: str):
    (table,) = [d.value for d in at.dataframe if column in d.value.columns]
    return table


def mean_std(text: str) -> tuple[float, float]:
    mean, std = text.split(" ± ")
    return float(mean), float(std)


def check_mean_std(text: str, values: list[float]) -> None:
    mean, std = mean_std(text)
    assert mean == pytest.approx(statistics.mean(values), abs=5.1e-5)  # shown to 4 decimals
    assert std == pytest.approx(statistics.stdev(values), abs=5.1e-5)


def test_overview_table_is_the_mean_and_std_of_the_report_seeds(overview, expected):
    table = table_with(overview, "Seeds")
    assert list(table.index) == [NAMES[m] for m in MODEL_NAMES]
    for model in MODEL_NAMES:
        row = table.loc[NAMES[model]]
        for metric, column in (("accuracy", "Test accuracy"), ("loss", "Test loss"),
                               ("macro_f1", "Macro F1")):  # fmt: skip
            check_mean_std(row[column], [expected[model][s][metric] for s in SEEDS])
        assert row["Seeds"] == "3 (0, 1, 2)"  # the quick runs are left out


def test_overview_chart_has_every_seed_the_mean_and_the_reference_lines(overview, expected):
    spec = charts(overview)["overview_seed_chart"]
    for model in MODEL_NAMES:
        accuracies = [expected[model][s]["accuracy"] for s in SEEDS]
        (dots,) = [t for t in spec["data"] if t["name"] == f"{NAMES[model]}: each seed"]
        np.testing.assert_allclose(seedtools.array(dots["y"]), accuracies, atol=1e-12)
        (mean,) = [t for t in spec["data"] if t["name"].startswith(f"{NAMES[model]}: mean")]
        assert mean["y"][0] == pytest.approx(statistics.mean(accuracies), abs=1e-12)
        assert mean["error_y"]["array"][0] == pytest.approx(statistics.stdev(accuracies))
    levels = [0.835, REPORT["baseline"]["accuracy"], REPORT["residual"]["accuracy"]]
    assert line_levels(spec) == pytest.approx(sorted(levels))
    assert figures.BEST_PUBLISHED_NOTE in [c.value for c in overview.caption]


def test_overview_per_class_f1_across_seeds(overview, expected):
    table = table_with(overview, f"{NAMES['baseline']} F1")
    for model in MODEL_NAMES:
        for k, class_name in enumerate(table.index):
            values = [float(expected[model][s]["class_f1"][k]) for s in SEEDS]
            check_mean_std(table.loc[class_name, f"{NAMES[model]} F1"], values)


def test_overview_states_both_verdicts_and_what_each_is_about(overview, expected):
    diffs = [expected["residual"][s]["accuracy"] - expected["baseline"][s]["accuracy"]
             for s in SEEDS]  # fmt: skip
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    assert mean - half > 0  # the sweep was built so that the residual wins beyond the spread
    seed_verdict = (
        f"Across 3 seeds, {NAMES['residual']} is {mean * 100:.1f} ± {sd * 100:.1f} points more "
        f"accurate than {NAMES['baseline']} (paired by seed, 95% CI {(mean - half) * 100:.1f} "
        f"to {(mean + half) * 100:.1f} points; better in 3 of 3 seeds; "
    )
    successes = [s.value for s in overview.success]
    assert any(s.startswith(seed_verdict) for s in successes), successes
    # The chosen runs' verdict (McNemar, one test set) is still there.
    assert any("McNemar" in box.value for box in [*overview.success, *overview.info])
    notes = [m.value for m in overview.markdown]
    assert any(n.startswith("**The chosen runs**") and "same 10,000 test images" in n
               for n in notes)  # fmt: skip
    assert any(n.startswith("**Across seeds**") and "paired by seed" in n for n in notes)
    assert not any(COMMAND in c.value for c in overview.caption)


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
    levels = [0.835, REPORT["baseline"]["accuracy"], REPORT["residual"]["accuracy"]]
    assert line_levels(spec) == pytest.approx(sorted(levels))
    assert any(figures.BEST_PUBLISHED_NOTE in c.value for c in at.caption)
    at.radio(key="train_metric").set_value("loss").run()
    spec = charts(at)["train_seed_chart"]
    assert spec["layout"]["yaxis"]["title"]["text"] == "loss"
    assert line_levels(spec) == pytest.approx(sorted(REPORT[m]["loss"] for m in MODEL_NAMES))
    at.toggle(key="train_seed_bands").set_value(False).run()
    at.radio(key="train_metric").set_value("accuracy").run()
    assert "train_replay_chart" in charts(at) and at.multiselect(key="train_overlay")


def test_training_runs_chart_has_the_accuracy_references(training):
    training.toggle(key="train_seed_bands").set_value(False).run()
    training.radio(key="train_metric").set_value("accuracy").run()
    spec = charts(training)["train_replay_chart"]
    levels = [0.835, REPORT["baseline"]["accuracy"], REPORT["residual"]["accuracy"]]
    assert line_levels(spec) == pytest.approx(sorted(levels))
    assert any(figures.BEST_PUBLISHED_NOTE in c.value for c in training.caption)


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
    assert not [d for d in at.dataframe if "Seeds" in d.value.columns]
    assert not any(m.value.startswith("**Across seeds**") for m in at.markdown)
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
