"""Where a model looks: Grad-CAM heat maps, without TensorFlow.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last convolution's output by how
much the class score rises with it (the spatial mean of the score's gradient over that channel),
sums the weighted channels and keeps the positive part: the regions that speak *for* the class.

The score is the class's pre-softmax logit (the output Dense layer's ``x @ kernel + bias``), not
its probability: a probability near 1 saturates and its gradient fades to nothing. The map lives
on the last convolution's grid (9x9 for the baseline, 7x7 for the residual model), is enlarged
bilinearly to 28x28 (TensorFlow's half-pixel convention) and divided by its maximum.

``grad_cam`` takes the last convolution's activations from the model's forward pass (an output
of the run's ONNX graph, or the numpy engine) and back-propagates by hand through the few layers
between it and the output (the "head": MaxPooling2D, Flatten, Dense, GlobalAveragePooling2D,
BatchNormalization at inference, Dropout, ReLU). That backward pass is hand-written because the
ONNX graphs exported from TensorFlow carry no gradients (ReluGrad, MaxPoolGrad and friends are
not ONNX operators), and importing TensorFlow in the dashboard costs seconds per process. A few
milliseconds per image. ``grad_cam_keras`` is the reference, the same definition written with
``tf.GradientTape`` on the Keras model; the tests hold one to the other.
"""

from __future__ import annotations

import numpy as np

from core.modelfile import UnsupportedModel
from core.predict import Layer, apply_layer, batch_norm_affine

CHUNK = 64  # images per forward/backward pass: bounds the buffers for large batches

# Layers the hand-written backward pass goes through, between the last convolution and the
# output Dense layer; the activations it can differentiate there, and the output's (as logits).
HEAD_LAYERS = (
    "MaxPooling2D",
    "Flatten",
    "Dense",
    "GlobalAveragePooling2D",
    "BatchNormalization",
    "Dropout",
    "Activation",
    "ReLU",
)
_HIDDEN_ACTIVATIONS = ("relu", "linear")
_OUTPUT_ACTIVATIONS = ("softmax", "linear")

# "inferno" (matplotlib's perceptually uniform map, by Smith and van der Walt) at six points:
# black → purple → red → orange → pale yellow, lightness rising steadily with the value.
INFERNO_ANCHORS = np.array(
    [
        [0, 0, 4],
        [66, 10, 104],
        [147, 38, 103],
        [221, 81, 58],
        [252, 165, 10],
        [252, 255, 164],
    ],
    dtype=np.float64,
)

HEATMAP_LEGEND = (
    "Grad-CAM: the brighter (yellow) a region, the more it raised the model's score for the class "
    "shown; dark regions did not count for it. Computed on the last convolution's grid, so the "
    "map is coarse."
)


# ----------------------------------------------------------------------------------------------
# Grad-CAM in numpy


def grad_cam_path(model) -> tuple[str, list[Layer]]:
    """(the Grad-CAM layer: the last convolution's name, the head after it up to the output),
    for a model of ``core.predict`` (its ``layers`` and ``output_layer``); UnsupportedModel when
    the layers after the last convolution are not a chain the backward pass knows."""
    layers = model.layers
    output = model.output_layer
    if output.kind != "Dense" or output.activation not in _OUTPUT_ACTIVATIONS:
        raise UnsupportedModel(
            f"Grad-CAM needs a Dense output with softmax or linear activation; the output "
            f"{output.name!r} is a {output.kind} ({output.activation})"
        )
    chain = [output]
    layer = output
    while True:
        if len(layer.inputs) != 1:
            raise UnsupportedModel(f"Grad-CAM: layer {layer.name!r} has no single input")
        layer = layers[layer.inputs[0]]
        if layer.kind == "Conv2D":
            return layer.name, chain[::-1]
        if layer.kind == "InputLayer":
            raise UnsupportedModel("Grad-CAM needs a Conv2D layer; the model has none on its path")
        if layer.kind not in HEAD_LAYERS:
            raise UnsupportedModel(
                f"Grad-CAM back-propagates only through {', '.join(HEAD_LAYERS)} after the last "
                f"convolution; layer {layer.name!r} is a {layer.kind}"
            )
        if layer.kind in ("Dense", "Activation") and layer.activation not in _HIDDEN_ACTIVATIONS:
            raise UnsupportedModel(
                f"Grad-CAM: layer {layer.name!r} uses activation {layer.activation!r}; only "
                f"{' and '.join(_HIDDEN_ACTIVATIONS)} are supported after the last convolution"
            )
        chain.append(layer)


