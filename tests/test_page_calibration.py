"""The ROC page's Calibration section in AppTest: reliability chart, ECE per class, confident
mistakes and why the more accurate model can have the higher test loss.

The chosen runs are the seed-0 runs of tests/seedtools.py's sweep: the residual model makes
fewer mistakes than the baseline but makes them with 93-99.9% confidence. Every number is
checked against a computation from the stored probabilities without core (tests/seedtools.py).
The tables are core.calibration's (whose numbers tests/test_calibration.py checks on the same
sweep): here, that the page shows them, for the runs chosen in the sidebar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import artifacts, calibration
from core.models import MODEL_NAMES, REGISTRY
from tests import seedtools
from tests.seedtools import binned_ece, charts, run_id

NAMES = {model: REGISTRY[model].display_name for model in MODEL_NAMES}


@pytest.fixture(scope="module")
def root(seed_root):
    return seed_root


@pytest.fixture(scope="module")
def expected(root) -> dict[str, dict]:
    return seedtools.expected_calibration(root, seed=0)


@pytest.fixture(scope="module")
def app(root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_ARTIFACTS", str(root))
        at = seedtools.open_page(root, "pages/roc.py")
        at.session_state["roc_section"] = "Calibration"  # a lazy tab: drawn only when open
        at.run()
        yield at


def table_named(at, index_name: str):
    (table,) = [d.value for d in at.table if d.value.index.name == index_name]
    return table


def test_page_shows_the_calibration_tables_of_the_chosen_runs(app, root):
    """The ECE per class and the confident mistakes: core.calibration's tables of seed 0."""
    runs = {m: artifacts.load_run(m, run_id(0), root=root) for m in MODEL_NAMES}
    results = {m: calibration.calibrate(r.y_true, r.y_prob) for m, r in runs.items()}
    shown = table_named(app, "expected calibration error")
    pd.testing.assert_frame_equal(shown, calibration.ece_table(results))
    pd.testing.assert_frame_equal(table_named(app, "test set"), calibration.mistakes_table(results))


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


def test_reliability_chart_is_the_calibration_tabs_only_chart(app, expected):
    shown = charts(app)
    assert list(shown) == ["roc_reliability_chart"]  # the other tabs are not drawn
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
