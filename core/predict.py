"""Forward passes without TensorFlow: ONNX Runtime on a run's ``model.onnx``, numpy otherwise.

Importing TensorFlow costs seconds, and once Keras is imported in the Streamlit server every
script run ends in ``keras.backend.clear_session()`` and a full garbage collection. So the
dashboard never runs Keras: ``load_predictor(run)`` returns an ``OnnxModel``, an ONNX Runtime
session on the graph that ``core.onnxexport`` exported from the run's ``model.keras`` (the
probabilities, the penultimate features and the Grad-CAM layer's activations are its outputs).

A run without ``model.onnx`` (trained on a backend without TensorFlow, or before the export
existed) falls back to ``NumpyModel``: this module reads ``model.keras`` itself (a zip of
``config.json`` and ``model.weights.h5``: JSON and HDF5, no pickle, no code) and runs the
forward pass in numpy. The numpy layers stay for three reasons: that fallback; the layer table
and graph of the Overview; and Grad-CAM, whose backward pass through the few layers after the
last convolution is hand-written (``core.explain``) because graphs exported from TensorFlow carry
no gradients, and needs those layers' weights and forward values.

Layers the numpy engine runs: InputLayer, Conv2D ('valid' or 'same', any stride), MaxPooling2D
('valid'), Flatten, Dense, Add, BatchNormalization (inference), Dropout (the identity at
inference), GlobalAveragePooling2D, Activation and ReLU, in Sequential or Functional models.
Anything else raises ``UnsupportedModel``; with ``model.onnx`` the run still predicts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from core.artifacts import MODEL_FILE, ONNX_FILE, Run, RunError
from core.data import CLASS_NAMES
from core.manifest import ONNX_COMMAND
from core.modelfile import MAX_FILE_BYTES, ModelFileError, UnsupportedModel, graph, read_members

BATCH = 32  # images per forward chunk: bounds the im2col buffers (~30 MB) for large inputs

SUPPORTED_LAYERS = (
    "InputLayer",
    "Conv2D",
    "MaxPooling2D",
    "Flatten",
    "Dense",
    "Add",
    "BatchNormalization",
    "Dropout",
    "GlobalAveragePooling2D",
    "Activation",
    "ReLU",
)
_WEIGHTED = ("Conv2D", "Dense")


# ----------------------------------------------------------------------------------------------
# Matrix products


# OpenBLAS runs a product on the calling thread when m*n*k is at most 65536 * 4, and splits
# larger ones over all cores. One image's convolutions are a little larger than that, and when
# another process (a training run) keeps the cores busy, waiting for the second BLAS thread turns
# ~1 ms into 10-25 ms. Its thread count cannot be lowered from Streamlit's script threads
# (OpenBLAS ignores openblas_set_num_threads outside the main thread), so small products are cut
# into row blocks under the threshold instead. The path depends only on the shapes, so every
# thread computes the same numbers for the same input.
_SINGLE_THREAD_MNK = 65536 * 4
_SMALL_WORK_MNK = 1 << 23  # about two images' worth; bigger batches use all cores


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (m, k) @ b (k, n), kept on the calling thread for small products."""
    m, (k, n) = a.shape[0], b.shape
    if m * k * n <= _SINGLE_THREAD_MNK or m * k * n > _SMALL_WORK_MNK:
        return a @ b
    rows = max(1, _SINGLE_THREAD_MNK // (k * n))
    out = np.empty((m, n), np.result_type(a, b))
    for start in range(0, m, rows):
        np.matmul(a[start : start + rows], b, out=out[start : start + rows])
    return out


# ----------------------------------------------------------------------------------------------
# Activations and layer kernels (pure functions of their inputs: safe to call from any thread)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype, copy=False)


ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0, out=x),
    "softmax": _softmax,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
}


