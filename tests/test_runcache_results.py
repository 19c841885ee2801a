"""Results kept with a run (core.runcache): metrics and curves, a pair's comparison, the
architecture, and the verdicts over seeds are computed once, read back exactly, and computed
again when the file is damaged or was made for other predictions; a cold Overview that reads
them imports neither SciPy nor scikit-learn."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from core import artifacts, metrics, runcache, seeds
from core.models import MODEL_NAMES
from tests import seedtools


@pytest.fixture
def runs(tiny_root, tmp_path):
    """A private copy of the tiny runs (their caches are written here), loaded."""
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns(runcache.CACHE_DIR))
    return {model: artifacts.load_run(model, root=root) for model in MODEL_NAMES}


def assert_same_evaluation(kept: metrics.Evaluation, fresh: metrics.Evaluation) -> None:
    assert (kept.n, kept.accuracy, kept.loss, kept.macro_auc) == (
        fresh.n, fresh.accuracy, fresh.loss, fresh.macro_auc
    )  # fmt: skip
    np.testing.assert_array_equal(kept.y_pred, fresh.y_pred)
    assert kept.y_pred.dtype == fresh.y_pred.dtype
    np.testing.assert_array_equal(kept.confusion, fresh.confusion)
    pd.testing.assert_frame_equal(kept.per_class, fresh.per_class)
    for a, b in zip(kept.roc, fresh.roc, strict=True):
        for name in ("fpr", "tpr", "thresholds"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.auc == b.auc or (np.isnan(a.auc) and np.isnan(b.auc))


def refuse(*args, **kwargs):
    raise AssertionError("computed again, though a result is kept")


def test_an_evaluation_is_computed_once_and_read_back_exactly(runs, monkeypatch):
    run = runs[MODEL_NAMES[0]]
    fresh = metrics.evaluate(run.y_true, run.y_prob)
    first = runcache.evaluation(run)
    assert runcache.cache_file(run, runcache.EVALUATION_FILE).is_file()
    assert_same_evaluation(first, fresh)
    counts = np.zeros((10, 10), dtype=int)  # the confusion matrix, counted here
    np.add.at(counts, (run.y_true, run.y_prob.argmax(axis=1)), 1)
    monkeypatch.setattr(metrics, "evaluate", refuse)
    kept = runcache.evaluation(run)
    assert_same_evaluation(kept, fresh)
    np.testing.assert_array_equal(kept.confusion, counts)
    info = next(i for i in artifacts.list_runs(run.model, run.path.parent.parent) if i.ok)
    assert_same_evaluation(runcache.stored_evaluation(info), fresh)  # a listing is enough


def test_a_damaged_or_foreign_evaluation_is_computed_again(runs):
    run = runs[MODEL_NAMES[0]]
    fresh = runcache.evaluation(run)
    path = runcache.cache_file(run, runcache.EVALUATION_FILE)
    with np.load(path) as npz:
        stored = {name: npz[name] for name in npz.files}
    changed = stored["confusion"].copy()
    changed[0, 0] += 1  # a whole file whose numbers are no longer what was written
    np.savez(path, **{**stored, "confusion": changed})
    assert runcache.stored_evaluation(run) is None
    assert_same_evaluation(runcache.evaluation(run), fresh)
    other = {**runcache.predictions_key(run), "predictions_sha256": "0" * 64}
    runcache.write(path, other, runcache._evaluation_arrays(fresh))  # made for other predictions
    assert runcache.stored_evaluation(run) is None
    path.write_bytes(b"not a zip file")
    assert_same_evaluation(runcache.evaluation(run), fresh)


def test_a_comparison_is_kept_per_pair(runs, monkeypatch):
    a, b = (runs[m] for m in MODEL_NAMES[:2])
    fresh = metrics.compare(a.y_true, a.y_prob, b.y_prob)
    assert asdict(runcache.comparison(a, b)) == asdict(fresh)
    monkeypatch.setattr(metrics, "compare", refuse)
    assert asdict(runcache.comparison(a, b)) == asdict(fresh)
    with pytest.raises(AssertionError, match="computed again"):
        runcache.comparison(b, a)  # another pair: not the kept one


def test_the_architecture_is_kept(runs):
    run = runs[MODEL_NAMES[1]]
    from core.predict import load_predictor

    model = load_predictor(run)
    first = runcache.architecture(run, lambda: model)
    pd.testing.assert_frame_equal(first.table, model.layer_table())
    assert (first.dot, first.params) == (model.to_dot(), model.total_params)
    kept = runcache.architecture(run, refuse)
    pd.testing.assert_frame_equal(kept.table, model.layer_table())
    assert (kept.dot, kept.params) == (first.dot, first.params)


@pytest.fixture
def seed_copy(seed_root, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(seed_root, root, ignore=shutil.ignore_patterns(runcache.CACHE_DIR))
    return root


def test_seed_summaries_and_verdicts_are_kept(seed_copy, monkeypatch):
    collected = seeds.collect(seed_copy)
    pair = tuple(MODEL_NAMES[:2])
    direct = seeds.summarize_collected(collected)  # every run loaded and scored
    kept = {model: seeds.summarize_kept(infos) for model, infos in collected.items() if infos}
    for model, summary in direct.items():
        pd.testing.assert_frame_equal(kept[model].per_seed, summary.per_seed)
        pd.testing.assert_frame_equal(kept[model].per_class_f1, summary.per_class_f1)
    expected = seeds.seed_verdicts(direct, pair)
    assert seeds.kept_seed_verdicts(collected, kept, pair, seed_copy) == expected
    assert seeds.kept_summaries(collected, seed_copy).keys() == direct.keys()
    monkeypatch.setattr(seeds, "seed_verdicts", refuse)
    monkeypatch.setattr(seeds, "summarize_kept", refuse)
    monkeypatch.setattr(metrics, "evaluate", refuse)
    kept = seeds.kept_summaries(collected, seed_copy)  # one file for every model's seeds
    for model, summary in direct.items():
        for name in ("per_seed", "per_class_f1", "summary", "class_summary"):
            pd.testing.assert_frame_equal(getattr(kept[model], name), getattr(summary, name))
    assert seeds.kept_seed_verdicts(collected, kept, pair, seed_copy) == expected
    fewer = {model: dict(list(infos.items())[:2]) for model, infos in collected.items()}
    with pytest.raises(AssertionError, match="computed again"):  # other runs: another key
        seeds.kept_seed_verdicts(fewer, kept, pair, seed_copy)


COLD_OVERVIEW = """
import gc, json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=120).run()
assert not at.exception, [e.value for e in at.exception]
# widgets.nav: GC off for the first run only, then on, with the first run's objects frozen
assert gc.isenabled() and gc.get_freeze_count() > 10_000, gc.get_freeze_count()
print(json.dumps({{"heavy": sorted(m for m in ("scipy", "sklearn", "onnxruntime", "tensorflow",
                                             "streamlit.emojis", "pandas")
                                   if m in sys.modules),
                   "successes": [s.value for s in at.success]}}))
"""


def test_a_cold_overview_reads_kept_results_and_imports_no_scipy_nor_pandas(seed_copy):
    """The first start computes and keeps; a later cold start (a fresh process) only reads."""
    code = COLD_OVERVIEW.format(app=seedtools.APP)
    env = {"FMNIST_ARTIFACTS": str(seed_copy), "PATH": "/usr/bin:/bin"}
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300, cwd=seedtools.APP.rsplit("/", 1)[0])  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = outputs
    assert "scipy" in first["heavy"]  # the first start computed the verdicts
    # The second read them: no SciPy, scikit-learn, model runtime, not even pandas (its
    # tables are Markdown, its numbers arrays).
    assert second["heavy"] == []
    assert second["successes"] == first["successes"]  # and says the same
