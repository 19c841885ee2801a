"""The dashboard in a real browser: `streamlit run` on a free port, driven by Playwright + Chromium.

What AppTest cannot reach is tested here: Plotly clicks on the confusion matrices, the drawing
pad (a custom component), file uploads, the live training follow-up, and every page's charts
actually drawn. One server and one browser serve the whole module; each test gets a fresh
browser context (a fresh Streamlit session). The server reads a temporary copy of the shipped
runs (``FMNIST_ARTIFACTS``), so the training test never writes into the repository.

Screenshots: every run writes a full-page PNG of each page to ``test-results/screenshots/``
(git-ignored). To refresh the ones in ``docs/`` (the shipped runs, for the README), run::

    UPDATE_SCREENSHOTS=1 python -m pytest tests/test_browser.py -p no:cacheprovider

Chromium: ``$CHROMIUM_PATH``, else Debian's ``chromium`` on the PATH, else Playwright's own.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from bench.server import CHROMIUM_ARGS, VIEWPORT, Server
from core import artifacts
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES, REGISTRY

pytestmark = pytest.mark.browser

PROJECT = Path(__file__).resolve().parent.parent
DOCS = PROJECT / "docs"
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"
RUN_S = 120  # one Streamlit script run, at most (a loaded 2-core machine, cold caches)
TRAIN_S = 300  # start to published run of the quick training below
NAMES = {model: REGISTRY[model].display_name for model in MODEL_NAMES}
BASELINE, RESIDUAL = MODEL_NAMES[:2]
GALLERY_PER_PAGE = 24  # widgets.gallery.PER_PAGE (not imported: it imports Streamlit)
GALLERY = ".st-key-confusion_gallery_images"  # the Confusion gallery's grid of images

# What "the page's chart is drawn" means, page by page: selectors that must match a visible
# element. Plotly draws heatmaps as an <image>, lines as path.js-line, bars as .trace.bars.
PAGES = {
    "overview": ("/", ['.st-key-overview_layers table',
                       ".st-key-sample_grid figure img"]),  # the seed chart: a lazy tab
    "training": ("/training", [".st-key-train_replay_chart .scatterlayer path.js-line"]),
    "confusion": ("/confusion", ['[class*="st-key-confusion_chart_baseline_"] .heatmaplayer image',
                                 '[class*="st-key-confusion_chart_residual_"] .heatmaplayer image']),
    "roc": ("/roc", [".st-key-roc_full .scatterlayer path.js-line",
                     ".st-key-roc_zoom .scatterlayer path.js-line",
                     ".st-key-roc_pr .scatterlayer path.js-line"]),  # the first of three tabs
    "roc-abstain": ("/roc?roc_section=When+to+abstain",  # a link to the second tab
                    [".st-key-roc_coverage_chart .scatterlayer path.js-line"]),
    "roc-calibration": ("/roc?roc_section=Calibration",
                        [".st-key-roc_reliability_chart .scatterlayer path.js-line"]),
    "compare": ("/compare", [".st-key-compare_f1 .barlayer .trace.bars path",
                             '[class*="st-key-agreement_chart_"] .heatmaplayer image']),
    "predict": ("/predict", [".st-key-predict_probs .barlayer .trace.bars path",
                             'text=/: why /']),
    "map": ("/map", ['[class*="st-key-map_chart_"] .gl-container canvas']),  # WebGL points
    "testset": ("/testset", ["text=/Your test set is empty/"]),  # a first visit: empty
}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The server and the browser


def _copy_runs(model: str, source: Path, root: Path) -> int:
    """Copy the verified runs of ``model`` and its DEFAULT pointer (no locks, no job files)."""
    good = [info for info in artifacts.list_runs(model, source) if info.ok]
    for info in good:
        shutil.copytree(info.path, root / model / info.run_id)
    pointer = source / model / artifacts.DEFAULT_POINTER
    if good and pointer.is_file():
        shutil.copy2(pointer, root / model / artifacts.DEFAULT_POINTER)
    return len(good)


@pytest.fixture(scope="module")
def browser_root(tmp_path_factory, request) -> Path:
    """A private artifacts folder: the shipped runs, or the tiny ones for a model not shipped."""
    root = tmp_path_factory.mktemp("browser_artifacts")
    for model in MODEL_NAMES:
        if not _copy_runs(model, PROJECT / "artifacts", root):
            assert _copy_runs(model, request.getfixturevalue("tiny_root"), root)
    return root


@pytest.fixture(scope="module")
def app_url(browser_root, tmp_path_factory):
    """`streamlit run dashboard.py` on a free port, reading ``browser_root``; its base URL."""
    server = Server("dashboard.py", browser_root, tmp_path_factory.mktemp("streamlit"),
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    try:
        server.wait_healthy(timeout=90)
        yield server.url
    finally:
        from core import jobs

        for model in MODEL_NAMES:  # a trainer the page started has a session of its own
            jobs.stop_training(model, browser_root)
        server.stop()


def _chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or None


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def tab(chromium):
    """A page in a fresh browser context: a new Streamlit session for every test."""
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(RUN_S * 1000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots_dir(pytestconfig) -> Path:
    """test-results/screenshots (pytest-playwright's --output folder, cleared every session)."""
    try:
        output = pytestconfig.getoption("--output")
    except ValueError:  # pytest-playwright not installed
        output = "test-results"
    path = Path(output)
    path = (path if path.is_absolute() else Path(pytestconfig.rootpath) / path) / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------------
# Helpers


def settle(page) -> None:
    """Wait until Streamlit has finished the script run (and any fragment run) in progress."""
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=RUN_S * 1000
    )
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="hidden", timeout=RUN_S * 1000)


