"""How the trainer's process computes: the Keras backend, oneDNN, graph calls, library versions.

Speed only, never the protocol: the manifest records these settings beside the protocol.
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

# Any Keras backend trains (KERAS_BACKEND=jax on a machine without TensorFlow); TensorFlow with
# oneDNN is the default because it is the fastest on CPU here (JAX's step: ~1.5x slower).

MAX_STEPS_PER_EXECUTION = 50


def steps_per_execution(log_every: int) -> int:
    """Batches Keras runs per call into the compiled graph: the largest divisor of the log
    interval up to MAX_STEPS_PER_EXECUTION, so live-log records fall on the same steps."""
    return max(
        d for d in range(1, min(log_every, MAX_STEPS_PER_EXECUTION) + 1) if log_every % d == 0
    )


def configure_compute() -> None:
    """Turn on oneDNN's kernels for this process, if TensorFlow has not started yet.

    oneDNN is off by default on AMD CPUs; its convolutions take 12-16% less CPU time per training
    batch here (bench/results.md, section 0). TensorFlow reads the switch once, when imported,
    so ``python -m core.train`` sets it first thing (a process that imports this module keeps
    its own setting); ``TF_ENABLE_ONEDNN_OPTS=0`` is respected. Other backends ignore it.
    TensorFlow's own thread pools (one thread per core) measured best and are left alone.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def compute_settings(log_every: int) -> dict:
    """How this process runs the protocol (speed only, not the protocol): for the manifest.

    ``onednn`` is TensorFlow's switch: false on any other Keras backend, whatever the variable
    says. Imports Keras (and so its backend): call ``configure_compute`` first.
    """
    import keras

    switch = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0").strip().lower() in ("1", "true")
    onednn = switch and keras.backend.backend() == "tensorflow"
    return {"onednn": onednn, "steps_per_execution": steps_per_execution(log_every)}


# The libraries behind each Keras backend, whose own versions a manifest records.
BACKEND_LIBRARIES = {
    "tensorflow": ("tensorflow",),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
    "openvino": ("openvino",),
    "numpy": (),  # numpy is recorded anyway
}


def library_versions() -> dict[str, str]:
    """The libraries that trained the run: only the backend's own (tensorflow, or jax and
    jaxlib, ...), so a run trained without TensorFlow names none."""
    import importlib

    import keras
    import sklearn

    backend = keras.backend.backend()
    libraries = {
        name: str(importlib.import_module(name).__version__)  # imported already by Keras
        for name in BACKEND_LIBRARIES.get(backend, (backend,))
    }
    return {
        "python": platform.python_version(),
        **libraries,
        "keras": keras.__version__,
        "keras_backend": backend,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
