"""core.predict: ONNX Runtime (the runs' model.onnx) and the numpy engine, each checked against
Keras itself on real images; the Predict page's round trip on shipped runs."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import artifacts, modelfile
from core.data import CLASS_NAMES, normalise
from core.manifest import MODEL_FILE
from core.modelfile import ModelFileError, UnsupportedModel
from core.models import MODEL_NAMES, get_spec
from core.predict import NumpyModel, OnnxModel, load_predictor, predict_both, top_k

PROJECT = Path(__file__).resolve().parent.parent
ENGINES = ("onnxruntime", "numpy")


@pytest.fixture(scope="module")
def runs(tiny_root) -> dict[str, artifacts.Run]:
    return {name: artifacts.load_run(name, root=tiny_root) for name in MODEL_NAMES}


@pytest.fixture(scope="module")
def engines(runs) -> dict[str, OnnxModel]:
    """What the dashboard runs: the trainer exported model.onnx into every tiny run."""
    found = {name: load_predictor(run) for name, run in runs.items()}
    assert all(isinstance(engine, OnnxModel) for engine in found.values())
    return found


@pytest.fixture(scope="module")
def numpy_engines(runs) -> dict[str, NumpyModel]:
    return {name: NumpyModel.from_keras_file(run.path / MODEL_FILE) for name, run in runs.items()}


@pytest.fixture(params=ENGINES)
def any_engines(request, engines, numpy_engines) -> dict:
    return engines if request.param == "onnxruntime" else numpy_engines


@pytest.fixture(scope="module")
def keras_models(runs) -> dict:
    return {name: run.load_keras_model() for name, run in runs.items()}


@pytest.fixture(scope="module")
def images(dataset) -> np.ndarray:
    return normalise(dataset.x_test[:200])  # (200, 28, 28, 1) float32


# ----------------------------------------------------------------------------------------------
# Same answers as Keras


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_probabilities_match_keras(name, any_engines, keras_models, images):
    import keras

    expected = keras.ops.convert_to_numpy(keras_models[name](images, training=False))
    got = any_engines[name].predict(images)
    assert got.shape == (len(images), len(CLASS_NAMES)) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(any_engines[name].predict(images[..., 0]), got)  # (n, 28, 28)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_penultimate_matches_keras(name, any_engines, keras_models, images):
    import keras

    model = keras_models[name]
    features = keras.Model(model.inputs[0], model.layers[-1].input)
    expected = keras.ops.convert_to_numpy(features(images[:50], training=False))
    got = any_engines[name].penultimate(images[:50])
    assert got.shape == expected.shape == (50, model.layers[-1].input.shape[-1])
    assert any_engines[name].feature_width == got.shape[1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_any_layers_output_matches_keras(name, any_engines, keras_models, images):
    """The public graph: layers in execution order (read-only), the output layer, and
    ``forward_to`` any of them (ONNX Runtime: its graph's outputs in the session, the others in
    numpy); ``predict`` is ``forward_to`` the output layer."""
    import keras

    engine, model = any_engines[name], keras_models[name]
    layers = engine.layers
    assert list(layers)[-1] == engine.output_layer.name == model.layers[-1].name
    assert engine.output_layer.kernel.shape == tuple(model.layers[-1].kernel.shape)
    with pytest.raises(TypeError):
        layers["extra"] = engine.output_layer  # a view, not the engine's own dict
    for layer in model.layers:
        expected = keras.Model(model.inputs[0], layer.output)(images[:40], training=False)
        got = engine.forward_to(images[:40, ..., 0], layer.name)  # (n, 28, 28) is checked too
        assert got.dtype == np.float32 and got.shape == (40, *layers[layer.name].output_shape)
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(expected), atol=1e-4)
    np.testing.assert_array_equal(engine.forward_to(images, engine.output_layer.name),
                                  engine.predict(images))  # fmt: skip
    with pytest.raises(KeyError, match="no layer 'nope'"):
        engine.forward_to(images, "nope")
    assert engine.check_input(images[:3, ..., 0]).shape == (3, 28, 28, 1)
    with pytest.raises(ValueError, match="expected float pixels"):
        engine.check_input(np.zeros((1, 28, 28), np.uint8))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_layer_table_matches_keras_and_the_registry(name, any_engines, keras_models):
    table = any_engines[name].layer_table()
    model = keras_models[name]
    assert list(table.columns) == ["layer", "type", "output shape", "params"]
    assert table["params"].sum() == any_engines[name].total_params
    assert any_engines[name].total_params == get_spec(name).params == model.count_params()
    names = [layer.name for layer in model.layers]
    assert [n for n in table["layer"] if n in names] == names  # Keras' order
    hidden = table.loc[~table["layer"].isin(names), "type"]  # Sequential hides its input
    assert set(hidden) <= {"InputLayer"} and len(hidden) <= 1
    rows = table.set_index("layer")
    for layer in model.layers:
        row = rows.loc[layer.name]
        assert row["type"] == type(layer).__name__
        assert row["output shape"] == str(tuple(layer.output.shape[1:]))
        assert row["params"] == layer.count_params()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_dot_graph_names_every_layer_and_the_shortcut(name, any_engines):
    engine = any_engines[name]
    dot = engine.to_dot()
    table = engine.layer_table()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for layer, kind, shape in table[["layer", "type", "output shape"]].itertuples(index=False):
        assert f'"{layer}" [label="{kind}  {shape}' in dot
    edges = [line for line in dot.splitlines() if "->" in line]
    adds = table.loc[table["type"] == "Add", "layer"].tolist()
    assert len(edges) == len(table) - 1 + len(adds)  # a chain, plus one edge per shortcut
    for add in adds:
        assert sum(line.endswith(f'-> "{add}";') for line in edges) == 2
    assert bool(adds) == (name == "residual")


def test_predict_both_and_top_k(any_engines, images):
    engines = any_engines
    pixels = images[7, ..., 0]
    result = predict_both(engines, pixels)
    assert set(result) == set(MODEL_NAMES)
    for name, prob in result.items():
        assert prob.shape == (len(CLASS_NAMES),)
        assert prob.sum() == pytest.approx(1, abs=1e-5)
        np.testing.assert_array_equal(prob, engines[name].predict(pixels[None])[0])
    best = top_k(result["baseline"])
    assert len(best) == 3 and best[0][0] == CLASS_NAMES[int(result["baseline"].argmax())]


def test_top_k():
    prob = np.array([0.05, 0.5, 0.0, 0.2, 0.0, 0.0, 0.2, 0.05, 0.0, 0.0], np.float32)
    assert top_k(prob) == [
        ("Trouser", 0.5),
        ("Dress", pytest.approx(0.2)),
        ("Shirt", pytest.approx(0.2)),
    ]
    assert [name for name, _ in top_k(prob, k=10)][:4] == [
        "Trouser",
        "Dress",
        "Shirt",
        "T-shirt/top",
    ]
    assert top_k(prob, k=1) == [("Trouser", 0.5)]
    with pytest.raises(ValueError, match="10 probabilities"):
        top_k(np.ones(3) / 3)


def test_predict_refuses_wrong_input(any_engines):
    engines = any_engines
    engine = engines["baseline"]
    with pytest.raises(ValueError, match="float"):
        engine.predict(np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        engine.predict(np.zeros((1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="one image"):
        predict_both(engines, np.zeros((1, 28, 28), np.float32))
    assert engine.predict(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)


# ----------------------------------------------------------------------------------------------
# Threads


def test_threads_share_a_model_and_get_the_single_threaded_answers(any_engines, images):
    # batches of 1-5 images take both paths of the numpy engine's matrix product (kept on the
    # calling thread, and split over the BLAS threads); ONNX Runtime's session runs concurrently
    engines = any_engines
    jobs = [(name, images[i::8][: 1 + i % 5]) for i in range(16) for name in MODEL_NAMES]
    alone = [engines[name].predict(x) for name, x in jobs]
    with ThreadPoolExecutor(max_workers=16) as pool:
        together = list(pool.map(lambda job: engines[job[0]].predict(job[1]), jobs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------------------------
# Files: checked, read safely, refused when wrong


def test_tampered_model_file_is_refused(tiny_root, tmp_path):
    root = shutil.copytree(tiny_root, tmp_path / "artifacts")
    run = artifacts.load_run("baseline", root=root)
    path = run.path / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(artifacts.RunError, match="changed since it was verified"):
        load_predictor(run)


def test_engine_loads_a_file_directly(runs, engines, images):
    engine = NumpyModel.from_keras_file(runs["residual"].path / MODEL_FILE)
    np.testing.assert_allclose(
        engine.predict(images[:5]), engines["residual"].predict(images[:5]), rtol=0, atol=1e-5
    )


def rezip(source: Path, replace: dict[str, bytes | None]) -> bytes:
    """A copy of a .keras zip with members replaced (or dropped, for None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            if info.filename in replace:
                continue
            new.writestr(info, old.read(info))
        for name, data in replace.items():
            if data is not None:
                new.writestr(name, data)
    return out.getvalue()


def test_weights_found_by_position_in_files_without_layer_names(runs, numpy_engines, images):
    """Keras versions that do not record ``vars.attrs['name']``: keys follow class names."""
    import h5py

    path = runs["residual"].path / MODEL_FILE
    with zipfile.ZipFile(path) as archive:
        raw = archive.read("model.weights.h5")
    buffer = io.BytesIO(raw)
    with h5py.File(buffer, "r+") as h5:
        for group in h5["layers"].values():
            group["vars"].attrs.pop("name", None)
    engine = NumpyModel.from_bytes(rezip(path, {"model.weights.h5": buffer.getvalue()}))
    np.testing.assert_array_equal(
        engine.predict(images[:5]), numpy_engines["residual"].predict(images[:5])
    )


def test_damaged_files_are_refused(runs, monkeypatch):
    path = runs["baseline"].path / MODEL_FILE
    with pytest.raises(ModelFileError, match="not a zip"):
        NumpyModel.from_bytes(b"PK but not really a zip")
    with pytest.raises(ModelFileError, match=r"config\.json is missing"):
        NumpyModel.from_bytes(rezip(path, {"config.json": None}))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        NumpyModel.from_bytes(rezip(path, {"config.json": b"{nope"}))
    with pytest.raises(ModelFileError, match=r"model.weights.h5 cannot be read"):
        NumpyModel.from_bytes(rezip(path, {"model.weights.h5": b"not hdf5"}))
    monkeypatch.setitem(modelfile.MEMBER_LIMITS, "model.weights.h5", 1000)
    with pytest.raises(ModelFileError, match="more than the 1,000"):
        NumpyModel.from_bytes(path.read_bytes())


def test_damaged_model_in_a_run_is_a_run_error(tiny_root, tmp_path):
    root = shutil.copytree(tiny_root, tmp_path / "artifacts")
    run = artifacts.load_run("baseline", root=root)
    garbage = rezip(run.path / MODEL_FILE, {"config.json": b"[]"})
    (run.path / MODEL_FILE).write_bytes(garbage)
    files = {**run.manifest.files, MODEL_FILE: artifacts.sha256_file(run.path / MODEL_FILE)}
    run = replace(run, manifest=replace(run.manifest, files=files))  # as if it had been saved so
    with pytest.raises(artifacts.RunError, match=r"baseline/.*not a model config"):
        load_predictor(run)


def _save(model, tmp_path: Path) -> Path:
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("batchnorm_axis", "normalises axis 1"),
        ("dilated", "dilation"),
        ("leaky", "plain ReLU"),
        ("gelu", "activation 'gelu'"),
        ("avgpool", "AveragePooling2D"),
    ],
)
def test_unsupported_models_are_named(make, message, tmp_path):
    import keras
    from keras import layers

    inputs = keras.Input((8, 8, 1))
    if make == "batchnorm_axis":
        x = layers.BatchNormalization(axis=1)(layers.Conv2D(2, 3)(inputs))
    elif make == "dilated":
        x = layers.Conv2D(2, 3, dilation_rate=2)(inputs)
    elif make == "leaky":
        x = layers.ReLU(negative_slope=0.1)(layers.Conv2D(2, 3)(inputs))
    elif make == "gelu":
        x = layers.Conv2D(2, 3, activation="gelu")(inputs)
    else:
        x = layers.AveragePooling2D(2)(inputs)
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(x))
    path = _save(keras.Model(inputs, outputs, name=make), tmp_path)
    with pytest.raises(UnsupportedModel, match=message):
        NumpyModel.from_keras_file(path)


