"""Every page renders, on tiny runs and on an empty artifacts folder; results pages stay light."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from core.artifacts import PROJECT_DIR

PAGES = ["overview", "training", "confusion", "roc", "compare", "predict"]
RESULTS_PAGES = [p for p in PAGES if p != "training"]


pytestmark = pytest.mark.usefixtures("fake_canvas")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT_DIR / "dashboard.py"), default_timeout=90)
    at.run()
    return at.switch_page(f"pages/{page}.py").run()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_runs(page, tiny_root, monkeypatch):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tiny_root))
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"
    assert [s.key for s in at.sidebar.selectbox][:2] == ["picker_baseline", "picker_residual"]


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_runs(page, tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tmp_path))
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    if page != "training":
        assert any("No usable run" in i.value for i in at.info)


PROBE = """
import json, sys
from streamlit.testing.v1 import AppTest
from bench.fakes import install_fake_canvas
install_fake_canvas()
at = AppTest.from_file("dashboard.py", default_timeout=90)
at.run()
at.switch_page(sys.argv[1]).run()
print(json.dumps({"errors": [e.value for e in at.exception],
                  "heavy": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}))
"""


@pytest.mark.parametrize("page", RESULTS_PAGES)
def test_results_pages_never_import_tensorflow(page, tiny_root):
    env = {**os.environ, "FMNIST_ARTIFACTS": str(tiny_root)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, f"pages/{page}.py"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"errors": [], "heavy": []}


def test_overview_shows_six_real_test_images_of_each_class(tiny_root, monkeypatch):
    """The sample grid: 60 images of the real test set, six per class in class order, each
    named in its alt text (one HTML block: ``widgets.images.image_grid``)."""
    import re

    from core.data import CLASS_NAMES, first_per_class, load_dataset

    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tiny_root))
    at = open_page("overview")
    assert not at.exception, [e.value for e in at.exception]
    (grid,) = [h.proto.body for h in at.get("html") if "gallery-grid" in h.proto.body]
    alts = re.findall(r'alt="Test image (\d+): ([^"]+)"', grid)
    y_test = load_dataset(allow_download=False, test_only=True).y_test
    assert [int(i) for i, _ in alts] == [int(i) for i in first_per_class(y_test, 6)]
    assert [name for _, name in alts] == [CLASS_NAMES[k] for k in range(10) for _ in range(6)]
    assert grid.count("data:image/png;base64,") == 60
