"""Evaluation and interactive prediction, timed in a fresh process; prints one JSON line.

    python -m bench.inference_worker evaluation REPEATS
    python -m bench.inference_worker interactive CALLS REFERENCE_CALLS
    python -m bench.inference_worker engines CALLS REPEATS
    python -m bench.inference_worker first_features ROOT

All read the shipped runs. ``evaluation``: the 10,000 test images through each model, by
Keras ``model.predict`` (the report's default batch of 32, and batches of 1000 as core.train
does) and by the numpy engine. ``interactive``: from a drawing or an upload to both models'
probabilities, preprocessing included, called from a worker thread as Streamlit's script thread
calls it, on what the dashboard runs (``load_predictor``: ONNX Runtime); the reference is the
same preprocessing then ``model.predict``. ``engines``: ONNX Runtime against the numpy engine
and Keras (the reference), one image and the penultimate features of 10,000 and 60,000 images.
``first_features``: what a first visit of the Map (10,000 test images) and a first "nearest
training images" (60,000) compute on a fresh cache, for the runs under ROOT (the caller makes
one copy with model.onnx and one without). TensorFlow runs as the environment says (the caller
sets TF_ENABLE_ONEDNN_OPTS or not).
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _in_thread(fn):
    """Run ``fn()`` in a fresh thread (as Streamlit runs a page) and return its result."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _timed(fn, calls: int) -> list[float]:
    """Milliseconds of each of ``calls`` calls (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return times


def evaluation(repeats: int) -> dict:
    from bench.common import default_runs
    from core.data import load_dataset, normalise
    from core.manifest import MODEL_FILE
    from core.predict import NumpyModel

    runs = default_runs()
    x = normalise(load_dataset(allow_download=False, test_only=True).x_test)  # (10000, 28, 28, 1)
    out = {}
    for name, run in runs.items():
        keras_model = run.load_keras_model()
        engine = NumpyModel.from_keras_file(run.path / MODEL_FILE)
        ways = {
            "keras_predict_b32": lambda m=keras_model: m.predict(x, verbose=0),
            "keras_predict_b1000": lambda m=keras_model: m.predict(x, batch_size=1000, verbose=0),
            "numpy_engine": lambda e=engine: e.predict(x),
        }
        for fn in ways.values():
            fn()  # warm-up: graph tracing, caches
        seconds = {way: [] for way in ways}
        for _ in range(repeats):  # interleaved
            for way, fn in ways.items():
                start = time.perf_counter()
                fn()
                seconds[way].append(time.perf_counter() - start)
        out[name] = seconds
    return out


def _drawing(image: np.ndarray) -> np.ndarray:
    """A test image as the drawing pad returns it: 280x280 RGBA, white strokes on black."""
    big = np.kron(image, np.ones((10, 10), np.uint8))  # (280, 280)
    return np.dstack([big, big, big, np.full_like(big, 255)])


def _upload(image: np.ndarray) -> bytes:
    """A test image as a product photo: dark garment on white, 400x400 RGB, as PNG bytes."""
    from PIL import Image

    garment = Image.fromarray(255 - image).resize((300, 300), Image.Resampling.BICUBIC)
    photo = Image.new("RGB", (400, 400), "white")
    photo.paste(garment.convert("RGB"), (50, 50))
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    return buffer.getvalue()


def interactive(calls: int, reference_calls: int) -> dict:
    from bench.common import default_runs
    from core.data import load_dataset
    from core.predict import load_predictor, predict_both
    from core.preprocess import prepare_drawing, prepare_upload

    runs = default_runs()
    engines = {name: load_predictor(run) for name, run in runs.items()}
    image = load_dataset(allow_download=False, test_only=True).x_test[0]  # an ankle boot
    inputs = {
        "drawing": (_drawing(image), lambda rgba: prepare_drawing(rgba).pixels),
        "upload": (_upload(image), lambda data: prepare_upload(data).pixels),
    }
    keras_models = {name: run.load_keras_model() for name, run in runs.items()}
    out = {}
    for kind, (raw, prepare) in inputs.items():
        ours = _in_thread(
            lambda r=raw, p=prepare: _timed(lambda: predict_both(engines, p(r)), calls)
        )
        prep_only = _in_thread(lambda r=raw, p=prepare: _timed(lambda: p(r), calls))

        def keras_predict(r=raw, p=prepare):
            x = p(r)[None, ..., None]  # (1, 28, 28, 1)
            return {n: m.predict(x, verbose=0)[0] for n, m in keras_models.items()}

        def keras_call(r=raw, p=prepare):
            x = p(r)[None, ..., None]
            return {n: np.asarray(m(x, training=False))[0] for n, m in keras_models.items()}

        reference = _in_thread(lambda f=keras_predict: _timed(f, reference_calls))
        direct = _in_thread(lambda f=keras_call: _timed(f, reference_calls))
        ours_probs = predict_both(engines, prepare(raw))
        keras_probs = keras_predict()
        out[kind] = {
            "ours_ms": ours,
            "preprocess_ms": prep_only,
            "keras_predict_ms": reference,
            "keras_call_ms": direct,
            "max_abs_diff": max(
                float(np.abs(ours_probs[n] - keras_probs[n]).max()) for n in engines
            ),
        }
    return out


def _seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def engines(calls: int, repeats: int) -> dict:
    """Per model: milliseconds per one-image ``predict`` (median of ``calls``, from a worker
    thread) and seconds for the penultimate features of 10,000 and 60,000 images (best of
    ``repeats``), by ONNX Runtime, the numpy engine and Keras (the reference: ``model(x)`` for
    one image, ``predict(batch_size=1000)`` for the batches, as core.train evaluates)."""
    import keras

    from bench.common import default_runs
    from core.data import load_dataset, normalise
    from core.manifest import MODEL_FILE
    from core.predict import NumpyModel, load_predictor

    data = load_dataset(allow_download=False)
    sizes = {"10000": data.x_test, "60000": data.x_train}
    out = {}
    for name, run in default_runs().items():
        keras_model = run.load_keras_model()
        features = keras.Model(keras_model.inputs[0], keras_model.layers[-1].input)
        ways = {
            "onnxruntime": load_predictor(run),
            "numpy": NumpyModel.from_keras_file(run.path / MODEL_FILE),
        }
        assert ways["onnxruntime"].engine == "onnxruntime", "run python -m core.onnxexport --all"
        one = normalise(data.x_test[:1])
        calls_of = {way: (lambda m=m, x=one: m.predict(x)) for way, m in ways.items()}
        calls_of["keras"] = lambda m=keras_model, x=one: m(x, training=False)
        per_image = {way: _in_thread(lambda f=f: _timed(f, calls)) for way, f in calls_of.items()}
        batches = {}
        for size, images in sizes.items():
            x = normalise(images)
            jobs = {way: (lambda m=m, x=x: m.penultimate(x)) for way, m in ways.items()}
            jobs["keras"] = lambda m=features, x=x: m.predict(x, batch_size=1000, verbose=0)
            timed = {way: [_seconds(job)[0] for _ in range(repeats)] for way, job in jobs.items()}
            batches[size] = timed
        out[name] = {"per_image_ms": per_image, "features_s": batches}
    out["import_s"] = _import_seconds()
    return out


def _import_seconds() -> dict:
    """Seconds to import each engine's modules in a fresh process (three processes each)."""
    import subprocess

    from bench.common import PROJECT, clean_env

    code = {
        "onnxruntime": "import onnxruntime, core.predict",
        "numpy": "import h5py, core.predict",  # core.predict imports onnxruntime only when used
        "keras": "import keras, tensorflow",
    }
    out = {}
    for way, statement in code.items():
        timing = (f"import time; t = time.perf_counter(); {statement}; "
                  "print(time.perf_counter() - t)")  # fmt: skip
        out[way] = [
            float(subprocess.run([sys.executable, "-c", timing], cwd=PROJECT, env=clean_env(),
                                 capture_output=True, text=True, check=True).stdout.split()[-1])
            for _ in range(3)
        ]  # fmt: skip
    return out


