"""The Predict page in AppTest: drawing (through a fake pad), upload, test images, bad input."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from bench.fakes import CANVAS_MODULE, fake_canvas
from core import artifacts
from core.data import CLASS_NAMES, first_per_class
from core.models import MODEL_NAMES, REGISTRY
from core.predict import load_predictor
from core.preprocess import (
    INVERTED_NOTE,
    MAX_BYTES,
    PreprocessError,
    prepare_drawing,
    prepare_upload,
)
from core.text import literal
from tests.test_preprocess import blank_png, encode, shirt, truncated

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard.py")
PAGE = "pages/predict.py"
PAD = 280


def stroke() -> np.ndarray:
    """A drawing as the pad returns it: RGBA, a thick white vertical bar on transparent."""
    image = np.zeros((PAD, PAD, 4), np.uint8)
    image[40:240, 110:170] = 255  # (h, w, 4)
    return image


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    return at


def shown_probs(at: AppTest) -> dict[str, np.ndarray]:
    """The probability bars of each model, by display name, read back from the figure."""
    (chart,) = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    out = {}
    for trace in spec["data"]:
        x = trace["x"]
        if isinstance(x, dict):  # Plotly writes numpy arrays as base64 typed arrays
            x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])
        assert list(trace["y"]) == list(CLASS_NAMES)
        out[trace["name"]] = np.asarray(x, dtype=float)
    return out


def check_predictions(at: AppTest, models, pixels: np.ndarray) -> None:
    """Both models' bars equal NumpyModel.predict; top 3 and the verdict follow from them."""
    assert not at.exception
    shown = shown_probs(at)
    assert set(shown) == {REGISTRY[name].display_name for name in MODEL_NAMES}
    best = set()
    for name, model in models.items():
        expected = model.predict(pixels[None])[0]  # (10,)
        label = REGISTRY[name].display_name
        np.testing.assert_allclose(shown[label], expected, rtol=1e-6, atol=1e-7)
        order = np.argsort(-expected)
        top3 = "\n".join(
            f"{i}. {CLASS_NAMES[k]}: {expected[k]:.1%}" for i, k in enumerate(order[:3], 1)
        )
        assert top3 in [m.value for m in at.markdown]
        best.add(CLASS_NAMES[order[0]])
    if len(best) == 1:
        assert at.success[0].value == f"Both models say {best.pop()}"
        assert not at.warning
    else:
        assert at.warning[0].value.startswith("They disagree: ")
        assert not at.success


@pytest.fixture(scope="module")
def canvas():
    module = fake_canvas()  # the pad's stand-in: set .image, read .calls
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, CANVAS_MODULE, module)
        yield module


@pytest.fixture(scope="module")
def app(tiny_root, canvas):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_ARTIFACTS", str(tiny_root))
        at = open_page()
        assert not at.exception
        yield at


@pytest.fixture(scope="module")
def models(tiny_root):
    return {name: load_predictor(artifacts.load_run(name, root=tiny_root)) for name in MODEL_NAMES}


@pytest.fixture
def draw(app, canvas):
    app.radio(key="predict_source").set_value("Draw")
    return app


def dot() -> np.ndarray:
    image = np.zeros((PAD, PAD, 4), np.uint8)
    image[200:212, 40:52] = 255  # a small off-centre dot
    return image


def border_stroke() -> np.ndarray:
    image = np.zeros((PAD, PAD, 4), np.uint8)
    image[..., 3] = 255  # opaque black pad
    image[:, :16, :3] = 255  # a stroke along the left edge, top to bottom
    return image


@pytest.mark.parametrize("image", [dot(), border_stroke()], ids=["dot", "border"])
def test_a_dot_or_a_stroke_on_the_border_is_predicted(draw, canvas, models, image):
    canvas.image = image
    draw.run()
    prepared = prepare_drawing(image)
    assert prepared.pixels.shape == (28, 28) and prepared.pixels.max() == 1
    check_predictions(draw, models, prepared.pixels)


@pytest.mark.parametrize("image", [None, np.zeros((PAD, PAD, 4), np.uint8)], ids=["none", "blank"])
def test_empty_pad_asks_to_draw(draw, canvas, image):
    canvas.image = image
    draw.run()
    assert not draw.exception
    assert draw.info[0].value.startswith("Draw a garment on the pad")
    assert not draw.get("plotly_chart")
    assert not draw.success and not draw.warning


def test_pad_draws_white_on_black(draw, canvas):
    canvas.image = None
    draw.run()
    kwargs = canvas.calls[-1]
    assert kwargs["stroke_color"] == "#FFFFFF"
    assert kwargs["background_color"] == "#000000"
    assert 18 <= kwargs["stroke_width"] <= 24
    assert (kwargs["width"], kwargs["height"]) == (PAD, PAD)
    assert kwargs["drawing_mode"] == "freedraw"
    assert kwargs["update_streamlit"] and kwargs["return_image_data"]
    assert kwargs["key"] == "predict_canvas"