@pytest.mark.parametrize("kind", ["functional", "sequential", "inference_layers"])
def test_unusual_shapes_match_keras(kind, tmp_path):
    """Even 'same' kernels, non-square kernels, overlapping pools, three-way adds, biasless
    layers, tanh and sigmoid; strided convolutions on odd sizes ('same' pads the odd pixel
    after), batch normalisation with and without its scale and offset, dropout, global average
    pooling, Activation and ReLU layers: the engine's conventions are TensorFlow's."""
    import keras
    from keras import layers

    if kind == "inference_layers":
        inputs = keras.Input((13, 12, 2))
        x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)  # 7x6
        x = layers.BatchNormalization(epsilon=0.01)(x)
        x = layers.Conv2D(5, (3, 2), strides=(2, 1), use_bias=False)(x)  # 3x5, valid
        x = layers.BatchNormalization(center=False, scale=False)(x)
        x = layers.Dropout(0.5)(layers.Activation("tanh")(x))
        a = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
        b = layers.Flatten()(layers.GlobalAveragePooling2D(keepdims=True)(x))
        x = layers.Dense(6, activation="relu")(layers.add([a, b]))
        model = keras.Model(inputs, layers.Dense(4, activation="softmax")(x), name="infer")
    elif kind == "functional":
        inputs = keras.Input((11, 9, 2))
        a = layers.Conv2D(4, 2, padding="same", activation="tanh")(inputs)
        b = layers.Conv2D(4, (3, 1), padding="same", use_bias=False)(inputs)
        c = layers.Conv2D(4, 1, activation="sigmoid")(inputs)
        x = layers.add([a, b, c])
        x = layers.MaxPooling2D(pool_size=3, strides=2)(x)
        x = layers.Conv2D(3, (2, 3), activation="relu")(x)
        x = layers.Dense(5, use_bias=False)(layers.Flatten()(x))
        model = keras.Model(inputs, layers.Dense(4, activation="softmax")(x), name="odd")
    else:
        model = keras.Sequential(
            [
                keras.Input((10, 10, 1)),
                layers.Conv2D(3, 4, padding="same", activation="relu"),
                layers.MaxPooling2D((2, 3)),
                layers.Flatten(),
                layers.Dense(6, activation="sigmoid"),
                layers.Dense(3, activation="softmax"),
            ],
            name="odd_seq",
        )
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):  # a variance is positive
            layer.moving_variance.assign(rng.uniform(0.2, 3, layer.moving_variance.shape))
    x = rng.random((7, *model.input_shape[1:]), dtype=np.float32)
    engine = NumpyModel.from_keras_file(_save(model, tmp_path))
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(engine.predict(x), expected, atol=1e-5)
    assert engine.total_params == model.count_params()


