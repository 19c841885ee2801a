"""Turn an uploaded picture or a drawing into what Fashion-MNIST looks like.

Fashion-MNIST items are light on black, 28x28, trimmed to the garment, resized so the longer
side spans all 28 pixels, and centred on the shorter side (checked on the test set: the longer
side is 28 px in over 95% of images, and the bounding box's centre varies by 0.2 px while the
centre of mass varies by 1.4 px, so centring is by bounding box). This module does the same to
user input with numpy and Pillow only: decode safely in memory, grey levels, find the background
from the border, invert a light background, crop to the garment, pad to square, resize with
antialiasing, scale the brightest pixel to 1.

Two deliberate limits: a picture smaller than 8 pixels on a side is refused (there is no garment
to see in it), and an object smaller than 1/8 of the picture's longer side is not magnified to
fill the frame (a dot on the drawing pad stays a dot rather than becoming a white square).
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

SIZE = 28  # the models' input is SIZE x SIZE
MAX_BYTES = 10 << 20  # as .streamlit/config.toml's server.maxUploadSize (MB of 2**20 bytes)
MAX_PIXELS = 40_000_000
MIN_SIDE = 8
WORK_SIDE = 512  # larger pictures are reduced to about this before analysis: the output is 28 px
MIN_CONTRAST = 0.04  # how far (0-1) a pixel must stand out from the background to count
MIN_OBJECT_FRACTION = 1 / 8  # smaller objects are not magnified to fill the frame
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # phones' MPO opens as JPEG
FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP or TIFF"
# Modes Pillow's reduce() box-averages correctly (it would average palette indices and 1-bit
# bits as if they were grey levels, and has no 16-bit path).
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
# EXIF orientation -> the transpose that turns the stored picture upright (as ImageOps does)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
_NOTES_KEY = "fmnist_compare_notes"  # load_image's notes travel in the image's info,
_SOURCE_SIZE_KEY = "fmnist_compare_source_size"  # and (size before JPEG draft, size after)

# Pillow's decompression-bomb guard: warn above this many pixels, refuse above twice as many.
# load_image turns the warning into an error and checks the size itself as well.
if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# warnings.catch_warnings changes process-wide state; one decode at a time keeps it consistent,
# and bounds memory too: however many sessions upload at once, one full-size picture is in
# memory at a time (at most MAX_PIXELS x 4 bytes, twice while its mode is converted).
_DECODE_LOCK = threading.Lock()

INVERTED_NOTE = "Inverted the light background: the models know light garments on black."
SMALL_OBJECT_NOTE = (
    "The garment covers little of the picture, so it was not enlarged to fill the frame."
)


class PreprocessError(ValueError):
    """The input cannot be turned into a model input; the message tells the user what to do."""


@dataclass(frozen=True)
class Prepared:
    """A model-ready image and how it was obtained."""

    pixels: np.ndarray  # float32 (28, 28) in [0, 1], light garment on black; read-only
    inverted: bool  # whether a light background was inverted
    bbox: tuple[int, int, int, int]  # (left, top, right, bottom) of the crop in the source
    notes: tuple[str, ...] = ()  # what was done, in words for the user


# ----------------------------------------------------------------------------------------------
# Decoding


_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def _looks_like_picture(data: bytes) -> bool:
    """Starts like one of the accepted formats (so a failure to open means damage)."""
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _looks_like_text(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype", b"<html", b"<!--", b"{", b"["))


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise PreprocessError(
            f"The picture is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), "
            f"more than the {MAX_PIXELS / 1e6:.0f} megapixels accepted. Scale it down (a few "
            "hundred pixels a side is plenty: the models see 28x28) and upload it again."
        )


def _shrink(image: Image.Image) -> Image.Image:
    """Box-average a large picture down to about WORK_SIDE in Pillow, before numpy sees it.

    Only a few hundred pixels a side are needed for a 28x28 result; reducing first keeps float
    copies of a 40-megapixel picture (over a gigabyte) from ever being made.
    """
    factor = max(image.size) // WORK_SIDE
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode not in _REDUCIBLE or "transparency" in image.info:
        # palette, 1-bit, or a colour-key transparency that averaging would destroy
        alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    return image.reduce(factor)


def _decode(data: bytes) -> tuple[Image.Image, list[str]]:
    """The first frame, fully loaded, reduced if large and turned upright; Pillow's errors
    become ours."""
    notes = []
    try:
        with _DECODE_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            _check_pixels(image.size)
            if getattr(image, "is_animated", False):
                image.seek(0)
                kind = {"GIF": "GIF", "PNG": "PNG", "WEBP": "WebP"}.get(image.format or "")
                if kind:
                    notes.append(f"Used the first frame of the animated {kind}.")
                else:
                    notes.append("The file holds several pictures; used the first.")
            source_size = image.size
            if image.format in ("JPEG", "MPO"):  # decode at 1/2, 1/4 or 1/8 scale: far faster
                image.draft(None, (WORK_SIDE, WORK_SIDE))
            image.load()
            orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation
            upright = _shrink(image)
            if orientation in _UPRIGHT:
                upright = upright.transpose(_UPRIGHT[orientation])
                if orientation in (5, 6, 7, 8):  # a quarter turn swaps the sides
                    source_size = source_size[::-1]
    except PreprocessError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PreprocessError(
            f"The picture has too many pixels ({exc}); more than {MAX_PIXELS / 1e6:.0f} "
            "megapixels are refused. Scale it down and upload it again."
        ) from exc
    except UnidentifiedImageError as exc:
        if _looks_like_picture(data):
            raise PreprocessError(
                "The picture is damaged or incomplete: its start says it is a picture, but it "
                "cannot be read. Save or download it again and upload the new file."
            ) from exc
        raise PreprocessError(
            f"This is not a picture the app can read. Upload a {FORMAT_NAMES} file."
        ) from exc
    except MemoryError as exc:
        raise PreprocessError(
            "The picture is too large to decode on this server. Scale it down (a few hundred "
            "pixels a side is plenty) and upload it again."
        ) from exc
    except Exception as exc:  # Pillow's decoders raise many types for broken files
        raise PreprocessError(
            f"The picture is damaged or incomplete ({type(exc).__name__}: {exc}). Save or "
            "download it again and upload the new file."
        ) from exc
    if orientation in _UPRIGHT:
        notes.append("Turned the picture upright as its EXIF orientation says.")
    upright.info[_SOURCE_SIZE_KEY] = (source_size, upright.size)
    return upright, notes


def _to_grey_or_rgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """Mode "L" or "RGB": transparency composited, 16-bit stretched, CMYK/palette converted."""
    mode = image.mode
    if mode in ("L", "RGB") and "transparency" not in image.info:
        return image, []
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Deep grey levels: stretch the picture's own range onto 8 bits (a 12-bit scan in a
        # 16-bit file would otherwise be almost black).
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        return Image.fromarray(np.round(scaled).astype(np.uint8), "L"), []
    if mode in ("1", "L") and "transparency" not in image.info:
        return image.convert("L"), []
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB"), []  # CMYK, palette, YCbCr, ...
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
    alpha = rgba[..., 3]
    if alpha.min() >= 1:
        return image.convert("RGB"), []
    if alpha.max() <= 0:
        raise PreprocessError(
            "The picture is fully transparent: there is nothing to classify. Upload a picture "
            "with a visible garment."
        )
    grey = rgba[..., :3] @ _LUMA
    # Transparent areas become background: fill them with whichever of white or black
    # contrasts with what is visible, so the garment stands out from them.
    visible = float((grey * alpha).sum() / alpha.sum())
    fill = 1.0 if visible < 0.5 else 0.0
    out = grey * alpha + fill * (1 - alpha)
    note = f"Filled the transparent background with {'white' if fill else 'black'}."
    return Image.fromarray(np.round(out * 255).astype(np.uint8), "L"), [note]


def load_image(data: bytes) -> Image.Image:
    """Decode uploaded bytes in memory into a single upright frame in mode "L" or "RGB".

    Raises PreprocessError (with what to do) for empty input, text such as SVG or HTML,
    unknown formats, damaged or truncated files, pictures over 40 megapixels, and fully
    transparent pictures. What was done (first frame of an animation, EXIF rotation,
    transparency filled) travels in ``image.info`` and ends up in ``Prepared.notes``.
    """
    if not data:
        raise PreprocessError(
            f"The file is empty (0 bytes). Upload a {FORMAT_NAMES} picture of one garment."
        )
    if len(data) > MAX_BYTES:
        raise PreprocessError(
            f"The file is {len(data) / 2**20:.1f} MB, over the {MAX_BYTES >> 20} MB limit. Scale "
            "the picture down or save it as JPEG, and upload it again."
        )
    if _looks_like_text(data):
        raise PreprocessError(
            "This is a text file (SVG, HTML or similar), not a picture. Export or save it as "
            "PNG or JPEG and upload that."
        )
    image, notes = _decode(data)
    source_size = image.info[_SOURCE_SIZE_KEY]
    try:
        image, more = _to_grey_or_rgb(image)
    except PreprocessError:
        raise
    except (ValueError, OSError) as exc:  # a colour mode Pillow cannot convert
        raise PreprocessError(
            f"The picture's colour format ({image.mode}) cannot be converted ({exc}). Save it "
            "as an ordinary RGB or greyscale PNG or JPEG and upload that."
        ) from exc
    image.info.pop("transparency", None)  # dealt with above
    image.info[_NOTES_KEY] = (*notes, *more)
    image.info[_SOURCE_SIZE_KEY] = source_size
    return image


# ----------------------------------------------------------------------------------------------
# Cropping and fitting


def _grey(image: Image.Image) -> np.ndarray:
    """Float32 grey levels in [0, 1]."""
    values = np.asarray(image, dtype=np.float32) / 255
    return values @ _LUMA if values.ndim == 3 else values


def _opened(mask: np.ndarray) -> np.ndarray:
    """The mask without specks narrower than 3 pixels (a 3x3 binary opening)."""

    def spread(values: np.ndarray, combine) -> np.ndarray:  # 3x3 AND (erode) or OR (dilate)
        padded = np.pad(values, 1, constant_values=combine is np.logical_and)
        rows = combine(combine(padded[:-2], padded[1:-1]), padded[2:])  # separable: 3x1,
        return combine(combine(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])  # then 1x3

    return spread(spread(mask, np.logical_and), np.logical_or)


def _fit(
    grey: np.ndarray, background: float | None = None, denoise: bool = True
) -> tuple[np.ndarray, tuple[int, int, int, int], bool, bool] | None:
    """Crop, square, resize and centre a grey picture like a Fashion-MNIST item.

    ``background`` None: estimate it as the median of the outer ring, inverting a light one.
    Returns (pixels, bbox, inverted, small object) or None when nothing stands out.
    """
    height, width = grey.shape
    inverted = False
    if background is None:
        ring_width = max(1, min(height, width) // 50)
        ring = np.concatenate(
            [
                grey[:ring_width].ravel(),
                grey[-ring_width:].ravel(),
                grey[:, :ring_width].ravel(),
                grey[:, -ring_width:].ravel(),
            ]
        )
        background = float(np.median(ring))
        spread = 1.4826 * float(np.median(np.abs(ring - background)))  # robust noise level
        if background > 0.5:  # product photos: dark garment on white
            grey, ring, background, inverted = 1 - grey, 1 - ring, 1 - background, True
        threshold = max(MIN_CONTRAST, 3 * spread)
    else:
        threshold = MIN_CONTRAST
    signal = grey - background  # (h, w), the garment's contrast with the background
    mask = signal > threshold
    if denoise and min(height, width) >= 64:
        cleaned = _opened(mask)
        if cleaned.any():
            mask = cleaned
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    values = np.where(signal > threshold, signal, 0).astype(np.float32)[top:bottom, left:right]

    # Pad to a square around the box's centre; the longer side then spans the whole frame.
    min_side = max(1, round(max(height, width) * MIN_OBJECT_FRACTION))
    side = max(bottom - top, right - left)
    small = side < min_side
    side = max(side, min_side)
    square = np.zeros((side, side), np.float32)
    y0, x0 = (side - (bottom - top)) // 2, (side - (right - left)) // 2
    square[y0 : y0 + bottom - top, x0 : x0 + right - left] = values
    resized = Image.fromarray(square, "F").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    pixels = np.clip(np.asarray(resized, dtype=np.float32), 0, None)  # Lanczos rings below 0
    peak = float(pixels.max())
    if peak <= 0:
        return None
    pixels = np.clip(pixels / peak, 0, 1).astype(np.float32)
    pixels.flags.writeable = False
    return pixels, (int(left), int(top), int(right), int(bottom)), inverted, small


NO_GARMENT = (
    "No garment found: nothing in the picture stands out from its background. Upload a photo "
    "of one garment on a plain background that contrasts with it."
)


def to_model_input(image: Image.Image) -> Prepared:
    """A decoded picture → the models' input: light garment on black, 28x28, filling the frame.

    Raises PreprocessError when the picture is smaller than 8 pixels on a side or nothing in
    it stands out from its background.
    """
    notes = list(image.info.get(_NOTES_KEY, ()))
    source_size, decoded_size = image.info.get(_SOURCE_SIZE_KEY, (image.size, image.size))
    width, height = source_size if decoded_size == image.size else image.size
    image, more = _to_grey_or_rgb(image)
    notes += [note for note in more if note not in notes]
    if min(width, height) < MIN_SIDE:
        raise PreprocessError(
            f"The picture is only {width}x{height} pixels. Upload one at least {MIN_SIDE} "
            f"pixels on each side ({SIZE}x{SIZE} or larger works best)."
        )
    factor = max(image.size) // WORK_SIDE
    if factor > 1:
        image = image.reduce(factor)  # box average: fast, and antialiased
    fitted = _fit(_grey(image))
    if fitted is None:
        raise PreprocessError(NO_GARMENT)
    pixels, (left, top, right, bottom), inverted, small = fitted
    scale_x, scale_y = width / image.size[0], height / image.size[1]  # back to source pixels
    bbox = (
        int(left * scale_x),
        int(top * scale_y),
        min(width, int(np.ceil(right * scale_x))),
        min(height, int(np.ceil(bottom * scale_y))),
    )
    if inverted:
        notes.append(INVERTED_NOTE)
    if small:
        notes.append(SMALL_OBJECT_NOTE)
    return Prepared(pixels, inverted, bbox, tuple(notes))


def prepare_upload(data: bytes) -> Prepared:
    """Uploaded file bytes → the models' input (see load_image and to_model_input)."""
    return to_model_input(load_image(data))


