"""The report's two CNNs, and the registry every other part iterates.

Keras is imported inside the builders, so importing this module (for the registry's names and
descriptions) stays cheap for pages that only show stored results.

More models join the registry without editing it: ``FMNIST_EXTRA_MODELS`` names importable
modules (comma-separated, e.g. ``tests.extra_model``), each exposing ``SPECS``, a tuple of
``ModelSpec``. It is read once, when this module is first imported, so it reaches every process
that inherits the environment: the Streamlit server, the trainer the Training page starts
(``python -m core.train``), the tests. Such a module may import ``ModelSpec`` and
``INPUT_SHAPE`` from here (they exist before it is imported), not ``REGISTRY``. A module that
cannot be used leaves the registry at the shipped models and ``REGISTRY_ERROR`` says why: the
dashboard shows it, the trainer refuses to start.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from core.data import IMAGE_SHAPE, NUM_CLASSES

INPUT_SHAPE = (*IMAGE_SHAPE, 1)


def build_baseline():
    """Conv32 → pool → Conv64 → Conv64 → pool → Dense128 → softmax, 'valid' padding."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(32, 3, activation="relu"),  # 26x26x32
            layers.MaxPooling2D(2),  # 13x13x32
            layers.Conv2D(64, 3, activation="relu"),  # 11x11x64
            layers.Conv2D(64, 3, activation="relu"),  # 9x9x64
            layers.MaxPooling2D(2),  # 4x4x64
            layers.Flatten(),  # 1024
            layers.Dense(128, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="baseline",
    )


def build_residual():
    """Two 'same' conv blocks with a 1x1 shortcut from the first pool, then Dense64 → softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE)
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(inputs)  # 28x28x32
    pool1 = layers.MaxPooling2D(2)(x)  # 14x14x32
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(pool1)  # 14x14x64
    main = layers.MaxPooling2D(2)(x)  # 7x7x64
    shortcut = layers.Conv2D(64, 1, padding="same")(pool1)  # 14x14x64, no activation
    shortcut = layers.MaxPooling2D(2)(shortcut)  # 7x7x64
    x = layers.add([main, shortcut])  # 7x7x64
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)  # 7x7x64
    x = layers.Flatten()(x)  # 3136
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="residual")


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the registry: how to build a model and how to present it."""

    name: str
    build: Callable
    display_name: str
    description: str
    params: int  # the report's parameter count; a test checks the builder against it
    color: str  # its one colour in every figure and table (Okabe & Ito, colour-blind safe)


SHIPPED: tuple[ModelSpec, ...] = (
    ModelSpec(
        "baseline",
        build_baseline,
        "Baseline CNN",
        "Three 3x3 convolutions ('valid' padding) with two max-pools, Dense(128).",
        188_234,
        "#0072B2",
    ),
    ModelSpec(
        "residual",
        build_residual,
        "Residual CNN",
        "'Same'-padded convolutions with a 1x1 shortcut added after the second pool, Dense(64).",
        259_274,
        "#E69F00",
    ),
)
DEFAULT_PAIR: tuple[str, str] = ("baseline", "residual")  # what comparison pages open on
EXTRA_MODELS_ENV = "FMNIST_EXTRA_MODELS"
# Okabe & Ito (2008)'s other colours, for names that are not registered.
EXTRA_COLORS = ("#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
# A model's name is a folder under artifacts/, a command-line choice and a widget key.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")  # figures and tables tint with its RGB parts
_RESERVED = {"all"}  # ``--model all`` and the Training page's "all of them"


class RegistryError(ValueError):
    """A model entry, or a module named in ``FMNIST_EXTRA_MODELS``, that cannot be used."""


def check_spec(spec: object, origin: str = "the registry") -> ModelSpec:
    """``spec`` if it is a usable ``ModelSpec``, else a RegistryError saying what is wrong."""
    if not isinstance(spec, ModelSpec):
        raise RegistryError(f"{origin}: expected a core.models.ModelSpec, got {spec!r}")
    where = f"{origin}: model {spec.name!r}"
    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name):
        raise RegistryError(
            f"{where}: a name is 1-32 lower-case letters, digits or '_', starting with a letter"
        )
    if spec.name in _RESERVED:
        raise RegistryError(f"{where}: {spec.name!r} is reserved (it means every model)")
    if not callable(spec.build):
        raise RegistryError(f"{where}: build must be a function that returns a Keras model")
    for field in ("display_name", "description"):
        if not isinstance(getattr(spec, field), str) or not getattr(spec, field).strip():
            raise RegistryError(f"{where}: {field} must be a non-empty string")
    if isinstance(spec.params, bool) or not isinstance(spec.params, int) or spec.params < 1:
        raise RegistryError(f"{where}: params must be a positive integer, got {spec.params!r}")
    if not isinstance(spec.color, str) or not _COLOR.fullmatch(spec.color):
        raise RegistryError(f"{where}: color must be '#RRGGBB', got {spec.color!r}")
    return spec


