"""A 2-D map of the test images as one model sees them: its penultimate-layer features, projected.

PCA (numpy's SVD, as scikit-learn computes it) is always available and takes a fraction of a
second; UMAP (umap-learn, an optional dependency built on numba) shows clusters better but takes
tens of seconds. Either is computed once per run and method and kept in
``<run>/cache/projection-<method>.npz`` (the run's cache, ``core.runcache``), keyed on the model
file's SHA-256 (from the run's manifest), the method and its parameters, and the test images'
SHA-256; any mismatch recomputes. A run folder that cannot be written (read-only disk,
no permission) still gets its projection, just not cached. No TensorFlow and no Streamlit here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import runcache
from core.artifacts import Run
from core.data import IMAGE_SHAPE, normalise
from core.predict import load_predictor

METHODS = ("pca", "umap")
CACHE_FORMAT = 1
MAX_CACHE_BYTES = 64 << 20  # a 10,000-point map is ~100 kB; anything far larger is not ours
# Features are not standardised before PCA: they are ReLU activations of one layer, all in the
# same units, so their variances are meaningful. Scaling each to unit variance would blow up
# nearly-dead units (almost always 0) into as much weight as the units that carry the signal.
PCA_PARAMS = {"n_components": 2, "standardise": False, "svd_solver": "full"}
UMAP_PARAMS = {
    "n_components": 2,
    "n_neighbors": 15,
    "min_dist": 0.1,
    "metric": "euclidean",
    "random_state": 0,  # fixed: the same run always gives the same map (single-threaded)
}
PARAMS = {"pca": PCA_PARAMS, "umap": UMAP_PARAMS}
UMAP_PACKAGES = ("umap", "numba", "pynndescent")
UMAP_INSTALL = "pip install umap-learn==0.5.12"


class ProjectionUnavailable(RuntimeError):
    """The method's library is not installed (or fails to import); the message says what to do."""


@dataclass(frozen=True)
class Projection:
    """Test images placed on a plane: row i of ``coords`` is test image i."""

    method: str
    coords: np.ndarray = field(repr=False)  # (n, 2) float32
    explained_variance: tuple[float, float] | None  # PCA: share of the variance per axis
    params: dict
    seconds: float  # time it took to compute (features and projection), as measured then
    from_cache: bool = False

    @property
    def n(self) -> int:
        return len(self.coords)


def available_methods() -> tuple[str, ...]:
    """The methods that can run here. UMAP counts when its packages are installed; this only
    looks them up (importing numba takes seconds), so a broken install fails in ``project``."""
    ok = all(importlib.util.find_spec(name) is not None for name in UMAP_PACKAGES)
    return METHODS if ok else ("pca",)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown projection method {method!r}; expected one of {METHODS}")
    return method


def _check_images(run: Run, x_test_uint8: np.ndarray) -> np.ndarray:
    x = np.asarray(x_test_uint8)
    if x.dtype != np.uint8 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"expected the test images as uint8 (n, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}), "
            f"got {x.dtype} {x.shape}"
        )
    if len(x) != len(run.y_true):
        raise ValueError(
            f"{run.model}/{run.run_id} has predictions for {len(run.y_true)} test images, "
            f"got {len(x)} images: pass the test set the run was evaluated on"
        )
    return x


def test_features(run: Run, model, x_test_uint8: np.ndarray) -> np.ndarray:
    """The penultimate layer's activations (n, k) float32 for the run's test images.

    ``model`` is the run's model from ``core.predict.load_predictor`` (ONNX Runtime where the
    run has ``model.onnx``); loaded from the run, checksum checked, when None.
    """
    x = _check_images(run, x_test_uint8)
    model = load_predictor(run) if model is None else model
    return model.penultimate(normalise(x))  # (n, k)


test_features.__test__ = False  # a name pytest would otherwise collect where it is imported


# ----------------------------------------------------------------------------------------------
# The maths


