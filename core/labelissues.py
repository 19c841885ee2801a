"""Label issues in the test set, by three rules beside each other.

- **All models confidently agree** on another class (``core.neighbours.suspect_labels``).
- **Confident learning** (cleanlab's ``find_label_issues``, Northcutt et al. 2021) on the test
  set's out-of-sample probabilities: per class, the average probability a model gives that class
  on the images labelled with it is the threshold above which an image "confidently belongs" to
  a class; the off-diagonal counts of that confident joint say how many labels of each class are
  likely wrong, and that many images, those the model believes least, are flagged. Ranked by
  self-confidence (the probability of the given label, lowest first). Run per model and on the
  mean of the compared models' probabilities (``combined``): the mean is the standard ensemble,
  more accurate and better calibrated than either model, so a mistake only one model makes is
  outvoted instead of being flagged as the label's fault; and unlike "flagged by both" it keeps
  one ranking.
- **Near-duplicate in the training set**: a test image whose nearest training image (L2 distance
  on pixels / 255) is under ``NEAR_DUPLICATE_DISTANCE``. The same garment photo on both sides
  says nothing about a model's generalisation, and where the two labels differ one of them is
  wrong. The search over 60,000 training images runs once per data set and is kept in the
  artifacts folder's ``cache/`` (keyed on both image sets' SHA-256).

No Streamlit here; cleanlab is imported where it is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import artifacts, neighbours, runcache
from core.data import CLASS_NAMES

COMBINED = "combined"  # confident learning on the mean of the compared models' probabilities

# L2 distance on pixels / 255 (784 values in [0, 1]); 1.0 is a root-mean-square difference of
# 1/28 of the range (about 9 grey levels) per pixel. On Fashion-MNIST a test image's nearest
# training image lies 3.5 away at the median, over 1.55 for 99 %; below 1.0 is a thin tail of
# 16 test images (0.16 %), each the same photo as its neighbour re-encoded, after which the counts
# jump (0.25-wide bins: 1, 4, 4, 7 below 1.0, then 9, 57, 148, 317) into plain trousers and
# shirts that are merely alike. No test image equals a training image byte for byte.
NEAR_DUPLICATE_DISTANCE = 1.0
PIXEL_NEIGHBOURS = 4  # nearest training images kept per test image (shown when inspecting one)
PIXELS_FILE = "pixel_neighbours.npz"
PIXELS_VERSION = 1  # bump when the search's definition changes: old caches are recomputed
SEARCH_CHUNK = 1024  # test images per call of the exact search, between progress reports


# ----------------------------------------------------------------------------------------------
# Confident learning (cleanlab)


def _check(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, dtype=np.float64)
    if y_true.ndim != 1 or not np.issubdtype(y_true.dtype, np.integer):
        raise ValueError(f"labels must be a 1-d array of class indices, got {y_true.dtype} "
                         f"{y_true.shape}")  # fmt: skip
    if y_prob.ndim != 2 or len(y_prob) != len(y_true):
        raise ValueError(f"probabilities of shape {y_prob.shape} for {len(y_true)} labels")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= y_prob.shape[1]):
        raise ValueError(f"labels must lie in 0..{y_prob.shape[1] - 1}")
    if not np.all(np.isfinite(y_prob)) or y_prob.min(initial=0) < 0 or y_prob.max(initial=0) > 1:
        raise ValueError("probabilities must be finite and lie in [0, 1]")
    if not np.allclose(y_prob.sum(axis=1), 1, atol=1e-3):
        raise ValueError("each row of probabilities must sum to 1")
    return y_true, y_prob


def confident_learning(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """Indices (int64) that cleanlab's confident learning flags as label issues, ranked by
    self-confidence: the image whose given label the model believes least comes first.

    ``y_prob`` (n, classes) must be out-of-sample (the test set's are: nothing was fitted on it).
    """
    y_true, y_prob = _check(y_true, y_prob)
    # Imported here: cleanlab adds ~0.3-0.5 s to a page's start on top of numpy, pandas and
    # scikit-learn, and only this rule needs it.
    from cleanlab.filter import find_label_issues

    found = find_label_issues(
        y_true,
        y_prob,
        return_indices_ranked_by="self_confidence",
        n_jobs=1,  # no worker processes inside a web server; 10,000 x 10 takes ~30 ms anyway
    )
    return np.asarray(found, dtype=np.int64)


def combined_probabilities(probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The mean of the models' probabilities (n, classes): the ensemble confident learning
    is run on for all models together."""
    if not probs:
        raise ValueError("no model probabilities given")
    shapes = {np.shape(p) for p in probs.values()}
    if len(shapes) != 1:
        raise ValueError(f"the models' probabilities differ in shape: {sorted(shapes)}")
    return np.mean([np.asarray(p, dtype=np.float64) for p in probs.values()], axis=0)


def confident_learning_all(
    y_true: np.ndarray, probs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Ranked label issues per model, and under ``COMBINED`` on the mean probabilities."""
    found = {name: confident_learning(y_true, prob) for name, prob in probs.items()}
    found[COMBINED] = confident_learning(y_true, combined_probabilities(probs))
    return found


def confident_learning_table(
    y_true: np.ndarray,
    probs: Mapping[str, np.ndarray],
    class_names: tuple[str, ...] = CLASS_NAMES,
):
    """The combined issues as a DataFrame, in cleanlab's order: rank, index, true, suggested
    (the mean's top class), ``p(true)`` (the mean probability of the given label), one
    ``"<model> predicted"`` and ``"<model> confidence"`` pair per model, and ``flagged per
    model`` (the models whose own probabilities flag the image too)."""
    import pandas as pd

    found = confident_learning_all(y_true, probs)
    y_true = np.asarray(y_true)
    index = found[COMBINED]
    mean = combined_probabilities(probs)
    columns = {
        "rank": np.arange(1, len(index) + 1),
        "index": index,
        "true": [class_names[c] for c in y_true[index]],
        "suggested": [class_names[c] for c in mean[index].argmax(axis=1)],
        "p(true)": mean[index, y_true[index]],
    }
    for name, prob in probs.items():
        prob = np.asarray(prob)
        pred = prob[index].argmax(axis=1)
        columns[f"{name} predicted"] = [class_names[c] for c in pred]
        columns[f"{name} confidence"] = prob[index, pred]
    flagged = {name: set(found[name].tolist()) for name in probs}
    columns["flagged per model"] = [
        ", ".join(name for name in probs if i in flagged[name]) for i in index.tolist()
    ]
    return pd.DataFrame(columns)


# ----------------------------------------------------------------------------------------------
# Near-duplicates in pixel space


@dataclass(frozen=True)
class PixelNeighbours:
    """Each test image's nearest training images in pixel space."""

    indices: np.ndarray  # (m, k) int64 training indices, nearest first (ties: lower index)
    distances: np.ndarray  # (m, k) float64, L2 on pixels / 255
    seconds: float  # the search's time (0 when read from the cache)
    from_cache: bool


def _pixels(x_uint8: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x_uint8)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ValueError(f"{name}: expected uint8 images (n, h, w), got {x.dtype} {x.shape}")
    return x.reshape(len(x), -1).astype(np.float32) / 255.0  # (n, h*w)


def search_pixel_neighbours(
    x_query: np.ndarray,
    x_train: np.ndarray,
    k: int = PIXEL_NEIGHBOURS,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest training images of each query image (uint8 (n, h, w) both), by L2 on
    pixels / 255: (indices (m, k) int64, distances (m, k) float64), nearest first.

    The search is ``core.neighbours.nearest_training`` (a float32 matrix-product pass ranks
    candidates, re-ranked exactly in float64), so equal images are at distance exactly 0.
    """
    query, train = _pixels(x_query, "query images"), _pixels(x_train, "training images")
    if query.shape[1] != train.shape[1]:
        raise ValueError(f"query images {np.shape(x_query)[1:]} and training images "
                         f"{np.shape(x_train)[1:]} differ in size")  # fmt: skip
    indices = np.empty((len(query), k), np.int64)
    distances = np.empty((len(query), k), np.float64)
    for start in range(0, len(query), SEARCH_CHUNK):
        stop = min(start + SEARCH_CHUNK, len(query))
        indices[start:stop], distances[start:stop] = neighbours.nearest_training(
            query[start:stop], train, k=k, metric="euclidean"
        )
        if progress is not None:
            progress(stop / len(query))
    return indices, distances


def cache_path(root: Path | str | None = None) -> Path:
    """Where the pixel-space search is kept: ``<artifacts>/cache/pixel_neighbours.npz``."""
    return artifacts.artifacts_root(root) / runcache.CACHE_DIR / PIXELS_FILE


def _pixels_key(x_test: np.ndarray, x_train: np.ndarray, k: int) -> dict:
    return {
        "test_key": neighbours.data_key(x_test),
        "train_key": neighbours.data_key(x_train),
        "k": int(k),
        "version": PIXELS_VERSION,
    }


def cached_pixel_neighbours(
    x_test: np.ndarray,
    x_train: np.ndarray,
    k: int = PIXEL_NEIGHBOURS,
    root: Path | str | None = None,
) -> PixelNeighbours | None:
    """The stored search of these very images with this k, or None (never searches)."""
    found = runcache.read(cache_path(root), _pixels_key(x_test, x_train, k)) or {}
    indices, distances = found.get("indices"), found.get("distances")
    if (
        indices is not None
        and distances is not None
        and indices.shape == distances.shape == (len(x_test), k)
        and indices.dtype == np.int64
        and np.all((indices >= 0) & (indices < len(x_train)))
        and np.all(np.isfinite(distances))
    ):
        return PixelNeighbours(indices, distances, 0.0, True)
    return None


def pixel_neighbours(
    x_test: np.ndarray,
    x_train: np.ndarray,
    k: int = PIXEL_NEIGHBOURS,
    root: Path | str | None = None,
    progress: Callable[[float], None] | None = None,
) -> PixelNeighbours:
    """The k nearest training images in pixel space of every test image, read from the
    artifacts folder's cache when it was made from these very images, else searched (about
    16 s for 10,000 x 60,000 on two cores) and kept there (atomically; a folder that cannot
    be written only means the next call searches again). ``progress`` gets the fraction done
    while searching (never called on a cache hit)."""
    found = cached_pixel_neighbours(x_test, x_train, k, root)
    if found is not None:
        return found
    start = time.perf_counter()
    indices, distances = search_pixel_neighbours(x_test, x_train, k, progress)
    seconds = time.perf_counter() - start
    runcache.write(cache_path(root), _pixels_key(x_test, x_train, k),
                   {"indices": indices, "distances": distances})  # fmt: skip
    return PixelNeighbours(indices, distances, seconds, False)


def near_duplicates(
    found: PixelNeighbours, threshold: float = NEAR_DUPLICATE_DISTANCE
) -> np.ndarray:
    """Test images whose nearest training image is closer than ``threshold`` (exact duplicates,
    at 0, included), nearest first, then by index."""
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    nearest = found.distances[:, 0]
    index = np.flatnonzero(nearest < threshold)
    return index[np.lexsort((index, nearest[index]))]


def duplicate_table(
    found: PixelNeighbours,
    y_test: np.ndarray,
    y_train: np.ndarray,
    threshold: float = NEAR_DUPLICATE_DISTANCE,
    class_names: tuple[str, ...] = CLASS_NAMES,
):
    """The near-duplicates as a DataFrame, nearest first: index, true, training image (its
    index), training label, distance, same label."""
    import pandas as pd

    index = near_duplicates(found, threshold)
    y_test, y_train = np.asarray(y_test), np.asarray(y_train)
    partner = found.indices[index, 0]
    return pd.DataFrame(
        {
            "index": index,
            "true": [class_names[c] for c in y_test[index]],
            "training image": partner,
            "training label": [class_names[c] for c in y_train[partner]],
            "distance": found.distances[index, 0],
            "same label": y_test[index] == y_train[partner],
        }
    )


@dataclass(frozen=True)
class DuplicateCounts:
    exact: int  # nearest training image equal pixel for pixel
    near: int  # under the threshold, the exact ones included
    exact_other_label: int
    near_other_label: int


def duplicate_counts(
    found: PixelNeighbours,
    y_test: np.ndarray,
    y_train: np.ndarray,
    threshold: float = NEAR_DUPLICATE_DISTANCE,
) -> DuplicateCounts:
    """How many test images have an exact and a near duplicate in training, and how many of
    those carry another label than that training image."""
    y_test, y_train = np.asarray(y_test), np.asarray(y_train)
    nearest = found.distances[:, 0]
    other = y_test != y_train[found.indices[:, 0]]
    exact, near = nearest == 0, nearest < threshold
    return DuplicateCounts(
        int(exact.sum()), int(near.sum()), int((exact & other).sum()), int((near & other).sum())
    )
