"""A run's ``model.keras`` exported to ``model.onnx`` for ONNX Runtime, and the command that adds
it to runs that lack it (made before the export existed, or trained without TensorFlow)::

    python -m core.onnxexport --all                    # every run under artifacts/ lacking it
    python -m core.onnxexport artifacts/baseline/RUN   # these runs
    python -m core.onnxexport --all --root /elsewhere/artifacts

One graph with three outputs, built as a ``keras.Model`` from the trained model: the
probabilities, the penultimate features (what the last Dense layer reads: the Map and the nearest
training images) and the Grad-CAM layer's activations (``core.explain.grad_cam_path``), so every
forward pass of the dashboard runs in ONNX Runtime. Keras' own exporter writes it
(``model.export(path, format="onnx")``, through tf2onnx on the TensorFlow backend). Before the
file is kept, ONNX Runtime and Keras run the same real test images and every output must agree
within ``TOLERANCE``. The command exports on TensorFlow whatever backend trained the run (a
``.keras`` file is the same on every backend); the trainer exports in its own process only on
TensorFlow, since Keras exports from JAX only through jax2onnx, which this project does not
install, and records why in the manifest (``onnx_missing``) otherwise.

Adding the file to a finished run never leaves it unreadable: ``core.artifacts.add_onnx`` writes
``model.onnx`` first (unlisted, so the run verifies as before), then the manifest naming it, each
atomically. Running the command again changes nothing: runs whose ``model.onnx`` verifies are
skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core import artifacts
from core.manifest import MODEL_FILE, ONNX_COMMAND, ONNX_FILE, OnnxExport, RunError
from core.models import MODEL_NAMES

CHECK_IMAGES = 256  # real test images ONNX Runtime and Keras both run before the file is kept
# |ONNX Runtime − Keras| allowed, relative to each output's scale (max(1, max |Keras|)): float32
# rounding in another order of operations; measured 2e-6 to 1.1e-5 absolute on the features.
TOLERANCE = 1e-5
PROBABILITIES, FEATURES, GRAD_CAM = "probabilities", "features", "grad_cam"


class ExportError(RuntimeError):
    """The model could not be exported, or ONNX Runtime disagreed with Keras on it."""


@dataclass(frozen=True)
class Exported:
    """A model exported and checked: the bytes of ``model.onnx`` and the manifest's record."""

    data: bytes
    record: OnnxExport
    seconds: float  # loading, exporting and checking


def graph_outputs(keras_bytes: bytes, source: str = MODEL_FILE) -> dict[str, str]:
    """The graph's outputs → the Keras layer each one is the output of, from the model file.

    ``features`` is the layer the last Dense reads, ``grad_cam`` the layer ``core.explain``
    takes; each is left out where the model has none (no Dense output, a head Grad-CAM cannot
    go through, or layers the numpy reader does not know).
    """
    from core.explain import grad_cam_path
    from core.modelfile import ModelFileError, UnsupportedModel
    from core.predict import NumpyModel

    try:
        structure = NumpyModel.from_bytes(keras_bytes, source)
    except UnsupportedModel:
        return {}
    except ModelFileError as exc:
        raise ExportError(str(exc)) from exc
    outputs = {PROBABILITIES: structure.output_layer.name}
    try:
        outputs[FEATURES] = structure.feature_layer
        outputs[GRAD_CAM] = grad_cam_path(structure)[0]
    except UnsupportedModel:
        pass
    return outputs


