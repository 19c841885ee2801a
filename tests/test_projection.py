"""core.projection and core.figures.map: maps of real test images through tiny trained models,
checked against numpy's SVD and umap-learn called directly; the cache on disk; clicks read back."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import artifacts, figures, projection, runcache
from core.data import CLASS_NAMES
from core.predict import load_predictor

PROJECT = Path(__file__).resolve().parent.parent
N = 300  # test images per small run: the first N of the real test set


def small_run(tiny_root: Path, model: str, root: Path, n: int = N) -> artifacts.Run:
    """A copy of a tiny run evaluated on the first ``n`` test images only (a valid run)."""
    src = artifacts.load_run(model, root=tiny_root)
    with artifacts.RunWriter(model, src.run_id, root) as writer:
        for name in (artifacts.MODEL_FILE, artifacts.HISTORY_FILE, artifacts.LIVE_LOG):
            shutil.copyfile(src.path / name, writer.file(name))
        writer.save_predictions(src.y_true[:n], src.y_prob[:n])
        writer.commit(replace(src.manifest, test_metrics=replace(src.manifest.test_metrics, n=n)))
    return artifacts.load_run(model, src.run_id, root)


def replace_model(run: artifacts.Run, other: artifacts.Run) -> artifacts.Run:
    """Put ``other``'s model file into ``run`` (as a retrain would) and reload the run."""
    shutil.copyfile(other.path / artifacts.MODEL_FILE, run.path / artifacts.MODEL_FILE)
    files = {**run.manifest.files, artifacts.MODEL_FILE: other.manifest.model_sha256}
    manifest = replace(run.manifest, files=files)
    (run.path / artifacts.MANIFEST).write_text(json.dumps(manifest.to_dict()))
    return artifacts.load_run(run.model, run.run_id, run.path.parent.parent)


def svd_pca(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent PCA: the centred features' SVD; returns coordinates (n, 2) and variance ratio."""
    centred = features.astype(np.float64) - features.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2], (s**2 / (s**2).sum())[:2]


def assert_same_up_to_sign(got: np.ndarray, want: np.ndarray) -> None:
    for axis in range(2):
        sign = np.sign(got[:, axis] @ want[:, axis])  # an axis' direction is arbitrary
        np.testing.assert_allclose(got[:, axis], sign * want[:, axis], rtol=1e-3, atol=1e-3)