def open_page(page, url: str, path: str) -> None:
    page.goto(url + path)
    page.locator('[data-testid="stMain"] h1').first.wait_for()
    settle(page)


def assert_no_exception(page) -> None:
    settle(page)
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    assert boxes.count() == 0, boxes.all_inner_texts()


def save_screenshot(page, name: str, folder: Path) -> Path:
    """The whole page as a 256-colour PNG (small; screenshots are flat UI colours)."""
    from PIL import Image

    # Streamlit scrolls inside stMain, so full_page=True shows one screen: grow the window.
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, 600), 9000)})
    page.wait_for_timeout(1000)  # Plotly re-lays out on resize
    settle(page)
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    page.set_viewport_size(VIEWPORT)
    folder.mkdir(parents=True, exist_ok=True)  # any pytest session's start empties test-results
    path = folder / f"{name}.png"
    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    if UPDATE_SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        shutil.copy2(path, DOCS / path.name)
    return path


def default_run(model: str, root: Path) -> artifacts.Run:
    return artifacts.load_run(model, None, root)


def alert_text(page, kind: str, pattern: str) -> str:
    """The text of the visible st.<kind> box matching ``pattern`` (waits for it)."""
    box = page.locator(f'[data-testid="stAlertContent{kind}"]').filter(has_text=re.compile(pattern))
    box.first.wait_for()
    return box.first.inner_text()


def choose_radio(page, key: str, label: str) -> None:
    page.locator(f".st-key-{key}").get_by_text(label, exact=True).click()


def selectbox_options(page, key: str) -> list[str]:
    """Open a selectbox, read its options, close it again."""
    page.locator(f".st-key-{key} [role='combobox']").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = options.all_inner_texts()
    page.keyboard.press("Escape")
    return texts


# ----------------------------------------------------------------------------------------------
# 1. Every page draws its charts, without an exception; screenshots


@pytest.mark.parametrize("name", list(PAGES))
def test_page_draws_its_charts(tab, app_url, shots_dir, name):
    path, drawn = PAGES[name]
    open_page(tab, app_url, path)
    if name == "predict":  # the pad starts empty: show a test image's predictions instead
        choose_radio(tab, "predict_source", "Test image")
        settle(tab)
    for selector in drawn:
        tab.locator(selector).first.wait_for(state="visible")
    assert_no_exception(tab)
    shot = save_screenshot(tab, name, shots_dir)
    assert shot.stat().st_size > 10_000


def test_overview_draws_a_layer_graph_when_its_tab_is_opened(tab, app_url):
    """The first screen draws the layer tables only; a model's tab draws its Graphviz graph."""
    open_page(tab, app_url, "/")
    assert tab.locator('[data-testid="stGraphVizChart"]').count() == 0
    tab.get_by_role("tab", name="Residual CNN: layer graph").click()
    tab.locator('[data-testid="stGraphVizChart"] svg g.node').first.wait_for(state="visible")
    settle(tab)
    nodes = tab.locator('[data-testid="stGraphVizChart"] svg g.node').count()
    assert nodes >= 8  # a node per layer, the shortcut's convolution and the Add included
    assert_no_exception(tab)


def test_roc_tabs_draw_their_section_when_clicked_and_the_url_follows(tab, app_url):
    """The ROC page's three sections are lazy tabs: a click runs and draws only that one."""
    open_page(tab, app_url, "/roc")
    reliability = tab.locator(".st-key-roc_reliability_chart .scatterlayer path.js-line")
    assert reliability.count() == 0  # not drawn before its tab is opened
    tab.get_by_role("tab", name="Calibration").click()
    reliability.first.wait_for(state="visible")
    settle(tab)
    assert "roc_section=Calibration" in tab.url
    assert tab.locator(".st-key-roc_full").count() == 0  # the curves' tab is not drawn now
    assert_no_exception(tab)


