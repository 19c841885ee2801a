"""Evaluation and interactive prediction, timed in a fresh process; prints one JSON line.

    python -m bench.inference_worker evaluation REPEATS
    python -m bench.inference_worker interactive CALLS REFERENCE_CALLS

Both read the shipped runs. ``evaluation``: the 10,000 test images through each model, by
Keras ``model.predict`` (the report's default batch of 32, and batches of 1000 as core.train
does) and by the numpy engine the dashboard uses. ``interactive``: from a drawing or an upload to
both models' probabilities, preprocessing included, called from a worker thread as Streamlit's
script thread calls it; the reference is the same preprocessing then ``model.predict``.
TensorFlow runs as the environment says (the caller sets TF_ENABLE_ONEDNN_OPTS or not).
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
    from core.predict import load_predictor

    runs = default_runs()
    x = normalise(load_dataset(allow_download=False, test_only=True).x_test)  # (10000, 28, 28, 1)
    out = {}
    for name, run in runs.items():
        keras_model = run.load_keras_model()
        engine = load_predictor(run)
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


def main(argv: list[str]) -> None:
    part = argv[0]
    if part == "evaluation":
        result = evaluation(int(argv[1]))
    elif part == "interactive":
        result = interactive(int(argv[1]), int(argv[2]))
    else:
        raise SystemExit(f"unknown part {part!r}")
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    print(json.dumps({"result": result, "onednn": onednn}))


if __name__ == "__main__":
    main(sys.argv[1:])