class Spy:
    """Wraps the real ``projection.test_features`` and counts calls: computing, not reading."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = projection.test_features

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(projection, "test_features", counted)


def cache_files(run: artifacts.Run) -> list[str]:
    folder = run.path / runcache.CACHE_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def images(dataset) -> np.ndarray:
    return dataset.x_test[:N]  # (N, 28, 28) uint8


@pytest.fixture
def run(tiny_root, tmp_path) -> artifacts.Run:
    return small_run(tiny_root, "baseline", tmp_path)


# ----------------------------------------------------------------------------------------------
# Features and PCA


def test_features_are_the_penultimate_activations(run, images):
    engine = load_predictor(run)
    features = projection.test_features(run, engine, images)
    assert features.shape == (N, 128) and features.dtype == np.float32
    np.testing.assert_array_equal(features, engine.penultimate(images / 255.0))
    np.testing.assert_array_equal(projection.test_features(run, None, images), features)
    with pytest.raises(ValueError, match=r"predictions for 300 test images, got 299 images"):
        projection.test_features(run, engine, images[:-1])
    with pytest.raises(ValueError, match=r"expected the test images as uint8"):
        projection.test_features(run, engine, images / 255.0)


@pytest.mark.parametrize("model", ["baseline", "residual"])
def test_pca_is_scikit_learns(model, tiny_root, tmp_path, images):
    """The hand-written PCA against scikit-learn's (what it stands in for): the same
    coordinates, the same orientation, the same shares of the variance."""
    from sklearn.decomposition import PCA

    run = small_run(tiny_root, model, tmp_path)
    real = load_predictor(run).penultimate(images / 255.0)  # (N, d) ReLU features
    scaled = np.random.default_rng(0).normal(size=(500, 12)) * np.geomspace(50, 0.1, 12) + 3
    for features in (real, scaled.astype(np.float32)):
        proj = projection.project_features(features, "pca")
        params = projection.PCA_PARAMS
        pca = PCA(n_components=params["n_components"], svd_solver=params["svd_solver"])
        want = pca.fit_transform(features.astype(np.float64))
        assert_same_up_to_sign(proj.coords, want)
        # and the same orientation (svd_flip's): maps cached before are the same maps
        np.testing.assert_allclose(proj.coords, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(proj.explained_variance, pca.explained_variance_ratio_,
                                   rtol=1e-6)  # fmt: skip


def test_pca_does_not_import_scikit_learn():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from core import projection\n"
        "features = np.random.default_rng(0).random((50, 8), dtype=np.float32)\n"
        "assert projection.project_features(features, 'pca').coords.shape == (50, 2)\n"
        "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("model", ["baseline", "residual"])
def test_pca_matches_svd_and_is_cached_then_reused(model, tiny_root, tmp_path, images, monkeypatch):
    run = small_run(tiny_root, model, tmp_path)
    engine = load_predictor(run)
    want, ratio = svd_pca(engine.penultimate(images / 255.0))
    spy = Spy(monkeypatch)
    assert projection.cached(run, "pca") is None
    first = projection.project(run, engine, images, "pca")
    assert spy.calls == 1 and not first.from_cache
    assert first.method == "pca" and first.coords.shape == (N, 2)
    assert first.coords.dtype == np.float32 and first.params == projection.PCA_PARAMS
    assert_same_up_to_sign(first.coords, want)
    np.testing.assert_allclose(first.explained_variance, ratio, rtol=1e-4)
    assert cache_files(run) == ["projection-pca.npz"]  # no temporary file left behind
    file = projection.cache_path(run, "pca")
    before = file.stat()

    again = projection.project(run, None, images, "pca")  # no model needed to read the cache
    assert spy.calls == 1 and again.from_cache
    np.testing.assert_array_equal(again.coords, first.coords)
    assert again.explained_variance == pytest.approx(first.explained_variance)
    assert again.seconds == pytest.approx(first.seconds)  # as measured when it was computed
    assert (file.stat().st_ino, file.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    for read in (projection.cached(run, "pca"), projection.cached(run, "pca", images)):
        assert read.from_cache
        np.testing.assert_array_equal(read.coords, first.coords)
    assert projection.cached(run, "umap") is None


def test_a_new_model_invalidates_the_cache(tiny_root, tmp_path, images, monkeypatch):
    run = small_run(tiny_root, "baseline", tmp_path)
    old = projection.project(run, None, images, "pca")
    other = artifacts.load_run("residual", root=tiny_root)
    run = replace_model(run, other)
    assert projection.cached(run, "pca") is None
    spy = Spy(monkeypatch)
    new = projection.project(run, None, images, "pca")
    assert spy.calls == 1 and not new.from_cache
    want, _ = svd_pca(load_predictor(other).penultimate(images / 255.0))  # (N, 64) features
    assert_same_up_to_sign(new.coords, want)
    assert not np.allclose(np.abs(new.coords), np.abs(old.coords), atol=1e-3)
    assert projection.project(run, None, images, "pca").from_cache and spy.calls == 1
    key = json.loads(str(np.load(projection.cache_path(run, "pca"))["key"]))
    assert key["model_sha256"] == run.manifest.model_sha256


def test_other_images_invalidate_the_cache(run, images, dataset, monkeypatch):
    projection.project(run, None, images, "pca")
    others = dataset.x_test[N : 2 * N]
    assert projection.cached(run, "pca", others) is None
    assert projection.cached(run, "pca") is not None  # without images: only model and size
    spy = Spy(monkeypatch)
    assert not projection.project(run, None, others, "pca").from_cache and spy.calls == 1
    assert projection.cached(run, "pca", images) is None  # replaced, not added


def test_a_damaged_cache_file_is_computed_again(run, images):
    first = projection.project(run, None, images, "pca")
    file = projection.cache_path(run, "pca")
    file.write_bytes(file.read_bytes()[:100])  # truncated
    assert projection.cached(run, "pca") is None
    again = projection.project(run, None, images, "pca")
    assert not again.from_cache
    np.testing.assert_array_equal(again.coords, first.coords)
    assert projection.cached(run, "pca", images).from_cache


def refuse(code: int):
    """A stand-in for a file operation on a read-only disk (root ignores chmod)."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def test_read_only_run_folder_computes_without_caching(run, images, monkeypatch):
    want = projection.project_features(projection.test_features(run, None, images), "pca")
    run.path.chmod(0o555)  # read-only for everyone but root ...
    monkeypatch.setattr(artifacts, "write_atomic", refuse(errno.EROFS))  # ... and root
    try:
        got = projection.project(run, None, images, "pca")
        assert not got.from_cache
        np.testing.assert_array_equal(got.coords, want.coords)
        assert projection.cached(run, "pca") is None
        assert not any(p.name.endswith(".tmp") for p in run.path.rglob("*"))
    finally:
        run.path.chmod(0o755)
    artifacts.verify_run(run.path, "baseline")  # the run itself is untouched