def _pca(features: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Coordinates (n, 2) on the first two principal axes and their shares of the variance.

    Written out with numpy rather than called from scikit-learn: importing ``sklearn`` (and the
    SciPy it loads) took 1.3 s of a first Map visit in a fresh process, the SVD itself 0.03 s.
    It is what ``PCA(svd_solver="full").fit_transform`` computes, step for step (scikit-learn
    1.9's ``_fit_full``): the SVD of the centred features by LAPACK's gesdd (numpy's and SciPy's
    default driver), each axis' sign fixed as its ``svd_flip(u_based_decision=False)`` fixes it,
    coordinates U S, variance ratios S² / ΣS². tests/test_projection.py checks it against
    scikit-learn's. So the cache key (``PCA_PARAMS``) is unchanged: the maps are the same.
    """
    k = PCA_PARAMS["n_components"]
    x = features.astype(np.float64)
    u, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)  # (n, r) (r,) (r, d)
    # Each axis points where its largest loading (in absolute value) is positive.
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])  # (r,)
    coords = u[:, :k] * (s[:k] * signs[:k])  # (n, 2)
    ratio = s[:k] ** 2 / np.sum(s**2)
    return coords.astype(np.float32), (float(ratio[0]), float(ratio[1]))


def _import_umap():
    """The ``umap`` package, imported without TensorFlow.

    ``umap/__init__.py`` tries ``umap.parametric_umap``, which imports TensorFlow and Keras
    (about 7 s and 500 MB here) and falls back to a placeholder on ImportError. A bare module
    standing in for it makes that ``from .parametric_umap import ...`` fail, so the placeholder
    is used and TensorFlow stays out of the dashboard; imports elsewhere are not affected.
    """
    name = "umap.parametric_umap"
    stub = None
    if "umap" not in sys.modules and name not in sys.modules:
        stub = sys.modules[name] = types.ModuleType(name, "stand-in: no TensorFlow for UMAP")
    try:
        import umap
    except Exception as exc:  # ImportError, or numba failing to load against this numpy
        raise ProjectionUnavailable(
            f"UMAP needs the umap-learn package, which could not be imported ({exc!r}). "
            f"Install it with `{UMAP_INSTALL}` (it brings numba and pynndescent). "
            "PCA works without it."
        ) from exc
    finally:
        if stub is not None and sys.modules.get(name) is stub:
            del sys.modules[name]
    return umap


def _umap(features: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    umap = _import_umap()
    # Exact neighbours from scikit-learn (about a second for 10,000 points) instead of UMAP's
    # approximate search: pynndescent's numba code alone costs about a minute of compiling in
    # every new process. UMAP itself does the same exactly below 4,096 points.
    k = UMAP_PARAMS["n_neighbors"]
    distances, indices = NearestNeighbors(n_neighbors=k).fit(features).kneighbors(features)
    reducer = umap.UMAP(**UMAP_PARAMS, precomputed_knn=(indices, distances, None))
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": the price of a fixed map;
        # "knn_search_index is not an NNDescent object": only ``transform`` would need one.
        warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state")
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        coords = reducer.fit_transform(features)  # (n, 2)
    return np.asarray(coords, dtype=np.float32)


def project_features(features: np.ndarray, method: str = "pca") -> Projection:
    """Project features (n, k) to (n, 2) with ``method``; no cache (``project`` caches)."""
    _check_method(method)
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) < 3:
        raise ValueError(f"expected features of shape (n >= 3, k), got {features.shape}")
    if method == "umap" and len(features) <= UMAP_PARAMS["n_neighbors"]:
        raise ValueError(f"UMAP needs more than {UMAP_PARAMS['n_neighbors']} points")
    start = time.perf_counter()
    if method == "pca":
        coords, explained = _pca(features)
    else:
        coords, explained = _umap(features), None
    seconds = time.perf_counter() - start
    return Projection(method, coords, explained, dict(PARAMS[method]), seconds)


# ----------------------------------------------------------------------------------------------
# The cache


def cache_path(run: Run, method: str) -> Path:
    """Where the run's projection by ``method`` is cached."""
    return runcache.cache_file(run, f"projection-{_check_method(method)}.npz")


def _key(run: Run, method: str, images_sha256: str | None) -> dict:
    """What a cached map must match. ``images_sha256`` None: any images of the run's size."""
    return {
        "format": CACHE_FORMAT,
        "model_sha256": run.manifest.model_sha256,
        "method": method,
        "params": PARAMS[method],
        "n": len(run.y_true),
        "images_sha256": runcache.ANY if images_sha256 is None else images_sha256,
    }


def _read(path: Path, want: dict) -> Projection | None:
    """The cached projection if the file is whole and its key matches ``want``, else None."""
    found = runcache.read(path, {"key": want}, max_bytes=MAX_CACHE_BYTES)
    if found is None:
        return None
    try:
        info = json.loads(str(found["info"]))
        coords = np.asarray(found["coords"], dtype=np.float32)
        explained = info.get("explained_variance")
        seconds = float(info.get("seconds", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError):  # not a map of ours
        return None
    if coords.shape != (want["n"], 2) or not np.isfinite(coords).all():
        return None
    return Projection(
        method=want["method"],
        coords=coords,
        explained_variance=tuple(explained) if explained is not None else None,
        params=dict(want["params"]),
        seconds=seconds,
        from_cache=True,
    )


def _write(path: Path, key: dict, projection: Projection) -> bool:
    """Cache the projection under ``key``; False if the folder cannot be written, which only
    means the next call computes again."""
    info = {"explained_variance": projection.explained_variance, "seconds": projection.seconds}
    arrays = {"coords": projection.coords, "info": np.array(json.dumps(info))}
    return runcache.write(path, {"key": key}, arrays)


def cached(run: Run, method: str, x_test_uint8: np.ndarray | None = None) -> Projection | None:
    """The cached projection of ``run`` by ``method`` if one is valid, else None; never computes.

    With ``x_test_uint8`` the cache must also have been made from exactly these images; without,
    any images of the run's test-set size are accepted (a cheap check for pages deciding whether
    to offer a "compute" button).
    """
    _check_method(method)
    images_sha256 = None
    if x_test_uint8 is not None:
        images_sha256 = runcache.array_sha256(_check_images(run, x_test_uint8))
    return _read(cache_path(run, method), _key(run, method, images_sha256))


def project(run: Run, model, x_test_uint8: np.ndarray, method: str = "pca") -> Projection:
    """The run's test images projected to 2-D by ``method`` ("pca" or "umap"), from the cache
    when it matches, else computed and cached.

    ``model`` is the run's ``load_predictor`` model; None loads it from the run, and only when
    the cache cannot answer. Raises ``ProjectionUnavailable`` for UMAP without umap-learn.
    """
    _check_method(method)
    x = _check_images(run, x_test_uint8)
    key = _key(run, method, runcache.array_sha256(x))
    path = cache_path(run, method)
    found = _read(path, key)
    if found is not None:
        return found
    if method == "umap":
        _import_umap()  # fail before spending tens of seconds on the features
    start = time.perf_counter()
    features = test_features(run, model, x)  # (n, k)
    projection = project_features(features, method)
    projection = Projection(
        method,
        projection.coords,
        projection.explained_variance,
        projection.params,
        seconds=time.perf_counter() - start,
    )
    _write(path, key, projection)
    return projection
