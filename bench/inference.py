"""Evaluation (10,000 test images) and interactive prediction, each in fresh processes."""

from __future__ import annotations

from bench.common import ONEDNN, clean_env, run_json


def evaluation(repeats: int) -> dict:
    """As installed (the report's setting), and with oneDNN on (core.train's setting)."""
    argv = ["-m", "bench.inference_worker", "evaluation", str(repeats)]
    return {
        "default": run_json(argv)["result"],
        "onednn": run_json(argv, clean_env(**{ONEDNN: "1"}))["result"],
    }


def interactive(calls: int, reference_calls: int) -> dict:
    argv = ["-m", "bench.inference_worker", "interactive", str(calls), str(reference_calls)]
    return run_json(argv)["result"]