def test_cache_folder_that_is_not_a_folder(run, images):
    (run.path / runcache.CACHE_DIR).write_text("not a folder")
    got = projection.project(run, None, images, "pca")
    assert not got.from_cache and got.coords.shape == (N, 2)
    assert projection.cached(run, "pca") is None


def test_read_only_run_folder_still_reads_its_cache(run, images, monkeypatch):
    first = projection.project(run, None, images, "pca")
    run.path.chmod(0o555)
    monkeypatch.setattr(artifacts, "write_atomic", refuse(errno.EROFS))
    try:
        again = projection.project(run, None, images, "pca")
    finally:
        run.path.chmod(0o755)
    assert again.from_cache
    np.testing.assert_array_equal(again.coords, first.coords)


def test_unknown_method(run, images):
    with pytest.raises(ValueError, match=r"unknown projection method 'tsne'"):
        projection.project(run, None, images, "tsne")
    with pytest.raises(ValueError, match=r"unknown projection method"):
        projection.cached(run, "tsne")


# ----------------------------------------------------------------------------------------------
# UMAP


def neighbours_kept(features: np.ndarray, coords: np.ndarray, k: int = 15) -> float:
    """Mean share of each point's k nearest neighbours in feature space that stay among its k
    nearest on the map."""
    from sklearn.neighbors import NearestNeighbors

    def knn(x):
        return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)

    near, mapped = knn(features)[:, 1:], knn(coords)[:, 1:]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(near, mapped, strict=True)]))


def test_umap_is_as_faithful_as_umap_learn_and_is_cached(run, images, monkeypatch):
    import umap
    from sklearn.manifold import trustworthiness

    assert projection.available_methods() == ("pca", "umap")
    features = projection.test_features(run, None, images)
    spy = Spy(monkeypatch)
    got = projection.project(run, None, images, "umap")
    assert spy.calls == 1 and not got.from_cache
    assert got.coords.shape == (N, 2) and got.coords.dtype == np.float32
    assert np.isfinite(got.coords).all()
    assert got.explained_variance is None and got.params == projection.UMAP_PARAMS
    # Our neighbours come from scikit-learn, so the map is not umap-learn's to the bit; it
    # must keep neighbourhoods as well as umap-learn's own, and far better than PCA does.
    plain = umap.UMAP(**projection.UMAP_PARAMS).fit_transform(features)
    pca = projection.project_features(features, "pca").coords
    ours_tw, plain_tw = trustworthiness(features, got.coords), trustworthiness(features, plain)
    assert ours_tw >= plain_tw - 0.02 and ours_tw > trustworthiness(features, pca) + 0.03
    kept = neighbours_kept(features, got.coords)
    assert kept >= neighbours_kept(features, plain) - 0.05
    assert kept > neighbours_kept(features, pca) + 0.03
    # random_state is fixed: computing again gives the same map.
    np.testing.assert_array_equal(projection.project_features(features, "umap").coords, got.coords)
    again = projection.project(run, None, images, "umap")
    assert again.from_cache and spy.calls == 1
    np.testing.assert_array_equal(again.coords, got.coords)
    assert cache_files(run) == ["projection-umap.npz"]
    with pytest.raises(ValueError, match=r"UMAP needs more than 15 points"):
        projection.project_features(features[:15], "umap")


