"""The run format: its file names and the manifest, a dataclass parsed and type-checked once.

``core.artifacts`` (the store) is the one writer and reader of run folders; this module is
their schema, so that readers of a manifest ask for attributes, not raw dict keys.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass

FORMAT = "fmnist-compare-run"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
LIVE_LOG = "live.jsonl"
PREDICTIONS = "predictions.npz"
RUN_FILES = (MODEL_FILE, HISTORY_FILE, LIVE_LOG, PREDICTIONS)
# The model exported for ONNX Runtime (``core.onnxexport``): checksummed like the others when
# present, absent from runs trained where TensorFlow was not (add it with the command there).
ONNX_FILE = "model.onnx"
OPTIONAL_RUN_FILES = (ONNX_FILE,)
ONNX_COMMAND = "python -m core.onnxexport"


class RunError(RuntimeError):
    """A run is missing, damaged or incompatible; the message names what is wrong."""


# ----------------------------------------------------------------------------------------------
# The manifest: what a run is and how it was made, written last, parsed on every load


@dataclass(frozen=True)
class Protocol:
    """How the run was trained: the report's protocol, or a quick run's settings."""

    epochs: int
    batch_size: int
    seed: int
    optimizer: str
    learning_rate: float
    loss: str
    preprocessing: str
    train_images: int
    train_limit: int | None  # None: every training image
    follows_report: bool
    test_evaluation: str


@dataclass(frozen=True)
class Compute:
    """How the trainer's process ran the protocol: speed only, the protocol is unchanged."""

    onednn: bool  # TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS); false on other backends
    steps_per_execution: int


@dataclass(frozen=True)
class Machine:
    """The machine that trained the run."""

    platform: str
    cpus: int | None  # os.cpu_count(): None where it cannot tell


@dataclass(frozen=True)
class DatasetRecord:
    """The data set a run was trained on: where it was found, each file's content SHA-256."""

    source: str
    sha256: dict[str, str]


@dataclass(frozen=True)
class TrainMetrics:
    """The last epoch's running means over the training images."""

    loss: float
    accuracy: float


@dataclass(frozen=True)
class TestMetrics:
    """The trained model on the held-out test set."""

    __test__ = False  # not a pytest class, wherever it is imported

    n: int
    accuracy: float
    loss: float


@dataclass(frozen=True)
class OnnxExport:
    """How ``model.onnx`` was made from ``model.keras``, and how closely it was checked."""

    keras_sha256: str  # the model.keras it was exported from (a replaced one makes it stale)
    outputs: dict[str, str]  # graph output (probabilities, features, grad_cam) → Keras layer
    opset: int
    versions: dict[str, str]  # keras, tensorflow, tf2onnx, onnx, onnxruntime
    check_images: int  # real test images both ran on before the file was written
    max_abs_error: float  # largest |ONNX Runtime − Keras| over them, every output
    exported: str  # ISO 8601, UTC, to the second


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A run's ``manifest.json``, parsed and type-checked once (``from_dict``).

    Fields stand in the file's order. ``compute`` and ``dataset`` are None for runs written
    before the trainer recorded them, ``onnx`` for runs without ``model.onnx`` and
    ``onnx_missing`` where nothing says why (the only fields that may be missing); ``files`` maps
    each run file to its SHA-256 and is filled in by ``RunWriter.commit``.
    """

    model: str
    run_id: str
    display_name: str
    params: int
    protocol: Protocol
    # The libraries that trained it: python, keras, keras_backend, the backend's own library
    # (tensorflow; or jax and jaxlib, with no tensorflow key), numpy, scikit-learn.
    versions: dict[str, str]
    compute: Compute | None = None
    machine: Machine
    dataset: DatasetRecord | None = None
    started: str  # ISO 8601, UTC, to the second
    finished: str
    seconds_per_epoch: list[float]  # wall clock, measured while training
    train_metrics: TrainMetrics
    test_metrics: TestMetrics
    onnx: OnnxExport | None = None  # None: no model.onnx (see onnx_missing)
    onnx_missing: str | None = None  # why the trainer wrote none, in a sentence
    files: dict[str, str] = field(default_factory=dict)

    @property
    def model_sha256(self) -> str:
        """The SHA-256 of the run's model file: what every cache of the run is keyed on."""
        return self.files[MODEL_FILE]

    @property
    def has_onnx(self) -> bool:
        """Whether the run carries a checksummed ``model.onnx``, exported from its
        ``model.keras`` as it is now."""
        return (
            ONNX_FILE in self.files
            and self.onnx is not None
            and self.onnx.keras_sha256 == self.files.get(MODEL_FILE)
        )

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """The manifest in ``data`` (as ``json`` reads it); RunError says what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RunError(f"{MANIFEST} is not a run manifest of this project")
        if data.get("format_version") != FORMAT_VERSION:
            raise RunError(
                f"{MANIFEST} has format version {data.get('format_version')!r}; this version of "
                f"the project reads version {FORMAT_VERSION}: retrain the model"
            )
        return _parse(cls, data, "")

    def to_dict(self) -> dict:
        """The JSON object of ``manifest.json`` (an absent optional field stays absent)."""
        body = asdict(self)
        for f in fields(self):
            if f.default is None and body[f.name] is None:
                del body[f.name]
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **body}


@functools.cache
def _field_types(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _parse(cls: type, data: object, where: str):
    """An instance of the dataclass ``cls`` from a JSON object, each field checked against its
    annotation; only fields that default to None may be missing."""
    if not isinstance(data, dict):
        raise RunError(f"{MANIFEST}: {where.rstrip('.')!r} is not an object")
    hints, values = _field_types(cls), {}
    for f in fields(cls):
        name = where + f.name
        if f.name in data:
            values[f.name] = _parse_value(hints[f.name], data[f.name], name)
        elif f.default is not None:
            raise RunError(f"{MANIFEST} lacks {name!r}")
    return cls(**values)


def _parse_value(hint, value, name: str):
    if is_dataclass(hint):
        return _parse(hint, value, name + ".")
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _parse_value(hint, value, name)
    origin = typing.get_origin(hint)
    if origin is list and isinstance(value, list):
        return [_parse_value(args[0], v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        return {k: _parse_value(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if hint is float and type(value) in (int, float):
        return float(value)
    if hint in (bool, int, str) and type(value) is hint:  # True is no int here
        return value
    kind = str(hint) if args else hint.__name__
    raise RunError(f"{MANIFEST}: {name!r} should be {kind}, not {value!r:.60}")