# ----------------------------------------------------------------------------------------------
# No TensorFlow


def test_predicting_does_not_import_tensorflow(runs):
    code = (
        "import sys, numpy as np\n"
        "import core.explain, core.predict, core.preprocess\n"
        "from core import artifacts\n"
        "run = artifacts.load_run('residual', root=sys.argv[1])\n"
        "x = np.zeros((2, 28, 28), np.float32)\n"
        "model = core.predict.load_predictor(run)\n"
        "assert model.engine == 'onnxruntime', model\n"
        "model.predict(x); model.penultimate(x); model.layer_table(); model.to_dot()\n"
        "core.explain.grad_cam(model, x, 1)\n"
        "core.predict.NumpyModel.from_keras_file(run.path / 'model.keras').predict(x)\n"
        "bad = sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules)\n"
        "print('imported:', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(runs["residual"].path.parent.parent)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------------------------
# The Predict page's round trip: a shop's product photo of a test garment


def product_photo(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """A test image as a shop photographs a garment: dark on white, several times larger,
    somewhere off-centre on a wider white sheet, saved as JPEG."""
    from PIL import Image

    size = int(rng.integers(180, 420))
    garment = Image.fromarray(255 - image).resize((size, size), Image.Resampling.BICUBIC)
    sheet = Image.new("L", (size + int(rng.integers(60, 400)), size + int(rng.integers(60, 400))),
                      255)  # fmt: skip
    where = (
        int(rng.integers(0, sheet.width - size + 1)),
        int(rng.integers(0, sheet.height - size + 1)),
    )
    sheet.paste(garment, where)
    buffer = io.BytesIO()
    sheet.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photographed(dataset) -> tuple[np.ndarray, np.ndarray]:
    """300 random test images as product photos, prepared as the Predict page prepares an
    upload: (test indices, pixels (300, 28, 28))."""
    from core.preprocess import prepare_upload

    rng = np.random.default_rng(0)
    index = rng.choice(len(dataset.x_test), 300, replace=False)
    pixels = [prepare_upload(product_photo(dataset.x_test[i], rng)).pixels for i in index]
    return index, np.stack(pixels)


@pytest.mark.parametrize("name", ["baseline", "residual"])
def test_product_photos_are_classified_as_well_as_the_stored_predictions(name, photographed):
    """The shipped default (seed 0) run, on ONNX Runtime: within 3 points of its own stored
    test-set predictions on the same images (measured: 89.3% against 87.7%, 90.0% against 89.0%)."""
    index, pixels = photographed
    run = artifacts.load_run(name)
    predictor = load_predictor(run)
    assert isinstance(predictor, OnnxModel)
    photo_accuracy = (predictor.predict(pixels).argmax(axis=1) == run.y_true[index]).mean()
    stored_accuracy = (run.y_prob[index].argmax(axis=1) == run.y_true[index]).mean()
    assert photo_accuracy >= stored_accuracy - 0.03, (photo_accuracy, stored_accuracy)
