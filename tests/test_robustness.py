"""core.robustness: the corruptions against independent computations, the forward passes
against the predictor, the run cache, and the paired statistics against textbook formulas and
the bootstrap. Also the figures and the HTML export's section."""

from __future__ import annotations

import io
import itertools
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageOps
from scipy import ndimage, stats

from core import artifacts, export, metrics, robustness, runcache
from core.data import CLASS_NAMES
from core.figures import (
    robustness_difference_figure,
    robustness_figure,
    robustness_severity_figure,
)
from core.predict import load_predictor

N = 200  # real test images, 20 per class
MODELS = ("baseline", "residual")


@pytest.fixture(scope="module")
def sample(dataset):
    indices = robustness.subset_indices(dataset.y_test, N)
    return dataset.x_test[indices], dataset.y_test[indices], indices


class Counting:
    """A real predictor that counts the images it is asked about."""

    def __init__(self, predictor):
        self.predictor, self.images, self.calls = predictor, 0, 0

    def predict(self, x):
        self.calls += 1
        self.images += len(x)
        return self.predictor.predict(x)


@pytest.fixture(scope="module")
def robust_root(tiny_root, tmp_path_factory):
    """A copy of the tiny runs whose caches these tests write."""
    root = tmp_path_factory.mktemp("robust") / "artifacts"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("cache", ".*"))
    for model in MODELS:
        shutil.copy2(tiny_root / model / artifacts.DEFAULT_POINTER, root / model)
    return root


@pytest.fixture(scope="module")
def computed(robust_root, sample):
    """Both tiny runs evaluated on the sample once (and cached), with their counting predictors."""
    images, labels, indices = sample
    runs = {m: artifacts.load_run(m, root=robust_root) for m in MODELS}
    predictors = {m: Counting(load_predictor(run)) for m, run in runs.items()}
    seen = []
    results = robustness.evaluate_runs(
        runs, predictors, images, labels, indices, lambda done, total: seen.append((done, total))
    )
    return runs, predictors, results, seen


# ----------------------------------------------------------------------------------------------
# The corruptions


@pytest.mark.parametrize("corruption", robustness.CORRUPTION_NAMES)
def test_each_corruption_is_deterministic_keeps_shape_and_grows_with_severity(corruption, sample):
    images = sample[0]
    before = images.copy()
    assert np.array_equal(robustness.corrupt(images, corruption, 0), images)
    change = [0.0]
    for severity in robustness.SEVERITIES:
        out = robustness.corrupt(images, corruption, severity)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert np.array_equal(out, robustness.corrupt(images, corruption, severity))
        change.append(float(np.abs(out.astype(int) - images).mean()))
    assert np.array_equal(images, before)  # the input is never changed in place
    assert all(b > a for a, b in itertools.pairwise(change)), change


def test_identity_parameters_leave_the_images_unchanged(sample):
    images = sample[0]
    rng = np.random.default_rng(0)
    assert np.array_equal(robustness.gaussian_noise(images, 0.0, rng), images)
    assert np.array_equal(robustness.gaussian_blur(images, 0.0), images)
    assert np.array_equal(robustness.rotate(images, 0.0), images)
    assert np.array_equal(robustness.shift(images, 0, 0), images)
    assert np.array_equal(robustness.scale(images, 1.0), images)
    assert np.array_equal(robustness.contrast(images, 1.0), images)
    assert np.array_equal(robustness.brightness(images, 0.0), images)
    assert np.array_equal(robustness.occlude(images, 0, rng), images)
    assert np.array_equal(robustness.solarize(images, 256), images)


def test_inversion_at_full_severity_is_255_minus_x_and_solarize_is_pillows(sample):
    images = sample[0]
    assert np.array_equal(robustness.corrupt(images, "inversion", 5), 255 - images)
    for threshold in (200, 96):
        out = robustness.solarize(images, threshold)
        for image, got in zip(images[:5], out[:5], strict=True):
            expected = np.asarray(ImageOps.solarize(Image.fromarray(image), threshold))
            assert np.array_equal(got, expected)


@pytest.mark.parametrize(("dy", "dx"), [(2, -3), (-1, 4), (5, 5)])
def test_shift_is_np_roll_with_zero_fill(sample, dy, dx):
    images = sample[0]
    expected = np.roll(images, (dy, dx), axis=(1, 2))
    if dy > 0:
        expected[:, :dy] = 0
    else:
        expected[:, dy:] = 0
    if dx > 0:
        expected[:, :, :dx] = 0
    else:
        expected[:, :, dx:] = 0
    assert np.array_equal(robustness.shift(images, dy, dx), expected)


