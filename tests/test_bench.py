"""bench/ and core.train's compute settings: counts, statistics, the report, log spacing."""

from __future__ import annotations

import json

import pytest

from bench import flops, machine, results
from bench.common import percentile
from core import artifacts, live
from core.compute import steps_per_execution
from core.models import MODEL_NAMES
from core.predict import load_predictor
from core.train import TrainConfig, train
from tests.conftest import TINY


@pytest.mark.parametrize(
    "log_every, expected", [(1, 1), (4, 4), (7, 7), (50, 50), (60, 30), (75, 25), (100, 50)]
)
def test_steps_per_execution_divides_the_log_interval(log_every, expected):
    assert steps_per_execution(log_every) == expected


def test_macs_counted_from_the_layers(tiny_root):
    # conv: H_out*W_out*k*k*C_in*C_out; dense: in*out (worked out by hand from core/models.py)
    expected = {
        "baseline": 26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 9 * 9 * 9 * 64 * 64
        + 1024 * 128 + 128 * 10,
        "residual": 28 * 28 * 9 * 32 + 14 * 14 * 9 * 32 * 64 + 14 * 14 * 32 * 64
        + 7 * 7 * 9 * 64 * 64 + 3136 * 64 + 64 * 10,
    }  # fmt: skip
    for model in MODEL_NAMES:
        engine = load_predictor(artifacts.load_run(model, root=tiny_root))
        assert sum(flops.macs_per_image(engine).values()) == expected[model]
        assert flops.training_flop_per_image(engine) == 6 * expected[model]
    assert expected["baseline"] == 5_543_296  # the 5.54 M of the report's notes


def test_percentile():
    values = list(range(1, 101))
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([3.0], 95) == 3.0


def test_machine_description_names_its_assumption():
    about = machine.describe()
    assert about["cores"] >= 1 and "python" in about["versions"]
    if about["peak_gflops"]:
        assert "FLOP/cycle" in about["peak_assumption"]


def _entry(result: dict, settings: dict | None = None) -> dict:
    return {"date": "2026-01-01T00:00:00+00:00", "quick": True, "settings": settings or {},
            "seconds": 1.0, "load_1min_end": 0.5, "machine": {}, "result": result}  # fmt: skip


def test_report_renders_every_part_and_the_targets():
    variant = {"first_s": 12.0, "steady_s": 10.0, "steady_all": [10.0], "images": 60000}
    run = {"epoch_seconds": [12.0, 10.0]}
    training = {
        "epochs": 2,
        "rounds": 1,
        "train_limit": None,
        "models": {
            m: {
                "summary": {
                    "plain": {**variant, "steady_s": 20.0},
                    "core": variant,
                    "tuned": {**variant, "steady_s": 9.8},
                },
                "runs": {"plain": [run], "core": [run], "tuned": [run]},
            }
            for m in MODEL_NAMES
        },
    }
    evaluation = {
        kind: {
            m: {"keras_predict_b32": [2.0], "keras_predict_b1000": [1.0], "numpy_engine": [4.0]}
            for m in MODEL_NAMES
        }
        for kind in ("default", "onednn")
    }
    interactive = {
        k: {
            "ours_ms": [4.0] * 10,
            "preprocess_ms": [1.0],
            "keras_predict_ms": [150.0],
            "keras_call_ms": [30.0],
            "max_abs_diff": 1e-9,
        }
        for k in ("drawing", "upload")
    }
    dashboard = {"cold": {"hello": [2.0], "dashboard": [2.4]},
                 "switch_first": {"roc": 1.5}, "switch_next": {"roc": 0.5, "overview": 0.6},
                 "clicks_no_model": {"dashboard": [0.2], "bare": [0.18]},
                 "clicks_models_loaded": {"dashboard": [0.3], "bare": [0.18],
                                          "main_thread_ms": {"dashboard": 140.0, "bare": 28.0}},
                 "server_peak_mib": 300.0, "bare_server_peak_mib": 80.0,
                 "tensorflow_in_server": False}  # fmt: skip
    saved = {
        "training": _entry(training),
        "evaluation": _entry(evaluation),
        "interactive": _entry(interactive),
        "dashboard": _entry(dashboard),
    }
    text = results.render(json.loads(json.dumps(saved)), machine.describe())
    for heading in ("## 1. Training", "## 2. Evaluation", "## 3. Interactive", "## 4. Dashboard",
                    "## Targets", "python -m bench"):  # fmt: skip
        assert heading in text
    assert "**0.50×**" in text  # core ÷ plain
    assert "| Click on a results page, models loaded | ≤ 2.5× bare app | 1.67× | yes |" in text
    assert "| Cold start vs one-line app | ≤ 1.6× | 1.20× | yes |" in text
    assert "| browser main thread busy per click, models loaded | 140 ms | 28 ms | 5.00× |" in text
    assert "browser main thread busy per click, no model loaded" not in text  # not measured


def test_live_log_steps_keep_their_spacing_with_steps_per_execution(tmp_path, dataset):
    # 512 images at batch 32: 16 batches an epoch; records every 5 (one execution each), and
    # at the epoch's end, where the last execution stops short.
    path = train(
        TrainConfig("baseline", **{**TINY, "log_every": 5, "epochs": 2}), dataset, tmp_path
    )
    records, _ = live.read_log(path / artifacts.LIVE_LOG)
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == [5, 10, 15, 16, 21, 26, 31, 32]
    assert all(r["images_per_s"] > 0 for r in records if r["type"] == "step")
    assert artifacts.read_manifest(path).compute.steps_per_execution == 5
