"""core.explain: Grad-CAM (the Grad-CAM layer's activations from ONNX Runtime or the numpy engine,
the head's backward pass in numpy) held to a tf.GradientTape reference, on the tiny runs and on
the shipped runs with real test images; the overlay and its colour map. The test model's
(tests/extra_model.py) are in tests/test_onnx.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import artifacts
from core.data import normalise
from core.explain import (
    HEATMAP_LEGEND,
    INFERNO_ANCHORS,
    grad_cam,
    grad_cam_keras,
    heat_colours,
    overlay,
)
from core.modelfile import UnsupportedModel
from core.models import MODEL_NAMES
from core.predict import NumpyModel, OnnxModel, load_predictor

PROJECT = Path(__file__).resolve().parent.parent
SOURCES = ("tiny", "shipped")
ENGINES = ("onnxruntime", "numpy")


@pytest.fixture(scope="module")
def runs(tiny_root) -> dict[tuple[str, str], artifacts.Run]:
    """Both models' runs: the session's tiny ones, and the shipped defaults in artifacts/."""
    found = {}
    for name in MODEL_NAMES:
        found["tiny", name] = artifacts.load_run(name, root=tiny_root)
        found["shipped", name] = artifacts.load_run(name)
    return found


@pytest.fixture(scope="module")
def engines(runs) -> dict[tuple[str, str, str], OnnxModel | NumpyModel]:
    """(source, model, engine) → the run's model on ONNX Runtime (``load_predictor``: the runs
    carry model.onnx) or on the numpy engine."""
    found = {}
    for (source, name), run in runs.items():
        found[source, name, "onnxruntime"] = load_predictor(run)
        assert isinstance(found[source, name, "onnxruntime"], OnnxModel)
        found[source, name, "numpy"] = NumpyModel.from_keras_file(run.path / "model.keras")
    return found


@pytest.fixture(scope="module")
def keras_models(runs) -> dict:
    return {key: run.load_keras_model() for key, run in runs.items()}


@pytest.fixture(scope="module")
def images(dataset) -> np.ndarray:
    return normalise(dataset.x_test[:48])[..., 0]  # (48, 28, 28) float32


def _save(model, tmp_path: Path) -> NumpyModel:
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return NumpyModel.from_keras_file(path)


def _random_weights(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])


# ----------------------------------------------------------------------------------------------
# Same maps as the tf.GradientTape reference


@pytest.mark.parametrize("engine_kind", ENGINES)
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("source", SOURCES)
def test_matches_the_keras_reference(source, name, engine_kind, engines, keras_models, images):
    engine, model = engines[source, name, engine_kind], keras_models[source, name]
    predicted = engine.predict(images).argmax(axis=1)
    others = np.random.default_rng(1).integers(0, 10, len(images))
    for classes in (predicted, others, 3):
        got = grad_cam(engine, images, classes)
        expected = grad_cam_keras(model, images, classes)
        assert got.shape == expected.shape == (len(images), 28, 28)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        assert got.min() >= 0 and got.max() <= 1
        peaks = got.max(axis=(1, 2))
        assert np.all((peaks == 1) | (peaks == 0))  # each map divided by its own maximum
    assert (grad_cam(engine, images, predicted).max(axis=(1, 2)) == 1).mean() > 0.9


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("source", SOURCES)
def test_maps_depend_on_the_image_and_the_class(source, name, engines, dataset):
    engine = engines[source, name, "onnxruntime"]
    trouser = int(np.flatnonzero(dataset.y_test == 1)[0])
    bag = int(np.flatnonzero(dataset.y_test == 8)[0])
    pair = normalise(dataset.x_test[[trouser, bag]])
    same_class = grad_cam(engine, pair, 1)
    assert np.abs(same_class[0] - same_class[1]).max() > 0.2
    one_image = grad_cam(engine, pair[[0, 0, 0]], np.array([1, 8, 5]))
    assert np.abs(one_image[0] - one_image[1]).max() > 0.05
    assert np.abs(one_image[0] - one_image[2]).max() > 0.05


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_deterministic_and_independent_of_the_batch(name, engines, images):
    engine = engines["shipped", name, "onnxruntime"]
    classes = engine.predict(images).argmax(axis=1)
    first = grad_cam(engine, images, classes)
    np.testing.assert_array_equal(grad_cam(engine, images, classes), first)
    np.testing.assert_array_equal(grad_cam(engine, images[..., None], classes), first)
    alone = np.concatenate([grad_cam(engine, images[i : i + 1], classes[i]) for i in range(8)])
    np.testing.assert_allclose(alone, first[:8], rtol=0, atol=1e-5)
    assert grad_cam(engine, images[:0], classes[:0]).shape == (0, 28, 28)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_one_image_takes_milliseconds(name, engines, images):
    engine = engines["shipped", name, "onnxruntime"]
    grad_cam(engine, images[:1], 0)
    seconds = []
    for i in range(15):
        start = time.perf_counter()
        grad_cam(engine, images[i : i + 1], i % 10)
        seconds.append(time.perf_counter() - start)
    assert np.median(seconds) < 0.05  # ~2-3 ms measured on 2 busy cores


def test_unusual_chains_match_keras(tmp_path):
    """Non-square input, overlapping pools (ties between zeros go to the first maximum, as in
    TensorFlow), a linear and a relu Dense after the last convolution, biasless layers."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input((13, 11, 2)),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(5, (2, 3), activation="relu", use_bias=False),
            layers.MaxPooling2D(pool_size=3, strides=1),
            layers.Flatten(),
            layers.Dense(7),
            layers.Dense(6, activation="relu", use_bias=False),
            layers.Dense(4, activation="softmax"),
        ],
        name="odd_chain",
    )
    _random_weights(model)
    x = np.random.default_rng(2).random((9, 13, 11, 2), dtype=np.float32)
    classes = np.arange(9) % 4
    got = grad_cam(_save(model, tmp_path), x, classes)
    assert got.shape == (9, 13, 11)
    np.testing.assert_allclose(got, grad_cam_keras(model, x, classes), rtol=0, atol=1e-4)


