"""Label noise or model error? Test images every model confidently calls something else, and the
training images closest to an image in a model's own feature space.

When both models put the same wrong class above 90 %, the label itself may be wrong (Fashion-MNIST
has a few such images); the training images a model finds nearest show what it learned the image
looks like. The features are the penultimate layer's activations (what the last Dense layer
reads), computed once for the 60,000 training images and kept in the run's cache
(``core.runcache``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from core import runcache
from core.artifacts import Run
from core.data import CLASS_NAMES

FEATURES_FILE = "train_features.npz"
FEATURES_VERSION = 1  # bump when the features' definition changes: old caches are recomputed
FEATURE_CHUNK = 2048  # training images per pass: bounds the float copy (~6 MB)
QUERY_CHUNK = 128  # queries per distance block: bounds it (128 x 60,000 floats, ~30 MB)
CANDIDATE_MARGIN = 32  # rows beyond k re-ranked exactly, covering float32 rounding
METRICS = ("cosine", "euclidean")


# ----------------------------------------------------------------------------------------------
# Suspect labels


def _predictions(y_true, probs: Mapping[str, np.ndarray]):
    y_true = np.asarray(y_true)
    if not probs:
        raise ValueError("no model probabilities given")
    out = {}
    for name, prob in probs.items():
        prob = np.asarray(prob)
        if prob.ndim != 2 or len(prob) != len(y_true):
            raise ValueError(
                f"{name}: probabilities of shape {prob.shape} for {len(y_true)} labels"
            )
        pred = prob.argmax(axis=1)
        out[name] = (pred, prob[np.arange(len(prob)), pred])
    return y_true, out


def suspect_labels(
    y_true: np.ndarray, probs: Mapping[str, np.ndarray], threshold: float = 0.9
) -> np.ndarray:
    """Indices (ascending) where every model predicts the same class, not ``y_true``, each with
    probability >= ``threshold``: candidates for a wrong label rather than a model error."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    y_true, predictions = _predictions(y_true, probs)
    (first, _), *_ = predictions.values()
    keep = first != y_true
    for pred, confidence in predictions.values():
        keep &= (pred == first) & (confidence >= threshold)
    return np.flatnonzero(keep)


def suspect_table(
    y_true: np.ndarray,
    probs: Mapping[str, np.ndarray],
    threshold: float = 0.9,
    class_names: tuple[str, ...] = CLASS_NAMES,
):
    """The suspects as a DataFrame: index, true, predicted (class names), then one
    ``"<model> confidence"`` column per model; surest first (by the lowest of the confidences)."""
    import pandas as pd

    index = suspect_labels(y_true, probs, threshold)
    y_true, predictions = _predictions(y_true, probs)
    (first, _), *_ = predictions.values()
    table = pd.DataFrame(
        {
            "index": index,
            "true": [class_names[c] for c in y_true[index]],
            "predicted": [class_names[c] for c in first[index]],
            **{f"{name} confidence": conf[index] for name, (_, conf) in predictions.items()},
        }
    )
    lowest = np.min([conf[index] for _, conf in predictions.values()], axis=0)
    order = np.lexsort((index, -lowest))  # surest first, then by index
    return table.iloc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Training-set features, cached in the run


def data_key(x_train: np.ndarray) -> str:
    """The training images' identity: shape, type and SHA-256 (~40 ms for 60,000)."""
    x = np.asarray(x_train)
    return f"{'x'.join(map(str, x.shape))}-{x.dtype}-{runcache.array_sha256(x)}"


def features_path(run: Run) -> Path:
    return runcache.cache_file(run, FEATURES_FILE)


def _features_key(run: Run, x_train: np.ndarray) -> dict:
    """What cached features must have been made from: this model file, these images."""
    return {
        "model_sha256": run.manifest.model_sha256,
        "data_key": data_key(x_train),
        "version": FEATURES_VERSION,
    }


def save_train_features(run: Run, x_train: np.ndarray, features: np.ndarray) -> bool:
    """Cache ``features`` (n, d) float32 as the run's features of the training images
    ``x_train``; False where the run folder cannot be written (nothing is cached)."""
    return runcache.write(features_path(run), _features_key(run, x_train), {"features": features})


