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
from sklearn import metrics as skm
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import user_key_from_element_id

from core import artifacts
from core.data import NUM_CLASSES, Dataset
from core.manifest import DatasetRecord, Machine, Manifest, Protocol, TestMetrics, TrainMetrics
from core.models import MODEL_NAMES, REGISTRY

APP = str(Path(__file__).resolve().parent.parent / "dashboard.py")
SEEDS = (0, 1, 2)
EPOCHS = 10
BINS = 15  # confidence bins of the calibration error
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
        writer.save_predictions(y_true, y_prob)
        writer.save_history(epochs)
        writer.file(artifacts.LIVE_LOG).write_text("".join(json.dumps(r) + "\n" for r in live))
        writer.commit(manifest(model, rid, seed, epochs, test, quick, params, data))
    return rid


def manifest(
    model: str,
    rid: str,
    seed: int,
    epochs: list[dict],
    test: dict,
    quick: bool = False,
    params: int = 0,
    data: Dataset | None = None,
) -> Manifest:
    """The manifest the trainer would write for run ``rid``: the report's protocol, or (with
    ``quick``) 512 images; ``epochs`` are its history records, ``test`` its test metrics."""
    return Manifest(
        model=model,
        run_id=rid,
        display_name=REGISTRY[model].display_name,
        params=params,
        protocol=Protocol(
            epochs=len(epochs),
            batch_size=32,
            seed=seed,
            optimizer="Adam",
            learning_rate=0.001,
            loss="categorical_crossentropy",
            preprocessing="pixels / 255, one-hot labels",
            train_images=512 if quick else 60_000,
            train_limit=512 if quick else None,
            follows_report=not quick,
            test_evaluation="after every epoch, held-out monitoring only",
        ),
        versions={},
        machine=Machine(platform="made by tests/seedtools.py", cpus=None),
        dataset=DatasetRecord(source=data.source, sha256=data.sha256) if data else None,
        started="2025-01-01T00:00:00+00:00",
        finished="2025-01-01T00:10:00+00:00",
        seconds_per_epoch=[r["seconds"] for r in epochs],
        train_metrics=TrainMetrics(**{k: epochs[-1][k] for k in ("loss", "accuracy")}),
        test_metrics=TestMetrics(**test),
    )


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


# --- what the sweep's numbers are, computed here from the stored files, without core ---------


def expected_seed_metrics(root: Path) -> dict[str, dict[int, dict]]:
    """Per model, per seed: accuracy, log loss, macro F1 and per-class F1 by scikit-learn."""
    labels = list(range(NUM_CLASSES))
    results = {}
    for model in MODEL_NAMES:
        results[model] = {}
        for seed in SEEDS:
            y_true, y_prob = stored_predictions(root, model, run_id(seed))
            y_pred = y_prob.argmax(axis=1)
            results[model][seed] = {
                "accuracy": float(np.mean(y_pred == y_true)),
                "loss": float(skm.log_loss(y_true, y_prob, labels=labels)),
                "macro_f1": float(skm.f1_score(y_true, y_pred, average="macro", labels=labels)),
                "class_f1": skm.f1_score(y_true, y_pred, average=None, labels=labels),
            }
    return results


def binned_ece(values: np.ndarray, outcomes: np.ndarray) -> tuple[float, list, list]:
    """ECE over equal-width bins (lo, hi] (the first closed at 0), written out bin by bin; and
    the non-empty bins' mean value and mean outcome."""
    ece, mean_values, mean_outcomes = 0.0, [], []
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        inside = (values <= hi) & ((values > lo) if b else (values >= 0))
        if inside.any():
            gap = abs(outcomes[inside].mean() - values[inside].mean())
            ece += inside.sum() / values.size * gap
            mean_values.append(values[inside].mean())
            mean_outcomes.append(outcomes[inside].mean())
    return ece, mean_values, mean_outcomes


def expected_calibration(root: Path, seed: int = SEEDS[0]) -> dict[str, dict]:
    """Per model, of its report run for ``seed``: accuracy, log loss, the top-label ECE then
    each class's, the reliability bins, and the confident (>= 90%) mistakes' shares."""
    results = {}
    for model in MODEL_NAMES:
        y_true, y_prob = stored_predictions(root, model, run_id(seed))
        confidence = y_prob.max(axis=1)
        right = y_prob.argmax(axis=1) == y_true
        top, mean_confidence, accuracy_per_bin = binned_ece(confidence, right.astype(float))
        classes = [binned_ece(y_prob[:, k], (y_true == k).astype(float))[0] for k in range(10)]
        p_true = np.clip(y_prob[np.arange(y_true.size), y_true], 1e-15, 1)
        losses = -np.log(p_true)
        confident = ~right & (confidence >= 0.9)
        results[model] = {
            "accuracy": right.mean(),
            "loss": losses.mean(),
            "ece": [top, *classes],
            "bins": (mean_confidence, accuracy_per_bin),
            "confident_share": confident.mean(),
            "confident_of_mistakes": confident.sum() / (~right).sum(),
            "confident_loss_share": losses[confident].sum() / losses.sum(),
            "mistakes_loss_share": losses[~right].sum() / losses.sum(),
        }
    return results