def test_no_positive_evidence_gives_an_all_zero_map(tmp_path):
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            layers.Conv2D(2, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(2, activation="softmax"),
        ],
        name="one_sided",
    )
    kernel = np.ones((32, 2), np.float32)
    kernel[:, 0] = -1  # every activation lowers class 0's score
    ones, zeros = np.ones((3, 3, 1, 2), np.float32), np.zeros(2, np.float32)
    model.set_weights([ones, zeros, kernel, zeros])
    x = np.random.default_rng(3).random((3, 6, 6), dtype=np.float32)
    engine = _save(model, tmp_path)
    against = grad_cam(engine, x, 0)
    assert against.shape == (3, 6, 6) and not against.any()
    np.testing.assert_array_equal(against, grad_cam_keras(model, x, 0))
    assert np.all(grad_cam(engine, x, 1).max(axis=(1, 2)) == 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("no_conv", "needs a Conv2D layer"),
        ("add_after_conv", "layer 'join' is a Add"),
        ("tanh_dense", "activation 'tanh'"),
        ("sigmoid_output", "softmax or linear activation"),
    ],
)
def test_unsupported_paths_are_named(make, message, tmp_path):
    import keras
    from keras import layers

    inputs = keras.Input((8, 8, 1))
    activation = "softmax"
    if make == "no_conv":
        x = layers.Flatten()(inputs)
    elif make == "add_after_conv":
        a = layers.Conv2D(2, 3, activation="relu")(inputs)
        b = layers.Conv2D(2, 3, activation="relu")(inputs)
        x = layers.Flatten()(layers.add([a, b], name="join"))
    else:
        x = layers.Flatten()(layers.Conv2D(2, 3, activation="relu")(inputs))
        if make == "tanh_dense":
            x = layers.Dense(4, activation="tanh")(x)
        else:
            activation = "sigmoid"
    outputs = layers.Dense(3, activation=activation)(x)
    engine = _save(keras.Model(inputs, outputs, name=make), tmp_path)
    engine.predict(np.zeros((1, 8, 8), np.float32))  # the engine itself runs the model
    with pytest.raises(UnsupportedModel, match=message):
        grad_cam(engine, np.zeros((1, 8, 8), np.float32), 0)


