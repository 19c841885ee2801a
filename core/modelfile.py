"""Reading a saved ``model.keras`` without TensorFlow: its config, weights and layer graph.

A ``.keras`` file is a zip of ``config.json`` and ``model.weights.h5`` (JSON and HDF5: no
pickle, no code). Only those members (and the optional ``metadata.json``) are read, each after
checking its declared size, so a hostile or damaged file costs bounded memory. The engine in
``core.predict`` builds its layers from what this module returns.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile

import numpy as np

CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "model.weights.h5"
METADATA_MEMBER = "metadata.json"
# The most we read of each member (a run's model.keras holds a few MB).
MEMBER_LIMITS = {
    CONFIG_MEMBER: 4 << 20,
    WEIGHTS_MEMBER: 512 << 20,
    METADATA_MEMBER: 64 << 10,
}
MAX_FILE_BYTES = 600 << 20
MAX_WEIGHT_VALUES = 64 << 20  # floats over all layers (256 MB); ours have a few hundred thousand


class ModelFileError(ValueError):
    """The file is not a readable Keras model (not a zip, a member missing or too large...)."""


class UnsupportedModel(ValueError):
    """The model uses something the numpy engine does not implement: run it on ONNX Runtime
    (the run's model.onnx; ``python -m core.onnxexport`` adds it) or on Keras."""


def read_members(data: bytes, source: str) -> tuple[dict, dict[str, list[np.ndarray]], dict]:
    """The config, the weights (by layer name) and the metadata of a ``.keras`` zip.

    Only these three members are read, each after checking its declared size.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{source}: not a Keras model file (not a zip archive)") from exc
    with archive:
        members = {}
        for name in (CONFIG_MEMBER, WEIGHTS_MEMBER, METADATA_MEMBER):
            try:
                info = archive.getinfo(name)
            except KeyError:
                if name == METADATA_MEMBER:  # optional: only says which Keras saved the file
                    continue
                raise ModelFileError(f"{source}: {name} is missing from the archive") from None
            limit = MEMBER_LIMITS[name]
            if info.file_size > limit:
                raise ModelFileError(
                    f"{source}: {name} is {info.file_size:,} bytes, more than the {limit:,} "
                    "this reader accepts"
                )
            try:
                with archive.open(info) as f:
                    members[name] = f.read(limit + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ModelFileError(f"{source}: {name} cannot be read ({exc})") from exc
            if len(members[name]) != info.file_size:
                raise ModelFileError(f"{source}: {name} is not the size its header declares")
    try:
        config = json.loads(members[CONFIG_MEMBER])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{source}: {CONFIG_MEMBER} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ModelFileError(f"{source}: {CONFIG_MEMBER} is not a model config")
    try:
        metadata = json.loads(members.get(METADATA_MEMBER, b"{}"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        metadata = {}
    if not isinstance(metadata, dict):
        metadata = {}
    return config, _read_weights(members[WEIGHTS_MEMBER], config, source), metadata


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: the key a layer's weights get when its file is saved."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _positional_keys(config: dict) -> dict[str, str]:
    """Layer name → weights key as Keras derives it: class name in snake case, numbered in
    order of ``model.layers`` (which omits a Sequential model's InputLayer)."""
    layers = config.get("config", {}).get("layers", [])
    sequential = config.get("class_name") == "Sequential"
    used: dict[str, int] = {}
    keys = {}
    for spec in layers:
        if sequential and spec.get("class_name") == "InputLayer":
            continue
        base = _snake_case(spec.get("class_name", ""))
        used[base] = used.get(base, -1) + 1
        keys[spec.get("config", {}).get("name")] = (
            base if used[base] == 0 else f"{base}_{used[base]}"
        )
    return keys


def _read_weights(raw: bytes, config: dict, source: str) -> dict[str, list[np.ndarray]]:
    """Weights by layer name from ``layers/<key>/vars/<i>``; ``vars`` names its layer."""
    import h5py

    by_key: dict[str, list[np.ndarray]] = {}
    by_name: dict[str, list[np.ndarray]] = {}
    total = 0
    try:
        with h5py.File(io.BytesIO(raw), "r") as h5:
            layers = h5.get("layers")
            if not isinstance(layers, h5py.Group):
                raise ModelFileError(f"{source}: {WEIGHTS_MEMBER} has no 'layers' group")
            for key, group in layers.items():
                variables = group.get("vars") if isinstance(group, h5py.Group) else None
                if not isinstance(variables, h5py.Group):
                    continue
                arrays = []
                for i in range(len(variables)):
                    dataset = variables.get(str(i))
                    if not isinstance(dataset, h5py.Dataset):
                        raise ModelFileError(f"{source}: layers/{key}/vars/{i} is missing")
                    total += dataset.size
                    if total > MAX_WEIGHT_VALUES:
                        raise ModelFileError(f"{source}: more than {MAX_WEIGHT_VALUES:,} weights")
                    array = np.array(dataset[()], dtype=np.float32)
                    array.flags.writeable = False
                    arrays.append(array)
                by_key[key] = arrays
                name = variables.attrs.get("name")
                if isinstance(name, bytes):
                    name = name.decode()
                if isinstance(name, str):
                    by_name[name] = arrays
    except ModelFileError:
        raise
    except (OSError, ValueError, TypeError) as exc:  # h5py's errors for a damaged file
        raise ModelFileError(f"{source}: {WEIGHTS_MEMBER} cannot be read ({exc})") from exc
    for name, key in _positional_keys(config).items():
        if name not in by_name and key in by_key:  # files from Keras versions that do not name
            by_name[name] = by_key[key]
    return by_name


def _tensor_sources(value) -> list[str]:
    """Layer names of every Keras tensor inside a node's args, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history")
            if not isinstance(history, list) or not history or history[1:] not in ([0, 0], []):
                raise UnsupportedModel(f"a layer reads tensor {history!r} (a shared layer?)")
            return [history[0]]
        return [name for v in value.values() for name in _tensor_sources(v)]
    if isinstance(value, (list, tuple)):
        return [name for v in value for name in _tensor_sources(v)]
    return []


def graph(config: dict) -> tuple[list[dict], dict[str, tuple[str, ...]], str, str]:
    """(layer specs, inputs of each layer, input layer, output layer) of either model kind."""
    kind = config.get("class_name")
    body = config.get("config")
    if kind not in ("Sequential", "Functional", "Model") or not isinstance(body, dict):
        raise UnsupportedModel(f"model class {kind!r}: only Sequential and Functional models run")
    specs = body.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ModelFileError("the config lists no layers")
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            raise ModelFileError("the config holds a malformed layer entry")
        spec.setdefault("name", spec["config"].get("name"))
    if kind == "Sequential":
        if specs[0].get("class_name") != "InputLayer":
            shape = body.get("build_input_shape") or (config.get("build_config") or {}).get(
                "input_shape"
            )
            if not shape:
                raise UnsupportedModel("a Sequential model without a known input shape")
            specs = [
                {"class_name": "InputLayer", "name": "input", "config": {"batch_shape": shape}},
                *specs,
            ]
        inputs = {s["name"]: (p["name"],) for p, s in itertools.pairwise(specs)}
        inputs[specs[0]["name"]] = ()
        return specs, inputs, specs[0]["name"], specs[-1]["name"]

    inputs = {}
    for spec in specs:
        nodes = spec.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise UnsupportedModel(f"layer {spec['name']!r} is called more than once")
        inputs[spec["name"]] = tuple(_tensor_sources(nodes[0]) if nodes else [])
    ends = []
    for key in ("input_layers", "output_layers"):
        value = body.get(key)
        if isinstance(value, list) and value and isinstance(value[0], list):
            if len(value) != 1:
                raise UnsupportedModel(f"the model has {len(value)} {key.split('_')[0]}s, not one")
            value = value[0]
        if not isinstance(value, list) or not value or value[0] not in inputs:
            raise ModelFileError(f"the config's {key} {value!r} names no layer")
        ends.append(value[0])
    return specs, inputs, ends[0], ends[1]