def _same_padding(size: int, kernel: int, stride: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding: ceil(size / stride) outputs; an odd pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return -(-size // stride) if padding == "same" else (size - kernel) // stride + 1


def _conv2d(x: np.ndarray, kernel2d: np.ndarray, layer: Layer) -> np.ndarray:
    """x (n, h, w, cin) → (n, h', w', cout) as one matrix product over im2col windows."""
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    if layer.padding == "same":
        pads = _same_padding(x.shape[1], kh, sh), _same_padding(x.shape[2], kw, sw)
        x = np.pad(x, ((0, 0), *pads, (0, 0)))
    n, cin = x.shape[0], x.shape[3]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    # windows: (n, h', w', cin, kh, kw), matching kernel2d's rows (cin, kh, kw)
    oh, ow = windows.shape[1:3]
    out = _matmul(windows.reshape(n * oh * ow, cin * kh * kw), kernel2d)  # (n*h'*w', cout)
    if layer.bias is not None:
        out += layer.bias
    return layer.activate(out.reshape(n, oh, ow, -1))


def max_pool(x: np.ndarray, layer: Layer) -> np.ndarray:
    """A MaxPooling2D layer: x (n, h, w, c) → (n, h', w', c)."""
    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
    n, h, w, c = x.shape
    oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
    if (ph, pw) == (sh, sw):  # the common case: non-overlapping blocks, a reshape and a max
        x = x[:, : oh * ph, : ow * pw]
        return x.reshape(n, oh, ph, ow, pw, c).max(axis=(2, 4))
    windows = np.lib.stride_tricks.sliding_window_view(x, (ph, pw), axis=(1, 2))
    return windows[:, ::sh, ::sw].max(axis=(4, 5))


def dense(x: np.ndarray, layer: Layer) -> np.ndarray:
    """A Dense layer, its activation included: x (n, d) → (n, units)."""
    out = _matmul(x, layer.kernel)
    if layer.bias is not None:
        out += layer.bias
    return layer.activate(out)


def batch_norm_affine(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization layer at inference as x * scale + shift, per channel (c,) each:
    scale = gamma / sqrt(moving_variance + epsilon), shift = beta - moving_mean * scale."""
    return layer.constants[0], layer.constants[1]


def apply_layer(layer: Layer, inputs: list[np.ndarray], conv_matrix: np.ndarray | None = None):
    """One layer's output at inference from its inputs' outputs (a Conv2D needs its kernel as
    an im2col matrix, ``conv_matrix``). Pure: safe from any thread."""
    x = inputs[0]
    if layer.kind == "Conv2D":
        return _conv2d(x, conv_matrix, layer)
    if layer.kind == "MaxPooling2D":
        return max_pool(x, layer)
    if layer.kind == "Flatten":
        return x.reshape(len(x), -1)
    if layer.kind == "Dense":
        return dense(x, layer)
    if layer.kind == "BatchNormalization":
        scale, shift = batch_norm_affine(layer)
        return x * scale + shift
    if layer.kind == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2)).reshape(len(x), *layer.output_shape)
    if layer.kind in ("Activation", "ReLU"):
        return layer.activate(x.copy())  # relu works in place
    if layer.kind == "Dropout":
        return x
    if layer.kind == "Add":  # summed in input order, as Keras does
        total = x
        for other in inputs[1:]:
            total = total + other
        return total
    raise UnsupportedModel(f"layer {layer.name!r}: the numpy engine cannot run a {layer.kind}")


# ----------------------------------------------------------------------------------------------
# Reading the file


@dataclass(frozen=True)
class Layer:
    """One layer of the graph, with everything its forward pass needs (read-only weights)."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    output_shape: tuple[int, ...]  # without the batch axis
    weights: tuple[np.ndarray, ...] = ()  # as stored: kernel, bias
    activation: str = "linear"
    kernel_size: tuple[int, int] = (1, 1)
    padding: str = "valid"
    pool_size: tuple[int, int] = (2, 2)
    strides: tuple[int, int] = (1, 1)  # a Conv2D's or a MaxPooling2D's
    constants: tuple[np.ndarray, ...] = ()  # derived from the weights: BatchNormalization's

    def activate(self, x: np.ndarray) -> np.ndarray:
        return ACTIVATIONS[self.activation](x)

    @property
    def kernel(self) -> np.ndarray:
        """A Conv2D's (kh, kw, cin, cout) or a Dense layer's (inputs, units) kernel."""
        return self.weights[0]

    @property
    def bias(self) -> np.ndarray | None:
        return self.weights[1] if len(self.weights) > 1 else None

    @property
    def params(self) -> int:
        return int(sum(w.size for w in self.weights))


def _pair(value, what: str, layer: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ModelFileError(f"layer {layer!r}: {what} {value!r} is not a pair of integers")


def _build_layers(config: dict, weights: dict[str, list[np.ndarray]]):
    """Check every layer, infer its output shape and attach its weights, in execution order."""
    specs, inputs, first, last = graph(config)
    by_name = {spec["name"]: spec for spec in specs}
    for name, sources in inputs.items():
        for src in sources:
            if src not in by_name:
                raise ModelFileError(f"layer {name!r} reads from unknown layer {src!r}")

    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:  # depth-first topological sort, rejecting cycles
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ModelFileError(f"the layer graph has a cycle through {name!r}")
        state[name] = 1
        for src in inputs[name]:
            visit(src)
        state[name] = 2
        order.append(name)

    visit(last)
    # Present layers in the config's order (Keras writes them in a valid execution order) when
    # it is one; the depth-first order otherwise.
    position = {spec["name"]: i for i, spec in enumerate(specs)}
    in_config_order = sorted(order, key=position.__getitem__)
    seen: set[str] = set()
    for name in in_config_order:
        if not seen.issuperset(inputs[name]):
            break
        seen.add(name)
    else:
        order = in_config_order
    if first not in order:
        raise ModelFileError(f"the output {last!r} does not depend on the input {first!r}")

    layers: dict[str, Layer] = {}
    for name in order:
        layers[name] = _make_layer(by_name[name], inputs[name], layers, weights)
    if layers[first].kind != "InputLayer":
        raise ModelFileError(f"the model's input {first!r} is not an InputLayer")
    return layers, first, last


def _make_layer(spec: dict, sources: tuple[str, ...], done: dict[str, Layer], weights) -> Layer:
    kind, name, cfg = spec.get("class_name"), spec["name"], spec["config"]
    if kind not in SUPPORTED_LAYERS:
        raise UnsupportedModel(
            f"layer {name!r} is a {kind}; the numpy engine runs only {', '.join(SUPPORTED_LAYERS)}"
        )
    in_shapes = [done[s].output_shape for s in sources]
    if kind == "InputLayer":
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        if (
            not isinstance(shape, list)
            or len(shape) < 2
            or not all(isinstance(d, int) and d > 0 for d in shape[1:])
        ):
            raise UnsupportedModel(f"input {name!r} has shape {shape!r}; a fixed shape is needed")
        return Layer(name, kind, (), tuple(shape[1:]))
    if kind != "Add" and len(sources) != 1:
        raise UnsupportedModel(f"layer {name!r} ({kind}) has {len(sources)} inputs, not one")
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedModel(f"layer {name!r} uses {cfg['data_format']}; only channels_last runs")
    activation = cfg.get("activation", "linear") or "linear"
    if kind == "ReLU":
        if cfg.get("max_value") is not None or cfg.get("negative_slope") or cfg.get("threshold"):
            raise UnsupportedModel(f"layer {name!r}: only a plain ReLU runs (no max, slope 0)")
        activation = "relu"
    if kind in (*_WEIGHTED, "Activation") and activation not in ACTIVATIONS:
        raise UnsupportedModel(f"layer {name!r} uses activation {activation!r}")
    stored = tuple(weights.get(name, ()))
    in_shape = in_shapes[0] if in_shapes else ()

    if kind == "Conv2D":
        kh, kw = _pair(cfg.get("kernel_size"), "kernel_size", name)
        strides = _pair(cfg.get("strides", 1), "strides", name)
        dilation = _pair(cfg.get("dilation_rate", 1), "dilation_rate", name)
        padding = cfg.get("padding", "valid")
        if min(strides) < 1 or dilation != (1, 1) or cfg.get("groups", 1) != 1:
            raise UnsupportedModel(
                f"layer {name!r}: strides {strides}, dilation {dilation}, groups "
                f"{cfg.get('groups', 1)}; only dilation 1 and groups 1 run"
            )
        if padding not in ("valid", "same") or len(in_shape) != 3:
            raise UnsupportedModel(f"layer {name!r}: padding {padding!r} on input {in_shape}")
        h, w, cin = in_shape
        filters = cfg.get("filters")
        want = [(kh, kw, cin, filters)] + ([(filters,)] if cfg.get("use_bias", True) else [])
        _check_weights(name, stored, want)
        h, w = _conv_size(h, kh, strides[0], padding), _conv_size(w, kw, strides[1], padding)
        if h < 1 or w < 1:
            raise ModelFileError(f"layer {name!r}: a {kh}x{kw} kernel on a {in_shape} input")
        return Layer(
            name, kind, sources, (h, w, filters), stored, activation, (kh, kw), padding,
            strides=strides,
        )  # fmt: skip

    if kind == "MaxPooling2D":
        pool = _pair(cfg.get("pool_size", 2), "pool_size", name)
        strides = _pair(cfg.get("strides") or pool, "strides", name)
        if cfg.get("padding", "valid") != "valid" or len(in_shape) != 3:
            raise UnsupportedModel(f"layer {name!r}: only 'valid' pooling of images runs")
        h, w, c = in_shape
        out = ((h - pool[0]) // strides[0] + 1, (w - pool[1]) // strides[1] + 1, c)
        if min(out) < 1:
            raise ModelFileError(f"layer {name!r}: a {pool} pool on a {in_shape} input")
        return Layer(name, kind, sources, out, pool_size=pool, strides=strides)

    if kind == "Flatten":
        return Layer(name, kind, sources, (int(np.prod(in_shape)),))

    if kind in ("Dropout", "Activation", "ReLU"):  # Dropout: the identity at inference
        return Layer(name, kind, sources, in_shape, activation=activation)

    if kind == "GlobalAveragePooling2D":
        if len(in_shape) != 3:
            raise UnsupportedModel(f"layer {name!r}: global pooling of a {in_shape} input")
        out = (1, 1, in_shape[2]) if cfg.get("keepdims") else (in_shape[2],)
        return Layer(name, kind, sources, out)

    if kind == "BatchNormalization":
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, len(in_shape)):
            raise UnsupportedModel(f"layer {name!r} normalises axis {axis}; only the channels run")
        c = in_shape[-1]
        names = [n for n, on in (("gamma", cfg.get("scale", True)), ("beta", cfg.get("center", True)))
                 if on] + ["moving_mean", "moving_variance"]  # fmt: skip
        _check_weights(name, stored, [(c,)] * len(names))
        found = dict(zip(names, stored, strict=True))
        gamma = found.get("gamma", np.ones(c, np.float32))
        beta = found.get("beta", np.zeros(c, np.float32))
        # as TensorFlow computes it: x * (gamma * rsqrt(var + eps)) + (beta - mean * that)
        scale = gamma / np.sqrt(found["moving_variance"] + np.float32(cfg.get("epsilon", 1e-3)))
        shift = beta - found["moving_mean"] * scale
        constants = tuple(np.asarray(a, np.float32) for a in (scale, shift))
        for array in constants:
            array.flags.writeable = False
        return Layer(name, kind, sources, in_shape, stored, constants=constants)

    if kind == "Dense":
        units = cfg.get("units")
        if len(in_shape) != 1:
            raise UnsupportedModel(f"layer {name!r}: Dense on a {len(in_shape)}-D input")
        want = [(in_shape[0], units)] + ([(units,)] if cfg.get("use_bias", True) else [])
        _check_weights(name, stored, want)
        return Layer(name, kind, sources, (units,), stored, activation)

    # Add
    if len(sources) < 2 or any(s != in_shapes[0] for s in in_shapes):
        raise UnsupportedModel(f"layer {name!r} adds inputs of shapes {in_shapes}")
    return Layer(name, kind, sources, in_shapes[0])


def _check_weights(name: str, stored: tuple[np.ndarray, ...], want: list[tuple]) -> None:
    got = [tuple(w.shape) for w in stored]
    if got != [tuple(s) for s in want]:
        raise ModelFileError(f"layer {name!r}: weights of shapes {got}, expected {want}")


def _shape_text(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


# ----------------------------------------------------------------------------------------------
# The model


def _check_input(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "f":
        raise ValueError(
            f"expected float pixels in [0, 1], got dtype {x.dtype} (divide uint8 by 255)"
        )
    if x.ndim == len(shape) and shape[-1] == 1 and x.shape[1:] == shape[:-1]:
        x = x[..., None]  # (n, h, w) → (n, h, w, 1)
    if x.shape[1:] != shape:
        raise ValueError(
            f"expected a batch of shape (n, {', '.join(map(str, shape))}), got {x.shape}"
        )
    return x.astype(np.float32, copy=False)


class NumpyModel:
    """A saved Keras model run by numpy. Immutable after loading, so threads may share it."""

    engine = "numpy"

    def __init__(
        self,
        config: dict,
        weights: dict[str, list[np.ndarray]],
        source: str = "model",
        metadata: dict | None = None,
    ):
        self.source = source
        self.metadata = dict(metadata or {})  # e.g. {"keras_version": "3.15.1", ...}
        self.name = str((config.get("config") or {}).get("name", source))
        self._layers, self._input, self._output = _build_layers(config, weights)
        # Conv kernels as im2col matrices (cin*kh*kw, cout), computed once.
        self._conv_matrix = {
            layer.name: np.ascontiguousarray(
                layer.weights[0].transpose(2, 0, 1, 3).reshape(-1, layer.weights[0].shape[3])
            )
            for layer in self._layers.values()
            if layer.kind == "Conv2D"
        }
        for matrix in self._conv_matrix.values():
            matrix.flags.writeable = False

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "model.keras") -> NumpyModel:
        """Parse the bytes of a ``.keras`` file."""
        config, weights, metadata = read_members(data, source)
        try:
            return cls(config, weights, source, metadata)
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from exc
        except UnsupportedModel as exc:
            raise UnsupportedModel(f"{source}: {exc}") from exc

    @classmethod
    def from_keras_file(cls, path: Path | str) -> NumpyModel:
        """Load a ``.keras`` file (Keras 3 format) from disk."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ModelFileError(f"{path}: {size:,} bytes is too large for a model file")
            data = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot be read ({exc})") from exc
        return cls.from_bytes(data, str(path))

    # -- structure --------------------------------------------------------------------------

    @property
    def layers(self) -> Mapping[str, Layer]:
        """The layers by name, in execution order (a read-only view)."""
        return MappingProxyType(self._layers)

    @property
    def output_layer(self) -> Layer:
        return self._layers[self._output]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._layers[self._input].output_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._layers[self._output].output_shape

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self._layers.values())

    def layer_table(self):
        """One row per layer, in execution order: layer, type, output shape, params."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "layer": layer.name,
                    "type": layer.kind,
                    "output shape": _shape_text(layer.output_shape),
                    "params": layer.params,
                }
                for layer in self._layers.values()
            ],
            columns=["layer", "type", "output shape", "params"],
        )

    def to_dot(self) -> str:
        """The layer graph in Graphviz DOT, for ``st.graphviz_chart``."""

        def quote(text: str) -> str:
            escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            return f'"{escaped}"'

        lines = [
            f"digraph {quote(self.name)} {{",
            "  rankdir=TB; ranksep=0.18; nodesep=0.3;",
            '  node [shape=box, style="rounded,filled", fillcolor="#f4f6fa", '
            'fontname="Helvetica", fontsize=10, height=0.3, margin="0.12,0.04"];',
            "  edge [arrowsize=0.6];",
        ]
        for layer in self._layers.values():
            label = f"{layer.kind}  {_shape_text(layer.output_shape)}"
            if layer.params:
                label += f"  · {layer.params:,} params"
            lines.append(f"  {quote(layer.name)} [label={quote(label)}];")
        for layer in self._layers.values():
            lines.extend(f"  {quote(src)} -> {quote(layer.name)};" for src in layer.inputs)
        lines.append("}")
        return "\n".join(lines)

    # -- inference --------------------------------------------------------------------------

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """A batch as the engine runs it: float32 (n, *input_shape), a missing channel axis of 1
        added; ValueError for integer pixels or another shape."""
        return _check_input(x, self.input_shape)

    def _forward(self, x: np.ndarray, target: str) -> np.ndarray:
        """Run the graph on one chunk up to ``target``; every buffer is local to this call."""
        values: dict[str, np.ndarray] = {}
        for name, layer in self._layers.items():
            if layer.kind == "InputLayer":
                values[name] = x
            else:
                inputs = [values[src] for src in layer.inputs]
                values[name] = apply_layer(layer, inputs, self._conv_matrix.get(name))
            if name == target:
                return values[name]
        raise KeyError(target)  # unreachable: target is a layer of the graph

    def forward_to(self, x: np.ndarray, layer_name: str) -> np.ndarray:
        """The output (n, ...) float32 of the layer ``layer_name``, after its activation, for
        images x as ``check_input`` takes them; run ``BATCH`` images at a time."""
        if layer_name not in self._layers:
            raise KeyError(f"{self.source} has no layer {layer_name!r}")
        x = self.check_input(x)
        chunks = [self._forward(x[i : i + BATCH], layer_name) for i in range(0, len(x), BATCH)]
        if not chunks:
            return np.zeros((0, *self._layers[layer_name].output_shape), np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) for images (n, 28, 28) or (n, 28, 28, 1), float in [0, 1]."""
        return self.forward_to(x, self._output)

    @property
    def feature_layer(self) -> str:
        """The layer whose output the last Dense layer reads (the penultimate features)."""
        last = self.output_layer
        if last.kind != "Dense":
            raise UnsupportedModel(f"the output layer {last.name!r} is a {last.kind}, not Dense")
        return last.inputs[0]

    @property
    def feature_width(self) -> int:
        """k of ``penultimate``'s (n, k)."""
        return int(np.prod(self._layers[self.feature_layer].output_shape))

    def penultimate(self, x: np.ndarray) -> np.ndarray:
        """The activations (n, k) feeding the last Dense layer: the model's learned features."""
        features = self.forward_to(x, self.feature_layer)
        return features.reshape(len(features), -1)


# ----------------------------------------------------------------------------------------------
# ONNX Runtime

# Graph outputs of model.onnx (core.onnxexport writes them; the manifest names each one's layer).
PROBABILITIES, FEATURES, GRAD_CAM = "probabilities", "features", "grad_cam"
ORT_BATCH = 256  # images per session run: bounds the activations (~25 MB) for 60,000 images


def session_options():
    """ONNX Runtime's settings for a dashboard server that shares its cores with others.

    One thread per run call, on the calling thread: Streamlit runs each browser session's script
    in its own thread, so concurrent requests already use the cores, and a thread pool would
    only add hand-offs. Measured on the 2-core machine with other work running: the baseline's
    one image 0.07 ms on one thread, 0.10 ms on a pool of two; 60,000 images in 256-image chunks
    3.8 s on one thread, 5.1 s on two (1,024-image chunks: 5.1 s and 8.8 s). A pool's idle
    threads would also spin after each call by default, taking a core from Streamlit or a
    training process; spinning is off should the width grow.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


class OnnxModel:
    """A run's model on ONNX Runtime, with the layer graph of its ``model.keras`` beside it.

    ``predict``, ``penultimate`` and the Grad-CAM layer's activations (``forward_to`` that
    layer) run in the ONNX session; ``forward_to`` any other layer, ``layers``, the layer table
    and graph come from the numpy reading of ``model.keras`` (``structure``), where its layers
    allow (else ``structure`` is None and only the graph outputs and a plain table remain).
    One session per run; ONNX Runtime's ``run`` may be called from several threads at once.
    """

    engine = "onnxruntime"

    def __init__(
        self,
        onnx_bytes: bytes,
        outputs: Mapping[str, str],
        structure: NumpyModel | None,
        source: str = "model.onnx",
        problem: str | None = None,
        description: list[dict] | None = None,
    ):
        import onnxruntime as ort

        self.source = source
        self.structure = structure
        self.problem = problem  # why structure is None
        self._description = description or []
        try:
            self._session = ort.InferenceSession(
                onnx_bytes, session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own Fail/InvalidProtobuf/... errors
            raise ModelFileError(f"{source}: ONNX Runtime cannot load it ({exc})") from exc
        graph_outputs = {o.name: o for o in self._session.get_outputs()}
        if PROBABILITIES not in outputs or not set(outputs) <= set(graph_outputs):
            raise ModelFileError(
                f"{source}: graph outputs {sorted(graph_outputs)} do not match the export's "
                f"record {dict(outputs)}"
            )
        (graph_input,) = self._session.get_inputs()
        self._input = graph_input.name
        self._input_shape = tuple(graph_input.shape[1:])
        self._shapes = {name: tuple(o.shape[1:]) for name, o in graph_outputs.items()}
        self._role_of = {layer: role for role, layer in outputs.items()}  # layer → output
        self._outputs = dict(outputs)
        if structure is not None and structure.input_shape != self._input_shape:
            raise ModelFileError(
                f"{source}: input {self._input_shape} but model.keras takes {structure.input_shape}"
            )
        self.name = structure.name if structure is not None else source

    # -- structure: model.keras' layer graph ------------------------------------------------

    def _structure(self) -> NumpyModel:
        if self.structure is None:
            raise UnsupportedModel(self.problem or f"{self.source}: no layer graph")
        return self.structure

    @property
    def layers(self) -> Mapping[str, Layer]:
        return self.structure.layers if self.structure is not None else MappingProxyType({})

    @property
    def output_layer(self) -> Layer:
        return self._structure().output_layer

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._shapes[PROBABILITIES]

    @property
    def total_params(self) -> int:
        if self.structure is not None:
            return self.structure.total_params
        return sum(row["params"] for row in self._description)

    @property
    def outputs(self) -> dict[str, str]:
        """The graph's outputs: probabilities, features, grad_cam → the Keras layer of each."""
        return dict(self._outputs)

    def layer_table(self):
        """One row per layer, in execution order: layer, type, output shape, params."""
        if self.structure is not None:
            return self.structure.layer_table()
        import pandas as pd

        return pd.DataFrame(self._description, columns=["layer", "type", "output shape", "params"])

    def to_dot(self) -> str:
        """The layer graph in Graphviz DOT, for ``st.graphviz_chart``."""
        if self.structure is not None:
            return self.structure.to_dot()
        nodes = [f"  {json.dumps(str(row['layer']))} [label={json.dumps(str(row['type']))}];"
                 for row in self._description]  # fmt: skip
        return "digraph model {\n" + "\n".join(nodes) + "\n}"

    # -- inference ----------------------------------------------------------------------------

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """A batch as the graph takes it: float32 (n, *input_shape), a missing channel axis of 1
        added; ValueError for integer pixels or another shape."""
        return _check_input(x, self._input_shape)

    def _run(self, role: str, x: np.ndarray) -> np.ndarray:
        x = self.check_input(x)
        if not len(x):
            return np.zeros((0, *self._shapes[role]), np.float32)
        chunks = [
            self._session.run([role], {self._input: x[i : i + ORT_BATCH]})[0]
            for i in range(0, len(x), ORT_BATCH)
        ]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def forward_to(self, x: np.ndarray, layer_name: str) -> np.ndarray:
        """The output (n, ...) float32 of the layer ``layer_name``: from the ONNX session for the
        graph's outputs, from the numpy engine for any other layer."""
        role = self._role_of.get(layer_name)
        if role is not None:
            return self._run(role, x)
        return self._structure().forward_to(x, layer_name)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) for images (n, 28, 28) or (n, 28, 28, 1), float in [0, 1]."""
        return self._run(PROBABILITIES, x)

    @property
    def feature_layer(self) -> str:
        if FEATURES not in self._outputs:
            raise UnsupportedModel(f"{self.source}: the model's output layer is not Dense")
        return self._outputs[FEATURES]

    @property
    def feature_width(self) -> int:
        self.feature_layer  # noqa: B018 (raises when there are no features)
        return int(np.prod(self._shapes[FEATURES]))

    def penultimate(self, x: np.ndarray) -> np.ndarray:
        """The activations (n, k) feeding the last Dense layer: the model's learned features."""
        self.feature_layer  # noqa: B018
        features = self._run(FEATURES, x)
        return features.reshape(len(features), -1)


