"""model.onnx: ONNX Runtime held to Keras on the shipped runs and on the test model of
tests/extra_model.py (BatchNormalization, Dropout, a stride-2 convolution, global pooling), its
Grad-CAM held to tf.GradientTape, the trainer's export, and ``python -m core.onnxexport``, which
adds model.onnx to existing runs: atomic, idempotent, refusing damaged runs."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import artifacts, onnxexport
from core.data import normalise, one_hot
from core.explain import grad_cam, grad_cam_keras, grad_cam_path
from core.manifest import MANIFEST, MODEL_FILE, ONNX_COMMAND, ONNX_FILE
from core.modelfile import UnsupportedModel
from core.predict import FEATURES, GRAD_CAM, PROBABILITIES, NumpyModel, OnnxModel, load_predictor

SHIPPED = ("baseline", "residual")  # the registry's models, with runs under artifacts/
ROLES = (PROBABILITIES, FEATURES, GRAD_CAM)


def assert_close(got: np.ndarray, want: np.ndarray, tolerance: float = onnxexport.TOLERANCE):
    """Equal within ``tolerance`` of the output's scale (as the export checks it)."""
    assert got.shape == want.shape and got.dtype == np.float32
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * scale)


def keras_outputs(model, outputs: dict[str, str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Each graph output's Keras value: the model's own, or its layer's output."""
    import keras

    found = {PROBABILITIES: keras.ops.convert_to_numpy(model(x, training=False))}
    for role in (FEATURES, GRAD_CAM):
        part = keras.Model(model.inputs[0], model.get_layer(outputs[role]).output)
        found[role] = keras.ops.convert_to_numpy(part(x, training=False))
    return found


# ----------------------------------------------------------------------------------------------
# The shipped runs


def test_every_shipped_run_carries_a_checked_model_onnx():
    for name in SHIPPED:
        infos = artifacts.list_runs(name)
        assert len(infos) >= 10
        for info in infos:
            assert info.ok, info.problem
            record = info.manifest.onnx
            assert info.manifest.has_onnx and set(record.outputs) == set(ROLES)
            assert record.check_images == onnxexport.CHECK_IMAGES
            assert 0 <= record.max_abs_error <= 1e-4 and record.opset >= 13
            assert {"keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime"} <= set(record.versions)
            digest = hashlib.sha256((info.path / ONNX_FILE).read_bytes()).hexdigest()
            assert info.manifest.files[ONNX_FILE] == digest


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_runtime_equals_keras_on_the_shipped_runs(name, dataset):
    run = artifacts.load_run(name)  # the default, seed 0
    predictor = load_predictor(run)
    assert isinstance(predictor, OnnxModel) and predictor.outputs == run.manifest.onnx.outputs
    model = run.load_keras_model()
    x = normalise(dataset.x_test[:500])
    want = keras_outputs(model, predictor.outputs, x)
    assert_close(predictor.predict(x), want[PROBABILITIES])
    assert_close(predictor.penultimate(x), want[FEATURES])
    assert_close(predictor.forward_to(x, predictor.outputs[GRAD_CAM]), want[GRAD_CAM])
    np.testing.assert_allclose(predictor.predict(x), run.y_prob[:500], rtol=0, atol=1e-5)
    # the layers the graph does not output run in numpy, the same layers as Keras'
    assert [layer.name for layer in model.layers] == [
        n for n in predictor.layers if n in {layer.name for layer in model.layers}
    ]
    assert grad_cam_path(predictor)[0] == predictor.outputs[GRAD_CAM]


# ----------------------------------------------------------------------------------------------
# The test model: every layer of tests/extra_model.py, on ONNX Runtime and in numpy


@pytest.fixture(scope="module")
def probe(dataset, tmp_path_factory):
    """The test model trained for one epoch on 256 images (so its BatchNormalization statistics
    moved), saved, exported and checked: (Keras model, ONNX Runtime model, numpy model)."""
    import keras

    from tests.extra_model import SPECS, build_probe

    keras.utils.set_random_seed(0)
    model = build_probe()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(normalise(dataset.x_train[:256]), one_hot(dataset.y_train[:256]), epochs=1,
              batch_size=32, verbose=0)  # fmt: skip
    assert model.count_params() == SPECS[0].params
    path = tmp_path_factory.mktemp("probe") / MODEL_FILE
    model.save(path)
    data = path.read_bytes()
    exported = onnxexport.export_model(data, normalise(dataset.x_test[:64]))
    structure = NumpyModel.from_bytes(data)
    return model, OnnxModel(exported.data, exported.record.outputs, structure), structure


@pytest.fixture(scope="module")
def probe_images(dataset) -> np.ndarray:
    return normalise(dataset.x_test[1000:1100])


def test_probe_graph_outputs_are_the_layers_grad_cam_and_the_map_use(probe):
    import keras

    model, onnx_model, numpy_model = probe
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert onnx_model.outputs == {
        PROBABILITIES: model.layers[-1].name,
        FEATURES: model.layers[-2].name,  # the Dropout before the output Dense
        GRAD_CAM: convs[-1],  # the last convolution, before BatchNormalization and ReLU
    }
    kinds = {layer.kind for layer in numpy_model.layers.values()}
    assert {"BatchNormalization", "Dropout", "GlobalAveragePooling2D", "Activation"} <= kinds
    assert numpy_model.layers[convs[1]].strides == (2, 2)
    table = onnx_model.layer_table().set_index("layer")
    for layer in model.layers:
        assert table.loc[layer.name, "output shape"] == str(tuple(layer.output.shape[1:]))
        assert table.loc[layer.name, "params"] == layer.count_params()


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_probe_outputs_equal_keras(engine, probe, probe_images):
    model, onnx_model, numpy_model = probe
    predictor = onnx_model if engine == "onnxruntime" else numpy_model
    want = keras_outputs(model, onnx_model.outputs, probe_images)
    assert_close(predictor.predict(probe_images), want[PROBABILITIES])
    assert_close(predictor.penultimate(probe_images), want[FEATURES])
    assert_close(predictor.forward_to(probe_images, onnx_model.outputs[GRAD_CAM]), want[GRAD_CAM])


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_probe_grad_cam_matches_the_gradient_tape(engine, probe, probe_images):
    model, onnx_model, numpy_model = probe
    predictor = onnx_model if engine == "onnxruntime" else numpy_model
    predicted = predictor.predict(probe_images).argmax(axis=1)
    others = np.random.default_rng(5).integers(0, 10, len(probe_images))
    for classes in (predicted, others):
        got = grad_cam(predictor, probe_images, classes)
        want = grad_cam_keras(model, probe_images, classes)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
        assert (got.max(axis=(1, 2)) == 1).mean() > 0.5  # most maps have positive evidence


# ----------------------------------------------------------------------------------------------
# The trainer's export


@pytest.mark.parametrize("name", SHIPPED)
def test_the_trainer_exports_model_onnx_into_the_run(name, tiny_root):
    run = artifacts.load_run(name, root=tiny_root)
    assert run.manifest.has_onnx and run.manifest.onnx_missing is None
    assert set(run.manifest.onnx.outputs) == set(ROLES)
    predictor = load_predictor(run)
    assert isinstance(predictor, OnnxModel)
    np.testing.assert_allclose(predictor.predict(np.zeros((1, 28, 28), np.float32)).sum(), 1,
                               atol=1e-5)  # fmt: skip


def test_another_backend_trains_without_model_onnx_and_says_why(monkeypatch, tmp_path):
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    exported, why = onnxexport.export_for_training(tmp_path / MODEL_FILE, np.zeros((1, 28, 28, 1)))
    assert exported is None
    assert "jax" in why and "jax2onnx" in why and ONNX_COMMAND in why


# ----------------------------------------------------------------------------------------------
# Adding model.onnx to existing runs


def strip_onnx(path: Path) -> None:
    """Make the run folder ``path`` look like one trained before the export existed."""
    manifest = artifacts.read_manifest(path)
    files = {k: v for k, v in manifest.files.items() if k != ONNX_FILE}
    old = replace(manifest, files=files, onnx=None, onnx_missing=None)
    (path / MANIFEST).write_text(json.dumps(old.to_dict(), indent=2), encoding="utf-8")
    (path / ONNX_FILE).unlink()


@pytest.fixture
def copied_root(tiny_root, tmp_path) -> Path:
    """A copy of the tiny runs (with the model.onnx the trainer exported)."""
    ignore = shutil.ignore_patterns(".train.lock", "cache")
    return shutil.copytree(tiny_root, tmp_path / "artifacts", ignore=ignore)


@pytest.fixture
def old_root(copied_root) -> Path:
    """A copy of the tiny runs, both without model.onnx."""
    for name in SHIPPED:
        strip_onnx(artifacts.load_run(name, root=copied_root).path)
    return copied_root


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_the_command_adds_model_onnx_and_is_idempotent(old_root, dataset, capsys):
    before = {name: artifacts.load_run(name, root=old_root) for name in SHIPPED}
    x = normalise(dataset.x_test[:300])
    for run in before.values():
        assert not run.manifest.has_onnx
        assert isinstance(load_predictor(run), NumpyModel)  # a run without it still predicts
        np.testing.assert_allclose(load_predictor(run).predict(x), run.y_prob[:300], atol=1e-5)

    assert onnxexport.main(["--all", "--root", str(old_root)]) == 0
    assert capsys.readouterr().out.count(f"added {ONNX_FILE}") == len(SHIPPED)
    for name, old in before.items():
        run = artifacts.load_run(name, root=old_root)  # verifies every checksum
        assert run.manifest.has_onnx
        assert run.manifest.files[ONNX_FILE] == artifacts.sha256_file(run.path / ONNX_FILE)
        assert {k: v for k, v in run.manifest.files.items() if k != ONNX_FILE} == old.manifest.files
        assert replace(run.manifest, files=old.manifest.files, onnx=None) == old.manifest
        predictor = load_predictor(run)
        assert isinstance(predictor, OnnxModel)
        np.testing.assert_allclose(predictor.predict(x), load_predictor(old).predict(x), atol=1e-5)

    done = {name: snapshot(artifacts.load_run(name, root=old_root).path) for name in SHIPPED}
    paths = [str(artifacts.load_run(name, root=old_root).path) for name in SHIPPED]
    assert onnxexport.main(paths) == 0  # again: nothing to do, nothing written
    assert capsys.readouterr().out.count(f"already has {ONNX_FILE}") == len(SHIPPED)
    for name in SHIPPED:
        assert snapshot(artifacts.load_run(name, root=old_root).path) == done[name]


def test_a_damaged_model_is_refused_and_nothing_changes(old_root, capsys):
    path = artifacts.load_run("baseline", root=old_root).path
    data = bytearray((path / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / MODEL_FILE).write_bytes(bytes(data))
    before = snapshot(path)
    assert onnxexport.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "not changed" in err and f"{MODEL_FILE} does not match its checksum" in err
    assert snapshot(path) == before and not (path / ONNX_FILE).exists()


def test_a_crash_before_the_manifest_leaves_the_run_as_it_was(old_root, monkeypatch):
    """The file is written first, unlisted; a failure writing the manifest keeps the old run
    verifying, and the next call completes the job."""
    path = artifacts.load_run("residual", root=old_root).path
    manifest_before = (path / MANIFEST).read_bytes()
    real = artifacts.write_atomic

    def fail_on_the_manifest(target, data):
        if Path(target).name == MANIFEST:
            raise OSError(28, "No space left on device")
        real(target, data)

    monkeypatch.setattr(artifacts, "write_atomic", fail_on_the_manifest)
    with pytest.raises(OSError, match="No space"):
        onnxexport.export_run(path)
    monkeypatch.undo()
    assert (path / MANIFEST).read_bytes() == manifest_before
    run = artifacts.load_run("residual", root=old_root)  # still verifies
    assert not run.manifest.has_onnx and (path / ONNX_FILE).is_file()  # unlisted, unused
    assert isinstance(load_predictor(run), NumpyModel)
    assert onnxexport.export_run(path).startswith(f"added {ONNX_FILE}")
    assert isinstance(load_predictor(artifacts.load_run("residual", root=old_root)), OnnxModel)


def test_an_export_that_disagrees_with_keras_is_not_kept(old_root, monkeypatch):
    path = artifacts.load_run("baseline", root=old_root).path
    before = snapshot(path)
    monkeypatch.setattr(onnxexport, "TOLERANCE", 0.0)  # float32 rounding alone exceeds it
    with pytest.raises(onnxexport.ExportError, match="differs from Keras' by"):
        onnxexport.export_run(path)
    assert snapshot(path) == before


def test_a_model_the_numpy_engine_cannot_run_needs_the_command_then_runs(
    copied_root, dataset, monkeypatch
):
    """A replaced model.keras makes the run's model.onnx stale: it is not used, and the message
    names the command. The command exports the new model, the run verifying after every step;
    then ONNX Runtime runs it (the numpy engine still cannot: no layer graph, so no Grad-CAM,
    a plain layer table)."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.AveragePooling2D(2), layers.Flatten(),
                              layers.Dense(10, activation="softmax")], name="avg")  # fmt: skip
    path = artifacts.load_run("baseline", root=copied_root).path
    stale = (path / ONNX_FILE).read_bytes()
    model.save(path / MODEL_FILE)
    manifest = artifacts.read_manifest(path)
    files = {**manifest.files, MODEL_FILE: artifacts.sha256_file(path / MODEL_FILE)}
    (path / MANIFEST).write_text(json.dumps(replace(manifest, files=files).to_dict(), indent=2))
    run = artifacts.load_run("baseline", root=copied_root)
    assert ONNX_FILE in run.manifest.files and not run.manifest.has_onnx
    with pytest.raises(UnsupportedModel, match=rf"AveragePooling2D.*`{ONNX_COMMAND} {path}`"):
        load_predictor(run)

    real, written = artifacts.write_atomic, []

    def then_verify(target, data):
        real(target, data)
        written.append(Path(target).name)
        artifacts.verify_run(path)  # a reader between any two steps finds a whole run

    monkeypatch.setattr(artifacts, "write_atomic", then_verify)
    assert onnxexport.export_run(path).startswith(f"added {ONNX_FILE}")
    assert written == [MANIFEST, ONNX_FILE, MANIFEST]  # the stale file unlisted first
    assert (path / ONNX_FILE).read_bytes() != stale
    predictor = load_predictor(artifacts.load_run("baseline", root=copied_root))
    assert isinstance(predictor, OnnxModel) and predictor.structure is None
    x = normalise(dataset.x_test[:50])
    assert_close(predictor.predict(x), keras.ops.convert_to_numpy(model(x)))
    assert predictor.penultimate(x).shape == (50, 13 * 13 * 4)
    table = predictor.layer_table()
    assert list(table["type"]) == ["InputLayer", "Conv2D", "AveragePooling2D", "Flatten", "Dense"]
    assert predictor.total_params == model.count_params()
    assert predictor.to_dot().count("[label=") == len(table)
    with pytest.raises(UnsupportedModel, match="AveragePooling2D"):
        grad_cam(predictor, x[:1], 0)


# ----------------------------------------------------------------------------------------------
# The benchmark's report of the engines


def test_bench_section_reports_ratios_and_the_first_visit_targets():
    from bench import inference

    model = {
        "per_image_ms": {"onnxruntime": [0.1, 0.1], "numpy": [0.4], "keras": [20.0]},
        "features_s": {"10000": {"onnxruntime": [0.8, 0.7], "numpy": [3.5], "keras": [1.4]},
                       "60000": {"onnxruntime": [4.2], "numpy": [28.0], "keras": [8.4]}},
    }  # fmt: skip
    first = {"baseline": {"engine": "onnxruntime", "map_s": 2.0, "nearest_s": 25.0}}
    entry = {"result": {
        "baseline": model, "import_s": {"onnxruntime": [0.15], "numpy": [0.1], "keras": [3.0]},
        "first_features": {"onnxruntime": first,
                           "numpy": {"baseline": {"engine": "numpy", "map_s": 8.0,
                                                  "nearest_s": 50.0}}},
    }}  # fmt: skip
    text = "\n".join(inference.section(entry, "stamp"))
    assert (
        "| baseline | one image | 0.100 ms (0.01×) | 0.400 ms (0.02×) | 20.00 ms | **0.25×** |"
        in text
    )
    assert (
        "| baseline | 60,000 images | 4.20 s (0.50×) | 28.00 s (3.33×) | 8.40 s | **0.15×** |"
        in text
    )
    assert "0.15 s (0.05× of Keras and TensorFlow, 3.00 s)" in text
    assert "| baseline | **2.0 s** (0.25×) | 8.0 s | **25.0 s** (0.50×) | 50.0 s |" in text
    assert [met for *_, met in inference.targets(entry)] == [True, False]