def test_shift_corruption_moves_each_image_k_pixels_on_both_axes(sample):
    images = sample[0]
    k = robustness.CORRUPTIONS["shift"].levels[2]
    out = robustness.corrupt(images, "shift", 3)
    ways = {(sy, sx): robustness.shift(images, sy * k, sx * k) for sy in (-1, 1) for sx in (-1, 1)}
    used = set()
    for i in range(len(images)):
        match = [way for way, moved in ways.items() if np.array_equal(moved[i], out[i])]
        assert match, f"image {i} is not a ±{k} px shift"
        used.add(match[0])
    assert len(used) == 4  # every direction drawn


def test_rotation_by_180_degrees_flips_both_axes_and_each_image_turns_one_way(sample):
    images = sample[0]
    assert np.array_equal(robustness.rotate(images, 180), images[:, ::-1, ::-1])
    degrees = robustness.CORRUPTIONS["rotation"].levels[1]
    out = robustness.corrupt(images, "rotation", 2)
    signs = []
    for image, got in zip(images[:40], out[:40], strict=True):  # scipy one image at a time
        one = {
            sign: np.clip(np.rint(ndimage.rotate(image.astype(np.float32), sign * degrees,
                          reshape=False, order=1)), 0, 255).astype(np.uint8)
            for sign in (-1, 1)
        }  # fmt: skip
        match = [sign for sign, rotated in one.items() if np.array_equal(rotated, got)]
        assert match
        signs.append(match[0])
    assert set(signs) == {-1, 1}


def test_jpeg_is_a_pillow_round_trip(sample):
    images = sample[0][:20]
    for quality in (30, 4):
        out = robustness.jpeg(images, quality)
        for image, got in zip(images, out, strict=True):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "JPEG", quality=quality)
            assert np.array_equal(got, np.array(Image.open(io.BytesIO(buffer.getvalue()))))
    level = robustness.CORRUPTIONS["jpeg"].levels[4]
    assert np.array_equal(robustness.corrupt(images, "jpeg", 5), robustness.jpeg(images, level))


def test_blur_noise_contrast_brightness_scale_and_occlusion_by_hand(sample):
    images = sample[0]
    x = images.astype(np.float64)
    # blur: scipy per image, 2-D
    one = ndimage.gaussian_filter(x[3], 1.0, mode="constant")
    assert np.abs(robustness.gaussian_blur(images, 1.0)[3] - one).max() <= 0.5 + 1e-6
    # noise: unclipped pixels move by N(0, sigma * 255)
    noisy = robustness.corrupt(images, "gaussian_noise", 2).astype(np.float64)
    sigma = robustness.CORRUPTIONS["gaussian_noise"].levels[1] * 255
    middle = (x > 100) & (x < 155)
    assert np.std(noisy[middle] - x[middle]) == pytest.approx(sigma, rel=0.05)
    # contrast: each image's mean kept (to rounding), spread scaled
    low = robustness.contrast(images, 0.3).astype(np.float64)
    assert np.abs(low.mean(axis=(1, 2)) - x.mean(axis=(1, 2))).max() < 0.5
    assert low.std(axis=(1, 2)) == pytest.approx(0.3 * x.std(axis=(1, 2)), rel=0.02)
    # brightness: + 0.2 * 255 = 51 wherever that does not clip
    bright = robustness.brightness(images, 0.2).astype(int)
    fits = images <= 204
    assert np.all(bright[fits] - images[fits] == 51) and np.all(bright[~fits] == 255)
    # scaling: a centred 16 px square shrinks to 8 px at half size
    square = np.zeros((1, 28, 28), np.uint8)
    square[:, 6:22, 6:22] = 200
    half = robustness.scale(square, 0.5)[0]
    rows, cols = np.flatnonzero(half.max(axis=1) > 100), np.flatnonzero(half.max(axis=0) > 100)
    assert len(rows) == len(cols) == 8 and rows.min() == cols.min() == 10
    # occlusion: one grey square of the level's side, the rest untouched
    side = robustness.CORRUPTIONS["occlusion"].levels[2]
    occluded = robustness.corrupt(images, "occlusion", 3)
    for image, got in zip(images, occluded, strict=True):
        changed = got != image
        assert np.all(got[changed] == robustness.OCCLUSION_GREY)
        ys, xs = np.nonzero(changed)
        assert ys.max() - ys.min() < side and xs.max() - xs.min() < side  # inside one square
        grey = got == robustness.OCCLUSION_GREY
        window = np.lib.stride_tricks.sliding_window_view(grey, (side, side)).all(axis=(2, 3))
        assert window.any()  # a whole side x side grey square