def prepare_drawing(rgba: np.ndarray) -> Prepared | None:
    """The drawing pad's pixels (h, w, 4) uint8 → the models' input, or None if nothing is drawn.

    The pad draws light strokes on black; where it returns strokes as alpha over a transparent
    background, the alpha channel is the drawing, whatever the stroke colour.
    """
    values = np.asarray(rgba)
    if values.ndim != 3 or values.shape[2] not in (3, 4) or min(values.shape[:2]) < 1:
        raise ValueError(f"expected an RGBA array (h, w, 4), got shape {values.shape}")
    values = values.astype(np.float32)
    if np.asarray(rgba).dtype.kind in "ui" or values.max() > 1:
        values = values / 255
    grey = values[..., :3] @ _LUMA
    if values.shape[2] == 4 and values[..., 3].min() < 1:
        fitted = _fit(values[..., 3], background=0.0, denoise=False)
    elif float(np.ptp(grey)) < MIN_CONTRAST:
        return None  # a blank, opaque pad of any colour
    else:
        fitted = _fit(grey, denoise=False)
    if fitted is None:
        return None
    pixels, bbox, inverted, small = fitted
    notes = (INVERTED_NOTE,) if inverted else ()
    return Prepared(pixels, inverted, bbox, notes + ((SMALL_OBJECT_NOTE,) if small else ()))