def export_model(keras_bytes: bytes, check_x: np.ndarray, source: str = MODEL_FILE) -> Exported:
    """Export the ``.keras`` file ``keras_bytes`` to ONNX and check it against Keras on the images
    ``check_x`` (n, 28, 28, 1) float32. Needs TensorFlow, tf2onnx and onnx; ExportError when an
    output disagrees or the export fails."""
    import keras
    import onnx
    import onnxruntime as ort

    from core.predict import session_options

    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            f"Keras runs on {keras.backend.backend()} here; the export needs its TensorFlow "
            f"backend (run `{ONNX_COMMAND}`, which uses it)"
        )
    start = time.perf_counter()
    outputs = graph_outputs(keras_bytes, source)
    with tempfile.TemporaryDirectory(prefix="onnxexport-") as tmp:
        keras_path, onnx_path = Path(tmp) / MODEL_FILE, Path(tmp) / ONNX_FILE
        keras_path.write_bytes(keras_bytes)  # the bytes checked by the caller are those exported
        try:
            model = keras.saving.load_model(keras_path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises ValueError, OSError, zipfile/h5py errors...
            raise ExportError(f"{source} cannot be loaded by Keras ({exc})") from exc
        zeros = np.zeros((1, *model.input_shape[1:]), np.float32)
        model(zeros)  # builds the layers' outputs, which the graph below is made of
        if not outputs:  # layers the numpy reader does not know: take what Keras says
            last = model.layers[-1]
            outputs = {PROBABILITIES: last.name}
            if isinstance(last, keras.layers.Dense):
                outputs[FEATURES] = last.input._keras_history.operation.name
        tensors = {PROBABILITIES: model.outputs[0]}
        for role in (FEATURES, GRAD_CAM):
            if role in outputs:
                tensors[role] = model.get_layer(outputs[role]).output
        graph = keras.Model(model.inputs[0], tensors, name=model.name)
        graph(zeros)  # Keras exports only a model that has been called
        try:
            with warnings.catch_warnings():  # tf2onnx's own about numpy 2, which Keras patches
                warnings.simplefilter("ignore", FutureWarning)
                graph.export(str(onnx_path), format="onnx", verbose=False)
        except Exception as exc:  # tf2onnx's conversion errors have no common base
            raise ExportError(f"{source}: the ONNX export failed ({exc!r:.300})") from exc
        data = onnx_path.read_bytes()

    check_x = np.asarray(check_x, np.float32)
    session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    got = session.run(list(tensors), {session.get_inputs()[0].name: check_x})
    want = graph(check_x, training=False)
    error = 0.0
    for role, value in zip(tensors, got, strict=True):
        expected = keras.ops.convert_to_numpy(want[role])
        if value.shape != expected.shape:
            raise ExportError(f"{source}: {role} has shape {value.shape}, Keras {expected.shape}")
        diff = float(np.abs(value - expected).max()) if value.size else 0.0
        scale = max(1.0, float(np.abs(expected).max()) if value.size else 1.0)
        if not diff <= TOLERANCE * scale:  # also refuses NaN
            raise ExportError(
                f"{source}: ONNX Runtime's {role} differs from Keras' by {diff:.3g} (allowed "
                f"{TOLERANCE * scale:.3g}) on {len(check_x)} test images; nothing was written"
            )
        error = max(error, diff)
    opset = next((o.version for o in onnx.load_from_string(data).opset_import if not o.domain), 0)
    record = OnnxExport(
        keras_sha256=hashlib.sha256(keras_bytes).hexdigest(),
        outputs=outputs,
        opset=int(opset),
        versions=_versions(),
        check_images=len(check_x),
        max_abs_error=error,
        exported=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return Exported(data, record, time.perf_counter() - start)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("keras", "tensorflow", "tensorflow-cpu", "tf2onnx", "onnx", "onnxruntime"):
        try:
            found[name.replace("-cpu", "")] = version(name)
        except PackageNotFoundError:
            continue
    return found


def check_images(n: int = CHECK_IMAGES) -> np.ndarray:
    """The first ``n`` real test images, as the models take them (n, 28, 28, 1) float32."""
    from core.data import load_dataset, normalise

    return normalise(load_dataset(allow_download=False, test_only=True).x_test[:n])


# ----------------------------------------------------------------------------------------------
# At training time


def export_for_training(
    keras_path: Path, check_x: np.ndarray
) -> tuple[Exported | None, str | None]:
    """The trainer's export of the model it just saved: (the export, None), or (None, why not).

    A failed export never costs the training: the run is saved without ``model.onnx`` and the
    manifest says why (``onnx_missing``), and ``python -m core.onnxexport`` can add it later.
    """
    import keras

    backend = keras.backend.backend()
    later = f"add it with `{ONNX_COMMAND} <run folder>` where TensorFlow is installed"
    if backend != "tensorflow":
        return None, (
            f"trained on Keras' {backend} backend, which exports ONNX only through jax2onnx "
            f"(not installed): {later}"
        )
    try:
        return export_model(keras_path.read_bytes(), check_x, str(keras_path)), None
    except (ExportError, ImportError, OSError) as exc:
        return None, f"the export failed ({exc}): {later}"


# ----------------------------------------------------------------------------------------------
# Existing runs


def export_run(path: Path, check_x: np.ndarray | None = None) -> str:
    """Give the finished run folder ``path`` a ``model.onnx`` unless it has one that verifies;
    a sentence saying what was done. RunError for a damaged run, ExportError when the export
    fails or disagrees with Keras; in both cases the run is left as it was."""
    path = Path(path)
    manifest = artifacts.verify_run(path, skip=(ONNX_FILE,))  # a damaged run is refused here
    if manifest.has_onnx:
        try:
            artifacts.verify_run(path)
            return f"already has {ONNX_FILE}"
        except RunError:
            pass  # a listed model.onnx that no longer verifies: export it again
    keras_bytes = (path / MODEL_FILE).read_bytes()
    sha = hashlib.sha256(keras_bytes).hexdigest()
    if sha != manifest.model_sha256:
        raise RunError(f"{MODEL_FILE} does not match its checksum (altered or truncated)")
    exported = export_model(keras_bytes, check_images() if check_x is None else check_x,
                            f"{path.parent.name}/{path.name}/{MODEL_FILE}")  # fmt: skip
    if not artifacts.add_onnx(path, exported.data, exported.record, sha):
        return f"already has {ONNX_FILE} (added meanwhile)"
    return (
        f"added {ONNX_FILE} ({len(exported.data):,} bytes; exported and checked in "
        f"{exported.seconds:.1f} s; largest |ONNX Runtime − Keras| "
        f"{exported.record.max_abs_error:.1e} on {exported.record.check_images} test images)"
    )


def run_folders(root: Path | str | None = None) -> list[Path]:
    """Every finished run folder of every registered model under ``root`` (damaged ones too)."""
    return [info.path for model in MODEL_NAMES for info in artifacts.list_runs(model, root)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=ONNX_COMMAND,
        description="Add model.onnx (for ONNX Runtime) to finished runs that lack it, without "
        "retraining. Runs whose model.onnx verifies are left alone.",
    )
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR", help="run folders")
    parser.add_argument("--all", action="store_true", help="every run under the root")
    parser.add_argument(
        "--root", type=Path, default=None, help="artifacts folder (default: artifacts/ or "
        f"${artifacts.ENV_VAR})"
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.runs) == args.all:
        parser.error("name run folders, or --all (not both)")
    if "keras" not in sys.modules:  # the export needs TensorFlow, whatever trained the run
        os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    folders = run_folders(args.root) if args.all else args.runs
    if not folders:
        print(f"no runs under {artifacts.artifacts_root(args.root)}")
        return 0
    x = check_images()
    failed = 0
    for folder in folders:
        label = f"{folder.parent.name}/{folder.name}"
        try:
            print(f"{label}: {export_run(folder, x)}", flush=True)
        except (RunError, ExportError, OSError) as exc:
            failed += 1
            print(f"{label}: not changed: {exc}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
