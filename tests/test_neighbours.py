"""core.neighbours: suspect labels on hand-made cases, exact neighbours against a brute-force
computation, and the training-feature cache inside a run (written, reused, invalidated,
and skipped where the run folder cannot be written)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from core import artifacts
from core.data import CLASS_NAMES, NUM_CLASSES, normalise
from core.neighbours import (
    FEATURES_FILE,
    compute_features,
    features_path,
    nearest_training,
    suspect_labels,
    suspect_table,
    train_features,
)
from core.predict import load_predictor
from core.runcache import CACHE_DIR


def prob_rows(rows: list[tuple[int, float]]) -> np.ndarray:
    """Probabilities (n, 10): ``p`` on class ``c``, the rest spread evenly."""
    prob = np.empty((len(rows), NUM_CLASSES))
    for i, (c, p) in enumerate(rows):
        prob[i] = (1 - p) / (NUM_CLASSES - 1)
        prob[i, c] = p
    return prob


# ----------------------------------------------------------------------------------------------
# Suspect labels

Y_TRUE = np.array([0, 1, 2, 3, 4, 5, 6])
PROBS = {
    "a": prob_rows([(7, 0.95), (1, 0.99), (5, 0.97), (8, 0.90), (9, 0.99), (2, 0.999), (0, 0.93)]),
    "b": prob_rows([(7, 0.91), (1, 0.99), (5, 0.85), (8, 0.97), (8, 0.99), (2, 0.98), (0, 0.99)]),
}
# 0: both say 7 (suspect)       1: both right           2: b below 0.9
# 3: a exactly at 0.9 (suspect) 4: they disagree        5: both say 2 (suspect)
# 6: both say 0 (suspect)


def test_suspect_labels_by_hand():
    np.testing.assert_array_equal(suspect_labels(Y_TRUE, PROBS), [0, 3, 5, 6])
    np.testing.assert_array_equal(suspect_labels(Y_TRUE, PROBS, threshold=0.92), [5, 6])
    np.testing.assert_array_equal(suspect_labels(Y_TRUE, {"a": PROBS["a"]}), [0, 2, 3, 4, 5, 6])
    assert suspect_labels(Y_TRUE, PROBS, threshold=1.0).size == 0


def test_suspect_labels_refuse_bad_input():
    with pytest.raises(ValueError, match="no model probabilities"):
        suspect_labels(Y_TRUE, {})
    with pytest.raises(ValueError, match=r"b: probabilities of shape \(6, 10\) for 7 labels"):
        suspect_labels(Y_TRUE, {"a": PROBS["a"], "b": PROBS["b"][:6]})
    with pytest.raises(ValueError, match="threshold"):
        suspect_labels(Y_TRUE, PROBS, threshold=0)


def test_suspect_table_is_sorted_by_the_lowest_confidence():
    table = suspect_table(Y_TRUE, PROBS)
    assert list(table.columns) == [
        "index",
        "true",
        "predicted",
        "a confidence",
        "b confidence",
    ]
    # lowest confidences: 0 → 0.91, 3 → 0.90, 5 → 0.98, 6 → 0.93
    assert table["index"].tolist() == [5, 6, 0, 3]
    assert table["true"].tolist() == [CLASS_NAMES[i] for i in (5, 6, 0, 3)]
    assert table["predicted"].tolist() == [CLASS_NAMES[i] for i in (2, 0, 7, 8)]
    np.testing.assert_allclose(table["a confidence"], [0.999, 0.93, 0.95, 0.90])
    np.testing.assert_allclose(table["b confidence"], [0.98, 0.99, 0.91, 0.97])
    tied = {"a": prob_rows([(3, 0.95)] * 3), "b": prob_rows([(3, 0.95)] * 3)}
    assert suspect_table(np.zeros(3, int), tied)["index"].tolist() == [0, 1, 2]
    assert suspect_table(Y_TRUE, PROBS, threshold=1.0).empty


def test_shipped_runs_have_a_few_suspects():
    runs = {name: artifacts.load_run(name) for name in ("baseline", "residual")}
    y_true = runs["baseline"].y_true
    probs = {name: run.y_prob for name, run in runs.items()}
    index = suspect_labels(y_true, probs)
    brute = [
        i
        for i in range(len(y_true))
        if len({int(p[i].argmax()) for p in probs.values()}) == 1
        and int(probs["baseline"][i].argmax()) != y_true[i]
        and min(float(p[i].max()) for p in probs.values()) >= 0.9
    ]
    np.testing.assert_array_equal(index, brute)
    assert 0 < len(index) < 0.05 * len(y_true)


# ----------------------------------------------------------------------------------------------
# Nearest neighbours


def brute_force(query, train, k, metric):
    dist = cdist(np.atleast_2d(query), train, metric=metric)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]  # equal distances: lower index first
    return order, np.take_along_axis(dist, order, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(("m", "n", "k"), [(1, 50, 8), (7, 20, 20), (300, 500, 5), (3, 5000, 1)])
def test_nearest_training_matches_brute_force(metric, m, n, k):
    rng = np.random.default_rng(m * n + k)
    train = rng.normal(size=(n, 6))
    query = rng.normal(size=(m, 6))
    indices, distances = nearest_training(query, train, k=k, metric=metric)
    want_indices, want_distances = brute_force(query, train, k, metric)
    assert indices.shape == distances.shape == (m, k) and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(distances, want_distances, rtol=1e-9, atol=1e-9)


def test_float32_features_and_one_query():
    rng = np.random.default_rng(5)
    train = np.abs(rng.normal(size=(3000, 32))).astype(np.float32)  # like relu features
    query = np.abs(rng.normal(size=32)).astype(np.float32)  # one query, (d,)
    for metric in ("cosine", "euclidean"):
        indices, distances = nearest_training(query, train, k=10, metric=metric)
        want_indices, want_distances = brute_force(
            query.astype(np.float64), train.astype(np.float64), 10, metric
        )
        np.testing.assert_array_equal(indices, want_indices)
        np.testing.assert_allclose(distances, want_distances, rtol=1e-12, atol=1e-12)


def test_ties_go_to_the_lower_index():
    train = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [2, 0]], dtype=np.float32)
    query = np.array([[1, 0]], dtype=np.float32)
    indices, distances = nearest_training(query, train, k=3, metric="cosine")
    assert indices.tolist() == [[0, 2, 3]]  # 0, 2, 3 and 4 all point the same way
    np.testing.assert_allclose(distances, 0, atol=1e-12)
    indices, distances = nearest_training(query, train, k=5, metric="euclidean")
    assert indices.tolist() == [[0, 2, 3, 4, 1]]
    np.testing.assert_allclose(distances, [[0, 0, 0, 1, np.sqrt(2)]])
    many = np.vstack([np.ones((100, 3)), np.zeros((1, 3))])  # more ties than the shortlist
    indices, _ = nearest_training(np.ones((2, 3)), many[::-1], k=8, metric="euclidean")
    assert indices.tolist() == [list(range(1, 9))] * 2


def test_a_zero_vector_is_at_cosine_distance_one():
    train = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    indices, distances = nearest_training([[1.0, 0.0]], train, k=3)
    assert indices.tolist() == [[1, 0, 2]]
    np.testing.assert_allclose(distances, [[0, 1, 2]])
    _, distances = nearest_training([[0.0, 0.0]], train, k=3)
    np.testing.assert_allclose(distances, [[1, 1, 1]])


def test_nearest_training_refuses_bad_input():
    train = np.zeros((5, 3))
    with pytest.raises(ValueError, match="k=6 neighbours asked for, but there are only 5 rows"):
        nearest_training(np.zeros((1, 3)), train, k=6)
    with pytest.raises(ValueError, match="positive integer"):
        nearest_training(np.zeros((1, 3)), train, k=0)
    with pytest.raises(ValueError, match="same d"):
        nearest_training(np.zeros((1, 4)), train)
    with pytest.raises(ValueError, match="unknown metric 'manhattan'"):
        nearest_training(np.zeros((1, 3)), train, k=2, metric="manhattan")
    with pytest.raises(ValueError, match="finite"):
        nearest_training(np.full((1, 3), np.nan), train, k=2)


def test_one_query_against_60000_is_fast():
    train = np.abs(np.random.default_rng(6).normal(size=(60_000, 128))).astype(np.float32)
    query = train[:1] + 0.01
    seconds = []
    for _ in range(7):
        start = time.perf_counter()
        indices, _ = nearest_training(query, train, k=8)
        seconds.append(time.perf_counter() - start)
    assert indices[0, 0] == 0
    assert np.median(seconds) < 0.1  # ~10-25 ms measured on 2 busy cores


# ----------------------------------------------------------------------------------------------
# Training features, cached in the run


@pytest.fixture
def run_copy(tiny_root, tmp_path):
    """A writable copy of the tiny baseline run, loaded (and verified) from its new place."""
    source = artifacts.load_run("baseline", root=tiny_root)
    root = tmp_path / "artifacts"
    # Without its cache/: other tests' pages may have filled the shared run's (metrics, ...)
    shutil.copytree(
        source.path, root / "baseline" / source.run_id, ignore=shutil.ignore_patterns("cache")
    )
    yield artifacts.load_run("baseline", source.run_id, root=root)
    for folder in (root / "baseline" / source.run_id, root / "baseline" / source.run_id / "cache"):
        if folder.is_dir():
            folder.chmod(0o755)  # let pytest remove what a test made read-only


@pytest.fixture
def counted(run_copy):
    """The run's model, counting the images its ``penultimate`` sees."""
    model = load_predictor(run_copy)
    seen = []
    original = model.penultimate

    def penultimate(x):
        seen.append(len(x))
        return original(x)

    model.penultimate = penultimate
    return model, seen, original