def test_a_stroke_is_predicted(draw, canvas, models):
    canvas.image = stroke()
    draw.run()
    check_predictions(draw, models, prepare_drawing(stroke()).pixels)
    image = draw.get("image")[0]  # what the models see (Grad-CAM maps follow)
    assert image.captions == ["What the models see (28×28)"]


def upload_png(dataset, index: int) -> bytes:
    """A real test image as a user might photograph it: upscaled, dark on white."""
    image = Image.fromarray(255 - dataset.x_test[index]).resize(
        (224, 224), Image.Resampling.BICUBIC
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_uploaded_picture_is_prepared_and_predicted(app, dataset, models):
    index = int(np.flatnonzero(dataset.y_test == CLASS_NAMES.index("Trouser"))[0])
    data = upload_png(dataset, index)
    app.radio(key="predict_source").set_value("Upload a picture").run()
    assert app.info[0].value.startswith("Upload a photo")
    app.file_uploader(key="predict_upload").set_value(("trouser.png", data, "image/png")).run()
    prepared = prepare_upload(data)
    check_predictions(app, models, prepared.pixels)
    assert INVERTED_NOTE in [c.value for c in app.caption]


@pytest.mark.parametrize(
    "data", [b"this is not a picture", b"\x89PNG\r\n\x1a\n broken", b"<svg></svg>"]
)
def test_bad_upload_shows_the_reason(app, data):
    with pytest.raises(PreprocessError) as raised:
        prepare_upload(data)
    app.radio(key="predict_source").set_value("Upload a picture").run()
    app.file_uploader(key="predict_upload").set_value(("garment.png", data, "image/png")).run()
    assert not app.exception
    assert app.error[0].value == f"`garment.png`: {raised.value}"
    assert not app.get("plotly_chart")


# ----------------------------------------------------------------------------------------------
# Every kind of bad upload, generated here: a message that names the problem and what to do, no
# traceback, nothing predicted, and the next good upload is served.


def _rgba_transparent() -> bytes:
    image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    image.paste((40, 30, 90, 255), mask=shirt(fg=255, bg=0))
    return encode(image)


def _palette_transparent() -> bytes:
    image = Image.new("P", (400, 300), 0)
    image.putpalette([255, 0, 255, 120, 10, 10] + [0] * 762)
    image.paste(1, mask=shirt(fg=255, bg=0))
    return encode(image, transparency=0)


def _animated_gif() -> bytes:
    second = Image.new("L", (400, 300), 0)
    return encode(shirt(fg=225, bg=0), "GIF", save_all=True, append_images=[second], duration=90)


def _rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    stored = shirt("RGB", fg=(30, 30, 30), bg=(255, 255, 255)).transpose(Image.Transpose.ROTATE_90)
    return encode(stored, "JPEG", quality=95, exif=exif)


def _huge_photo() -> bytes:  # 6000x4500: 27 megapixels, under the pixel and byte limits
    return encode(shirt(size=(400, 300)).resize((6000, 4500), Image.Resampling.NEAREST))


BAD_UPLOADS = {  # name: (bytes, what the message must say)
    "empty.png": (lambda: b"", "The file is empty"),
    "random.png": (lambda: np.random.default_rng(1).bytes(4096), "not a picture the app can read"),
    "truncated.png": (lambda: truncated(encode(shirt())), "damaged or incomplete"),
    "truncated.jpg": (lambda: truncated(encode(shirt(), "JPEG")), "damaged or incomplete"),
    "bomb.png": (lambda: blank_png(20_000, 20_000), "megapixels are refused"),
    "over-the-limit.png": (lambda: encode(shirt()) + bytes(MAX_BYTES), "over the 10 MB limit"),
    "one-pixel.png": (lambda: encode(Image.new("L", (1, 1), 255)), "only 1x1 pixels"),
    "drawing.png": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "SVG"),
    "page.png": (lambda: b"<!DOCTYPE html><html><body>hi</body></html>", "text file"),
    "blank.png": (lambda: encode(Image.new("L", (300, 200), 128)), "No garment found"),
}
UNUSUAL_UPLOADS = {  # name: (bytes, a note the page must show, or None)
    "grey16.png": (lambda: encode(Image.fromarray(np.asarray(shirt(), np.uint16) * 257)), None),
    "cmyk.jpg": (lambda: encode(shirt("RGB", fg=(20, 40, 120)).convert("CMYK"), "JPEG"), None),
    "palette.png": (_palette_transparent, "Filled the transparent background with white."),
    "rgba.png": (_rgba_transparent, "Filled the transparent background with white."),
    "animated.gif": (_animated_gif, "Used the first frame of the animated GIF."),
    "rotated.jpg": (_rotated_jpeg, "Turned the picture upright as its EXIF orientation says."),
    "huge.png": (_huge_photo, INVERTED_NOTE),
}