def describe_layers(data: bytes, source: str) -> list[dict]:
    """A plain layer table (layer, type, output shape unknown, params) of a ``.keras`` file
    whose layers the numpy engine cannot read."""
    config, weights, _ = read_members(data, source)
    specs = (config.get("config") or {}).get("layers") or []
    rows = []
    for spec in specs:
        name = (spec.get("config") or {}).get("name", spec.get("name"))
        params = int(sum(w.size for w in weights.get(name, ())))
        rows.append({"layer": name, "type": spec.get("class_name"), "output shape": "?",
                     "params": params})  # fmt: skip
    return rows


# ----------------------------------------------------------------------------------------------
# Runs


def _read_checked(run: Run, name: str, label: str) -> bytes:
    """The bytes of run file ``name``, read once and checked against the manifest."""
    try:
        data = (run.path / name).read_bytes()  # read once: the bytes checked are the bytes parsed
    except OSError as exc:
        raise RunError(f"{label}: {name} cannot be read ({exc})") from exc
    if hashlib.sha256(data).hexdigest() != run.manifest.files[name]:
        raise RunError(f"{label}: {name} changed since it was verified")
    return data


def load_predictor(run: Run) -> OnnxModel | NumpyModel:
    """The run's model for inference, after checking its files against the run's manifest: an
    ``OnnxModel`` when the run has ``model.onnx``, else the numpy engine.

    Raises RunError if a file changed since the run was verified or cannot be read, and
    UnsupportedModel (naming the command that adds ``model.onnx``) for a run without
    ``model.onnx`` whose layers the numpy engine does not implement.
    """
    label = f"{run.model}/{run.run_id}"
    data = _read_checked(run, MODEL_FILE, label)
    source = f"{label}/{MODEL_FILE}"
    try:
        structure, problem = NumpyModel.from_bytes(data, source), None
    except UnsupportedModel as exc:
        structure, problem = None, str(exc)
    except ModelFileError as exc:
        raise RunError(str(exc)) from exc
    if run.manifest.has_onnx:
        onnx_bytes = _read_checked(run, ONNX_FILE, label)
        try:
            description = describe_layers(data, source) if structure is None else None
            return OnnxModel(onnx_bytes, run.manifest.onnx.outputs, structure,
                             f"{label}/{ONNX_FILE}", problem, description)  # fmt: skip
        except ModelFileError as exc:
            raise RunError(f"{exc}; export it again with `{ONNX_COMMAND} {run.path}`") from exc
    if structure is None:
        raise UnsupportedModel(
            f"{problem}. The run has no {ONNX_FILE}, which runs any Keras model: add it with "
            f"`{ONNX_COMMAND} {run.path}`"
        )
    return structure


def predict_both(models: Mapping, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Each model's probabilities (10,) for one prepared image (28, 28)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 2:
        raise ValueError(f"expected one image (28, 28), got shape {pixels.shape}")
    return {name: model.predict(pixels[None])[0] for name, model in models.items()}


def top_k(prob: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` likeliest classes as (name, probability), likeliest first."""
    prob = np.asarray(prob, dtype=np.float64).ravel()
    if prob.shape != (len(CLASS_NAMES),):
        raise ValueError(f"expected {len(CLASS_NAMES)} probabilities, got {prob.shape[0]}")
    order = np.argsort(-prob, kind="stable")[: max(0, k)]
    return [(CLASS_NAMES[i], float(prob[i])) for i in order]