def test_bad_class_indices_are_refused(engines, images):
    engine = engines["tiny", "baseline", "onnxruntime"]
    with pytest.raises(ValueError, match=r"lie in 0\.\.9"):
        grad_cam(engine, images[:2], 10)
    with pytest.raises(ValueError, match=r"one per image \(2,\)"):
        grad_cam(engine, images[:2], np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="must be integers"):
        grad_cam(engine, images[:2], 1.5)
    with pytest.raises(ValueError, match="float pixels"):
        grad_cam(engine, (images[:2] * 255).astype(np.uint8), 1)


# ----------------------------------------------------------------------------------------------
# Pictures


def _lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L* of sRGB uint8 colours, from the standard formulas."""
    c = rgb.astype(np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = linear @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(y > (6 / 29) ** 3, 116 * np.cbrt(y) - 16, y * (29 / 3) ** 3)


def test_colour_map_is_ordered_by_lightness():
    colours = heat_colours(np.linspace(0, 1, 256))
    assert colours.shape == (256, 3) and colours.dtype == np.uint8
    np.testing.assert_array_equal(colours[0], INFERNO_ANCHORS[0])
    np.testing.assert_array_equal(colours[-1], INFERNO_ANCHORS[-1])
    lightness = _lightness(colours)
    assert np.all(np.diff(lightness) >= -0.5)  # never darker as the value rises
    assert lightness[-1] - lightness[0] > 90
    np.testing.assert_array_equal(heat_colours([-1, 2]), heat_colours([0, 1]))  # clipped


def test_overlay_blends_and_enlarges(dataset):
    image = dataset.x_test[0]
    cam = np.random.default_rng(4).random((28, 28)).astype(np.float32)
    picture = overlay(image, cam)
    assert picture.shape == (168, 168, 3) and picture.dtype == np.uint8
    blocks = picture.reshape(28, 6, 28, 6, 3)
    assert np.all(blocks == blocks[:, :1, :, :1])  # square pixels, nearest neighbour

    grey = overlay(image, cam, scale=2, alpha=0)
    np.testing.assert_array_equal(grey[::2, ::2], np.repeat(image[..., None], 3, axis=-1))
    heat = overlay(image, cam, scale=1, alpha=1)
    np.testing.assert_array_equal(heat, heat_colours(cam))
    half = overlay(image, cam, scale=1, alpha=0.5)
    expected = 0.5 * image[..., None] + 0.5 * heat_colours(cam)
    assert np.abs(half.astype(float) - expected).max() <= 0.5

    with pytest.raises(ValueError, match="differ in shape"):
        overlay(image, cam[:27])
    with pytest.raises(ValueError, match="uint8 image"):
        overlay(image.astype(np.float32), cam)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, cam, alpha=1.5)


def test_legend_text():
    assert "Grad-CAM" in HEATMAP_LEGEND and "\n" not in HEATMAP_LEGEND


def test_explaining_does_not_import_tensorflow(runs):
    code = (
        "import sys, numpy as np\n"
        "import core.explain, core.neighbours\n"
        "from core import artifacts\n"
        "from core.predict import load_predictor\n"
        "model = load_predictor(artifacts.load_run('residual', sys.argv[1]))\n"
        "assert model.engine == 'onnxruntime', model\n"
        "x = np.random.default_rng(0).random((2, 28, 28), dtype=np.float32)\n"
        "cam = core.explain.grad_cam(model, x, [1, 2])\n"
        "core.explain.overlay((x[0] * 255).astype(np.uint8), cam[0])\n"
        "f = model.penultimate(x)\n"
        "core.neighbours.nearest_training(f[:1], f, k=2)\n"
        "bad = sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules)\n"
        "print('imported:', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, runs["shipped", "residual"].run_id],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