def build_registry(specs: Iterable[tuple[ModelSpec, str]]) -> dict[str, ModelSpec]:
    """The registry of ``(spec, origin)`` pairs, in order; a RegistryError for a bad entry or for
    a name, display name or colour that two entries share (pages tell models apart by them)."""
    registry: dict[str, ModelSpec] = {}
    origins: dict[str, str] = {}
    for spec, origin in specs:
        check_spec(spec, origin)
        for other in registry.values():
            if spec.name == other.name:
                raise RegistryError(
                    f"{origin}: a model named {spec.name!r} is already registered "
                    f"({origins[other.name]}); each model needs its own name"
                )
            for field in ("display_name", "color"):
                if getattr(spec, field).lower() == getattr(other, field).lower():
                    raise RegistryError(
                        f"{origin}: model {spec.name!r} has the {field} {getattr(spec, field)!r} "
                        f"of {other.name!r} ({origins[other.name]}); each model needs its own"
                    )
        registry[spec.name] = spec
        origins[spec.name] = origin
    return registry


def extra_specs(modules: str) -> list[tuple[ModelSpec, str]]:
    """The ``SPECS`` of each module named in ``modules`` (comma-separated import paths), each
    with its origin; a RegistryError for a module that cannot be imported or has no SPECS."""
    found = []
    for module_name in (part.strip() for part in modules.split(",")):
        if not module_name:
            continue
        origin = f"{EXTRA_MODELS_ENV} module {module_name!r}"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any failure of someone else's module: say which and why
            raise RegistryError(
                f"{origin} cannot be imported ({type(exc).__name__}: {exc}); give importable "
                "module paths, comma-separated, from the project folder"
            ) from exc
        specs = getattr(module, "SPECS", None)
        if not isinstance(specs, tuple) or not specs:
            raise RegistryError(
                f"{origin} must define SPECS, a non-empty tuple of core.models.ModelSpec "
                f"(found {type(specs).__name__})"
            )
        found += [(spec, origin) for spec in specs]
    return found


def registry_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, ModelSpec]:
    """The shipped models, then those of ``$FMNIST_EXTRA_MODELS`` (RegistryError if unusable)."""
    shipped = [(spec, "the shipped registry") for spec in SHIPPED]
    return build_registry([*shipped, *extra_specs(environ.get(EXTRA_MODELS_ENV, ""))])


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``, or a ValueError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}"
        ) from None


def display_name(name: str) -> str:
    """The registered model's name as shown to people ("Baseline CNN")."""
    return get_spec(name).display_name


def model_color(name: str) -> str:
    """The one colour of a model (registry or display name) in every figure and table."""
    spec = REGISTRY.get(name) or _BY_DISPLAY_NAME.get(name)
    if spec is not None:
        return spec.color
    # An unregistered name still gets the same colour on every call (str hash is salted).
    return EXTRA_COLORS[sum(name.encode()) % len(EXTRA_COLORS)]


def model_label(name: str) -> str:
    """The registry's display name ("Residual CNN") of a model name; other names unchanged."""
    return REGISTRY[name].display_name if name in REGISTRY else name


# Read once, at the end, so that an extra module can import this one's names while it loads.
REGISTRY_ERROR: str | None = None  # why $FMNIST_EXTRA_MODELS was not used, if it was not
try:
    REGISTRY: dict[str, ModelSpec] = registry_from_env()
except RegistryError as _exc:
    REGISTRY = build_registry((spec, "the shipped registry") for spec in SHIPPED)
    REGISTRY_ERROR = str(_exc)
MODEL_NAMES: tuple[str, ...] = tuple(REGISTRY)
_BY_DISPLAY_NAME = {spec.display_name: spec for spec in REGISTRY.values()}
