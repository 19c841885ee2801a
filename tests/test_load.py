"""Load: many sessions predicting at once share one cached copy of each model and get exactly
the answers a lone session gets. Run with ``pytest -s`` to see the latency spread."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from core import artifacts
from core import predict as predict_module
from core.models import MODEL_NAMES
from core.predict import predict_both
from core.preprocess import prepare_upload
from widgets import cached

SESSIONS = 16
REQUESTS_PER_SESSION = 4


def photo(image: np.ndarray, size: int, fmt: str) -> bytes:
    """A test image as someone might upload it: dark on white, enlarged, PNG or JPEG."""
    big = Image.fromarray(255 - image).resize((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def uploads(dataset) -> list[bytes]:
    sizes, formats = (96, 224, 500, 1200), ("PNG", "JPEG")
    return [
        photo(dataset.x_test[i], sizes[i % 4], formats[i % 2])
        for i in range(SESSIONS * REQUESTS_PER_SESSION)
    ]


@pytest.fixture(scope="module")
def runs(tiny_root) -> dict[str, artifacts.Run]:
    return {name: artifacts.load_run(name, root=tiny_root) for name in MODEL_NAMES}


def predict_page_path(runs: dict[str, artifacts.Run], data: bytes) -> dict[str, np.ndarray]:
    """What the Predict page does for an upload: cached models, preprocessing, both models."""
    models = {name: cached.predictor(run) for name, run in runs.items()}
    return predict_both(models, prepare_upload(data).pixels)


def test_concurrent_sessions_share_one_model_copy_and_get_the_lone_answers(
    runs, uploads, monkeypatch
):
    cached.predictor_cache_clear()
    loads = []
    real_load = predict_module.load_predictor

    def counted(run):
        loads.append(run.model)
        time.sleep(0.2)  # a slow first load: every session asks while it is in progress
        return real_load(run)

    monkeypatch.setattr(predict_module, "load_predictor", counted)
    start = threading.Barrier(SESSIONS)

    def first_use(_):
        start.wait()
        return {name: cached.predictor(run) for name, run in runs.items()}

    with ThreadPoolExecutor(SESSIONS) as pool:
        copies = list(pool.map(first_use, range(SESSIONS)))
    assert sorted(loads) == sorted(MODEL_NAMES)  # each model loaded once, for everyone
    for name in MODEL_NAMES:
        assert all(c[name] is copies[0][name] for c in copies)  # one shared object

    alone, lone_ms = [], []
    for data in uploads:
        began = time.perf_counter()
        alone.append(predict_page_path(runs, data))
        lone_ms.append((time.perf_counter() - began) * 1000)
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(SESSIONS)

    def session(index: int) -> list[tuple[int, dict[str, np.ndarray]]]:
        start.wait()  # all sessions begin together
        answers = []
        for k in range(REQUESTS_PER_SESSION):
            item = index * REQUESTS_PER_SESSION + k
            began = time.perf_counter()
            answers.append((item, predict_page_path(runs, uploads[item])))
            with lock:
                latencies.append(time.perf_counter() - began)
        return answers

    with ThreadPoolExecutor(SESSIONS) as pool:
        together = [answer for answers in pool.map(session, range(SESSIONS)) for answer in answers]
    assert len(together) == len(uploads)
    for item, probs in together:
        for name in MODEL_NAMES:
            np.testing.assert_array_equal(probs[name], alone[item][name])  # bit for bit
    assert sorted(loads) == sorted(MODEL_NAMES)  # still the one copy: nothing reloaded

    ms = np.array(latencies) * 1000
    print(
        f"\n{SESSIONS} concurrent sessions x {REQUESTS_PER_SESSION} uploads "
        f"(preprocess + both models): latency ms min {ms.min():.1f}, median "
        f"{np.median(ms):.1f}, p95 {np.percentile(ms, 95):.1f}, max {ms.max():.1f} "
        f"(one session alone: median {np.median(lone_ms):.1f}, max {max(lone_ms):.1f})"
    )
