"""The Predict page in AppTest: drawing (through a fake pad), upload, test images, bad input."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import artifacts
from core.data import CLASS_NAMES, first_per_class
from core.models import MODEL_NAMES, REGISTRY
from core.predict import load_predictor
from core.preprocess import INVERTED_NOTE, PreprocessError, prepare_drawing, prepare_upload

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard.py")
PAGE = "pages/predict.py"
PAD = 280

# The drawing pad is a custom component that cannot be imported outside a running server, and
# AppTest would see only its default anyway: the page imports it on use, and the tests put this
# stand-in in its place. `image` is what the pad returns; `calls` records how the page built it.
FAKE_CANVAS = """
import types
image = None
calls = []
def st_canvas(**kwargs):
    calls.append(kwargs)
    return types.SimpleNamespace(image_data=image)
"""


def fake_canvas_module() -> types.ModuleType:
    module = types.ModuleType("streamlit_drawable_canvas")
    exec(FAKE_CANVAS, module.__dict__)
    return module


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
    module = fake_canvas_module()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "streamlit_drawable_canvas", module)
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
    (image,) = draw.get("image")  # what the models see
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
    assert app.error[0].value == f"garment.png: {raised.value}"
    assert not app.get("plotly_chart")


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
    import types

    import numpy as np

    image = np.zeros((280, 280, 4), np.uint8)
    image[40:240, 110:170] = 255  # one stroke
    fake = types.ModuleType("streamlit_drawable_canvas")
    fake.st_canvas = lambda **kwargs: types.SimpleNamespace(image_data=image)
    sys.modules["streamlit_drawable_canvas"] = fake

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