@pytest.fixture(scope="module")
def x_small(dataset) -> np.ndarray:
    return dataset.x_train[:300]


def test_features_are_the_penultimate_layer_and_get_cached(run_copy, counted, x_small):
    model, seen, penultimate = counted
    fractions = []
    features = train_features(run_copy, model, x_small, progress=fractions.append)
    assert features.shape == (300, 128) and features.dtype == np.float32
    np.testing.assert_array_equal(features, penultimate(normalise(x_small)[..., 0]))
    assert sum(seen) == 300 and fractions[-1] == 1.0
    path = features_path(run_copy)
    assert path == run_copy.path / CACHE_DIR / FEATURES_FILE and path.is_file()
    assert os.listdir(path.parent) == [FEATURES_FILE]  # no temporary file left behind
    with np.load(path) as npz:
        assert str(npz["model_sha256"]) == run_copy.manifest.files["model.keras"]

    written = path.stat().st_mtime_ns
    again = train_features(run_copy, model, x_small, progress=fractions.append)
    np.testing.assert_array_equal(again, features)
    assert sum(seen) == 300 and len(fractions) == 1  # read back, not recomputed
    assert path.stat().st_mtime_ns == written
    artifacts.verify_run(run_copy.path, "baseline")  # the cache folder does not upset the run


