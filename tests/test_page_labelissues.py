"""Label issues in AppTest on the shipped runs and the real test images: the gallery's choice of
rule and the Map page's table, each against a direct computation (cleanlab called here itself,
brute-force pixel distances), and the inspector's nearest training images in pixel space.

The training images are cut to a subset that keeps the near-duplicates' twins (the search over
all 60,000 takes ~16 s and is tested in tests/test_labelissues.py)."""

from __future__ import annotations

import numpy as np
import pytest
from cleanlab.filter import find_label_issues

from core import artifacts, labelissues
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES
from tests import apptools
from tests.apptools import gallery_count
from tests.test_labelissues import KNOWN_NEAR
from widgets import explain as explain_view

SHIRT, TSHIRT, TROUSER = (CLASS_NAMES.index(c) for c in ("Shirt", "T-shirt/top", "Trouser"))


@pytest.fixture(scope="module")
def runs(shipped_root):
    return {m: artifacts.load_run(m, root=shipped_root) for m in MODEL_NAMES}


@pytest.fixture(scope="module")
def subset(dataset):
    """Training indices searched: the near-duplicates' twins, then the first 2,000 images."""
    return np.unique([*KNOWN_NEAR.values(), *range(2000)])


@pytest.fixture
def small_train(dataset, subset, monkeypatch):
    x, y = dataset.x_train[subset], dataset.y_train[subset]
    monkeypatch.setattr(explain_view, "train_images", lambda: (x, y))
    return x, y


def nearest_distance(dataset, x_train, query):
    """Each query's nearest training image and distance, by float64 expanded squares."""
    q = dataset.x_test[query].reshape(len(query), -1) / 255.0
    t = x_train.reshape(len(x_train), -1) / 255.0
    squared = (q**2).sum(1)[:, None] - 2 * q @ t.T + (t**2).sum(1)
    return squared.argmin(axis=1), np.sqrt(np.maximum(squared.min(axis=1), 0))


@pytest.fixture(scope="module")
def expected(runs, dataset, subset):
    """The test images each rule flags, computed here."""
    x_train = dataset.x_train[subset]
    y_true = runs["baseline"].y_true
    probs = {m: r.y_prob for m, r in runs.items()}
    preds = {m: p.argmax(axis=1) for m, p in probs.items()}
    agree = preds["baseline"] != y_true
    for m, p in probs.items():
        agree &= (preds[m] == preds["baseline"]) & (p.max(axis=1) >= 0.9)
    mean = (probs["baseline"] + probs["residual"]) / 2
    cleanlab = find_label_issues(y_true, mean)  # a boolean mask, cleanlab's own default
    _, distance = nearest_distance(dataset, x_train, np.arange(len(y_true)))
    return {
        "agree": set(np.flatnonzero(agree).tolist()),
        "cleanlab": set(np.flatnonzero(cleanlab).tolist()),
        "duplicate": set(np.flatnonzero(distance < labelissues.NEAR_DUPLICATE_DISTANCE).tolist()),
    }


def test_gallery_filters_by_each_rule(shipped_root, runs, expected, small_train, monkeypatch):
    assert expected["duplicate"] == set(KNOWN_NEAR)  # the twins are in the subset
    y_true = runs["baseline"].y_true
    pred = runs["baseline"].y_prob.argmax(axis=1)
    at = apptools.open_page(shipped_root, monkeypatch, "pages/confusion.py")
    rule = at.selectbox(key="confusion_gallery_suspects")
    assert rule.value == "none"
    everything = gallery_count(at)
    in_cell = set(np.flatnonzero((y_true == SHIRT) & (pred == TSHIRT)).tolist())  # opening cell
    assert everything == len(in_cell)
    for name in ("agree", "cleanlab"):
        at.selectbox(key="confusion_gallery_suspects").set_value(name).run()
        assert not at.exception
        want = len(in_cell & expected[name])
        assert 0 < want < everything
        assert gallery_count(at) == want, name
    # near-duplicates: the trousers' diagonal cell holds some
    at.session_state["confusion_cell"] = (TROUSER, TROUSER, "baseline")
    at.selectbox(key="confusion_gallery_suspects").set_value("duplicate").run()
    assert not at.exception
    trousers = set(np.flatnonzero((y_true == TROUSER) & (pred == TROUSER)).tolist())
    want = len(trousers & expected["duplicate"])
    assert want > 0
    assert gallery_count(at) == want
    assert labelissues.cache_path(shipped_root).is_file()  # searched once, kept in the cache


def test_map_table_follows_the_rule_and_inspects_a_near_duplicate(
    shipped_root, runs, dataset, subset, expected, small_train, monkeypatch
):
    x_train, y_train = small_train
    at = apptools.open_page(shipped_root, monkeypatch, "pages/map.py")
    assert at.selectbox(key="map_issues_rule").value == "agree"
    tables = {}
    for name in ("agree", "cleanlab", "duplicate"):
        at.selectbox(key="map_issues_rule").set_value(name).run()
        assert not at.exception
        (table,) = at.dataframe
        tables[name] = table.value
        assert set(table.value["index"].tolist()) == expected[name], name
    ranked = tables["cleanlab"]
    mean = (runs["baseline"].y_prob + runs["residual"].y_prob) / 2
    own = mean[ranked["index"], runs["baseline"].y_true[ranked["index"]]]
    assert np.all(np.diff(own) >= 0)  # least believed label first
    twins = tables["duplicate"]
    assert {int(i): int(subset[j]) for i, j in zip(twins["index"], twins["training image"],
                                                 strict=True)} == KNOWN_NEAR  # fmt: skip
    assert twins["same label"].all()
    # the surest near-duplicate, inspected: its twin in pixel space, with label and distance
    index = int(twins["index"].iloc[0])
    at.session_state["map_picked"] = index
    at.run()
    assert not at.exception
    nearest, distance = nearest_distance(dataset, x_train, np.array([index]))
    twin = int(nearest[0])
    warnings = " ".join(w.value for w in at.warning)
    assert f"Near-duplicate of training image {twin} (distance {distance[0]:.3f})" in warnings
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert f"#{twin} {CLASS_NAMES[int(y_train[twin])]} · {distance[0]:.3f}" in captions