def upload(app: AppTest, name: str, data: bytes) -> AppTest:
    if app.radio(key="predict_source").value != "Upload a picture":
        app.radio(key="predict_source").set_value("Upload a picture").run()
    return app.file_uploader(key="predict_upload").set_value((name, data, "image/png")).run()


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_each_bad_upload_is_named_and_the_next_good_one_is_served(app, name):
    make, message = BAD_UPLOADS[name]
    data = make()
    upload(app, name, data)
    assert not app.exception, [e.value for e in app.exception]
    (error,) = app.error
    assert error.value.startswith(f"`{name}`: ") and message in error.value, error.value
    assert not app.get("plotly_chart") and not app.success and not app.warning
    upload(app, "shirt.png", encode(shirt()))
    assert not app.exception and not app.error
    assert app.get("plotly_chart")


@pytest.mark.parametrize("name", UNUSUAL_UPLOADS)
def test_unusual_but_usable_uploads_are_predicted_and_explained(app, models, name):
    make, note = UNUSUAL_UPLOADS[name]
    data = make()
    upload(app, name, data)
    check_predictions(app, models, prepare_upload(data).pixels)
    if note:
        assert note in [c.value for c in app.caption]


def test_a_file_name_is_shown_as_typed_never_as_markdown(app):
    name = "![x](https://example.invalid/t.png)_a_ *b* <b>c</b> :red[d] $e$.png"
    upload(app, name, b"not a picture")
    assert not app.exception
    (error,) = app.error
    assert error.value.startswith(f"{literal(name)}: ")
    assert error.value.startswith(f"`{name}`: ")  # one code span: shown verbatim


def test_uploaded_bytes_are_never_written_to_disk(app, tmp_path_factory):
    """The upload is decoded in memory: no file with its name appears anywhere we can look."""
    import tempfile

    name = "upload-9d1e53c7-never-on-disk.png"
    upload(app, name, encode(shirt()))
    assert app.get("plotly_chart")
    places = [ROOT, Path(tempfile.gettempdir())]
    found = [
        str(path)
        for place in places
        for path in place.rglob("*9d1e53c7*")
        if ".git" not in path.parts
    ]
    assert found == []


def test_a_forged_run_id_in_session_state_falls_back_to_the_default(app, tiny_root):
    """Run ids from the session (a widget, a stale tab, a crafted request) are only ever
    chosen from the verified runs listed in the artifacts folder."""
    for forged in ("../../etc", "/etc/passwd", "..", ".tmp-x", "baseline/../../x"):
        app.session_state["run_baseline"] = forged
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        default = artifacts.default_run_id("baseline", tiny_root)
        assert app.session_state["run_baseline"] == default
        assert app.sidebar.selectbox(key="picker_baseline").value == default


def test_pages_never_read_query_parameters():
    """No page or helper takes a path, run or file from the URL: a view's state reaches a page
    only through widgets bound to the URL (``bind="query-params"``), which accept only their own
    options. ``widgets/urlstate`` alone reads the query, to say what was ignored; it never
    writes state."""
    sources = [*sorted((ROOT / "widgets").glob("*.py")), ROOT / "dashboard.py"]
    sources += sorted((ROOT / "pages").glob("*.py"))
    for source in sources:
        text = source.read_text()
        assert "get_query_params" not in text, source
        if source.name == "urlstate.py" and source.parent.name == "widgets":
            assert not re.search(r"session_state\[[^]]+\]\s*=[^=]", text), source
            continue
        assert "query_params" not in text, source


def test_test_images_are_offered(app, dataset, models):
    app.radio(key="predict_source").set_value("Test image").run()
    offered = first_per_class(dataset.y_test, 3)
    picker = app.selectbox(key="predict_example")
    assert picker.options == [f"{CLASS_NAMES[dataset.y_test[i]]} (test image {i})" for i in offered]
    i = int(offered[-1])  # an ankle boot
    picker.set_value(i).run()
    assert f"True class: {CLASS_NAMES[dataset.y_test[i]]}." in [c.value for c in app.caption]
    check_predictions(app, models, (dataset.x_test[i] / 255).astype(np.float32))


def test_empty_artifacts_folder_shows_the_guard(tmp_path, monkeypatch, canvas):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tmp_path))
    calls = len(canvas.calls)
    at = open_page()
    assert not at.exception
    assert "No usable run" in at.info[0].value
    assert at.get("page_link")
    assert len(canvas.calls) == calls  # stopped before the pad


SUBPROCESS_CHECK = textwrap.dedent(
    """
    import sys

    import numpy as np

    from bench.fakes import install_fake_canvas

    image = np.zeros((280, 280, 4), np.uint8)
    image[40:240, 110:170] = 255  # one stroke

    install_fake_canvas(image)

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("dashboard.py", default_timeout=60)
    at.run()
    for page in ("pages/roc.py", "pages/predict.py"):
        at.switch_page(page).run()
        assert not at.exception, at.exception
    assert at.get("plotly_chart"), "no prediction shown"
    print("tensorflow" in sys.modules)
    """
)


def test_pages_do_not_import_tensorflow(tiny_root):
    env = {**os.environ, "FMNIST_ARTIFACTS": str(tiny_root)}
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_CHECK],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