def test_bad_input_is_refused_with_a_clear_message(sample):
    images = sample[0]
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        robustness.corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity must be 0 to 5"):
        robustness.corrupt(images, "shift", 6)
    with pytest.raises(ValueError, match="expected uint8 images"):
        robustness.corrupt(images / 255, "shift", 1)


# ----------------------------------------------------------------------------------------------
# Forward passes and the cache


def test_subset_is_stratified_fixed_and_sorted(dataset):
    first = robustness.subset_indices(dataset.y_test, N)
    assert np.array_equal(first, robustness.subset_indices(dataset.y_test, N))
    assert np.all(np.diff(first) > 0)
    assert np.bincount(dataset.y_test[first], minlength=10).tolist() == [N // 10] * 10
    assert np.array_equal(robustness.subset_indices(dataset.y_test, None), np.arange(10_000))
    assert len(robustness.subset_indices(dataset.y_test, 20_000)) == 10_000


def test_evaluate_equals_the_predictor_on_corrupted_images(robust_root, sample):
    images, labels, indices = sample
    predictor = load_predictor(artifacts.load_run("residual", root=robust_root))
    chosen = ("rotation", "jpeg")
    result = robustness.evaluate(predictor, images, labels, indices, corruptions=chosen, batch=64)
    clean = predictor.predict(images.astype(np.float32) / 255).argmax(axis=1)
    assert np.array_equal(result.clean, clean) and result.pred.dtype == np.uint8
    for c, name in enumerate(chosen):
        for s in robustness.SEVERITIES:
            corrupted = robustness.corrupt(images, name, s).astype(np.float32) / 255
            assert np.array_equal(result.pred[c, s - 1], predictor.predict(corrupted).argmax(1))
    expected = (predictor.predict(robustness.corrupt(images, "jpeg", 4) / np.float32(255))
                .argmax(1) == labels).mean()  # fmt: skip
    assert result.accuracy()[1, 4] == pytest.approx(expected)
    assert result.accuracy()[0, 0] == pytest.approx((clean == labels).mean())


def test_evaluate_runs_counts_its_passes_and_reports_progress(computed):
    runs, predictors, results, seen = computed
    total = robustness.total_passes(N, 2)
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    for model in MODELS:
        assert predictors[model].images == total // 2
        assert results[model].pred.shape == (10, 5, N) and not results[model].from_cache
        path = runcache.cache_file(runs[model], robustness.cache_name(N))
        assert path.is_file()


def test_the_cache_is_reused_and_a_damaged_one_recomputed(computed, sample):
    runs, _, results, _ = computed
    images, labels, indices = sample
    fresh = {m: Counting(load_predictor(run)) for m, run in runs.items()}
    again = robustness.evaluate_runs(runs, fresh, images, labels, indices)
    assert all(p.calls == 0 for p in fresh.values())  # nothing recomputed
    for model in MODELS:
        assert again[model].from_cache
        assert np.array_equal(again[model].pred, results[model].pred)
        assert np.array_equal(again[model].indices, indices)
    # other images: not served
    assert robustness.read_cached(runs["baseline"], 255 - images, labels, indices) is None
    # a damaged file: recomputed (only for that run) and replaced by a good one
    path = runcache.cache_file(runs["baseline"], robustness.cache_name(N))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert robustness.read_cached(runs["baseline"], images, labels, indices) is None
    fresh = {m: Counting(load_predictor(run)) for m, run in runs.items()}
    redone = robustness.evaluate_runs(runs, fresh, images, labels, indices)
    assert (
        fresh["baseline"].images == robustness.total_passes(N, 1) and fresh["residual"].calls == 0
    )
    assert np.array_equal(redone["baseline"].pred, results["baseline"].pred)
    assert robustness.read_cached(runs["baseline"], images, labels, indices) is not None
    # the export's read (no images) finds it too
    assert robustness.read_cached(runs["baseline"], n_images=N) is not None


def test_a_changed_model_file_is_not_served(computed, sample):
    runs, _, _, _ = computed
    images, labels, indices = sample
    run = runs["residual"]
    files = {**run.manifest.files, artifacts.MODEL_FILE: "0" * 64}  # another model file
    changed = replace(run, manifest=replace(run.manifest, files=files))
    assert robustness.read_cached(changed, images, labels, indices) is None


# ----------------------------------------------------------------------------------------------
# Two models compared


def test_paired_interval_is_the_paired_proportion_formula_and_near_the_bootstrap():
    rng = np.random.default_rng(1)
    n = 4000
    right_a = rng.random(n) < 0.85
    right_b = np.where(rng.random(n) < 0.8, right_a, rng.random(n) < 0.9)
    diff, low, high = robustness.paired_interval(right_a, right_b)
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    se = np.sqrt(((b + c) / n - ((c - b) / n) ** 2) / n)  # Agresti, paired proportions
    assert diff == pytest.approx((c - b) / n)
    assert (low, high) == pytest.approx(((c - b) / n - 1.959964 * se, (c - b) / n + 1.959964 * se))
    # the same images as probabilities: core.metrics.compare's paired bootstrap agrees
    y_true = np.zeros(n, int)
    onehot = lambda right: np.eye(10)[np.where(right, 0, 1)]  # noqa: E731
    boot = metrics.compare(y_true, onehot(right_a), onehot(right_b))
    assert boot.difference == pytest.approx(diff)
    assert boot.ci_low == pytest.approx(low, abs=0.002)
    assert boot.ci_high == pytest.approx(high, abs=0.002)


def test_paired_interval_over_severities_averages_each_image_first():
    rng = np.random.default_rng(2)
    right_a = rng.random((5, 2000)) < np.linspace(0.9, 0.5, 5)[:, None]
    right_b = rng.random((5, 2000)) < np.linspace(0.9, 0.6, 5)[:, None]
    diff, low, high = robustness.paired_interval(right_a, right_b)
    per_image = right_b.mean(axis=0) - right_a.mean(axis=0)
    assert diff == pytest.approx(per_image.mean())
    boot = stats.bootstrap((per_image,), np.mean, n_resamples=4000, method="percentile",
                           random_state=0).confidence_interval  # fmt: skip
    assert (low, high) == pytest.approx((boot.low, boot.high), abs=0.003)


def _result(clean, pred, y_true):
    n = len(y_true)
    pred = np.asarray(pred, np.uint8).reshape(1, 5, n)
    full = np.repeat(pred, 10, axis=0)  # every corruption the same, for a small known case
    return robustness.Robustness(robustness.CORRUPTION_NAMES, np.asarray(y_true, np.uint8),
                                 np.arange(n), np.asarray(clean, np.uint8), full)  # fmt: skip


def test_paired_table_flips_and_errors_on_a_known_case():
    y = [0, 1, 2, 3]
    a = _result([0, 1, 2, 0], [[0, 1, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0],
                               [1, 1, 1, 1]], y)  # fmt: skip
    b = _result([0, 1, 2, 3], [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0],
                               [0, 0, 0, 0]], y)  # fmt: skip
    table = robustness.paired_table(a, b)
    rows = table[table["corruption"] == "shift"].set_index("severity")
    assert rows.loc["0", "accuracy_a"] == 0.75 and rows.loc["0", "accuracy_b"] == 1.0
    assert rows.loc["3", "accuracy_a"] == 0.25 and rows.loc["3", "accuracy_b"] == 0.5
    assert rows.loc["3", "only_b"] == 1 and rows.loc["3", "only_a"] == 0
    acc_a, acc_b = np.array([0.75, 0.5, 0.25, 0, 0.25]), np.array([1, 0.75, 0.5, 0.25, 0.25])
    assert rows.loc["mean", "difference"] == pytest.approx((acc_b - acc_a).mean())
    # flip rate: of A's 3 clean-right images, wrong at severity 2 is image 2: 1/3
    assert rows.loc["2", "flips_a"] == pytest.approx(1 / 3)
    assert a.flips("shift", 2).tolist() == [2]
    overall = table[table["corruption"] == robustness.ALL].iloc[0]
    assert overall["difference"] == pytest.approx((acc_b - acc_a).mean())
    errors = robustness.corruption_errors(a, b)
    assert errors.loc["shift", "ce"] == pytest.approx((1 - acc_b).sum() / (1 - acc_a).sum())
    relative = ((1 - acc_b) - 0).sum() / ((1 - acc_a) - 0.25).sum()
    assert errors.loc["shift", "relative_ce"] == pytest.approx(relative)
    summary = robustness.summary_table(table, errors, "baseline", "residual")
    assert len(summary) == 11 and summary.index[-1] == "all corruptions"
    assert summary.iloc[-1]["CE Residual CNN / Baseline CNN"] == pytest.approx(errors["ce"].mean())
    text = " ".join(robustness.robustness_text(table, errors, "baseline", "residual", 4))
    assert "clean accuracy 75.0% (Baseline CNN) and 100.0% (Residual CNN)" in text
    items = robustness.flip_items({"baseline": a, "residual": b}, "baseline", "shift", 2)
    assert items["index"].tolist() == [2]
    caption = robustness.flip_caption(
        items.iloc[0], {"baseline": "A", "residual": "B"}, CLASS_NAMES
    )
    assert caption == "#2 Pullover · A: Pullover → T-shirt/top · B: Pullover → Pullover"


