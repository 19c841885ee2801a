"""The report's two CNNs, and the registry every other part iterates.

Keras is imported inside the builders, so importing this module (for the registry's names and
descriptions) stays cheap for pages that only show stored results.
"""

from __future__ import annotations

from collections.abc import Callable
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


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
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
}
MODEL_NAMES: tuple[str, ...] = tuple(REGISTRY)
_BY_DISPLAY_NAME = {spec.display_name: spec for spec in REGISTRY.values()}
# Okabe & Ito (2008)'s other colours, for names that are not registered.
EXTRA_COLORS = ("#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")


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