def _max_pool_backward(x: np.ndarray, grad: np.ndarray, layer: Layer) -> np.ndarray:
    """The gradient of a max pool's input: each window's gradient goes to its maximum (the first
    one in row-major order when several are equal, as TensorFlow does)."""
    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
    n, oh, ow, c = grad.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (ph, pw), axis=(1, 2))
    windows = windows[:, : oh * sh : sh, : ow * sw : sw]  # (n, oh, ow, c, ph, pw)
    first = windows.reshape(n, oh, ow, c, ph * pw).argmax(axis=-1)  # (n, oh, ow, c)
    rows = np.arange(oh)[None, :, None, None] * sh + first // pw
    cols = np.arange(ow)[None, None, :, None] * sw + first % pw
    out = np.zeros_like(x)
    batch = np.arange(n)[:, None, None, None]
    chan = np.arange(c)[None, None, None, :]
    np.add.at(out, (batch, rows, cols, chan), grad)  # overlapping windows add up
    return out


def _upsample_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) bilinear weights, half-pixel centres (``tf.image.resize``)."""
    centres = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    low = np.floor(centres)
    frac = centres - low
    low_i = np.clip(low.astype(int), 0, size_in - 1)
    high_i = np.clip(low.astype(int) + 1, 0, size_in - 1)
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), low_i), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), high_i), frac)
    return matrix


def _finish(activations: np.ndarray, grads: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Channel weights, weighted sum, ReLU, bilinear enlargement, per-image max normalisation."""
    weights = grads.mean(axis=(1, 2))  # (n, c)
    cam = np.maximum(np.einsum("nhwc,nc->nhw", activations, weights), 0)  # (n, h, w)
    rows = _upsample_matrix(cam.shape[1], size[0])
    cols = _upsample_matrix(cam.shape[2], size[1])
    cam = np.einsum("ih,nhw,jw->nij", rows, cam.astype(np.float64), cols)  # (n, 28, 28)
    peak = cam.max(axis=(1, 2), keepdims=True)
    cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    return np.clip(cam, 0, 1).astype(np.float32)


def _class_indices(class_index, n: int, classes: int) -> np.ndarray:
    index = np.asarray(class_index)
    if index.dtype.kind not in "iu":
        raise ValueError(f"class_index must be integers, got {index.dtype}")
    if index.ndim == 0:
        index = np.full(n, int(index))
    if index.shape != (n,):
        raise ValueError(f"class_index has shape {index.shape}; expected one per image ({n},)")
    if n and (index.min() < 0 or index.max() >= classes):
        raise ValueError(f"class_index must lie in 0..{classes - 1}")
    return index.astype(np.int64)


def _head_backward(layer: Layer, value: np.ndarray, out: np.ndarray, grad: np.ndarray):
    """d score / d ``value`` (the layer's input) from d score / d ``out`` (its output)."""
    if layer.kind == "Dense":
        if layer.activation == "relu":
            grad = grad * (out > 0)
        return grad @ layer.kernel.T
    if layer.kind in ("Activation", "ReLU"):
        return grad * (out > 0) if layer.activation == "relu" else grad
    if layer.kind == "Dropout":  # the identity at inference
        return grad
    if layer.kind == "BatchNormalization":  # x * scale + shift, per channel
        return grad * batch_norm_affine(layer)[0]
    if layer.kind == "GlobalAveragePooling2D":  # each position gets 1/(h*w) of its channel's
        n, h, w, c = value.shape
        return np.broadcast_to(grad.reshape(n, 1, 1, c) / (h * w), value.shape)
    if layer.kind == "Flatten":
        return grad.reshape(value.shape)
    return _max_pool_backward(value, grad, layer)