def first_features(root: str) -> dict:
    """A first Map visit (PCA of the 10,000 test images' features) and a first nearest training
    images (the 60,000 training images' features), each from a fresh cache, for the default run
    of each model under ``root``; seconds, loading the model included."""
    from bench.common import default_runs
    from core import neighbours, projection
    from core.data import load_dataset
    from core.predict import load_predictor

    data = load_dataset(allow_download=False)
    out = {}
    for name, run in default_runs(root).items():
        map_s, found = _seconds(lambda r=run: projection.project(r, None, data.x_test, "pca"))
        assert not found.from_cache
        near_s, _ = _seconds(
            lambda r=run: neighbours.train_features(r, load_predictor(r), data.x_train)
        )
        out[name] = {"engine": load_predictor(run).engine, "map_s": map_s, "nearest_s": near_s}
    return out


def main(argv: list[str]) -> None:
    part = argv[0]
    if part == "evaluation":
        result = evaluation(int(argv[1]))
    elif part == "interactive":
        result = interactive(int(argv[1]), int(argv[2]))
    elif part == "engines":
        result = engines(int(argv[1]), int(argv[2]))
    elif part == "first_features":
        result = first_features(argv[1])
    else:
        raise SystemExit(f"unknown part {part!r}")
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    print(json.dumps({"result": result, "onednn": onednn}))


if __name__ == "__main__":
    main(sys.argv[1:])