def test_robustness_first_visit_offers_to_compute_and_says_how_long(tab, app_url):
    """Runs without robustness results: the page times a first batch, says how long the whole
    takes and offers to start (computing it is minutes: tests/test_page_robustness.py covers
    the computation, the results and the flip gallery in AppTest)."""
    open_page(tab, app_url, "/robustness")
    button = tab.get_by_role("button", name="Compute robustness now")
    button.wait_for(state="visible")
    settle(tab)
    text = alert_text(tab, "Info", "not computed yet")
    assert "forward passes" in text and "on this machine, timed on a first batch" in text
    assert_no_exception(tab)


def test_deep_link_on_a_fresh_server_goes_through_the_router(tab, browser_root, tmp_path):
    """A fresh server's first request is a deep link: Streamlit's legacy ``pages/`` mode would run
    the page alone (file-name menu, no page config); widgets.nav.route_deep_link must hand it to
    the router. This fails when a Streamlit upgrade changes how that mode ends."""
    server = Server("dashboard.py", browser_root, tmp_path,
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    try:
        server.wait_healthy(timeout=90)
        open_page(tab, server.url, "/roc")
        assert tab.locator('[data-testid="stMain"] h1').first.inner_text().startswith("ROC")
        menu = tab.locator('[data-testid="stSidebarNav"]')
        menu.wait_for()
        titles = menu.inner_text()
        assert "ROC & calibration" in titles and "Map of the test set" in titles, titles
        # The legacy menu names pages by file ("dashboard", "roc", ...); the router by title.
        assert "Overview" in titles and "Confusion matrices" in titles, titles
        assert tab.title() == "Fashion-MNIST: two CNNs compared", tab.title()  # the page config
        assert_no_exception(tab)
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------------
# 2. Confusion matrices: a click on a cell opens its images


def _cell_centre(page, chart, true_class: int, pred_class: int) -> tuple[float, float]:
    """Page coordinates of a matrix cell: the plot area is the 10x10 grid, true class 0 on top."""
    chart.scroll_into_view_if_needed()
    box = chart.locator(".draglayer .xy rect.nsewdrag").bounding_box()
    x = box["x"] + (pred_class + 0.5) * box["width"] / 10
    y = box["y"] + (true_class + 0.5) * box["height"] / 10
    return x, y


def _shown_cell_text(page, chart, x: float, y: float) -> str:
    """The number the heatmap writes in the cell under (x, y)."""
    return chart.evaluate(
        """(chart, [x, y]) => {
            let best = null, distance = Infinity;
            for (const t of chart.querySelectorAll('.heatmaplayer text')) {
                const r = t.getBoundingClientRect();
                const d = (r.x + r.width / 2 - x) ** 2 + (r.y + r.height / 2 - y) ** 2;
                if (d < distance) { distance = d; best = t.textContent; }
            }
            return best;
        }""",
        [x, y],
    )


def _click_cell(page, model: str, true_class: int, pred_class: int) -> tuple[int, list[str]]:
    """Click a cell of ``model``'s matrix; returns the count written in it and the gallery."""
    chart = page.locator(f'[class*="st-key-confusion_chart_{model}_"]')
    chart.locator(".heatmaplayer image").wait_for()
    x, y = _cell_centre(page, chart, true_class, pred_class)
    shown = int(_shown_cell_text(page, chart, x, y).replace(",", ""))
    page.mouse.click(x, y)
    heading = f"True {CLASS_NAMES[true_class]}, predicted {CLASS_NAMES[pred_class]}"
    page.get_by_role("heading", name=heading).wait_for()
    settle(page)
    caption = page.get_by_text(re.compile(r"^The [\d,]+ test images of true "))
    text = caption.inner_text()
    match = re.match(r"The ([\d,]+) test images of true (.+) that (.+) predicts as (.+), the", text)
    assert match, text
    stated = int(match[1].replace(",", ""))
    assert match.groups()[1:] == (CLASS_NAMES[true_class], NAMES[model], CLASS_NAMES[pred_class])
    assert stated == shown, f"gallery says {stated}, the cell shows {shown}"
    images = page.locator(f"{GALLERY} figure img")
    expect_n = min(stated, GALLERY_PER_PAGE)
    deadline = time.monotonic() + 30
    while images.count() != expect_n and time.monotonic() < deadline:
        time.sleep(0.2)
    assert images.count() == expect_n
    if stated:
        page.get_by_text(re.compile(rf"of {stated:,} images")).first.wait_for()
    return stated, page.locator(f"{GALLERY} figcaption").all_inner_texts()


def _largest_errors(run: artifacts.Run, n: int) -> list[tuple[int, int, int]]:
    """(count, true, predicted) of the run's ``n`` largest off-diagonal cells, computed here."""
    y_pred = run.y_prob.argmax(axis=1)
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (run.y_true, y_pred), 1)
    np.fill_diagonal(counts, -1)
    order = np.argsort(counts, axis=None)[::-1][:n]
    return [(int(counts.flat[i]), *divmod(int(i), 10)) for i in order]


