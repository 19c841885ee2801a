"""Multiply-accumulates per image, counted from a saved model's layers (no TensorFlow)."""

from __future__ import annotations

from core.predict import NumpyModel


def macs_per_image(model: NumpyModel) -> dict[str, int]:
    """MACs of one forward pass, by layer: conv H_out*W_out*k*k*C_in*C_out, dense in*out.

    Pooling, activations, bias adds and the residual add are not counted (they are not
    multiply-accumulates and cost little next to the products).
    """
    counts = {}
    for layer in model.layers.values():  # the parsed graph, in execution order
        if layer.kind == "Conv2D":
            kh, kw, cin, cout = layer.weights[0].shape
            oh, ow, _ = layer.output_shape
            counts[layer.name] = oh * ow * kh * kw * cin * cout
        elif layer.kind == "Dense":
            fan_in, units = layer.weights[0].shape
            counts[layer.name] = fan_in * units
    return counts


def training_flop_per_image(model: NumpyModel) -> float:
    """FLOP to train on one image: forward + two backward products (x3), 2 FLOP per MAC."""
    return 3 * 2 * sum(macs_per_image(model).values())
