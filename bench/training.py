"""Training throughput: core.train against the report's plain ``model.fit``, same data, batch 32.

Three kinds of run per model, each in a fresh process, interleaved (plain, core, tuned, then
the reverse order in the next round) so that slow spells of a shared machine hit all of them:

- ``plain``: the reference, ``model.fit(x, y, epochs, batch_size=32, shuffle=True, verbose=0)``.
- ``core``: ``python -m core.train`` itself, with its live log and per-epoch test evaluation.
- ``tuned``: plain fit with core.train's compute settings only; core/tuned is the cost of the
  live log and the monitoring, core/plain the speed-up.

The first epoch (graph tracing included) is reported apart from the steady epochs after it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.common import PROJECT, clean_env, default_runs, median, run_json
from core import artifacts

VARIANTS = ("plain", "core", "tuned")


def _core_run(model: str, epochs: int, limit: int | None, batch_size: int = 32) -> dict:
    """``python -m core.train`` into a temporary folder; its manifest's figures."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        argv = ["-m", "core.train", "--model", model, "--epochs", str(epochs), "--out", out,
                "--batch-size", str(batch_size), "--no-default", "--quiet"]  # fmt: skip
        if limit:
            argv += ["--train-limit", str(limit)]
        proc = subprocess.run([sys.executable, *argv], cwd=PROJECT, env=clean_env(),
                              capture_output=True, text=True, timeout=7200,
                              start_new_session=True)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"core.train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        manifest = artifacts.read_manifest(next(Path(out, model).glob("*/manifest.json")).parent)
    return {
        "epoch_seconds": manifest.seconds_per_epoch,
        "images": manifest.protocol.train_images,
        "compute": asdict(manifest.compute) if manifest.compute else {},
        "test_accuracy": manifest.test_metrics.accuracy,
        "test_loss": manifest.test_metrics.loss,
    }


def _one(variant: str, model: str, epochs: int, limit: int | None) -> dict:
    start = time.perf_counter()
    if variant == "core":
        result = _core_run(model, epochs, limit)
    else:
        argv = ["-m", "bench.train_worker", variant, model, str(epochs)]
        result = run_json(argv + ([str(limit)] if limit else []))
    result["process_seconds"] = time.perf_counter() - start
    result["load_1min"] = os.getloadavg()[0]
    return result


def run(models: list[str], epochs: int, rounds: int, limit: int | None, log=print) -> dict:
    """Timed runs of every variant; returns the raw epochs and their summary per model."""
    out = {"epochs": epochs, "rounds": rounds, "train_limit": limit, "models": {}}
    for model in models:
        runs = {v: [] for v in VARIANTS}
        for r in range(rounds):
            for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                result = _one(variant, model, epochs, limit)
                runs[variant].append(result)
                log(f"  training {model} {variant}: epochs "
                    + ", ".join(f"{s:.1f}" for s in result["epoch_seconds"]) + " s"
                    + f" (load {result['load_1min']:.1f})")  # fmt: skip
        summary = {}
        for variant, results in runs.items():
            firsts = [r["epoch_seconds"][0] for r in results]
            steady = [s for r in results for s in r["epoch_seconds"][1:]] or firsts
            summary[variant] = {
                "first_s": median(firsts),
                "steady_s": median(steady),
                "steady_all": steady,
                "images": results[0]["images"],
            }
        out["models"][model] = {"summary": summary, "runs": runs}
    return out


def protocol(models: list[str], epochs: int, batch_sizes: list[int], log=print) -> dict:
    """Whole core.train runs (seed 0) at each batch size: test accuracy and epoch time, beside
    the shipped runs (trained earlier, before the compute settings; their times are not a
    same-run reference)."""
    shipped = default_runs()
    out = {"epochs": epochs, "models": {}}
    for model in models:
        runs = {}
        for batch_size in batch_sizes:
            result = _core_run(model, epochs, None, batch_size)
            runs[str(batch_size)] = result
            log(f"  protocol {model} batch {batch_size}: test accuracy "
                f"{result['test_accuracy']:.4f}, epochs " +
                ", ".join(f"{s:.1f}" for s in result["epoch_seconds"]) + " s")  # fmt: skip
        manifest = shipped[model].manifest
        out["models"][model] = {
            "runs": runs,
            "shipped": {
                "run_id": shipped[model].run_id,
                "test_accuracy": manifest.test_metrics.accuracy,
                "test_loss": manifest.test_metrics.loss,
                "epoch_seconds": manifest.seconds_per_epoch,
                "batch_size": manifest.protocol.batch_size,
                "epochs": manifest.protocol.epochs,
            },
        }
    return out