def test_confusion_cell_click_opens_its_images(tab, app_url, browser_root):
    open_page(tab, app_url, "/confusion")
    runs = {model: default_run(model, browser_root) for model in (BASELINE, RESIDUAL)}
    # Not the page's opening cell (true Shirt, predicted T-shirt/top), so the click must change it.
    opening = (CLASS_NAMES.index("Shirt"), CLASS_NAMES.index("T-shirt/top"))
    first = next(c for c in _largest_errors(runs[BASELINE], 3) if c[1:] != opening)
    n_first, gallery_first = _click_cell(tab, BASELINE, first[1], first[2])
    assert n_first == first[0] > 0  # the page's count is the count of the run's predictions

    second = next(c for c in _largest_errors(runs[RESIDUAL], 3) if c[1:] != first[1:])
    n_second, gallery_second = _click_cell(tab, RESIDUAL, second[1], second[2])
    assert n_second == second[0] > 0
    assert gallery_second != gallery_first
    assert all(c.startswith(f"true {CLASS_NAMES[second[1]]}") for c in gallery_second)
    assert_no_exception(tab)


def _outlined(page, model: str) -> list[int]:
    """The cells (10 * true + predicted) outlined in ``model``'s matrix: the outline box that
    ``charts.outline_css`` puts over the chart, located in the drawn heatmap's cells. It must
    cover exactly one cell (within Plotly's rounding to whole pixels)."""
    found = page.evaluate(
        """(model) => {
            const chart = document.querySelector(
                `[class*="st-key-confusion_chart_${model}_"] .svg-container`);
            const box = getComputedStyle(chart, "::after");
            if (box.content === "none" || box.content === "normal") return null;
            const frame = chart.getBoundingClientRect();
            const heat = chart.querySelector(".heatmaplayer image").getBoundingClientRect();
            const px = (v) => parseFloat(v);
            return {left: frame.x + px(box.left) - heat.x,
                    top: frame.y + px(box.top) + px(box.marginTop) - heat.y,
                    width: px(box.width), height: px(box.height),
                    cellWidth: heat.width / 10, cellHeight: heat.height / 10};
        }""",
        model,
    )
    if found is None:
        return []
    width, height = found["cellWidth"], found["cellHeight"]
    assert abs(found["width"] - width) < 1.5 and abs(found["height"] - height) < 1.5, found
    true_class, pred_class = round(found["top"] / height), round(found["left"] / width)
    assert abs(found["top"] - true_class * height) < 1.5, found
    assert abs(found["left"] - pred_class * width) < 1.5, found
    return [10 * true_class + pred_class]


def test_swap_moves_the_outline_without_drawing_the_matrices_again(tab, app_url):
    """Swap reruns the cell's part of the page alone: the matrices' drawn elements stay the
    same nodes (never sent again), the outline moves to the swapped cell, the gallery follows."""
    open_page(tab, app_url, "/confusion")
    for model in (BASELINE, RESIDUAL):
        tab.locator(f'[class*="st-key-confusion_chart_{model}_"] .heatmaplayer image').wait_for()
    shirt, tshirt = CLASS_NAMES.index("Shirt"), CLASS_NAMES.index("T-shirt/top")
    assert _outlined(tab, BASELINE) == [10 * shirt + tshirt]  # the opening cell
    assert _outlined(tab, RESIDUAL) == []
    tab.evaluate("""() => document.querySelectorAll('.heatmaplayer image')
                          .forEach((image, i) => { image.dataset.before = String(i); })""")
    tab.locator(".st-key-confusion_swap").get_by_role("button", name="Swap").click()
    heading = f"True {CLASS_NAMES[tshirt]}, predicted {CLASS_NAMES[shirt]}"
    tab.get_by_role("heading", name=heading).wait_for()
    settle(tab)
    assert _outlined(tab, BASELINE) == [10 * tshirt + shirt]
    kept = tab.evaluate("""() => [...document.querySelectorAll('.heatmaplayer image')]
                                 .map(image => image.dataset.before)""")
    assert kept == ["0", "1"], kept  # both matrices, the same drawn images as before the click
    captions = tab.locator(f"{GALLERY} figcaption").all_inner_texts()
    assert captions and all(c.startswith(f"true {CLASS_NAMES[tshirt]}") for c in captions)
    # Narrower: each matrix's square is as wide as its column allows, no longer as tall.
    tab.set_viewport_size({"width": VIEWPORT["width"] - 150, "height": VIEWPORT["height"]})
    tab.wait_for_timeout(1000)  # Plotly redraws on the window's resize
    assert _outlined(tab, BASELINE) == [10 * tshirt + shirt]
    assert_no_exception(tab)