def test_results_on_other_images_cannot_be_paired():
    a = _result([0, 1], np.zeros((5, 2)), [0, 1])
    b = robustness.Robustness(a.corruptions, a.y_true, np.array([5, 6]), a.clean, a.pred)
    with pytest.raises(ValueError, match="different test images"):
        robustness.paired_table(a, b)


def test_figures_draw_what_was_computed(computed):
    _, _, results, _ = computed
    a, b = (results[m] for m in MODELS)
    titles = robustness.titles()
    table = robustness.paired_table(a, b)
    accuracy = {m: r.accuracy() for m, r in results.items()}
    fig = robustness_figure(accuracy, titles)
    assert len(fig.data) == 20 and sum(t.showlegend for t in fig.data) == 2
    assert list(fig.data[2].y) == pytest.approx(accuracy["baseline"][1].tolist())
    forest = robustness_difference_figure(table, titles, *MODELS)
    means = table[table["severity"] == "mean"].set_index("corruption")["difference"] * 100
    order = [robustness.ALL, *robustness.CORRUPTION_NAMES]
    assert list(forest.data[0].x)[1:] == pytest.approx(means.loc[order].tolist())
    assert list(forest.data[0].y)[:3] == ["clean images", "all corruptions", "Gaussian noise"]
    grid = robustness_severity_figure(table, titles, *MODELS)
    rotation = table[(table["corruption"] == "rotation") & (table["severity"] == "4")]
    assert np.asarray(grid.data[0].z)[2, 3] == pytest.approx(rotation["difference"].iloc[0] * 100)