def test_a_changed_model_or_data_set_recomputes(run_copy, counted, x_small):
    model, seen, _ = counted
    features = train_features(run_copy, model, x_small)
    other_sha = "0" * 64
    changed = replace(
        run_copy,
        manifest=replace(
            run_copy.manifest, files={**run_copy.manifest.files, "model.keras": other_sha}
        ),
    )
    np.testing.assert_array_equal(train_features(changed, model, x_small), features)
    assert sum(seen) == 600
    with np.load(features_path(run_copy)) as npz:
        assert str(npz["model_sha256"]) == other_sha  # the cache now belongs to the new model
    train_features(run_copy, model, x_small)
    assert sum(seen) == 900

    fewer = train_features(run_copy, model, x_small[:200])
    np.testing.assert_allclose(fewer, features[:200], rtol=1e-5, atol=1e-5)  # other batches
    assert sum(seen) == 1100
    flipped = x_small.copy()
    flipped[0, 0, 0] ^= 1  # one pixel: another data set
    train_features(run_copy, model, flipped)
    assert sum(seen) == 1400


def test_a_damaged_cache_is_recomputed(run_copy, counted, x_small):
    model, seen, _ = counted
    features = train_features(run_copy, model, x_small)
    path = features_path(run_copy)
    path.write_bytes(path.read_bytes()[:1000])
    np.testing.assert_array_equal(train_features(run_copy, model, x_small), features)
    assert sum(seen) == 600
    np.testing.assert_array_equal(train_features(run_copy, model, x_small), features)
    assert sum(seen) == 600  # rewritten whole


def test_an_unwritable_run_still_gets_its_features(run_copy, counted, x_small):
    model, seen, penultimate = counted
    expected = penultimate(normalise(x_small)[..., 0])
    (run_copy.path / CACHE_DIR).write_text("not a folder")  # mkdir fails, even for root
    for _ in range(2):
        np.testing.assert_array_equal(train_features(run_copy, model, x_small), expected)
    assert sum(seen) == 600  # computed each time, nothing cached

    (run_copy.path / CACHE_DIR).unlink()
    run_copy.path.chmod(stat.S_IRUSR | stat.S_IXUSR)  # read-only (root writes regardless)
    np.testing.assert_array_equal(train_features(run_copy, model, x_small), expected)
    if not os.access(run_copy.path, os.W_OK):
        assert not (run_copy.path / CACHE_DIR).exists()


def test_compute_features_refuses_floats(run_copy):
    with pytest.raises(ValueError, match="uint8 images"):
        compute_features(load_predictor(run_copy), np.zeros((2, 28, 28), np.float32))
