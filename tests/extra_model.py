"""A third model for the tests only (never in the shipped registry): the layers the report's two
models lack (BatchNormalization, Dropout, a stride-2 convolution, GlobalAveragePooling2D), to show
that a registry entry is all a new model needs to work on every page.

Registered for a test process and its children by ``FMNIST_EXTRA_MODELS=tests.extra_model``.
"""

from __future__ import annotations

from core.data import NUM_CLASSES
from core.models import INPUT_SHAPE, ModelSpec

NAME = "probe"


def build_probe():
    """Conv16 → BN → Conv32/2 → Dropout → Conv32 → BN → ReLU → GAP → Dropout → softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)  # 28x28x16
    x = layers.BatchNormalization()(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)  # 14x14x32
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(32, 3, padding="same")(x)  # 14x14x32
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)  # 32
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=NAME)


SPECS = (
    ModelSpec(
        NAME,
        build_probe,
        "Probe CNN",
        "Tests only: BatchNormalization, Dropout, a stride-2 convolution and global average "
        "pooling.",
        14_570,
        "#009E73",
    ),
)
