"""The ROC page's Calibration section in AppTest: reliability chart, ECE per class, confident
mistakes and why the more accurate model can have the higher test loss.

The chosen runs are the seed-0 runs of tests/seedtools.py's sweep: the residual model makes
fewer mistakes than the baseline but makes them with 93-99.9% confidence. Every number is
checked against a computation written here from the stored probabilities, without core.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.models import MODEL_NAMES, REGISTRY
from tests import seedtools
from tests.seedtools import charts, run_id

BINS = 15
NAMES = {model: REGISTRY[model].display_name for model in MODEL_NAMES}


def binned_ece(values: np.ndarray, outcomes: np.ndarray) -> tuple[float, list, list]:
    """ECE over equal-width bins (lo, hi] (the first closed at 0), written out bin by bin; and
    the non-empty bins' mean value and mean outcome."""
    ece, mean_values, mean_outcomes = 0.0, [], []
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        inside = (values <= hi) & ((values > lo) if b else (values >= 0))
        if inside.any():
            gap = abs(outcomes[inside].mean() - values[inside].mean())
            ece += inside.sum() / values.size * gap
            mean_values.append(values[inside].mean())
            mean_outcomes.append(outcomes[inside].mean())
    return ece, mean_values, mean_outcomes


@pytest.fixture(scope="module")
def root(tmp_path_factory, dataset):
    return seedtools.make_seed_root(tmp_path_factory.mktemp("calibration") / "artifacts", dataset)


@pytest.fixture(scope="module")
def expected(root) -> dict[str, dict]:
    results = {}
    for model in MODEL_NAMES:
        y_true, y_prob = seedtools.stored_predictions(root, model, run_id(0))
        confidence = y_prob.max(axis=1)
        right = y_prob.argmax(axis=1) == y_true
        top, mean_confidence, accuracy_per_bin = binned_ece(confidence, right.astype(float))
        classes = [binned_ece(y_prob[:, k], (y_true == k).astype(float))[0] for k in range(10)]
        p_true = np.clip(y_prob[np.arange(y_true.size), y_true], 1e-15, 1)
        losses = -np.log(p_true)
        confident = ~right & (confidence >= 0.9)
        results[model] = {
            "accuracy": right.mean(),
            "loss": losses.mean(),
            "ece": [top, *classes],
            "bins": (mean_confidence, accuracy_per_bin),
            "confident_share": confident.mean(),
            "confident_of_mistakes": confident.sum() / (~right).sum(),
            "confident_loss_share": losses[confident].sum() / losses.sum(),
            "mistakes_loss_share": losses[~right].sum() / losses.sum(),
        }
    return results


@pytest.fixture(scope="module")
def app(root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_ARTIFACTS", str(root))
        yield seedtools.open_page(root, "pages/roc.py")


def table_named(at, index_name: str):
    (table,) = [d.value for d in at.dataframe if d.value.index.name == index_name]
    return table


def test_ece_table_matches_an_independent_computation(app, expected):
    table = table_named(app, "expected calibration error")
    assert list(table.columns) == [NAMES[m] for m in MODEL_NAMES]
    assert table.index[0] == "All classes (top label)" and len(table) == 11
    for model in MODEL_NAMES:
        np.testing.assert_allclose(table[NAMES[model]], expected[model]["ece"], atol=1e-9)


def test_confident_mistakes_and_their_share_of_the_loss(app, expected):
    table = table_named(app, "test set")
    rows = {
        "Test accuracy": "accuracy",
        "Test loss (mean log loss)": "loss",
        "Confident mistakes (≥ 90%): share of test images": "confident_share",
        "Confident mistakes (≥ 90%): share of all mistakes": "confident_of_mistakes",
        "Confident mistakes (≥ 90%): share of the total log loss": "confident_loss_share",
        "All mistakes: share of the total log loss": "mistakes_loss_share",
    }
    assert list(table.index) == list(rows)
    for model in MODEL_NAMES:
        for row, key in rows.items():
            assert table.loc[row, NAMES[model]] == pytest.approx(expected[model][key], abs=1e-9)
    # Built so: every residual mistake is confident, no baseline mistake is.
    assert table.loc["Confident mistakes (≥ 90%): share of all mistakes"].tolist() == [0.0, 1.0]


def test_text_explains_higher_accuracy_with_higher_loss(app, expected):
    base, res = expected["baseline"], expected["residual"]
    assert res["accuracy"] > base["accuracy"] and res["loss"] > base["loss"]
    (text,) = [i.value for i in app.info if "calibration error" in i.value]
    assert text.startswith(
        f"{NAMES['residual']} is more accurate than {NAMES['baseline']} "
        f"({res['accuracy']:.2%} vs {base['accuracy']:.2%}) and yet has the higher test loss "
        f"({res['loss']:.3f} vs {base['loss']:.3f})."
    )
    assert f"{res['confident_share']:.1%} of {NAMES['residual']}'s" in text
    assert f"carrying {res['confident_loss_share']:.0%} of its." in text
    assert "a few very confident mistakes can outweigh a higher accuracy" in text


def test_reliability_chart_follows_the_roc_charts(app, expected):
    shown = charts(app)
    assert list(shown)[-1] == "roc_reliability_chart"  # after the ROC content
    spec = shown["roc_reliability_chart"]
    for model in MODEL_NAMES:
        ece = expected[model]["ece"][0]
        (line,) = [t for t in spec["data"] if t["name"] == f"{NAMES[model]} (ECE {ece:.1%})"]
        mean_confidence, accuracy = expected[model]["bins"]
        np.testing.assert_allclose(seedtools.array(line["x"]), mean_confidence, atol=1e-9)
        np.testing.assert_allclose(seedtools.array(line["y"]), accuracy, atol=1e-9)


def test_calibration_follows_the_chosen_runs(app, root, expected):
    """Picking another seed's run in the sidebar recomputes the section for that run."""
    app.selectbox(key="picker_residual").set_value(run_id(1)).run()
    assert not app.exception
    y_true, y_prob = seedtools.stored_predictions(root, "residual", run_id(1))
    confidence = y_prob.max(axis=1)
    right = (y_prob.argmax(axis=1) == y_true).astype(float)
    table = table_named(app, "expected calibration error")
    assert table.loc["All classes (top label)", NAMES["residual"]] == pytest.approx(
        binned_ece(confidence, right)[0], abs=1e-9
    )
    assert table.loc["All classes (top label)", NAMES["baseline"]] == pytest.approx(
        expected["baseline"]["ece"][0], abs=1e-9
    )
    app.selectbox(key="picker_residual").set_value(run_id(0)).run()
