"""Robustness: the models on corrupted test images, in the spirit of MNIST-C (Mu & Gilmer 2019).

Ten corruptions at five severities each, with severity scales after ImageNet-C (Hendrycks &
Dietterich 2019) adapted to 28x28 grayscale garments on a black background. ``corrupt`` maps
uint8 images to uint8 images of the same shape; severity 0 is the identity. Random corruptions
(noise, the direction of a rotation or a shift, where an occluding square falls) draw from a
generator seeded by the corruption and the severity only, so a corruption of the same array is
the same every time, on every machine (a different array, even a slice of it, draws anew).

``evaluate`` runs a predictor (anything with ``predict(x_float32_in_0_1 (n, 28, 28))``: the
run's ONNX Runtime or numpy engine) on every corrupted version of the images and keeps the
predicted labels (uint8), so flips and paired tests are computed from them later.
``evaluate_runs`` does it for runs, corrupting once for all of them, and keeps each run's
result in its cache (``core.runcache``), keyed on the model file's SHA-256, the corruption
table and the images (and labels, and which test images they are).

Forward passes are the cost: 10 corruptions x 5 severities + the clean images = 51 passes over
the images per model. The page runs on a fixed stratified subset of ``PAGE_IMAGES`` test
images (500 per class) to keep a first visit to minutes with the numpy engine; the subset is
part of the cache key. No Streamlit and no TensorFlow here.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from core import runcache
from core.artifacts import Run

SEVERITIES = (1, 2, 3, 4, 5)
SEED = 2019  # with the corruption's position and the severity, seeds every random draw
BATCH = 1000  # images per predict call
PAGE_IMAGES = 5000  # the page's stratified subset of the 10,000 test images (500 per class)
SUBSET_SEED = 0
CONFIDENCE = 0.95
ALL = "all"  # paired_table's row over every corruption and severity
FORMAT_VERSION = 1  # bump when a corruption's definition changes: old caches are recomputed
CACHE_MAX_BYTES = 64 * 2**20


class Predictor(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Corruption:
    """One corruption: its levels (severity 1 to 5) and how a level reads (``template``)."""

    name: str
    title: str
    template: str  # one level in words, "{}" standing for the value
    levels: tuple[float, ...]

    def level_text(self, severity: int) -> str:
        """Severity ``severity`` in words ("±30°"); 0 is "clean"."""
        if severity == 0:
            return "clean"
        return self.template.format(f"{self.levels[severity - 1]:g}")


# Levels: chosen so that severity 1 is mild and severity 5 leaves the garment recognisable to
# a person (checked by eye in the page's gallery); ImageNet-C's scales where they carry over.
CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("gaussian_noise", "Gaussian noise", "σ = {} of the range",
                   (0.08, 0.12, 0.18, 0.26, 0.38)),
        Corruption("gaussian_blur", "Blur", "σ = {} px", (0.5, 0.75, 1.0, 1.25, 1.5)),
        Corruption("rotation", "Rotation", "±{}°", (10, 20, 30, 45, 60)),
        Corruption("shift", "Shift", "±{} px on both axes", (1, 2, 3, 4, 5)),
        Corruption("scale", "Scaling", "zoom ×{}", (0.9, 0.8, 0.7, 0.6, 0.5)),
        Corruption("contrast", "Contrast loss", "contrast ×{}", (0.6, 0.45, 0.3, 0.2, 0.1)),
        Corruption("brightness", "Brightness", "+{} of the range", (0.1, 0.2, 0.3, 0.4, 0.5)),
        Corruption("jpeg", "JPEG", "quality {}", (30, 20, 12, 8, 4)),
        Corruption("occlusion", "Occlusion", "a grey {} px square", (6, 9, 12, 15, 18)),
        Corruption("inversion", "Inversion", "pixels ≥ {} inverted", (224, 160, 96, 32, 0)),
    )
}  # fmt: skip
CORRUPTION_NAMES = tuple(CORRUPTIONS)
OCCLUSION_GREY = 128


# ----------------------------------------------------------------------------------------------
# The transforms: uint8 (n, h, w) in, uint8 (n, h, w) out, each vectorised over the batch


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"expected uint8 images of shape (n, height, width), got {images.dtype} {images.shape}"
        )
    return images


def gaussian_noise(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma) noise, sigma a fraction of the pixel range, and clip."""
    noise = rng.standard_normal(images.shape, dtype=np.float32) * np.float32(sigma * 255)
    return _to_uint8(images + noise)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` pixels in both image axes (none across the batch)."""
    out = ndimage.gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma),
                                  mode="constant", cval=0.0)  # fmt: skip
    return _to_uint8(out)


def rotate(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate every image by ``degrees`` about its centre (bilinear, black outside)."""
    out = ndimage.rotate(images.astype(np.float32), degrees, axes=(1, 2), reshape=False,
                         order=1, mode="constant", cval=0.0)  # fmt: skip
    return _to_uint8(out)


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move every image by whole pixels (down ``dy``, right ``dx``); what comes in is black."""
    h, w = images.shape[1:]
    out = np.zeros_like(images)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[:, dst_y, dst_x] = images[:, src_y, src_x]
    return out


def scale(images: np.ndarray, factor: float) -> np.ndarray:
    """Zoom every image by ``factor`` about its centre (bilinear; < 1 shrinks, black around)."""
    h, w = images.shape[1:]
    centre = np.array([0.0, (h - 1) / 2, (w - 1) / 2])
    # affine_transform maps each output coordinate o to the input coordinate M @ o + offset.
    matrix = np.array([1.0, 1 / factor, 1 / factor])
    offset = centre - matrix * centre
    out = ndimage.affine_transform(images.astype(np.float32), matrix, offset=offset, order=1,
                                   mode="constant", cval=0.0)  # fmt: skip
    return _to_uint8(out)


def contrast(images: np.ndarray, factor: float) -> np.ndarray:
    """Pull every pixel towards its image's mean: (x - mean) * factor + mean (ImageNet-C)."""
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return _to_uint8((x - mean) * np.float32(factor) + mean)


def brightness(images: np.ndarray, delta: float) -> np.ndarray:
    """Add ``delta`` (a fraction of the range) to every pixel and clip."""
    return _to_uint8(images.astype(np.float32) + np.float32(delta * 255))


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip of every image at ``quality`` (Pillow, grayscale)."""
    from PIL import Image

    out = np.empty_like(images)
    for i, image in enumerate(images):  # Pillow encodes one image at a time
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("L"))
    return out


def occlude(images: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A grey square of side ``size`` over every image, at a uniformly random place inside it."""
    n, h, w = images.shape
    size = int(size)
    top = rng.integers(0, h - size + 1, n)  # (n,)
    left = rng.integers(0, w - size + 1, n)  # (n,)
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    inside = (
        (rows >= top[:, None, None]) & (rows < (top + size)[:, None, None])
        & (cols >= left[:, None, None]) & (cols < (left + size)[:, None, None])
    )  # fmt: skip
    return np.where(inside, np.uint8(OCCLUSION_GREY), images)


def solarize(images: np.ndarray, threshold: int) -> np.ndarray:
    """Invert the pixels at or above ``threshold`` (``PIL.ImageOps.solarize``); 0 inverts all."""
    return np.where(images >= threshold, 255 - images, images).astype(np.uint8)


def _random_signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array([-1, 1]), size=n)


def _rng(name: str, severity: int) -> np.random.Generator:
    return np.random.default_rng([SEED, CORRUPTION_NAMES.index(name), severity])


def corrupt(images: np.ndarray, corruption: str, severity: int) -> np.ndarray:
    """``images`` (n, h, w) uint8 under ``corruption`` at ``severity`` (0 to 5; 0: unchanged).

    Deterministic: the same array gives the same result. Rotations and shifts go one way or
    the other at random per image (both axes' signs for a shift), as MNIST-C's do.
    """
    images = _check_images(images)
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; expected one of {CORRUPTION_NAMES}")
    if severity not in (0, *SEVERITIES):
        raise ValueError(f"severity must be 0 to {SEVERITIES[-1]}, got {severity!r}")
    if severity == 0 or len(images) == 0:
        return images.copy()
    level = CORRUPTIONS[corruption].levels[severity - 1]
    rng = _rng(corruption, severity)
    if corruption == "gaussian_noise":
        return gaussian_noise(images, level, rng)
    if corruption == "gaussian_blur":
        return gaussian_blur(images, level)
    if corruption == "rotation":
        signs = _random_signs(rng, len(images))
        out = np.empty_like(images)
        for sign in (-1, 1):
            chosen = signs == sign
            out[chosen] = rotate(images[chosen], sign * level)
        return out
    if corruption == "shift":
        k = int(level)
        signs_y, signs_x = _random_signs(rng, len(images)), _random_signs(rng, len(images))
        out = np.empty_like(images)
        for sy in (-1, 1):
            for sx in (-1, 1):
                chosen = (signs_y == sy) & (signs_x == sx)
                out[chosen] = shift(images[chosen], sy * k, sx * k)
        return out
    if corruption == "scale":
        return scale(images, level)
    if corruption == "contrast":
        return contrast(images, level)
    if corruption == "brightness":
        return brightness(images, level)
    if corruption == "jpeg":
        return jpeg(images, int(level))
    if corruption == "occlusion":
        return occlude(images, int(level), rng)
    return solarize(images, int(level))  # inversion


# ----------------------------------------------------------------------------------------------
# Forward passes


@dataclass(frozen=True)
class Robustness:
    """One model's predictions on the clean and every corrupted version of the same images."""

    corruptions: tuple[str, ...]
    y_true: np.ndarray  # (n,) uint8
    indices: np.ndarray  # (n,) int64: which test images (positions in the test set)
    clean: np.ndarray  # (n,) uint8 predicted labels on the clean images
    pred: np.ndarray  # (corruptions, severities, n) uint8 predicted labels
    seconds: float = 0.0  # the forward passes' time (0 when read from the cache)
    from_cache: bool = False

    @property
    def n(self) -> int:
        return int(self.y_true.size)

    def predictions(self, corruption: str, severity: int) -> np.ndarray:
        """Predicted labels (n,) under ``corruption`` at ``severity`` (0: the clean images)."""
        if severity == 0:
            return self.clean
        return self.pred[self.corruptions.index(corruption), severity - 1]

    def correct(self) -> np.ndarray:
        """(corruptions, severities, n) bool: right under each corruption and severity."""
        return self.pred == self.y_true[None, None, :]

    @property
    def clean_accuracy(self) -> float:
        return float((self.clean == self.y_true).mean()) if self.n else float("nan")

    def accuracy(self) -> np.ndarray:
        """(corruptions, 1 + severities) accuracy; column 0 is the clean accuracy."""
        corrupted = self.correct().mean(axis=2)  # (C, S)
        clean = np.full((len(self.corruptions), 1), self.clean_accuracy)
        return np.concatenate([clean, corrupted], axis=1)

    def flips(self, corruption: str, severity: int) -> np.ndarray:
        """Positions (into the images) right on the clean image and wrong under the corruption."""
        right = self.clean == self.y_true
        return np.flatnonzero(right & (self.predictions(corruption, severity) != self.y_true))


ProgressCallback = Callable[[int, int], None]  # (forward passes done, total)


def _labels(prob: np.ndarray) -> np.ndarray:
    return np.asarray(prob).argmax(axis=1).astype(np.uint8)


def _predict_labels(predictor: Predictor, images: np.ndarray, batch: int, step) -> np.ndarray:
    """Labels (n,) uint8 of uint8 images (n, 28, 28), ``batch`` at a time; ``step(k)`` after each."""
    out = np.empty(len(images), np.uint8)
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch].astype(np.float32) / np.float32(255)
        out[start : start + len(chunk)] = _labels(predictor.predict(chunk))
        step(len(chunk))
    return out


def total_passes(n_images: int, n_models: int, corruptions: Sequence[str] = CORRUPTION_NAMES):
    """Forward passes ``evaluate_models`` makes: every model on the clean and each corrupted set."""
    return n_images * n_models * (1 + len(corruptions) * len(SEVERITIES))


def evaluate_models(
    predictors: Mapping[str, Predictor],
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray | None = None,
    corruptions: Sequence[str] = CORRUPTION_NAMES,
    batch: int = BATCH,
    progress: ProgressCallback | None = None,
) -> dict[str, Robustness]:
    """Each predictor's labels on ``images`` (n, 28, 28) uint8, clean and under every corruption
    and severity; each corrupted set is made once and shared by the predictors. ``progress``
    is called after every batch with (forward passes done, total)."""
    images = _check_images(images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"{len(images)} images but labels of shape {labels.shape}")
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; expected some of {CORRUPTION_NAMES}")
    indices = np.arange(len(images)) if indices is None else np.asarray(indices, np.int64)
    total = total_passes(len(images), len(predictors), corruptions)
    done = 0

    def step(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, total)

    seconds = dict.fromkeys(predictors, 0.0)

    def run_all(x: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for key, predictor in predictors.items():
            start = time.perf_counter()
            out[key] = _predict_labels(predictor, x, batch, step)
            seconds[key] += time.perf_counter() - start
        return out

    clean = run_all(images)
    pred = {key: np.empty((len(corruptions), len(SEVERITIES), len(images)), np.uint8)
            for key in predictors}  # fmt: skip
    for c, name in enumerate(corruptions):
        for s, severity in enumerate(SEVERITIES):
            for key, labels_cs in run_all(corrupt(images, name, severity)).items():
                pred[key][c, s] = labels_cs
    y_true = labels.astype(np.uint8)
    return {
        key: Robustness(tuple(corruptions), y_true, indices, clean[key], pred[key], seconds[key])
        for key in predictors
    }


def evaluate(
    predictor: Predictor,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray | None = None,
    corruptions: Sequence[str] = CORRUPTION_NAMES,
    batch: int = BATCH,
    progress: ProgressCallback | None = None,
) -> Robustness:
    """One predictor's labels on the clean and every corrupted version of ``images``."""
    return evaluate_models({"model": predictor}, images, labels, indices, corruptions, batch,
                           progress)["model"]  # fmt: skip


def seconds_per_pass(predictor: Predictor, images: np.ndarray, batch: int = BATCH) -> float:
    """Seconds per image of one timed batch of ``predictor`` (the first ``batch`` images)."""
    chunk = _check_images(images)[:batch].astype(np.float32) / np.float32(255)
    predictor.predict(chunk[:8])  # untimed: a first call allocates and loads what it needs
    start = time.perf_counter()
    predictor.predict(chunk)
    return (time.perf_counter() - start) / max(len(chunk), 1)


def estimate_seconds(
    predictors: Mapping[str, Predictor], images: np.ndarray, sample: int = 200
) -> float:
    """Seconds ``evaluate_models`` should take on ``images`` here: a timed first batch of every
    predictor, times the forward passes, plus every corruption of ``sample`` images, scaled up."""
    images = _check_images(images)
    n = len(images)
    passes = total_passes(n, 1)
    forward = sum(seconds_per_pass(p, images) for p in predictors.values()) * passes
    part = images[:sample]
    start = time.perf_counter()
    for name in CORRUPTION_NAMES:
        for severity in SEVERITIES:
            corrupt(part, name, severity)
    corrupting = (time.perf_counter() - start) * n / max(len(part), 1)
    return forward + corrupting


# ----------------------------------------------------------------------------------------------
# The test images used, and the run's cache


def subset_indices(y_true: np.ndarray, size: int | None, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted positions of a fixed stratified sample of ``size`` images (all with None or
    ``size`` >= n): scikit-learn's stratified split, the same every time for the same labels."""
    y_true = np.asarray(y_true)
    n = len(y_true)
    if size is None or size >= n:
        return np.arange(n)
    if size < 1:
        raise ValueError(f"a subset needs at least one image, got {size}")
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(np.arange(n), train_size=size, stratify=y_true,
                                 random_state=seed)  # fmt: skip
    return np.sort(chosen)


def cache_name(n_images: int) -> str:
    """The cache file of a run's robustness on ``n_images`` test images (one per subset size)."""
    return f"robustness-{n_images}.npz"


def _table_key() -> dict:
    return {name: list(c.levels) for name, c in CORRUPTIONS.items()}


def cache_key(run: Run, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> dict:
    """What a cached result must have been computed from to be served."""
    return {
        "kind": "robustness",
        "version": FORMAT_VERSION,
        "model_sha256": run.manifest.model_sha256,
        "images_sha256": runcache.array_sha256(np.asarray(images)),
        "labels_sha256": runcache.array_sha256(np.asarray(labels).astype(np.uint8)),
        "indices_sha256": runcache.array_sha256(np.asarray(indices, np.int64)),
        "corruptions": _table_key(),
        "seed": SEED,
        "severities": list(SEVERITIES),
    }


def _from_arrays(arrays: Mapping[str, np.ndarray]) -> Robustness | None:
    try:
        names = tuple(str(name) for name in arrays["corruption_names"])
        y_true, indices = arrays["y_true"], arrays["indices"]
        clean, pred = arrays["clean"], arrays["pred"]
    except KeyError:
        return None
    n = y_true.shape[0] if y_true.ndim == 1 else -1
    if (
        names != CORRUPTION_NAMES or n < 0 or indices.shape != (n,) or clean.shape != (n,)
        or pred.shape != (len(names), len(SEVERITIES), n)
        or any(a.dtype != np.uint8 for a in (y_true, clean, pred))
    ):  # fmt: skip
        return None
    return Robustness(names, y_true, indices.astype(np.int64), clean, pred, from_cache=True)


def read_cached(
    run: Run,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    n_images: int | None = None,
) -> Robustness | None:
    """The run's cached robustness on these images, or None (never computed, computed for
    other inputs, or damaged). Without ``images`` (the HTML export, which has no data set),
    any cached images of that number (default ``PAGE_IMAGES``) match; the model file and the
    corruptions still must."""
    if images is not None:
        key = cache_key(run, images, labels, indices)
        n_images = len(images)
    else:
        n_images = PAGE_IMAGES if n_images is None else n_images
        key = {**cache_key(run, np.zeros(0, np.uint8), np.zeros(0), np.zeros(0)),
               "images_sha256": runcache.ANY, "labels_sha256": runcache.ANY,
               "indices_sha256": runcache.ANY}  # fmt: skip
    arrays = runcache.read(runcache.cache_file(run, cache_name(n_images)), key, CACHE_MAX_BYTES)
    if arrays is None:
        return None
    result = _from_arrays(arrays)
    if result is None or (images is not None and result.n != len(images)):
        return None
    return result


def write_cached(run: Run, result: Robustness, images: np.ndarray) -> bool:
    """Keep ``result`` (computed on ``images``) in the run's cache; False if it cannot be."""
    key = cache_key(run, images, result.y_true, result.indices)
    arrays = {
        "corruption_names": np.array(result.corruptions),
        "y_true": result.y_true,
        "indices": result.indices,
        "clean": result.clean,
        "pred": result.pred,
    }
    return runcache.write(runcache.cache_file(run, cache_name(result.n)), key, arrays)


def evaluate_runs(
    runs: Mapping[str, Run],
    predictors: Mapping[str, Predictor],
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    progress: ProgressCallback | None = None,
) -> dict[str, Robustness]:
    """Each run's robustness on ``images`` (the test images at ``indices``): from its cache
    where it is there, else computed (corrupting once for all the runs that need it) and cached.
    ``predictors`` holds a predictor for each run that may need computing."""
    results: dict[str, Robustness | None] = {
        key: read_cached(run, images, labels, indices) for key, run in runs.items()
    }
    missing = [key for key, result in results.items() if result is None]
    if missing:
        computed = evaluate_models({key: predictors[key] for key in missing}, images, labels,
                                   indices, progress=progress)  # fmt: skip
        for key, result in computed.items():
            write_cached(runs[key], result, images)
            results[key] = result
    return results  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# Two models compared, image by image


def paired_interval(
    right_a: np.ndarray, right_b: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """The accuracy difference B - A and its normal (Wald) interval, paired over images.

    ``right_a``, ``right_b``: (n,) or (k, n) correct/wrong (bool or 0/1); with k conditions the
    per-image difference is averaged over them first, so the images stay the independent units.
    For one condition this is the textbook interval for paired proportions (Agresti,
    Categorical Data Analysis, 10.1): var = ((b + c)/n - ((b - c)/n)^2) / n with b, c the
    images only one model gets right. Hand-written (two lines): SciPy and scikit-learn have no
    paired-proportion interval; the tests check it against that formula from the counts and
    against ``core.metrics.compare``'s paired bootstrap.
    """
    a = np.atleast_2d(np.asarray(right_a, np.float64))
    b = np.atleast_2d(np.asarray(right_b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired results need the same shape, got {a.shape} and {b.shape}")
    d = (b - a).mean(axis=0)  # (n,) per-image difference
    n = d.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(d.mean())
    half = float(stats.norm.ppf(0.5 + confidence / 2) * d.std(ddof=0) / np.sqrt(n))
    return mean, mean - half, mean + half


def check_pair(a: Robustness, b: Robustness) -> None:
    """ValueError unless both results are on the same images, labels and corruptions."""
    if (
        a.corruptions != b.corruptions or not np.array_equal(a.indices, b.indices)
        or not np.array_equal(a.y_true, b.y_true)
    ):  # fmt: skip
        raise ValueError("the two robustness results were computed on different test images")


def paired_table(a: Robustness, b: Robustness, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per corruption and severity (severity "0": clean; "mean": over severities 1-5;
    the last row, corruption ``ALL``: over every corruption and severity): accuracy of A and B,
    their difference B - A and its paired interval, the discordant pairs (summed over the
    severities a row covers) and each model's flip rate (of its clean-right images, the share
    wrong under the corruption)."""
    check_pair(a, b)
    right_a, right_b = a.correct(), b.correct()  # (C, S, n)
    clean_a, clean_b = a.clean == a.y_true, b.clean == b.y_true  # (n,)
    n_c, n_s, n = right_a.shape
    conditions = [
        (name, severity) for name in a.corruptions for severity in (0, *SEVERITIES, "mean")
    ]
    rows = []
    for name, severity in [*conditions, (ALL, "mean")]:
        c = a.corruptions.index(name) if name != ALL else None
        if name == ALL:  # every corruption and severity: (C * S, n)
            ra, rb = right_a.reshape(n_c * n_s, n), right_b.reshape(n_c * n_s, n)
        elif severity == "mean":
            ra, rb = right_a[c], right_b[c]  # (S, n)
        elif severity == 0:
            ra, rb = clean_a[None], clean_b[None]
        else:
            ra, rb = right_a[c, severity - 1][None], right_b[c, severity - 1][None]
        diff, low, high = paired_interval(ra, rb, confidence)
        rows.append({
            "corruption": name,
            "severity": str(severity),
            "accuracy_a": float(ra.mean()),
            "accuracy_b": float(rb.mean()),
            "difference": diff,
            "ci_low": low,
            "ci_high": high,
            "only_a": int((ra & ~rb).sum()),
            "only_b": int((~ra & rb).sum()),
            # flip rate: of the clean-right images, the share wrong here (over the conditions)
            "flips_a": float((clean_a[None] & ~ra).sum() / max(clean_a.sum() * len(ra), 1)),
            "flips_b": float((clean_b[None] & ~rb).sum() / max(clean_b.sum() * len(rb), 1)),
        })  # fmt: skip
    return pd.DataFrame(rows)


def corruption_errors(a: Robustness, b: Robustness) -> pd.DataFrame:
    """Per corruption: B's corruption error relative to A (Hendrycks & Dietterich's CE with A as
    the reference: the sum over severities of B's error over A's) and the relative CE (the same
    with each model's clean error taken off first). Below 1: B breaks less than A."""
    check_pair(a, b)
    err_a, err_b = 1 - a.accuracy(), 1 - b.accuracy()  # (C, 1 + S)
    ce = err_b[:, 1:].sum(axis=1) / err_a[:, 1:].sum(axis=1)
    rel_a = (err_a[:, 1:] - err_a[:, :1]).sum(axis=1)
    rel_b = (err_b[:, 1:] - err_b[:, :1]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(rel_a > 0, rel_b / rel_a, np.nan)
    return pd.DataFrame(
        {"ce": ce, "relative_ce": relative,
         "mean_accuracy_a": a.accuracy()[:, 1:].mean(axis=1),
         "mean_accuracy_b": b.accuracy()[:, 1:].mean(axis=1)},
        index=pd.Index(a.corruptions, name="corruption"),
    )  # fmt: skip


def titles() -> dict[str, str]:
    """Each corruption's title, in table order."""
    return {name: c.title for name, c in CORRUPTIONS.items()}


def summary_table(table: pd.DataFrame, errors: pd.DataFrame, name_a: str, name_b: str):
    """Per corruption, over severities 1-5, with readable columns: both accuracies, B - A and
    its interval in points, the flip rates, B's corruption errors relative to A; the last row
    is every corruption together (its CE columns: the mean CE and relative mCE)."""
    from core.models import model_label

    label_a, label_b = model_label(name_a), model_label(name_b)
    means = table[table["severity"] == "mean"].set_index("corruption")
    order = [*errors.index, ALL]
    rows = means.loc[order]
    ce = [*errors["ce"], errors["ce"].mean()]
    relative = [*errors["relative_ce"], errors["relative_ce"].mean()]
    out = pd.DataFrame(
        {
            f"accuracy · {label_a}": rows["accuracy_a"].to_numpy(),
            f"accuracy · {label_b}": rows["accuracy_b"].to_numpy(),
            "difference (points)": rows["difference"].to_numpy() * 100,
            "95% CI low": rows["ci_low"].to_numpy() * 100,
            "95% CI high": rows["ci_high"].to_numpy() * 100,
            f"flip rate · {label_a}": rows["flips_a"].to_numpy(),
            f"flip rate · {label_b}": rows["flips_b"].to_numpy(),
            f"CE {label_b} / {label_a}": ce,
            "relative CE": relative,
        },
        index=pd.Index([*(CORRUPTIONS[c].title for c in errors.index), "all corruptions"],
                       name="corruption"),
    )  # fmt: skip
    return out


def _points(value: float) -> str:
    if round(value * 100, 1) == 0:
        return "0.0"
    return f"{value * 100:+.1f}".replace("-", "−")


def robustness_text(table: pd.DataFrame, errors: pd.DataFrame, name_a: str, name_b: str,
                    n_images: int) -> list[str]:  # fmt: skip
    """Plain sentences on which model breaks first, for the page and the export."""
    from core.models import model_label

    label_a, label_b = model_label(name_a), model_label(name_b)
    rows = table[table["severity"] == "mean"].set_index("corruption")
    clean = table[table["severity"] == "0"].iloc[0]
    overall = rows.loc[ALL]
    per = rows.drop(index=ALL)
    b_ahead = [CORRUPTIONS[c].title for c, r in per.iterrows() if r["ci_low"] > 0]
    a_ahead = [CORRUPTIONS[c].title for c, r in per.iterrows() if r["ci_high"] < 0]
    worst_a, worst_b = per["accuracy_a"].idxmin(), per["accuracy_b"].idxmin()
    level = f"{CONFIDENCE:.0%}"

    def listed(items: list[str]) -> str:
        return ", ".join(items) if items else "none"

    return [
        f"On {n_images:,} test images: clean accuracy {clean['accuracy_a']:.1%} ({label_a}) and "
        f"{clean['accuracy_b']:.1%} ({label_b}); averaged over the {len(per)} corruptions at "
        f"five severities, {overall['accuracy_a']:.1%} and {overall['accuracy_b']:.1%}: "
        f"{label_b} − {label_a} = {_points(overall['difference'])} points ({level} interval "
        f"{_points(overall['ci_low'])} to {_points(overall['ci_high'])}, paired over images; "
        f"clean: {_points(clean['difference'])}).",
        f"{label_b} keeps clearly more accuracy (interval above 0) under: {listed(b_ahead)}; "
        f"{label_a} under: {listed(a_ahead)}"
        + (
            "; under the others the difference could be chance."
            if len(b_ahead) + len(a_ahead) < len(per)
            else "."
        ),
        (
            f"Both break first under {CORRUPTIONS[worst_a].title.lower()}"
            if worst_a == worst_b
            else f"{label_a} breaks first under {CORRUPTIONS[worst_a].title.lower()}, "
            f"{label_b} under {CORRUPTIONS[worst_b].title.lower()}"
        )
        + f" (lowest mean accuracy over severities: {per.loc[worst_a, 'accuracy_a']:.1%} and "
        f"{per.loc[worst_b, 'accuracy_b']:.1%}).",
        f"Mean corruption error of {label_b} with {label_a} as the reference (Hendrycks & "
        f"Dietterich's mCE; below 100% means fewer errors under corruption): "
        f"{errors['ce'].mean():.1%}; counting only the errors added to each model's clean "
        f"errors (relative mCE): {errors['relative_ce'].mean():.1%}.",
    ]


def duration_text(seconds: float) -> str:
    """A rough duration for people: "about 40 s", "about 3 min"."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


def flip_items(
    results: Mapping[str, Robustness], model: str, corruption: str, severity: int
) -> pd.DataFrame:
    """The images ``model`` gets right clean and wrong under ``corruption`` at ``severity``:
    their position among the images, test-set index, label, and every model's clean and
    corrupted predictions (columns ``<key>_clean``, ``<key>_corrupted``)."""
    chosen = results[model]
    positions = chosen.flips(corruption, severity)
    columns = {
        "position": positions,
        "index": chosen.indices[positions],
        "y_true": chosen.y_true[positions].astype(int),
    }
    for key, result in results.items():
        columns[f"{key}_clean"] = result.clean[positions].astype(int)
        columns[f"{key}_corrupted"] = result.predictions(corruption, severity)[positions].astype(
            int
        )
    return pd.DataFrame(columns)


def flip_caption(row: Mapping, names: Mapping[str, str], class_names: Sequence[str]) -> str:
    """One flip's caption: its index and label, then each model's clean → corrupted answer."""
    parts = [f"#{int(row['index'])} {class_names[int(row['y_true'])]}"]
    for key, name in names.items():
        clean, corrupted = (
            class_names[int(row[f"{key}_clean"])],
            class_names[int(row[f"{key}_corrupted"])],
        )
        parts.append(f"{name}: {clean} → {corrupted}")
    return " · ".join(parts)
