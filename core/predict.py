"""Fast inference without TensorFlow: a small numpy engine that runs a saved ``model.keras``.

Importing TensorFlow costs seconds, and once Keras is imported in the Streamlit server every
script run ends in ``keras.backend.clear_session()`` and a full garbage collection; a Keras call
on one image costs tens of milliseconds more. The dashboard's models are plain stacks of a few
layer types, so this module reads the file itself (a zip of ``config.json`` and
``model.weights.h5``: JSON and HDF5, no pickle, no code) and runs the forward pass in numpy.

Supported layers: InputLayer, Conv2D (stride 1, 'valid' or 'same'), MaxPooling2D ('valid'),
Flatten, Dense and Add, in Sequential or Functional models. Anything else raises
``UnsupportedModel``; the caller may then fall back to ``Run.load_keras_model``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from core.artifacts import MODEL_FILE, Run, RunError
from core.data import CLASS_NAMES
from core.modelfile import MAX_FILE_BYTES, ModelFileError, UnsupportedModel, graph, read_members

BATCH = 32  # images per forward chunk: bounds the im2col buffers (~30 MB) for large inputs

SUPPORTED_LAYERS = ("InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Add")
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


def _same_padding(size: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding for stride 1: the extra pixel of an even kernel goes after."""
    before = (size - 1) // 2
    return before, size - 1 - before


def _conv2d(x: np.ndarray, kernel2d: np.ndarray, layer: Layer) -> np.ndarray:
    """x (n, h, w, cin) → (n, h', w', cout) as one matrix product over im2col windows."""
    kh, kw = layer.kernel_size
    if layer.padding == "same":
        x = np.pad(x, ((0, 0), _same_padding(kh), _same_padding(kw), (0, 0)))
    n, h, w, cin = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    # windows: (n, h', w', cin, kh, kw), matching kernel2d's rows (cin, kh, kw)
    oh, ow = h - kh + 1, w - kw + 1
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
    strides: tuple[int, int] = (1, 1)

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
    if kind in _WEIGHTED and activation not in ACTIVATIONS:
        raise UnsupportedModel(f"layer {name!r} uses activation {activation!r}")
    stored = tuple(weights.get(name, ()))
    in_shape = in_shapes[0] if in_shapes else ()

    if kind == "Conv2D":
        kh, kw = _pair(cfg.get("kernel_size"), "kernel_size", name)
        strides = _pair(cfg.get("strides", 1), "strides", name)
        dilation = _pair(cfg.get("dilation_rate", 1), "dilation_rate", name)
        padding = cfg.get("padding", "valid")
        if strides != (1, 1) or dilation != (1, 1) or cfg.get("groups", 1) != 1:
            raise UnsupportedModel(
                f"layer {name!r}: strides {strides}, dilation {dilation}, groups "
                f"{cfg.get('groups', 1)}; only 1, 1 and 1 run"
            )
        if padding not in ("valid", "same") or len(in_shape) != 3:
            raise UnsupportedModel(f"layer {name!r}: padding {padding!r} on input {in_shape}")
        h, w, cin = in_shape
        filters = cfg.get("filters")
        want = [(kh, kw, cin, filters)] + ([(filters,)] if cfg.get("use_bias", True) else [])
        _check_weights(name, stored, want)
        if padding == "valid":
            h, w = h - kh + 1, w - kw + 1
        if h < 1 or w < 1:
            raise ModelFileError(f"layer {name!r}: a {kh}x{kw} kernel on a {in_shape} input")
        return Layer(name, kind, sources, (h, w, filters), stored, activation, (kh, kw), padding)

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


class NumpyModel:
    """A saved Keras model run by numpy. Immutable after loading, so threads may share it."""

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
        x = np.asarray(x)
        if x.dtype.kind not in "f":
            raise ValueError(
                f"expected float pixels in [0, 1], got dtype {x.dtype} (divide uint8 by 255)"
            )
        shape = self.input_shape
        if x.ndim == len(shape) and shape[-1] == 1 and x.shape[1:] == shape[:-1]:
            x = x[..., None]  # (n, h, w) → (n, h, w, 1)
        if x.shape[1:] != shape:
            raise ValueError(
                f"expected a batch of shape (n, {', '.join(map(str, shape))}), got {x.shape}"
            )
        return x.astype(np.float32, copy=False)

    def _forward(self, x: np.ndarray, target: str) -> np.ndarray:
        """Run the graph on one chunk up to ``target``; every buffer is local to this call."""
        values: dict[str, np.ndarray] = {}
        for name, layer in self._layers.items():
            if layer.kind == "InputLayer":
                values[name] = x
            elif layer.kind == "Conv2D":
                values[name] = _conv2d(values[layer.inputs[0]], self._conv_matrix[name], layer)
            elif layer.kind == "MaxPooling2D":
                values[name] = max_pool(values[layer.inputs[0]], layer)
            elif layer.kind == "Flatten":
                src = values[layer.inputs[0]]
                values[name] = src.reshape(len(src), -1)
            elif layer.kind == "Dense":
                values[name] = dense(values[layer.inputs[0]], layer)
            else:  # Add, summed in input order as Keras does
                total = values[layer.inputs[0]]
                for src in layer.inputs[1:]:
                    total = total + values[src]
                values[name] = total
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

    def penultimate(self, x: np.ndarray) -> np.ndarray:
        """The activations (n, k) feeding the last Dense layer: the model's learned features."""
        last = self.output_layer
        if last.kind != "Dense":
            raise UnsupportedModel(f"the output layer {last.name!r} is a {last.kind}, not Dense")
        features = self.forward_to(x, last.inputs[0])
        return features.reshape(len(features), -1)


# ----------------------------------------------------------------------------------------------
# Runs


def load_predictor(run: Run) -> NumpyModel:
    """The run's model as a NumpyModel, after checking the file against the run's manifest.

    Raises RunError if the file changed since the run was verified or cannot be read, and
    UnsupportedModel if it uses a layer the engine does not implement.
    """
    path = run.path / MODEL_FILE
    label = f"{run.model}/{run.run_id}"
    try:
        data = path.read_bytes()  # read once: the bytes checked are the bytes parsed
    except OSError as exc:
        raise RunError(f"{label}: {MODEL_FILE} cannot be read ({exc})") from exc
    if hashlib.sha256(data).hexdigest() != run.manifest.model_sha256:
        raise RunError(f"{label}: {MODEL_FILE} changed since it was verified")
    try:
        return NumpyModel.from_bytes(data, f"{label}/{MODEL_FILE}")
    except ModelFileError as exc:
        raise RunError(str(exc)) from exc


def predict_both(models: dict[str, NumpyModel], pixels: np.ndarray) -> dict[str, np.ndarray]:
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