def test_difference_view_draws_its_matrix_alone_and_is_in_the_link(tab, app_url):
    """The matrices' view control: the difference matrix replaces both models' (only the chosen
    view is drawn), the link names it, and its cells open the gallery like any matrix's."""
    open_page(tab, app_url, "/confusion")
    tab.get_by_role("radio", name="Difference").click()
    chart = tab.locator('[class*="st-key-confusion_chart_difference_"]')
    chart.locator(".heatmaplayer image").wait_for()
    settle(tab)
    assert tab.locator(".heatmaplayer image").count() == 1
    tab.wait_for_function("() => location.search.includes('confusion_view=Difference')")
    coat, shirt = CLASS_NAMES.index("Coat"), CLASS_NAMES.index("Shirt")
    x, y = _cell_centre(tab, chart, shirt, coat)
    tab.mouse.click(x, y)
    tab.get_by_role("heading", name=f"True {CLASS_NAMES[shirt]}, predicted {CLASS_NAMES[coat]}")\
        .wait_for()  # fmt: skip
    settle(tab)
    tab.locator(".st-key-confusion_cell_menu").get_by_role("button", name="Choose a cell").click()
    source = tab.locator(".st-key-confusion_source [role='combobox']")
    assert source.input_value() == "Either (difference)"
    assert _outlined(tab, "difference") == [10 * shirt + coat]
    tab.keyboard.press("Escape")
    source.wait_for(state="hidden")
    tab.get_by_role("radio", name="Both models").click()
    tab.locator('[class*="st-key-confusion_chart_residual_"] .heatmaplayer image').wait_for()
    settle(tab)
    assert tab.locator(".heatmaplayer image").count() == 2
    assert_no_exception(tab)


def test_a_cell_chosen_by_name_shows_its_images(tab, app_url):
    """The cell pickers (in the "Choose a cell" menu): a class picked there opens that cell's
    images as a click on the matrix does, the menu stays open for the next pick, and the link
    follows."""
    open_page(tab, app_url, "/confusion")
    tab.locator(".st-key-confusion_cell_menu").get_by_role("button", name="Choose a cell").click()
    true_class = tab.locator(".st-key-confusion_true [role='combobox']")
    true_class.click()
    tab.get_by_role("option", name="Pullover", exact=True).click()
    tab.get_by_role("heading", name="True Pullover, predicted T-shirt/top").wait_for()
    settle(tab)
    caption = tab.get_by_text(re.compile(r"^The \d+ test images of true Pullover that "))
    count = int(caption.inner_text().split()[1])
    assert count > 0
    tiles = tab.locator(".st-key-confusion_gallery_images figure")
    assert tiles.count() == min(count, 24)
    assert true_class.is_visible()  # the menu is still open
    tab.wait_for_function("() => location.search.includes('confusion_true=Pullover')")
    assert_no_exception(tab)


# ----------------------------------------------------------------------------------------------
# 3, 4. Predict: a drawing and an upload reach both models


def _assert_predictions(page) -> str:
    """Both models' answer: the verdict box, the probability chart (one bar trace per model),
    and each model's top 3."""
    names = "|".join(re.escape(NAMES[m]) for m in MODEL_NAMES)
    verdict = page.locator(
        '[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentWarning"]'
    ).filter(has_text=re.compile(rf"Both models say|They disagree: ({names}) says"))
    verdict.first.wait_for()
    bars = page.locator(".st-key-predict_probs .barlayer .trace.bars")
    bars.first.wait_for()
    assert bars.count() == len(MODEL_NAMES)
    for model in MODEL_NAMES:
        page.get_by_text(f"{NAMES[model]}: top 3").wait_for()
    assert_no_exception(page)
    return verdict.first.inner_text()


def test_predict_drawing(tab, app_url):
    open_page(tab, app_url, "/predict")
    tab.get_by_text("Draw a garment on the pad").wait_for()
    # streamlit-drawable-canvas 0.13 renders in the page (shadow DOM, no iframe); Playwright's
    # CSS pierces open shadow roots. Fabric listens on the upper canvas.
    pad = tab.locator("canvas.upper-canvas")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box and box["width"] > 200, box

    def at(fx: float, fy: float) -> tuple[float, float]:
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    # One stroke zigzagging over most of the pad: a filled, roughly square garment (a pullover).
    tab.mouse.move(*at(0.2, 0.15))
    tab.mouse.down()
    for i, fy in enumerate(np.linspace(0.15, 0.85, 12)):
        for fx in (0.2, 0.8) if i % 2 == 0 else (0.8, 0.2):
            tab.mouse.move(*at(fx, fy), steps=8)
    tab.mouse.up()
    verdict = _assert_predictions(tab)
    assert verdict
    tab.get_by_text("What the models see (28×28)").wait_for()