def test_umap_missing_says_how_to_install(run, images, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # what an uninstalled package looks like
    spy = Spy(monkeypatch)
    with pytest.raises(projection.ProjectionUnavailable, match=r"pip install umap-learn.*PCA"):
        projection.project(run, None, images, "umap")
    assert spy.calls == 0  # failed before spending time on the features
    assert not projection.project(run, None, images, "pca").from_cache


def test_umap_imports_without_tensorflow():
    code = (
        "import sys\n"
        "from core import projection\n"
        "umap = projection._import_umap()\n"
        "assert umap.UMAP is not None\n"
        "import umap.umap_\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------------------------
# The figure and clicks on it


@pytest.fixture
def mapped(run, images):
    proj = projection.project(run, None, images, "pca")
    y_pred = run.y_prob.argmax(axis=1)
    return proj, run.y_true, y_pred


def test_figure_has_one_trace_per_class_and_one_for_mistakes(mapped):
    proj, y_true, y_pred = mapped
    fig = figures.projection_figure(proj, y_true, y_pred, CLASS_NAMES, "Map")
    assert [t.type for t in fig.data] == ["scattergl"] * 11  # WebGL: 10,000 points drawn fast
    assert [t.name for t in fig.data[:10]] == list(CLASS_NAMES)
    assert len({t.marker.color for t in fig.data[:10]}) == 10
    wrong = np.flatnonzero(y_true != y_pred)
    assert fig.data[10].name == f"misclassified ({len(wrong):,})"
    for k, trace in enumerate(fig.data):
        index = np.flatnonzero(y_true == k) if k < 10 else wrong
        assert list(trace.customdata) == index.tolist()
        np.testing.assert_array_equal(trace.x, proj.coords[index, 0])
        np.testing.assert_array_equal(trace.y, proj.coords[index, 1])
        assert list(trace.text) == [CLASS_NAMES[y_pred[i]] for i in index]
        assert "predicted: %{text}" in trace.hovertemplate
        assert trace.hovertemplate.startswith("image #%{customdata}<br>")
        # the true class: the trace's own in its template, each ring's in its hovertext
        if k < 10:
            assert f"true: {CLASS_NAMES[k]}<br>" in trace.hovertemplate
        else:
            assert "true: %{hovertext}<br>" in trace.hovertemplate
            assert list(trace.hovertext) == [CLASS_NAMES[y_true[i]] for i in index]
    assert fig.layout.xaxis.title.text.startswith("PC 1 (")
    assert fig.layout.clickmode == "event+select"


def streamlit_event(fig_json: dict, picks: list[tuple[int, int]]) -> dict:
    """A selection state as ``st.plotly_chart(on_select="rerun")`` returns it, built from the
    figure as the browser receives it (JSON)."""
    points = []
    for curve, j in picks:
        trace = fig_json["data"][curve]
        points.append(
            {
                "curve_number": curve,
                "point_number": j,
                "point_index": j,
                "x": trace["x"][j] if isinstance(trace["x"], list) else None,
                "customdata": trace["customdata"][j],
            }
        )
    return {"selection": {"points": points, "point_indices": [j for _, j in picks]}}


def test_selected_indices_round_trip(mapped):
    proj, y_true, y_pred = mapped
    fig = figures.projection_figure(proj, y_true, y_pred, CLASS_NAMES, "Map")
    fig_json = json.loads(fig.to_json())
    wrong = np.flatnonzero(y_true != y_pred)
    first_wrong = int(wrong[0])
    cls = int(y_true[first_wrong])
    j_in_class = int(np.flatnonzero(np.flatnonzero(y_true == cls) == first_wrong)[0])
    picks = [(0, 0), (3, 2), (cls, j_in_class), (10, 0)]  # last two: the same image twice
    event = streamlit_event(fig_json, picks)
    want = [
        int(np.flatnonzero(y_true == 0)[0]),
        int(np.flatnonzero(y_true == 3)[2]),
        first_wrong,
    ]
    assert figures.selected_indices(event) == want
    # A numpy row arrives keyed by position; attribute access as Streamlit's object allows.
    keyed = {"selection": {"points": [{"customdata": {"0": 7, "1": "Bag", "2": "Bag"}}]}}
    assert figures.selected_indices(keyed) == [7]

    class Event:
        class selection:
            points = event["selection"]["points"]

    assert figures.selected_indices(Event()) == want
    for empty in (None, {}, {"selection": {"points": []}}, {"selection": {"points": [{}]}}):
        assert figures.selected_indices(empty) == []


def test_figure_rejects_mismatched_inputs(mapped):
    proj, y_true, y_pred = mapped
    with pytest.raises(ValueError, match=r"must describe the same images"):
        figures.projection_figure(proj, y_true[:-1], y_pred, CLASS_NAMES, "Map")
