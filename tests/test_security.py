"""Security: server settings, no raw HTML, models only from the artifacts folder in Keras' safe
mode, no links followed out of it, Pillow's pixel guard, outside text shown verbatim."""

from __future__ import annotations

import ast
import json
import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from core import artifacts
from core.modelfile import UnsupportedModel
from core.predict import load_predictor
from core.preprocess import MAX_BYTES, MAX_PIXELS
from core.text import literal

ROOT = Path(__file__).resolve().parent.parent
UI_SOURCES = [ROOT / "dashboard.py", *sorted((ROOT / "widgets").glob("*.py"))]
UI_SOURCES += sorted((ROOT / "pages").glob("*.py"))
ALL_SOURCES = UI_SOURCES + sorted((ROOT / "core").glob("*.py"))


def calls(path: Path):
    """Every call in a source file, as (dotted name of what is called, the Call node)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return ast.literal_eval(kw.value) if isinstance(kw.value, ast.Constant) else kw.value
    return None


# ----------------------------------------------------------------------------------------------
# Server settings


def test_server_settings_keep_xsrf_on_and_bound_uploads():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True  # turning CORS off would weaken XSRF
    assert 1 <= server["maxUploadSize"] <= 50  # MB
    assert server["maxUploadSize"] * 2**20 >= MAX_BYTES  # the core is no laxer than the server


def test_pillow_pixel_guard_is_on():
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= MAX_PIXELS


# ----------------------------------------------------------------------------------------------
# No raw HTML, outside text verbatim


# The three audited places that send raw HTML: a gallery page as one grid of inline PNGs and
# the Overview's numbers as one list (every text escaped), and a confusion cell's outline (a
# style rule of a key and two integers).
RAW_HTML = {"images.py": "image_grid", "layout.py": "metric_grid", "charts.py": "show_outline"}


@pytest.mark.parametrize("source", UI_SOURCES, ids=lambda p: p.name)
def test_no_raw_html_is_ever_rendered(source):
    for name, call in calls(source):
        assert keyword(call, "unsafe_allow_html") in (None, False), f"{source.name}: {name}"
    text = source.read_text()
    assert "unsafe_allow_html=True" not in text
    tree = ast.parse(text)
    allowed = RAW_HTML.get(source.name)
    inside = {id(node) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
              if f.name == allowed for node in ast.walk(f)}  # fmt: skip
    for node in ast.walk(tree):
        is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        if is_call and ast.unparse(node.func).endswith((".html", "components.html")):
            assert id(node) in inside, f"{source.name}: raw HTML outside {RAW_HTML}"


def _one_html_block(script: str):
    """``script`` run by AppTest without an exception, and the body of the one raw-HTML block it
    sends."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(script).run()
    assert not at.exception
    (block,) = at.get("html")
    return at, block.proto.body


def test_the_gallery_grid_escapes_every_text():
    script = (
        "from widgets.images import image_grid\n"
        "from core.figures import image_png\n"
        "import numpy as np\n"
        "png = image_png(np.zeros((28, 28), np.float32), scale=2)\n"
        "image_grid([png], ['<img src=x onerror=alert(1)>'], ['\"><script>x</script>'], key='g')\n"
    )
    _, body = _one_html_block(script)
    assert "<script>" not in body and "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "&quot;&gt;&lt;script&gt;" in body


def test_the_metric_grid_escapes_every_text():
    from tests.apptools import metric_tiles

    script = (
        "from widgets.layout import metric_grid\n"
        "metric_grid([('<b>bold</b>', '<script>x</script>', '\"><img src=x onerror=alert(1)>'),\n"
        "             ('Plain', '0.9015', None)], key='m')\n"
    )
    at, body = _one_html_block(script)
    assert "<script>" not in body and "<b>" not in body and "<img src=x" not in body
    assert "&lt;script&gt;" in body and 'title="&quot;&gt;&lt;img src=x' in body
    assert metric_tiles(at) == [("<b>bold</b>", "<script>x</script>"), ("Plain", "0.9015")]


@pytest.mark.parametrize(
    "text",
    [
        "![x](https://example.invalid/t.png).png",
        "<img src=x onerror=alert(1)>.png",
        "_a_ *b* **c** # d [e](f) :red[g] $h$ ~i~",
        "`tick` and ``two``",
        "`",
        "line one\nline two\r\n\tthree",
    ],
)
def test_outside_text_becomes_one_verbatim_code_span(text):
    shown = literal(text)
    fence = shown[: len(shown) - len(shown.lstrip("`"))]
    assert shown.endswith(fence) and "`" * (len(fence) + 1) not in shown
    inner = shown[len(fence) : -len(fence)]
    if inner.startswith(" ") and inner.endswith(" "):
        inner = inner[1:-1]
    assert "\n" not in inner and "\r" not in inner
    assert inner == "".join(c if c.isprintable() else " " for c in text)