def test_predict_upload(tab, app_url, browser_root):
    from PIL import Image

    from core.data import load_dataset

    data = load_dataset(allow_download=False, test_only=True)
    run = default_run(BASELINE, browser_root)
    trouser = CLASS_NAMES.index("Trouser")
    # The trouser image the baseline is surest of: a photo-like version must still read Trouser.
    candidates = np.flatnonzero(data.y_test == trouser)
    index = int(candidates[np.argmax(run.y_prob[candidates, trouser])])
    dark_on_white = 255 - data.x_test[index]  # (28, 28) uint8, like a photo on paper
    picture = Image.fromarray(dark_on_white).resize((280, 280), Image.Resampling.BICUBIC)
    png = io.BytesIO()
    picture.convert("RGB").save(png, format="PNG")

    open_page(tab, app_url, "/predict")
    choose_radio(tab, "predict_source", "Upload a picture")
    tab.get_by_text("Upload a photo of one garment").wait_for()
    tab.locator('.st-key-predict_upload input[type="file"]').set_input_files(
        files=[{"name": "trouser.png", "mimeType": "image/png", "buffer": png.getvalue()}]
    )
    _assert_predictions(tab)
    tab.get_by_text("Inverted the light background", exact=False).wait_for()
    heading = f"{NAMES[BASELINE]}: top 3"
    ranks = tab.locator('[data-testid="stColumn"]').filter(has_text=heading).last.inner_text()
    lines = [line.strip() for line in ranks.splitlines() if line.strip()]
    assert lines[lines.index(heading) + 1].startswith("Trouser:"), ranks


# ----------------------------------------------------------------------------------------------
# 5. Training: start from the form, follow it live, see the new run in the picker


def _number_input(page, key: str, value: int) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Enter")
    settle(page)


def _live_state(page) -> tuple[int | None, int]:
    """The progress bar's value (None: no bar) and the number of points on the live chart."""
    return page.evaluate(
        """() => {
            const bar = document.querySelector('[data-testid="stProgress"] [role="progressbar"]');
            const plot = document.querySelector('.st-key-train_live_chart .js-plotly-plot');
            const points = plot && plot.data
                ? plot.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0;
            return [bar ? Number(bar.getAttribute('aria-valuenow')) : null, points];
        }"""
    )


def test_training_from_the_page(tab, app_url, browser_root):
    open_page(tab, app_url, "/training")
    choose_radio(tab, "train_model", NAMES[BASELINE])
    _number_input(tab, "train_epochs", 1)
    _number_input(tab, "train_batch", 8)
    tab.locator(".st-key-train_quick").get_by_text("Quick run", exact=False).click()
    settle(tab)
    _number_input(tab, "train_limit", 2048)  # 256 steps: live records at 50, 100, ... 256
    alert_text(tab, "Warning", r"^Not the report's protocol")
    before = {i.run_id for i in artifacts.list_runs(BASELINE, browser_root)}

    tab.locator(".st-key-train_start button").click()
    # ("Started the trainer" flashes by: the page reruns at once to follow the job.)
    seen: list[tuple[int | None, int]] = []
    deadline = time.monotonic() + TRAIN_S
    done = tab.locator('[data-testid="stAlertContentSuccess"]').filter(
        has_text=re.compile(rf"{re.escape(NAMES[BASELINE])}.*done: run \S+ was saved")
    )
    errors: list[str] = []  # gathered, not asserted at once: see the rest before failing
    while not done.count():
        assert time.monotonic() < deadline, f"no end of training in {TRAIN_S} s; saw {seen}"
        errors += tab.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        state = _live_state(tab)
        if state[0] is not None and (not seen or state != seen[-1]):
            seen.append(state)
        time.sleep(0.25)

    print("progress, live-chart points:", seen)
    progress = [value for value, _ in seen]
    assert len(set(progress)) >= 2 and progress == sorted(progress), seen
    assert progress[-1] > progress[0], seen
    points = [n for _, n in seen]
    assert points == sorted(points) and points[-1] > 0, seen  # the curve grows as it trains
    run_id = re.search(r"done: run (\S+) was saved", done.first.inner_text())[1]

    after = {i.run_id: i for i in artifacts.list_runs(BASELINE, browser_root)}
    assert set(after) - before == {run_id}
    assert not after[run_id].manifest.protocol.follows_report
    # The page refreshes the pickers when the job ends; the new run is one of the choices.
    label = run_id[:15].replace("-", " ", 1)
    deadline = time.monotonic() + 30
    while not any(o.startswith(label) for o in selectbox_options(tab, f"picker_{BASELINE}")):
        assert time.monotonic() < deadline, f"{run_id} not in the run picker"
        time.sleep(1)
    assert_no_exception(tab)
    assert not errors, f"error boxes while training: {sorted(set(errors))}"


# ----------------------------------------------------------------------------------------------
# 6. The run picker changes what Overview shows


