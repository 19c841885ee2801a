"""The dashboard in a real browser (Chromium via Playwright) against bare Streamlit apps.

- Cold start: from ``streamlit run`` to the first page fully drawn (its charts present and the
  script finished), against the same for ``bench/apps/hello.py`` (one line); fresh servers,
  alternated. The first start on a fresh copy of the runs computes the results each run keeps
  (``core.runcache``) and is reported apart; the rounds after it read them.
- Page switches: a click on a sidebar link to the new page fully drawn, on the first visit
  and on the next ones (caches filled; the median of three rounds of every page).
- Clicks: the Confusion page's Swap button to the updated page, against
  ``bench/apps/button.py``'s button to its updated counter; alternated click by click, before
  and after the Predict page has loaded the models into the server. Beside each, the browser
  main thread's busy time per click (Chromium's TaskDuration).
- Server memory: peak resident set (VmHWM) of the server process and any children after every
  page was visited; and whether TensorFlow was ever loaded into it.
- Script time: the same pages and clicks run by Streamlit's AppTest, without a browser
  (bench/page_worker.py): the server's share of the times above.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import copy_shipped_runs, median, run_json
from bench.server import CHROMIUM_ARGS, VIEWPORT, Server

TIMEOUT_MS = 120_000
NEXT_VISITS = 3  # rounds of next visits of every page
HELLO = "bench/apps/hello.py"
BUTTON = "bench/apps/button.py"
# What "fully drawn" means, page by page (as tests/test_browser.py checks it): the title, then
# selectors that must match a visible element.
PAGES = {
    "overview": ("/", "Baseline vs residual CNN", [
        '.st-key-overview_layers table', ".st-key-sample_grid figure img"]),
    "training": ("/training", "Training", [
        ".st-key-train_replay_chart .scatterlayer path.js-line"]),
    "confusion": ("/confusion", "Confusion matrices", [
        '[class*="st-key-confusion_chart_baseline_"] .heatmaplayer image',
        '[class*="st-key-confusion_chart_residual_"] .heatmaplayer image']),
    "roc": ("/roc", "ROC curves", [
        ".st-key-roc_full .scatterlayer path.js-line", ".st-key-roc_zoom .scatterlayer path.js-line"]),
    "compare": ("/compare", "Compare the two models", [
        ".st-key-compare_f1 .barlayer .trace.bars path",
        '[class*="st-key-agreement_chart_"] .heatmaplayer image']),
    "predict": ("/predict", "Predict", ["canvas.upper-canvas"]),
    "map": ("/map", "Map of the test set", ['[class*="st-key-map_chart_"] .gl-container canvas']),
}  # fmt: skip
RESULTS_PAGES = ("overview", "confusion", "roc", "compare", "map")  # stored results only, no TF
# Seconds to import Streamlit, then what the Overview page imports on top (fresh process), and
# which heavy libraries that loads beyond Streamlit's own.
IMPORTS = """import json, sys, time
start = time.perf_counter()
import streamlit
mid = time.perf_counter()
before = set(sys.modules)  # Streamlit itself imports Plotly's graph objects
import widgets.analysis, widgets.cached, widgets.images, widgets.layout, widgets.picker
import core.published, core.runcache, core.seeds
heavy = [m for m in ("pandas", "pyarrow", "plotly.graph_objects", "scipy", "sklearn",
                     "onnxruntime") if m in sys.modules and m not in before]