def test_long_outside_text_is_cut_at_the_chosen_end():
    assert literal("x" * 1000).endswith("…`") and len(literal("x" * 1000)) == 302
    assert literal("a" * 500 + "END", keep_end=True).endswith("END`")


# ----------------------------------------------------------------------------------------------
# Models: only from a verified run folder, only in safe mode


def test_every_keras_load_uses_safe_mode():
    loads = [
        (path.name, call)
        for path in ALL_SOURCES
        for name, call in calls(path)
        if name.endswith("load_model")
    ]
    assert loads, "Run.load_keras_model loads with keras.saving.load_model"
    for where, call in loads:
        assert keyword(call, "safe_mode") is True, where
    for path in ALL_SOURCES:
        text = path.read_text()
        assert "safe_mode=False" not in text and "enable_unsafe_deserialization" not in text


@pytest.fixture
def root(tmp_path, tiny_root):
    return Path(shutil.copytree(tiny_root, tmp_path / "artifacts"))


def replace_model(run: artifacts.Run, model) -> artifacts.Run:
    """Put ``model`` in the run's folder with a matching checksum, as a tampered run would."""
    path = run.path / artifacts.MODEL_FILE
    path.unlink()
    model.save(path)
    files = {**run.manifest.files, artifacts.MODEL_FILE: artifacts.sha256_file(path)}
    manifest = replace(run.manifest, files=files)
    (run.path / artifacts.MANIFEST).write_text(json.dumps(manifest.to_dict()))
    return artifacts.load_run(run.model, run.run_id, run.path.parent.parent)


def test_a_model_file_carrying_code_is_refused(root):
    """A Lambda layer stores Python bytecode; safe mode refuses to rebuild it, and the numpy
    engine (what the dashboard uses) does not run anything but its few known layers."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Lambda(lambda x: x * 2),  # code, serialised with the model
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    run = replace_model(artifacts.load_run("baseline", root=root), model)
    with pytest.raises(ValueError, match="arbitrary code execution"):
        run.load_keras_model()
    with pytest.raises(UnsupportedModel, match="Lambda"):
        load_predictor(run)


def test_symbolic_links_are_not_followed_out_of_the_artifacts_folder(root, tmp_path):
    good = artifacts.load_run("baseline", root=root)
    outside = Path(
        shutil.copytree(good.path, tmp_path / "elsewhere" / "20990101-000000-seed0-link")
    )
    (root / "baseline" / outside.name).symlink_to(outside, target_is_directory=True)
    listed = {info.run_id: info for info in artifacts.list_runs("baseline", root)}
    assert "symbolic link" in listed[outside.name].problem
    with pytest.raises(artifacts.RunError, match=r"outside|symbolic link"):
        artifacts.load_run("baseline", outside.name, root)
    # A file inside a run pointing elsewhere is refused too, even with the right checksum.
    model = good.path / artifacts.MODEL_FILE
    shutil.move(model, tmp_path / "model.keras")
    model.symlink_to(tmp_path / "model.keras")
    with pytest.raises(artifacts.RunError, match=r"model\.keras is a symbolic link"):
        artifacts.load_run("baseline", good.run_id, root)
    assert artifacts.default_run_id("baseline", root) is None  # nothing damaged is served


def test_a_markdown_table_shows_every_cell_as_it_is():
    """``core.text.markdown_table`` (the Overview's small tables): Markdown, HTML, LaTeX,
    directives and cell breaks in a cell are escaped, and read back they are the text itself."""
    import re

    from core.text import markdown_table
    from tests.apptools import _cells

    hostile = ["a | b", "$x^2$", ":red[red] :material/home:", "<img src=x>", "[l](https://x)",
               "**bold** _it_ `code`", "back\\slash", "T-shirt/top (0.91 ± 0.01)"]  # fmt: skip
    text = markdown_table(["", "cell"], [[str(i), cell] for i, cell in enumerate(hostile)])
    header, rule, *lines = text.splitlines()
    assert _cells(header) == ["", "cell"] and rule == "| --- | --- |"
    assert [_cells(line)[1] for line in lines] == hostile
    for line in lines:  # nothing unescaped but the cell breaks
        body = re.sub(r"\\[!-/:-@\[-`{-~]", "", line.strip().strip("|"))
        assert set(body) & set("*_`[]<>$:|\\") <= {"|"}
    with pytest.raises(ValueError, match="2 cells"):
        markdown_table(["a", "b"], [["only one"]])