@pytest.fixture
def other_baseline_run(browser_root, request) -> artifacts.RunInfo:
    """A baseline run besides the default one (the training test makes one; else copy one)."""

    def others():
        default = artifacts.default_run_id(BASELINE, browser_root)
        return [
            i for i in artifacts.list_runs(BASELINE, browser_root) if i.ok and i.run_id != default
        ]

    if not others():
        tiny = request.getfixturevalue("tiny_root")
        info = next(i for i in artifacts.list_runs(BASELINE, tiny) if i.ok)
        shutil.copytree(info.path, browser_root / BASELINE / info.run_id)
        time.sleep(6)  # widgets.picker.list_runs caches listings for 5 s
    return others()[0]


def test_run_picker_changes_overview(tab, app_url, browser_root, other_baseline_run):
    default = default_run(BASELINE, browser_root)
    other = other_baseline_run
    assert other.manifest.test_metrics.accuracy != default.manifest.test_metrics.accuracy
    open_page(tab, app_url, "/")
    accuracy = (
        tab.locator(f".st-key-overview_metrics_{BASELINE} .metric-grid > div")
        .filter(has=tab.locator("dt", has_text="Test accuracy"))
        .locator("dd")
    )
    assert accuracy.inner_text() == f"{default.manifest.test_metrics.accuracy:.4f}"

    label = other.run_id[:15].replace("-", " ", 1)
    tab.locator(f".st-key-picker_{BASELINE} [role='combobox']").click()
    tab.get_by_role("option").filter(has_text=label).click()
    want = f"{other.manifest.test_metrics.accuracy:.4f}"
    accuracy.filter(has_text=want).wait_for()
    settle(tab)
    assert accuracy.inner_text() == want
    assert_no_exception(tab)


# ----------------------------------------------------------------------------------------------
# 7. Why a prediction: Grad-CAM in the gallery, one image inspected; the map; the HTML export


def _open_inspect_list(page):
    """Open the confusion gallery's "Inspect one image" list (in its popover); its first
    option."""
    menu = page.locator(".st-key-confusion_gallery_inspect_menu").get_by_role(
        "button", name=re.compile(r"^Inspect")
    )
    combo = page.locator(".st-key-confusion_gallery_inspect [role='combobox']")
    menu.scroll_into_view_if_needed()
    option = page.get_by_role("option").first
    for _ in range(3):  # a click while images still load can land before the list opens
        settle(page)
        if not combo.is_visible():
            menu.click()
        combo.click()
        with contextlib.suppress(Exception):
            option.wait_for(timeout=15_000)
            break
    return option


def test_gallery_grad_cam_and_inspecting_an_image(tab, app_url):
    open_page(tab, app_url, "/confusion")
    images = tab.locator(f"{GALLERY} figure img")
    images.first.wait_for()
    plain = images.first.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
    tab.locator(".st-key-confusion_gallery_cams").get_by_text("Show Grad-CAM").click()
    tab.get_by_text(re.compile(r"^Each strip: the image, then Grad-CAM")).wait_for()
    settle(tab)
    strip = images.first.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
    assert plain == [28, 28 * 6]  # sent as it is, shown six times larger
    assert strip == [3 * 28 * 4 + 2 * 4] * 2  # image + two maps, shown at their own size
    option = _open_inspect_list(tab)
    index = int(option.inner_text().removeprefix("test image "))
    option.click()
    tab.get_by_text(f"Test image {index}", exact=False).first.wait_for()
    settle(tab)
    for model in MODEL_NAMES:  # each model's map for its prediction (and the true class)
        tab.get_by_text(re.compile(rf"^{re.escape(NAMES[model])}: ")).first.wait_for()
    assert tab.get_by_text(re.compile(r"^why ")).count() >= len(MODEL_NAMES)
    assert_no_exception(tab)


# Where a point of the map is on the screen. The map is WebGL (one canvas, no element per point),
# so its points are placed with Plotly's own axes: one with no other test image within 12 px.
MAP_POINT_JS = """(chart) => {
    const gd = chart.querySelector('.js-plotly-plot');
    const {xaxis: xa, yaxis: ya} = gd._fullLayout;
    const cell = 12, grid = new Map(), points = [];
    const at = (x, y) => `${Math.floor(x / cell)},${Math.floor(y / cell)}`;
    for (const trace of gd._fullData) {
        for (let j = 0; j < trace._length; j++) {
            const p = {x: xa._offset + xa.l2p(trace.x[j]), y: ya._offset + ya.l2p(trace.y[j]),
                       index: Number(trace.customdata[j])};
            if (!grid.has(at(p.x, p.y))) grid.set(at(p.x, p.y), []);
            grid.get(at(p.x, p.y)).push(p);
            points.push(p);
        }
    }
    const near = (p) => [-1, 0, 1].flatMap((dx) => [-1, 0, 1].flatMap((dy) =>
        grid.get(at(p.x + dx * cell, p.y + dy * cell)) || []));
    const alone = points.find((p) => near(p).every(
        (q) => q.index === p.index || Math.hypot(q.x - p.x, q.y - p.y) >= cell));
    const box = gd.getBoundingClientRect();
    return {x: box.left + alone.x, y: box.top + alone.y, index: alone.index, n: points.length};
}"""


