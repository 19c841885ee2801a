"""One grayscale image as PNG bytes (Pillow; no plotting: the Overview's first screen uses it)."""

from __future__ import annotations

import io

import numpy as np


def image_png(pixels: np.ndarray, scale: int = 4) -> bytes:
    """One grayscale image (uint8, or float in [0, 1]) as PNG bytes, upscaled without smoothing."""
    from PIL import Image  # only this function needs Pillow

    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D grayscale image, got shape {pixels.shape}")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    if np.issubdtype(pixels.dtype, np.floating):
        if not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1):
            raise ValueError("float pixels must lie in [0, 1]")
        pixels = np.rint(pixels * 255)
    elif pixels.dtype != np.uint8 and (pixels.min() < 0 or pixels.max() > 255):
        raise ValueError("integer pixels must lie in 0..255")
    image = Image.fromarray(pixels.astype(np.uint8))
    height, width = pixels.shape
    image = image.resize((width * scale, height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
