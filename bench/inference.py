"""Evaluation (10,000 test images), interactive prediction and the dashboard's inference engines
(ONNX Runtime against the numpy engine), each in fresh processes; the last one's report section."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.common import ONEDNN, PROJECT, clean_env, median, run_json


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


def _copy_defaults(dest: Path, with_onnx: bool) -> Path:
    """The shipped default runs, without their cache/ (a fresh clone's state); without
    ``with_onnx``, as runs made before the export (the numpy engine's path)."""
    from core import artifacts
    from core.manifest import MANIFEST, ONNX_FILE
    from core.models import MODEL_NAMES

    for model in MODEL_NAMES:
        run = artifacts.load_run(model, root=PROJECT / "artifacts")
        target = dest / model / run.run_id
        shutil.copytree(run.path, target, ignore=shutil.ignore_patterns("cache"))
        (dest / model / artifacts.DEFAULT_POINTER).write_text(run.run_id + "\n")
        if not with_onnx:
            files = {k: v for k, v in run.manifest.files.items() if k != ONNX_FILE}
            old = replace(run.manifest, files=files, onnx=None)
            (target / MANIFEST).write_text(json.dumps(old.to_dict(), indent=2))
            (target / ONNX_FILE).unlink()
    return dest


def engines(calls: int, repeats: int) -> dict:
    """ONNX Runtime, the numpy engine and Keras on one image and on 10,000 and 60,000 images;
    then a first Map visit and a first nearest-training-images on a fresh cache, each engine in
    its own fresh process."""
    argv = ["-m", "bench.inference_worker", "engines", str(calls), str(repeats)]
    result = run_json(argv)["result"]
    first = {}
    for kind, with_onnx in (("onnxruntime", True), ("numpy", False)):
        with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp:
            root = _copy_defaults(Path(tmp) / "artifacts", with_onnx)
            worker = ["-m", "bench.inference_worker", "first_features", str(root)]
            first[kind] = run_json(worker)["result"]
    result["first_features"] = first
    return result


def _x(value: float, ref: float) -> str:
    return f"{value / ref:.2f}×" if ref else "–"


def section(entry: dict, stamp: str) -> list[str]:
    """bench/results.md's section of the ``inference`` part."""
    res = entry["result"]
    models = [m for m in res if m not in ("import_s", "first_features")]
    lines = ["## 3b. Inference engines: ONNX Runtime (the dashboard) against the numpy engine", "",
             stamp, "",
             "What the dashboard runs since issue 11: ONNX Runtime on the run's `model.onnx` "
             "(`core.predict.OnnxModel`, one thread per call, 256-image chunks), against the "
             "numpy engine it ran before (`NumpyModel`, still the fallback for runs without "
             "`model.onnx`). Reference: Keras in the same process (`model(x)` for one image, "
             "`predict(batch_size=1000)` of the features sub-model for the batches). One image: "
             "median ms of `predict`, called from a worker thread; batches: the penultimate "
             "features (what the Map and the nearest training images compute), best of the "
             "repeats.", "",
             "| model | | ONNX Runtime | numpy engine | Keras (reference) | ONNX Runtime ÷ numpy |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for model in models:
        d = res[model]
        one = {k: median(v) for k, v in d["per_image_ms"].items()}
        lines.append(f"| {model} | one image | {one['onnxruntime']:.3f} ms "
                     f"({_x(one['onnxruntime'], one['keras'])}) | {one['numpy']:.3f} ms "
                     f"({_x(one['numpy'], one['keras'])}) | {one['keras']:.2f} ms | "
                     f"**{_x(one['onnxruntime'], one['numpy'])}** |")  # fmt: skip
        for size, timed in d["features_s"].items():
            best = {k: min(v) for k, v in timed.items()}
            lines.append(f"| {model} | {int(size):,} images | {best['onnxruntime']:.2f} s "
                         f"({_x(best['onnxruntime'], best['keras'])}) | {best['numpy']:.2f} s "
                         f"({_x(best['numpy'], best['keras'])}) | {best['keras']:.2f} s | "
                         f"**{_x(best['onnxruntime'], best['numpy'])}** |")  # fmt: skip
    imports = {k: median(v) for k, v in res["import_s"].items()}
    lines += ["", f"Import in a fresh process (median of three): ONNX Runtime and core.predict "
              f"{imports['onnxruntime']:.2f} s ({_x(imports['onnxruntime'], imports['keras'])} of "
              f"Keras and TensorFlow, {imports['keras']:.2f} s); the numpy engine's h5py and "
              f"core.predict {imports['numpy']:.2f} s.", ""]  # fmt: skip
    first = res.get("first_features")
    if first:
        lines += ["First visit on a fresh cache (a copy of the default runs without `cache/`; "
                  "a fresh process per engine; loading the model included): the Map's PCA of the "
                  "10,000 test images' features, and the features of the 60,000 training images "
                  "for the nearest training images. Numpy: the same runs without `model.onnx`, "
                  "as before the export.", "",
                  "| model | Map, ONNX Runtime | Map, numpy | nearest, ONNX Runtime | "
                  "nearest, numpy |", "|---|---|---|---|---|"]  # fmt: skip
        for model in first["onnxruntime"]:
            o, n = first["onnxruntime"][model], first["numpy"][model]
            lines.append(f"| {model} | **{o['map_s']:.1f} s** ({_x(o['map_s'], n['map_s'])}) | "
                         f"{n['map_s']:.1f} s | **{o['nearest_s']:.1f} s** "
                         f"({_x(o['nearest_s'], n['nearest_s'])}) | {n['nearest_s']:.1f} s |")  # fmt: skip
    return lines


def targets(entry: dict) -> list[tuple]:
    """Issue 11's first-visit targets: Map <= 5 s, nearest training images <= 20 s."""
    first = entry["result"].get("first_features", {}).get("onnxruntime", {})
    found = []
    for model, d in first.items():
        found.append((f"First Map visit, {model} (10,000 features + PCA)", "≤ 5 s",
                      f"{d['map_s']:.1f} s", d["map_s"] <= 5))  # fmt: skip
        found.append((f"First nearest training images, {model} (60,000 features)", "≤ 20 s",
                      f"{d['nearest_s']:.1f} s", d["nearest_s"] <= 20))  # fmt: skip
    return found