def test_map_click_on_a_point_inspects_it(tab, app_url):
    open_page(tab, app_url, "/map")
    chart = tab.locator('[class*="st-key-map_chart_"]')
    chart.locator(".gl-container canvas").first.wait_for()
    chart.scroll_into_view_if_needed()
    point = chart.evaluate(MAP_POINT_JS)
    assert point["n"] >= 10_000  # every test image (and a ring on each mistake)
    tab.mouse.move(point["x"], point["y"])  # its hover text names the image
    named = re.compile(rf"image #{point['index']}(?!\d)")
    chart.locator(".hoverlayer .hovertext").filter(has_text=named).wait_for()
    tab.mouse.click(point["x"], point["y"])
    heading = tab.get_by_role("heading", name=re.compile(rf"^Test image {point['index']}: "))
    heading.wait_for()
    settle(tab)
    tab.get_by_text(re.compile(r"^why ")).first.wait_for()
    assert_no_exception(tab)


def test_comparison_downloads_as_one_self_contained_html(tab, app_url):
    open_page(tab, app_url, "/compare")
    with tab.expect_download() as download:
        tab.locator(".st-key-compare_export_download button").first.click()
    html = Path(download.value.path()).read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.count("plotly.js") >= 1 and '<script src="http' not in html
    for section in ("Test metrics", "Confusion", "Calibration", "Seeds"):
        assert section in html, section


def test_nearest_training_images_of_an_inspected_image(tab, app_url, browser_root):
    """The features of the 60,000 training images take the numpy engine minutes here, so they
    are put in the runs' caches first, computed by Keras (the same layer; checked against the
    engine in tests/test_neighbours.py)."""
    import keras

    from core import neighbours
    from core.data import load_dataset

    data = load_dataset(allow_download=False)
    for model in MODEL_NAMES:
        run = default_run(model, browser_root)
        trained = run.load_keras_model()
        features = keras.Model(trained.inputs, trained.layers[-2].output).predict(
            data.x_train[..., None] / 255, batch_size=1000, verbose=0
        )  # (60000, d): what feeds the output layer
        written = neighbours.save_train_features(run, data.x_train, features.astype(np.float32))
        assert written
    open_page(tab, app_url, "/confusion")
    option = _open_inspect_list(tab)
    option.click()
    toggle = tab.locator(".st-key-confusion_gallery_detail_neighbours")
    toggle.get_by_text("Show the nearest training images").click()
    shown = tab.get_by_text(re.compile(r"^\d of 8 nearest training images are labelled "))
    shown.nth(len(MODEL_NAMES) - 1).wait_for()
    assert shown.count() == len(MODEL_NAMES)
    assert_no_exception(tab)


# ----------------------------------------------------------------------------------------------
# Every view is a link: the URL follows the clicks; a fresh browser opens the same view


def _subheaders(page) -> list[str]:
    return page.locator('[data-testid="stMain"] :is(h2, h3)').all_inner_texts()


def test_a_view_is_its_link(tab, chromium, app_url):
    query = (
        "?confusion_true=Coat&confusion_pred=Shirt&confusion_gallery_order=most+confident+first"
        "&confusion_gallery_page=99&zoom=2"
    )
    open_page(tab, app_url, "/confusion" + query)
    assert "True Coat, predicted Shirt" in _subheaders(tab)
    note = tab.get_by_text("Part of this link was ignored").inner_text()
    assert "confusion_gallery_page=99" in note and "zoom" in note and "order" not in note
    tab.get_by_role("button", name="Swap true ↔ predicted").click()
    settle(tab)
    tab.wait_for_function("() => location.search.includes('confusion_true=Shirt')")
    link = tab.url
    assert "confusion_pred=Coat" in link and "confusion_gallery_order=" in link
    assert_no_exception(tab)

    fresh = chromium.new_context(viewport=VIEWPORT)  # another browser: nothing shared but the link
    try:
        other = fresh.new_page()
        other.set_default_timeout(RUN_S * 1000)
        open_page(other, link, "")
        assert "True Shirt, predicted Coat" in _subheaders(other)
        order = other.locator(".st-key-confusion_gallery_order [role='combobox']")
        assert order.input_value() == "most confident first"
        assert other.get_by_text("Part of this link was ignored").count() == 0  # zoom: dropped
        open_page(other, app_url, "/map?map_picked=17")
        assert any(h.startswith("Test image 17:") for h in _subheaders(other))
        assert_no_exception(other)
    finally:
        fresh.close()