def test_the_export_has_a_robustness_section_once_cached(computed, monkeypatch):
    runs, _, results, _ = computed
    names = {m: m for m in MODELS}
    monkeypatch.setattr(robustness, "PAGE_IMAGES", N)
    sections = [s for s in export.export_sections(runs, runs["baseline"].path.parent.parent)
                if s.title == export.ROBUSTNESS_TITLE]  # fmt: skip
    assert len(sections) == 1
    (section,) = sections
    assert len(section.figures) == 3 and section.tables[0].shape[0] == 11
    table = robustness.paired_table(results["baseline"], results["residual"])
    clean = table[table["severity"] == "0"].iloc[0]
    assert f"{clean['accuracy_a']:.1%} (Baseline CNN)" in section.paragraphs[0]
    html = export.html_document("t", sections, {"runs": names})
    assert "Robustness: which model breaks first?" in html
    json.dumps(section.figures[0].to_plotly_json(), default=str)  # serialisable
    monkeypatch.setattr(robustness, "PAGE_IMAGES", 7)  # no cache of that size: no section
    titles = [s.title for s in export.export_sections(runs, runs["baseline"].path.parent.parent)]
    assert export.ROBUSTNESS_TITLE not in titles


def test_estimate_and_duration_text(computed, sample):
    runs, _, _, _ = computed
    predictors = {m: load_predictor(run) for m, run in runs.items()}
    seconds = robustness.estimate_seconds(predictors, sample[0], sample=20)
    assert np.isfinite(seconds) and seconds > 0
    assert robustness.duration_text(42.4) == "about 42 s"
    assert robustness.duration_text(200) == "about 3 min"
