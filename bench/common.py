"""Helpers shared by the parts: subprocesses, statistics, the shipped runs."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a measured process: TensorFlow quiet, oneDNN as installed (unset)."""
    env = {k: v for k, v in os.environ.items() if k != ONEDNN}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = str(PROJECT)
    return {**env, **extra}


def run_json(argv: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> dict:
    """Run ``python argv...`` in the project and parse the last line of its output as JSON."""
    proc = subprocess.run(
        [sys.executable, *argv], cwd=PROJECT, env=env or clean_env(), capture_output=True,
        text=True, timeout=timeout, start_new_session=True,  # a signal to our group spares it
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between order statistics."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def copy_shipped_runs(dest: Path) -> Path:
    """Copy the shipped runs (verified ones and the DEFAULT pointers) into ``dest``."""
    from core import artifacts
    from core.models import MODEL_NAMES

    for model in MODEL_NAMES:
        good = [info for info in artifacts.list_runs(model, PROJECT / "artifacts") if info.ok]
        if not good:
            raise RuntimeError(f"no shipped {model} run under {PROJECT / 'artifacts'}")
        for info in good:
            shutil.copytree(info.path, dest / model / info.run_id)
        pointer = PROJECT / "artifacts" / model / artifacts.DEFAULT_POINTER
        if pointer.is_file():
            shutil.copy2(pointer, dest / model / artifacts.DEFAULT_POINTER)
    return dest


def default_runs(root: Path | None = None) -> dict:
    """{model: Run} for the default run of every model (the shipped ones by default)."""
    from core import artifacts
    from core.models import MODEL_NAMES

    root = root or PROJECT / "artifacts"
    return {model: artifacts.load_run(model, None, root) for model in MODEL_NAMES}