print(json.dumps({"streamlit": mid - start, "pages": time.perf_counter() - mid, "heavy": heavy}))"""


# "Drawn" is checked on every animation frame, all conditions at once, in the page itself:
# Playwright's own waits poll at growing intervals (up to 0.5 s), which would add up to half a
# second to a figure that is otherwise measured to the frame.
_DRAWN_JS = """([title, selectors]) => {
    const visible = (el) => {
        if (!el || !el.isConnected) return false;
        const box = el.getBoundingClientRect();
        return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
    };
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
    if (visible(document.querySelector('[data-testid="stStatusWidget"]'))) return false;
    if (title !== null && ![...document.querySelectorAll('[data-testid="stMain"] h1')]
            .some((h) => h.innerText.includes(title))) return false;
    // Custom components may draw inside open shadow roots (Playwright's selectors pierce them).
    const all = (s, root = document) => {
        const found = [...root.querySelectorAll(s)];
        for (const el of root.querySelectorAll("*")) if (el.shadowRoot) found.push(...all(s, el.shadowRoot));
        return found;
    };
    return selectors.every((s) => [...document.querySelectorAll(s)].some(visible)
                                  || all(s).some(visible));
}"""


def _wait_drawn(page, title: str | None = None, selectors: tuple[str, ...] = ()) -> None:
    """Wait until the script has finished, the status widget is gone, a title containing
    ``title`` (if any) is shown and every selector matches a visible element."""
    page.wait_for_function(_DRAWN_JS, arg=[title, list(selectors)], polling="raf",
                           timeout=TIMEOUT_MS)  # fmt: skip


def _settle(page) -> None:
    _wait_drawn(page)


def _drawn(page, name: str) -> None:
    """Wait until page ``name`` is fully drawn: its title, its charts, the script finished."""
    _, title, selectors = PAGES[name]
    _wait_drawn(page, title, tuple(selectors))


def _new_tab(browser):
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    return context, context.new_page()


def _cold_start(browser, script: str, root: Path, logs: Path, ready) -> tuple[float, Server]:
    """Seconds from launching ``streamlit run script`` to ``ready(page)`` returning."""
    context, page = _new_tab(browser)
    start = time.perf_counter()
    server = Server(script, root, logs)
    try:
        server.wait_healthy()
        page.goto(server.url)
        ready(page)
        return time.perf_counter() - start, server
    except BaseException:
        server.stop()
        raise
    finally:
        context.close()


def _hello_ready(page) -> None:
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stMain"] p')]
            .some((p) => p.innerText.trim() === "Hello")""", polling="raf", timeout=TIMEOUT_MS,
    )  # fmt: skip
    _settle(page)


def _switch(page, name: str) -> float:
    """Seconds from a click on the sidebar link to page ``name`` fully drawn."""
    path = PAGES[name][0]
    link = page.locator(f'[data-testid="stSidebarNav"] a[href$="{path}"]').first
    start = time.perf_counter()
    link.click()
    _drawn(page, name)
    return time.perf_counter() - start


def _swap_click(page) -> float:
    """Seconds from a click on the Confusion page's Swap button to the swapped page."""
    heading = page.locator('[data-testid="stMain"] h3').filter(has_text="True ").first
    before = heading.inner_text().strip()  # "True A, predicted B"
    true_class, pred_class = before.removeprefix("True ").split(", predicted ")
    after = f"True {pred_class}, predicted {true_class}"
    button = page.locator(".st-key-confusion_swap").get_by_role("button", name="Swap")
    start = time.perf_counter()
    button.click()
    page.wait_for_function(
        """(after) => [...document.querySelectorAll('[data-testid="stMain"] h3')]
            .some((h) => h.innerText.includes(after))""", arg=after, polling="raf",
        timeout=TIMEOUT_MS,
    )  # fmt: skip
    _wait_drawn(page, None, tuple(PAGES["confusion"][2]))
    return time.perf_counter() - start


def _bare_click(page) -> float:
    heading = page.locator('[data-testid="stMain"] h3').filter(has_text="Clicked").first
    count = int(heading.inner_text().split()[1])
    start = time.perf_counter()
    page.locator(".st-key-bare_button").get_by_role("button", name="Click").click()
    page.wait_for_function(
        """(text) => [...document.querySelectorAll('[data-testid="stMain"] h3')]
            .some((h) => h.innerText.trim() === text)""", arg=f"Clicked {count + 1} times",
        polling="raf", timeout=TIMEOUT_MS,
    )  # fmt: skip
    _settle(page)
    return time.perf_counter() - start