def compute_features(
    model,
    x_uint8: np.ndarray,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Penultimate-layer features (n, d) float32 of uint8 images (n, 28, 28), in chunks."""
    x_uint8 = np.asarray(x_uint8)
    if x_uint8.dtype != np.uint8 or x_uint8.ndim != 3:
        raise ValueError(f"expected uint8 images (n, 28, 28), got {x_uint8.dtype} {x_uint8.shape}")
    parts = []
    for start in range(0, len(x_uint8), FEATURE_CHUNK):
        pixels = x_uint8[start : start + FEATURE_CHUNK].astype(np.float32) / 255.0
        parts.append(model.penultimate(pixels))
        if progress is not None:
            progress(min(1.0, (start + len(pixels)) / len(x_uint8)))
    if not parts:
        return model.penultimate(np.zeros((0, *x_uint8.shape[1:]), np.float32))
    return np.concatenate(parts)


def train_features(
    run: Run,
    model,
    x_train: np.ndarray,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """The run's penultimate features (n, d) float32 of the training images (uint8 (n, 28, 28)).

    ``model`` must be the run's model (``load_predictor(run)``). Read from
    ``<run>/cache/train_features.npz`` when that file was made by the same model file (its
    SHA-256 in the manifest) from the same images; computed and cached otherwise. ``progress``
    gets the fraction done while computing (never called on a cache hit).
    """
    width = model.feature_width  # what the last Dense reads
    found = runcache.read(features_path(run), _features_key(run, x_train)) or {}
    cached = found.get("features")
    if (
        cached is not None
        and cached.shape == (len(x_train), width)
        and cached.dtype == np.float32
        and np.all(np.isfinite(cached))
    ):
        return cached
    features = compute_features(model, x_train, progress)
    save_train_features(run, x_train, features)
    return features


# ----------------------------------------------------------------------------------------------
# Exact nearest neighbours


def _smallest(dist: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k smallest values, by value then by index (ties: the lower
    index first, whatever order argpartition happened to leave them in)."""
    n = dist.shape[1]
    if k == n:
        chosen = np.broadcast_to(np.arange(n), dist.shape).copy()
    else:
        chosen = np.argpartition(dist, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(dist, chosen, axis=1).max(axis=1)
        tied = np.flatnonzero((dist <= kth[:, None]).sum(axis=1) > k)
        for row in tied:  # more candidates than places at the boundary: keep the lowest indices
            candidates = np.flatnonzero(dist[row] <= kth[row])
            order = np.lexsort((candidates, dist[row, candidates]))
            chosen[row] = candidates[order[:k]]
    values = np.take_along_axis(dist, chosen, axis=1)
    order = np.lexsort((chosen, values), axis=-1)
    return np.take_along_axis(chosen, order, axis=1)


def _exact_distances(query: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """Distances (b, c) in float64 from each query (b, d) to its own rows (b, c, d)."""
    query = query.astype(np.float64)[:, None, :]  # (b, 1, d)
    rows = rows.astype(np.float64)
    if metric == "euclidean":
        return np.sqrt(np.square(rows - query).sum(axis=-1))
    norms = np.linalg.norm(rows, axis=-1) * np.linalg.norm(query, axis=-1)
    products = (rows * query).sum(axis=-1)
    similarity = np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)
    return np.clip(1.0 - similarity, 0.0, 2.0)  # a zero vector: similarity 0, distance 1


def nearest_training(
    query_features: np.ndarray,
    train_features: np.ndarray,
    k: int = 8,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest training rows for each query: (indices (m, k) int64, distances (m, k)).

    ``metric``: "cosine" (1 - cosine similarity; a zero vector is at distance 1 from everything)
    or "euclidean". Sorted nearest first; equal distances in index order. One query against
    60,000 rows takes a few milliseconds: a float32 pass over all rows picks ``k + 32``
    candidates, whose distances are then computed exactly in float64 and ranked.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    query_exact = np.asarray(query_features)
    if query_exact.ndim == 1:
        query_exact = query_exact[None]
    train_exact = np.asarray(train_features)
    query = query_exact.astype(np.float32, copy=False)
    train = train_exact.astype(np.float32, copy=False)
    if query.ndim != 2 or train.ndim != 2 or query.shape[1] != train.shape[1]:
        raise ValueError(
            f"query features {query.shape} and training features {train.shape} must be "
            "(m, d) and (n, d) with the same d"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > len(train):
        raise ValueError(f"k={k} neighbours asked for, but there are only {len(train)} rows")
    train_sq = np.einsum("ij,ij->i", train, train)  # (n,)
    query_sq = np.einsum("ij,ij->i", query, query)  # (m,)
    if not (np.isfinite(train_sq).all() and np.isfinite(query_sq).all()):  # one pass, not two
        raise ValueError("features must be finite (and their squares too, in float32)")
    train_norm = np.sqrt(train_sq)
    shortlist = min(len(train), k + CANDIDATE_MARGIN)
    indices = np.empty((len(query), k), np.int64)
    distances = np.empty((len(query), k), np.float64)
    for start in range(0, len(query), QUERY_CHUNK):
        block = query[start : start + QUERY_CHUNK]  # (b, d)
        block_sq = query_sq[start : start + QUERY_CHUNK, None]  # (b, 1)
        products = block @ train.T  # (b, n) float32: only to rank candidates
        if metric == "cosine":
            norms = np.sqrt(block_sq) * train_norm
            rough = -np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)
        else:
            rough = block_sq - 2 * products + train_sq  # squared, same order
        candidates = np.sort(_smallest(rough, shortlist), axis=1)  # (b, c), in index order
        exact = _exact_distances(
            query_exact[start : start + len(block)], train_exact[candidates], metric
        )  # (b, c) float64
        best = _smallest(exact, k)  # positions in index order, so ties keep the lower index
        indices[start : start + len(block)] = np.take_along_axis(candidates, best, axis=1)
        distances[start : start + len(block)] = np.take_along_axis(exact, best, axis=1)
    return indices, distances
