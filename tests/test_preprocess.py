"""core.preprocess on pictures generated here: modes, formats, broken files, drawings."""

from __future__ import annotations

import io
import struct
import tomllib
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core import preprocess
from core.preprocess import (
    INVERTED_NOTE,
    MAX_BYTES,
    SIZE,
    Prepared,
    PreprocessError,
    load_image,
    prepare_drawing,
    prepare_upload,
    to_model_input,
)

# A T-shirt outline on a 400x300 canvas: 221 wide with its sleeves, 201 tall, asymmetric.
SHIRT = [(150, 50), (250, 50), (310, 100), (280, 130), (260, 115), (260, 250), (140, 250),
         (140, 115), (120, 130), (90, 100)]  # fmt: skip
SHIRT_BOX = (90, 50, 311, 251)  # (left, top, right, bottom), inclusive of the outline


def shirt(mode: str = "L", fg=30, bg=255, size=(400, 300)) -> Image.Image:
    image = Image.new(mode, size, bg)
    ImageDraw.Draw(image).polygon(SHIRT, fill=fg)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def mass_centre(pixels: np.ndarray) -> tuple[float, float]:
    rows, cols = np.mgrid[: pixels.shape[0], : pixels.shape[1]]
    return float((rows * pixels).sum() / pixels.sum()), float((cols * pixels).sum() / pixels.sum())