def _main_thread_ms(cdp) -> float:
    """Milliseconds the page's main thread has spent on tasks so far (Chromium's
    ``Performance.getMetrics`` TaskDuration): script, style, layout and paint together."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return 1000 * next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def _clicks(dash_page, bare_page, count: int) -> dict:
    """Seconds of each Swap and bare click, alternated; and the main thread's milliseconds per
    click of each page (where a click's time goes: the browser's work or the wait for it)."""
    dash, bare, busy = [], [], {"dashboard": 0.0, "bare": 0.0}
    _swap_click(dash_page), _bare_click(bare_page)  # warm-up
    sessions = {}
    for name, page in (("dashboard", dash_page), ("bare", bare_page)):
        sessions[name] = page.context.new_cdp_session(page)
        sessions[name].send("Performance.enable")
    for _ in range(count):
        for name, page, click, times in (("dashboard", dash_page, _swap_click, dash),
                                         ("bare", bare_page, _bare_click, bare)):  # fmt: skip
            before = _main_thread_ms(sessions[name])
            times.append(click(page))
            busy[name] += _main_thread_ms(sessions[name]) - before
    for session in sessions.values():
        session.detach()
    return {"dashboard": dash, "bare": bare,
            "main_thread_ms": {k: v / count for k, v in busy.items()}}  # fmt: skip


def run(rounds: int, clicks: int, log=print) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {"cold": {"hello": [], "dashboard": []}, "switch_first": {}, "switch_next": {}}
    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp, sync_playwright() as p:
        tmp = Path(tmp)
        root = copy_shipped_runs(tmp / "artifacts")
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # The first start on this copy computes and keeps each run's results; timed apart.
            seconds, first = _cold_start(
                browser, "dashboard.py", root, tmp, lambda page: _drawn(page, "overview")
            )
            first.stop()
            out["cold"]["first_dashboard"] = seconds
            log(f"  first start (computes the kept results): dashboard {seconds:.2f} s")
            # Cold starts, alternated; the last dashboard server stays up for the session below.
            server = None
            for r in range(rounds):
                seconds, hello = _cold_start(browser, HELLO, root, tmp, _hello_ready)
                hello.stop()
                out["cold"]["hello"].append(seconds)
                if server is not None:
                    server.stop()
                seconds, server = _cold_start(
                    browser, "dashboard.py", root, tmp, lambda page: _drawn(page, "overview")
                )
                out["cold"]["dashboard"].append(seconds)
                log(f"  cold start round {r + 1}: hello {out['cold']['hello'][-1]:.2f} s, "
                    f"dashboard {seconds:.2f} s")  # fmt: skip
            bare_server = Server(BUTTON, root, tmp)
            try:
                bare_server.wait_healthy()
                out.update(_session(browser, server, bare_server, clicks, log))
            finally:
                bare_server.stop()
                server.stop()
        finally:
            browser.close()
    # The same pages without a browser: how much of the time above is the server's script.
    out["script"] = run_json(["-m", "bench.page_worker", str(max(3, clicks))])
    out["imports"] = [run_json(["-c", IMPORTS]) for _ in range(3)]
    return out


def _session(browser, server: Server, bare_server: Server, clicks: int, log) -> dict:
    out: dict = {"switch_first": {}, "switch_next": {}}
    context, page = _new_tab(browser)
    bare_context, bare_page = _new_tab(browser)
    try:
        page.goto(server.url)
        _drawn(page, "overview")
        bare_page.goto(bare_server.url)
        bare_page.get_by_text("Clicked 0 times", exact=True).wait_for()
        _settle(bare_page)
        for name in ("training", "confusion", "roc", "compare", "map"):
            out["switch_first"][name] = _switch(page, name)
        _switch(page, "confusion")
        out["clicks_no_model"] = _clicks(page, bare_page, clicks)
        log(f"  clicks, no model loaded: dashboard {median(out['clicks_no_model']['dashboard']):.3f}"
            f" s, bare {median(out['clicks_no_model']['bare']):.3f} s")  # fmt: skip
        out["switch_first"]["predict"] = _switch(page, "predict")
        # Next visits, round after round: the median of each page's (a single visit of a page
        # with a WebGL chart varies by 2x, with the software renderer's context creation).
        visits: dict[str, list[float]] = {}
        for _ in range(NEXT_VISITS):
            for name in ("overview", "training", "confusion", "roc", "compare", "predict", "map"):
                visits.setdefault(name, []).append(_switch(page, name))
        out["switch_next"] = {name: median(times) for name, times in visits.items()}
        out["switch_next_all"] = visits
        log("  page switches: first " + ", ".join(f"{k} {v:.2f}" for k, v in
            out["switch_first"].items()) + "; next " + ", ".join(
            f"{k} {v:.2f}" for k, v in out["switch_next"].items()))  # fmt: skip
        _switch(page, "confusion")
        out["clicks_models_loaded"] = _clicks(page, bare_page, clicks)
        log(f"  clicks, models loaded: dashboard "
            f"{median(out['clicks_models_loaded']['dashboard']):.3f} s, bare "
            f"{median(out['clicks_models_loaded']['bare']):.3f} s")  # fmt: skip
        out["server_peak_mib"] = server.peak_rss_mib()
        out["bare_server_peak_mib"] = bare_server.peak_rss_mib()
        out["tensorflow_in_server"] = server.loaded_tensorflow()
    finally:
        context.close()
        bare_context.close()
    return out