def grad_cam(model, x: np.ndarray, class_index) -> np.ndarray:
    """Grad-CAM maps (n, 28, 28) float32 in [0, 1] for images x (n, 28, 28[, 1]) in [0, 1].

    ``model``: a run's model from ``core.predict`` (``load_predictor``: ONNX Runtime or numpy).
    ``class_index``: one class for all images, or one per image (n,), e.g. each prediction.
    Each map is divided by its maximum; a map with no positive evidence stays all zero. Raises
    ``UnsupportedModel`` when the layers after the last convolution are not a plain chain of
    ``HEAD_LAYERS`` (relu or linear) ending in a softmax/linear Dense.
    """
    conv_name, chain = grad_cam_path(model)
    x = model.check_input(x)
    n = len(x)
    index = _class_indices(class_index, n, model.output_layer.kernel.shape[1])
    size = model.input_shape[:2]
    if n == 0:
        return np.zeros((0, *size), np.float32)
    maps = []
    for start in range(0, n, CHUNK):
        part = x[start : start + CHUNK]
        activations = model.forward_to(part, conv_name)  # (m, h, w, c), after its activation
        inputs = [activations]  # inputs[i] feeds chain[i]; the head's forward pass in numpy
        for layer in chain[:-1]:
            inputs.append(apply_layer(layer, [inputs[-1]]))
        # d logit[c] / d (input of the output Dense) is the kernel's column c
        grad = chain[-1].kernel[:, index[start : start + CHUNK]].T  # (m, d)
        for i in range(len(chain) - 2, -1, -1):
            grad = _head_backward(chain[i], inputs[i], inputs[i + 1], grad)
        maps.append(_finish(activations, grad, size))
    return np.concatenate(maps)


def grad_cam_keras(keras_model, x: np.ndarray, class_index) -> np.ndarray:
    """The reference Grad-CAM, with ``tf.GradientTape`` on a Keras model (imports TensorFlow).

    Same definition as ``grad_cam``: the last Conv2D layer's output, the gradient of the class's
    pre-softmax score (the last Dense layer's kernel and bias applied without its softmax),
    ``tf.image.resize`` (bilinear) to the input size, divided by each map's maximum. The layers
    after the last convolution must form a chain (as in both of this project's models).
    """
    import keras
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    n = len(x)
    index = _class_indices(class_index, n, keras_model.output_shape[-1])
    convs = [i for i, lay in enumerate(keras_model.layers) if isinstance(lay, keras.layers.Conv2D)]
    if not convs:
        raise UnsupportedModel("Grad-CAM needs a Conv2D layer; the model has none")
    conv = keras_model.layers[convs[-1]]
    rest = keras_model.layers[convs[-1] + 1 :]
    head, last = rest[:-1], rest[-1]
    to_conv = keras.Model(keras_model.inputs[0], conv.output)

    with tf.GradientTape() as tape:
        activations = to_conv(x, training=False)
        tape.watch(activations)
        h = activations
        for layer in head:
            h = layer(h, training=False)
        logits = tf.matmul(h, last.kernel) + last.bias  # before the softmax
        score = tf.gather(logits, index, axis=1, batch_dims=1)  # (n,)
    grads = tape.gradient(score, activations)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # (n, c)
    cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", activations, weights))[..., None]
    cam = tf.image.resize(cam, x.shape[1:3], method="bilinear")[..., 0]
    cam = cam.numpy().astype(np.float64)
    peak = cam.max(axis=(1, 2), keepdims=True)
    cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    return np.clip(cam, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Pictures


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) → RGB uint8 (..., 3) on the inferno colour map."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0, 1)
    position = values * (len(INFERNO_ANCHORS) - 1)
    low = np.minimum(np.floor(position).astype(int), len(INFERNO_ANCHORS) - 2)
    frac = (position - low)[..., None]
    rgb = INFERNO_ANCHORS[low] * (1 - frac) + INFERNO_ANCHORS[low + 1] * frac
    return np.rint(rgb).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, scale: int = 6, alpha: float = 0.45) -> np.ndarray:
    """The grey image (28, 28) uint8 with the heat map (28, 28) in [0, 1] blended on top,
    enlarged ``scale`` times with square pixels: (28 * scale, 28 * scale, 3) uint8."""
    image = np.asarray(image)
    cam = np.asarray(cam)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (h, w), got {image.dtype} {image.shape}")
    if cam.shape != image.shape:
        raise ValueError(f"heat map {cam.shape} and image {image.shape} differ in shape")
    if not 0 <= alpha <= 1 or int(scale) < 1:
        raise ValueError(f"alpha must lie in [0, 1] and scale be at least 1 ({alpha}, {scale})")
    grey = np.repeat(image.astype(np.float64)[..., None], 3, axis=-1)
    blended = (1 - alpha) * grey + alpha * heat_colours(cam).astype(np.float64)
    picture = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(picture, int(scale), axis=0), int(scale), axis=1)