def box(pixels: np.ndarray, level: float = 0.05) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) rows and columns holding pixels above ``level``, inclusive."""
    rows = np.flatnonzero((pixels > level).any(axis=1))
    cols = np.flatnonzero((pixels > level).any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


@pytest.fixture(scope="module")
def reference() -> Prepared:
    """The light shirt on black: what every other encoding of it should come back as."""
    return prepare_upload(encode(shirt(fg=225, bg=0)))


def assert_like(prepared: Prepared, reference: Prepared, min_corr: float = 0.99) -> None:
    assert prepared.pixels.shape == (SIZE, SIZE)
    assert prepared.pixels.dtype == np.float32
    assert prepared.pixels.min() >= 0 and prepared.pixels.max() == pytest.approx(1)
    assert correlation(prepared.pixels, reference.pixels) > min_corr


# ----------------------------------------------------------------------------------------------
# Colours, modes, formats


def test_dark_shirt_on_white_is_inverted_centred_and_fills_the_frame():
    prepared = prepare_upload(encode(shirt()))
    assert prepared.inverted
    assert INVERTED_NOTE in prepared.notes
    pixels = prepared.pixels
    assert pixels[[0, 0, -1, -1], [0, -1, 0, -1]].max() == 0  # the corners are background
    top, bottom, left, right = box(pixels)
    # wider than tall: spans the frame left to right, centred top to bottom
    assert (left, right) == (0, SIZE - 1)
    assert abs(top - (SIZE - 1 - bottom)) <= 1
    assert bottom - top + 1 == pytest.approx(28 * 201 / 221, abs=1.5)
    assert prepared.bbox == pytest.approx(SHIRT_BOX, abs=2)


def test_light_shirt_on_black_is_not_inverted(reference):
    assert not reference.inverted
    assert reference.notes == ()
    assert_like(prepare_upload(encode(shirt())), reference)


def test_pixels_are_read_only(reference):
    with pytest.raises(ValueError):
        reference.pixels[0, 0] = 1


def test_rgba_with_transparent_background(reference):
    image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))  # transparent black around the shirt
    ImageDraw.Draw(image).polygon(SHIRT, fill=(40, 30, 90, 255))
    prepared = prepare_upload(encode(image))
    assert "Filled the transparent background with white." in prepared.notes
    assert prepared.inverted
    assert_like(prepared, reference)


def test_light_rgba_on_transparent_white_is_filled_with_black(reference):
    image = Image.new("RGBA", (400, 300), (255, 255, 255, 0))
    ImageDraw.Draw(image).polygon(SHIRT, fill=(230, 230, 230, 255))
    prepared = prepare_upload(encode(image))
    assert "Filled the transparent background with black." in prepared.notes
    assert not prepared.inverted
    assert_like(prepared, reference)


def test_palette_png_with_transparency(reference):
    image = Image.new("P", (400, 300), 0)
    image.putpalette([255, 0, 255, 120, 10, 10] + [0] * 762)  # 0: magenta, 1: dark red
    ImageDraw.Draw(image).polygon(SHIRT, fill=1)
    data = encode(image, transparency=0)
    assert Image.open(io.BytesIO(data)).info.get("transparency") == 0
    assert_like(prepare_upload(data), reference)


def test_16_bit_greyscale_png(reference):
    values = np.full((300, 400), 60_000, np.uint16)
    mask = np.asarray(shirt(fg=255, bg=0)) > 0
    values[mask] = 4_000
    data = encode(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    prepared = prepare_upload(data)
    assert prepared.inverted
    assert_like(prepared, reference)


def test_cmyk_jpeg(reference):
    image = shirt("RGB", fg=(20, 40, 120), bg=(250, 250, 245)).convert("CMYK")
    data = encode(image, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    prepared = prepare_upload(data)
    assert prepared.inverted
    assert_like(prepared, reference, 0.97)


def test_one_bit_png(reference):
    assert_like(prepare_upload(encode(shirt("1", fg=1, bg=0))), reference)


def test_animated_gif_uses_the_first_frame(reference):
    first = shirt(fg=225, bg=0)
    second = Image.new("L", (400, 300), 0)
    ImageDraw.Draw(second).rectangle((20, 20, 80, 280), fill=255)  # a thin bar: not a shirt
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    prepared = prepare_upload(data)
    assert any("first frame" in note for note in prepared.notes)
    assert_like(prepared, reference)


def test_exif_orientation_is_honoured():
    upright = shirt("RGB", fg=(30, 30, 30), bg=(255, 255, 255))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    with_tag = prepare_upload(encode(stored, "JPEG", quality=95, exif=exif))
    without_tag = prepare_upload(encode(stored, "JPEG", quality=95))
    reference = prepare_upload(encode(upright, "JPEG", quality=95))
    assert any("EXIF" in note for note in with_tag.notes)
    assert correlation(with_tag.pixels, reference.pixels) > 0.99
    assert correlation(without_tag.pixels, reference.pixels) < 0.9


def test_large_photo_bbox_is_in_source_pixels():
    image = shirt(size=(400, 300)).resize((2400, 1800), Image.Resampling.NEAREST)
    prepared = prepare_upload(encode(image))
    assert prepared.bbox == pytest.approx([6 * v for v in SHIRT_BOX], abs=12)


def test_large_rotated_jpeg_bbox_is_in_upright_source_pixels():
    """JPEGs are decoded at a reduced scale; the box still refers to the upright original."""
    upright = shirt("RGB", fg=(30, 30, 30), bg=(255, 255, 255)).resize((3200, 2400))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    prepared = prepare_upload(encode(stored, "JPEG", quality=90, exif=exif))
    assert prepared.bbox == pytest.approx([8 * v for v in SHIRT_BOX], abs=16)


def test_specks_do_not_define_the_crop(reference):
    image = shirt()
    rng = np.random.default_rng(0)
    for x, y in zip(rng.integers(5, 85, 20), rng.integers(5, 295, 20), strict=True):
        image.putpixel((int(x), int(y)), 0)  # single dark pixels left of the shirt
    prepared = prepare_upload(encode(image))
    assert prepared.bbox == pytest.approx(SHIRT_BOX, abs=2)
    assert_like(prepared, reference)


def test_an_edited_image_is_measured_as_it_is_now():
    image = load_image(encode(shirt()))
    cropped = image.crop((50, 0, 350, 300))  # Pillow copies info: the old size must not apply
    assert to_model_input(cropped).bbox == pytest.approx(
        (SHIRT_BOX[0] - 50, SHIRT_BOX[1], SHIRT_BOX[2] - 50, SHIRT_BOX[3]), abs=2
    )


def test_to_model_input_accepts_an_image_not_from_load_image(reference):
    image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).polygon(SHIRT, fill=(230, 230, 230, 255))
    assert_like(to_model_input(image), reference)


def test_load_image_returns_grey_or_rgb():
    assert load_image(encode(shirt("CMYK", fg=(0, 0, 0, 200), bg=(0, 0, 0, 0)), "JPEG")).mode in (
        "L",
        "RGB",
    )


# ----------------------------------------------------------------------------------------------
# What cannot be used


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of any size, written by hand: a few KB for billions of pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_piece = max(1, (1 << 20) // len(row))
    pieces = []
    for start in range(0, height, rows_per_piece):
        pieces.append(compressor.compress(row * min(rows_per_piece, height - start)))
    pieces.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(pieces))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(np.random.default_rng(0).bytes(2000), "not a picture", id="random"),
        pytest.param(
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
            b'height="10"><rect width="10" height="10"/></svg>',
            "text file.*PNG or JPEG",
            id="svg",
        ),
        pytest.param(b"<!DOCTYPE html><html><body>hi</body></html>", "text file", id="html"),
        pytest.param(b"%PDF-1.4 not a picture", "not a picture", id="pdf"),
        pytest.param(truncated(encode(shirt())), "damaged or incomplete", id="truncated-png"),
        pytest.param(
            truncated(encode(shirt(), "JPEG", quality=90)), "damaged or incomplete", id="trunc-jpeg"
        ),
        pytest.param(encode(shirt())[:40], "damaged or incomplete", id="png-header-only"),
        pytest.param(encode(Image.new("L", (1, 1), 255)), "only 1x1 pixels", id="1x1"),
        pytest.param(encode(Image.new("L", (7, 30), 255)), "at least 8 pixels", id="7x30"),
        pytest.param(encode(Image.new("RGB", (300, 200), (90, 140, 30))), "No garment", id="flat"),
        pytest.param(
            encode(Image.new("RGBA", (50, 50), (9, 9, 9, 0))), "fully transparent", id="clear"
        ),
    ],
)
def test_unusable_input_is_refused_with_a_clear_message(data, message):
    with pytest.raises(PreprocessError, match=message):
        prepare_upload(data)


@pytest.mark.parametrize(
    ("width", "height"),
    [(7_000, 7_000), (20_000, 20_000)],  # Pillow's warning zone (40-80 MP), then its error zone
)
def test_decompression_bomb_is_refused(width, height):
    data = blank_png(width, height)
    assert len(data) < 100_000
    with pytest.raises(PreprocessError, match="megapixels"):
        load_image(data)


def test_core_upload_limit_is_the_servers():
    """The browser refuses files over server.maxUploadSize; the core refuses the same ones
    (AppTest, scripts and other callers do not go through the browser)."""
    config = tomllib.loads((Path(__file__).parent.parent / ".streamlit/config.toml").read_text())
    server_mb = config["server"]["maxUploadSize"]  # Streamlit's MB: 2**20 bytes
    assert 1 <= server_mb <= 50
    assert server_mb * 2**20 == MAX_BYTES


def test_file_over_the_limit_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(preprocess, "_decode", lambda data: pytest.fail("decoded"))
    data = encode(shirt()) + bytes(MAX_BYTES)  # a real PNG start, then 10 MB of padding
    with pytest.raises(PreprocessError, match=r"The file is 10\.\d MB, over the 10 MB limit"):
        prepare_upload(data)


def huge(mode: str) -> bytes:
    """The shirt at 6000x4500 (27 megapixels) in ``mode``, as a PNG of well under 1 MB."""
    big = shirt(size=(400, 300)).resize((6000, 4500), Image.Resampling.NEAREST)  # dark on white
    if mode == "RGBA":  # dark shirt on a transparent background
        image = Image.new("RGBA", big.size, (255, 255, 255, 0))
        image.paste((40, 30, 90, 255), mask=Image.eval(big, lambda v: 255 - v))
        return encode(image)
    if mode == "P":  # palette with a transparent index
        image = big.point(lambda v: 1 if v < 128 else 0).convert("P")
        image.putpalette([255, 0, 255, 120, 10, 10] + [0] * 762)
        return encode(image, transparency=0)
    if mode == "I;16":
        return encode(Image.fromarray(np.asarray(big, np.uint16) * 250))
    return encode(big.convert(mode))


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "RGB"])
def test_huge_picture_is_reduced_before_any_float_copy(mode, reference):
    """27 megapixels of RGBA once took 1 GB of float copies (and 17 s); numpy now only ever
    sees the picture reduced to about 512 pixels a side."""
    data = huge(mode)
    assert len(data) < MAX_BYTES
    tracemalloc.start()  # numpy reports its buffers to tracemalloc (Pillow's are its own)
    try:
        prepared = prepare_upload(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MB of Python/numpy memory at the peak"
    assert_like(prepared, reference, 0.97)
    assert prepared.bbox == pytest.approx([15 * v for v in SHIRT_BOX], abs=30)  # source pixels


def test_a_colour_mode_that_cannot_be_converted_is_named(monkeypatch):
    def refuse(image):
        raise ValueError("conversion from LAB to RGB not supported")

    monkeypatch.setattr(preprocess, "_to_grey_or_rgb", refuse)
    with pytest.raises(PreprocessError, match=r"colour format \(L\) cannot be converted"):
        load_image(encode(shirt()))


def test_preprocess_error_is_a_value_error():
    assert issubclass(PreprocessError, ValueError)


# ----------------------------------------------------------------------------------------------
# The drawing pad


def pad(alpha_strokes: bool = True) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0) if alpha_strokes else (0, 0, 0, 255))
    return image, ImageDraw.Draw(image)


def test_empty_canvas_gives_none():
    assert prepare_drawing(np.zeros((280, 280, 4), np.uint8)) is None
    black = np.zeros((280, 280, 4), np.uint8)
    black[..., 3] = 255
    assert prepare_drawing(black) is None


@pytest.mark.parametrize("alpha_strokes", [True, False], ids=["alpha", "opaque"])
def test_drawn_shirt_matches_the_uploaded_one(alpha_strokes, reference):
    image, draw = pad(alpha_strokes)
    draw.polygon([(x * 0.7, y * 0.7 + 30) for x, y in SHIRT], fill=(255, 255, 255, 255))
    prepared = prepare_drawing(np.asarray(image))
    assert prepared is not None and not prepared.inverted
    assert_like(prepared, reference, 0.97)


def test_a_single_dot_is_a_centred_dot():
    image, draw = pad()
    draw.ellipse((40, 200, 52, 212), fill=(255, 255, 255, 255))  # off-centre, 13 px wide
    prepared = prepare_drawing(np.asarray(image))
    assert prepared is not None
    pixels = prepared.pixels
    assert pixels.max() == pytest.approx(1)
    assert mass_centre(pixels) == pytest.approx((13.5, 13.5), abs=0.6)
    assert 0.05 < (pixels > 0.5).mean() < 0.6  # a blob, neither a speck nor a filled square
    assert prepared.bbox == pytest.approx((40, 200, 53, 213), abs=1)


def test_a_one_pixel_dot_is_not_blown_up_to_a_square():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[10, 270] = 255
    prepared = prepare_drawing(canvas)
    assert prepared is not None
    assert (prepared.pixels > 0.5).sum() <= 4
    assert mass_centre(prepared.pixels) == pytest.approx((13.5, 13.5), abs=1)


def test_a_stroke_touching_the_border():
    image, draw = pad(alpha_strokes=False)
    draw.line([(0, 0), (0, 279), (120, 279)], fill=(255, 255, 255, 255), width=16)
    prepared = prepare_drawing(np.asarray(image))
    assert prepared is not None and not prepared.inverted
    top, bottom, left, right = box(prepared.pixels)
    assert (top, bottom) == (0, SIZE - 1)  # the tall side fills the frame
    assert abs(left - (SIZE - 1 - right)) <= 1  # and is centred
    assert prepared.bbox[:2] == (0, 0)


def test_black_strokes_on_transparent_use_the_alpha_channel(reference):
    image, draw = pad()
    draw.polygon([(x * 0.7, y * 0.7 + 30) for x, y in SHIRT], fill=(0, 0, 0, 255))
    prepared = prepare_drawing(np.asarray(image))
    assert prepared is not None
    assert_like(prepared, reference, 0.97)


def test_drawing_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="RGBA"):
        prepare_drawing(np.zeros((280, 280), np.uint8))


# ----------------------------------------------------------------------------------------------
# Matching the dataset


def test_dataset_images_survive_upscaling_and_preprocessing(dataset):
    """Pins the size and centring choices: an item blown up to 280x280 comes back as itself."""
    correlations = []
    for original in dataset.x_test[:60]:
        big = Image.fromarray(original).resize((280, 280), Image.Resampling.BICUBIC)
        prepared = prepare_upload(encode(big))
        correlations.append(correlation(prepared.pixels, original))
    correlations = np.array(correlations)
    assert np.median(correlations) > 0.95
    assert np.mean(correlations > 0.9) > 0.8
