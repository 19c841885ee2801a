"""A seed sweep for page tests: three runs per model whose manifests follow the report's protocol.

Training even one report run takes many minutes, so each run here is a verified run written
with ``RunWriter``: an untrained model of the registry (so the architecture still opens), a
ten-epoch history and live log, and test probabilities built with a chosen number of mistakes
on the real test labels. Each model also gets one quick run (not the report's protocol), which
the seed views must leave out. The residual model makes fewer mistakes than the baseline, on
every seed, but makes them with 93-99.9% confidence where the baseline hesitates: it is the
more accurate model, with the higher test loss.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import user_key_from_element_id

from core import artifacts
from core.data import NUM_CLASSES, Dataset
from core.models import MODEL_NAMES, REGISTRY

APP = str(Path(__file__).resolve().parent.parent / "dashboard.py")
SEEDS = (0, 1, 2)
EPOCHS = 10
MISTAKES = {"baseline": (1010, 968, 1047), "residual": (905, 880, 930)}  # per seed, of 10,000
WRONG_CONFIDENCE = {"baseline": (0.40, 0.80), "residual": (0.93, 0.999)}


def run_id(seed: int) -> str:
    return f"20250101-00000{seed}-seed{seed}-sweep"


def predictions(y_true: np.ndarray, mistakes: int, wrong: tuple[float, float], rng) -> np.ndarray:
    """Softmax-like float32 rows (n, 10): exactly ``mistakes`` wrong top classes, confidence of
    the wrong ones drawn in ``wrong``, of the right ones in [0.8, 1)."""
    n = y_true.size
    top = y_true.copy()
    bad = rng.choice(n, size=mistakes, replace=False)
    top[bad] = (y_true[bad] + rng.integers(1, NUM_CLASSES, mistakes)) % NUM_CLASSES
    confidence = rng.uniform(0.8, 1.0, n)  # (n,)
    confidence[bad] = rng.uniform(*wrong, mistakes)
    y_prob = np.repeat(((1 - confidence) / (NUM_CLASSES - 1))[:, None], NUM_CLASSES, axis=1)
    y_prob[np.arange(n), top] = confidence
    return y_prob.astype(np.float32)  # (n, 10)


def history(rng) -> list[dict]:
    """Ten epochs of rising accuracy and falling loss, a little different for every seed."""
    records = []
    for epoch in range(1, EPOCHS + 1):
        accuracy = 0.82 + 0.014 * epoch + rng.normal(0, 0.004)
        test_accuracy = 0.86 + 0.005 * epoch + rng.normal(0, 0.004)
        records.append(
            {
                "epoch": epoch,
                "loss": 0.5 - 0.035 * epoch + rng.normal(0, 0.01),
                "accuracy": accuracy,
                "test_loss": 0.38 - 0.01 * epoch + rng.normal(0, 0.01),
                "test_accuracy": test_accuracy,
                "seconds": 60.0,
            }
        )
    return records


def save_models(folder: Path) -> dict[str, tuple[Path, int]]:
    """An untrained Keras model of every registered model: its file and parameter count."""
    saved = {}
    for model, spec in REGISTRY.items():
        built = spec.build()
        built.save(folder / f"{model}.keras")
        saved[model] = (folder / f"{model}.keras", int(built.count_params()))
    return saved


def add_run(
    root: Path, model: str, seed: int, data: Dataset, model_file: tuple[Path, int], quick=False
) -> str:
    """Publish one run of ``model`` for ``seed`` into ``root``: the report's protocol, or (with
    ``quick``) one epoch on 512 images, with the number of mistakes of a fourth seed."""
    rng = np.random.default_rng(100 * MODEL_NAMES.index(model) + seed + 50 * quick)
    y_true = data.y_test.astype(np.int64)
    mistakes = MISTAKES[model][SEEDS.index(seed)] if not quick else 500
    y_prob = predictions(y_true, mistakes, WRONG_CONFIDENCE[model], rng)
    epochs = history(rng)[: 1 if quick else EPOCHS]
    rid = run_id(seed) if not quick else f"20240101-000000-seed{seed}-quick"
    steps = 16 if quick else 1875
    config = {"epochs": len(epochs), "batch_size": 32, "seed": seed}
    live = [{"time": 0.0, "type": "start", "model": model, "run_id": rid,
             "steps_per_epoch": steps, "config": config}]  # fmt: skip
    for record in epochs:
        e = record["epoch"]
        live.append({"time": 60.0 * e - 1, "type": "step", "epoch": e, "step": steps * e,
                     "total_steps": steps * len(epochs), "loss": record["loss"],
                     "accuracy": record["accuracy"], "images_per_s": 1000.0})  # fmt: skip
        live.append({"time": 60.0 * e, "type": "epoch", **record})
    right = y_prob.argmax(axis=1) == y_true
    loss = float(-np.log(y_prob[np.arange(right.size), y_true]).mean())
    test = {"n": int(right.size), "accuracy": float(right.mean()), "loss": loss}
    live.append({"time": 60.0 * len(epochs) + 5, "type": "end", "state": "done", "test": test})
    path, params = model_file
    with artifacts.RunWriter(model, rid, root) as writer:
        shutil.copyfile(path, writer.file(artifacts.MODEL_FILE))
        np.savez_compressed(
            writer.file(artifacts.PREDICTIONS), y_true=y_true.astype(np.uint8), y_prob=y_prob
        )
        writer.file(artifacts.HISTORY_FILE).write_text(json.dumps({"epochs": epochs}))
        writer.file(artifacts.LIVE_LOG).write_text("".join(json.dumps(r) + "\n" for r in live))
        writer.commit(
            {
                "display_name": REGISTRY[model].display_name,
                "params": params,
                "protocol": {
                    **config,
                    "optimizer": "Adam",
                    "learning_rate": 0.001,
                    "train_images": 512 if quick else 60_000,
                    "train_limit": 512 if quick else None,
                    "follows_report": not quick,
                },
                "dataset": {"source": data.source, "sha256": data.sha256},
                "seconds_per_epoch": [r["seconds"] for r in epochs],
                "train_metrics": {k: epochs[-1][k] for k in ("loss", "accuracy")},
                "test_metrics": test,
            }
        )
    return rid


def make_seed_root(root: Path, data: Dataset) -> Path:
    """``SEEDS`` report runs and one quick run of every model in a new artifacts folder ``root``;
    seed 0's report run is each model's default."""
    root.mkdir(parents=True)
    models = save_models(root.parent)
    for model in MODEL_NAMES:
        add_run(root, model, 0, data, models[model], quick=True)
        for seed in SEEDS:
            add_run(root, model, seed, data, models[model])
        artifacts.set_default(model, run_id(SEEDS[0]), root)
    return root


# --- reading what a page shows ----------------------------------------------------------------


def open_page(root: Path, page: str, timeout: float = 90) -> AppTest:
    """``page`` of the whole app over ``root`` (the caller sets $FMNIST_ARTIFACTS)."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """Every plotly chart on the page as its figure dict, by the chart's key."""
    return {
        user_key_from_element_id(c.proto.id): json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
    }


def array(value) -> np.ndarray:
    """A trace's data as numpy: Plotly writes numpy arrays as base64 typed arrays."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


def line_levels(spec: dict) -> list[float]:
    """The y of every horizontal reference line of a figure, sorted."""
    return sorted(s["y0"] for s in spec["layout"].get("shapes", []) if s["y0"] == s["y1"])


def stored_predictions(root: Path, model: str, rid: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's labels (n,) int64 and probabilities (n, 10) float64 with rows summing to 1,
    read straight from its file (not through core)."""
    with np.load(root / model / rid / artifacts.PREDICTIONS) as npz:
        y_true, y_prob = npz["y_true"].astype(np.int64), npz["y_prob"].astype(np.float64)
    return y_true, y_prob / y_prob.sum(axis=1, keepdims=True)
