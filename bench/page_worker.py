"""Server-side script time of every page, without a browser (Streamlit's AppTest), warm caches.

    python -m bench.page_worker REPEATS [--profile PAGE]

Prints one JSON line: seconds per script run of each page (the median of REPEATS runs after
the first), of the Confusion page's Swap click, and of the one-line and one-button apps. What
a browser measures beyond this is the transfer and the drawing. ``--profile PAGE`` prints the
functions that take most of that page's warm runs instead.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PAGES = ("overview", "training", "confusion", "roc", "compare", "predict", "map")


def _profile_script_thread(stop: bool = False) -> cProfile.Profile | None:
    """Profile every script run (they run in a thread of their own) until called with stop."""
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    if stop:
        ScriptRunner._run_script = ScriptRunner._run_script.__wrapped__
        return None
    profiler, original = cProfile.Profile(), ScriptRunner._run_script

    def run_script(self, *args, **kwargs):
        profiler.enable()
        try:
            return original(self, *args, **kwargs)
        finally:
            profiler.disable()

    run_script.__wrapped__ = original
    ScriptRunner._run_script = run_script
    return profiler


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    from streamlit.testing.v1 import AppTest

    from bench.common import PROJECT, copy_shipped_runs
    from bench.fakes import install_fake_canvas

    repeats = int(argv[0])
    profile = argv[argv.index("--profile") + 1] if "--profile" in argv else None
    install_fake_canvas()
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        os.environ["FMNIST_ARTIFACTS"] = str(copy_shipped_runs(Path(tmp) / "artifacts"))
        at = AppTest.from_file(str(PROJECT / "dashboard.py"), default_timeout=120)
        first = {"overview": _timed(at.run)}
        for page in PAGES[1:]:
            first[page] = _timed(lambda p=page: at.switch_page(f"pages/{p}.py").run())
        warm = {}
        for page in PAGES:
            at.switch_page(f"pages/{page}.py").run()
            profiler = _profile_script_thread() if page == profile else None
            warm[page] = statistics.median(_timed(at.run) for _ in range(repeats))
            if profiler is not None:
                _profile_script_thread(stop=True)
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        at.switch_page("pages/confusion.py").run()
        swap = statistics.median(
            _timed(lambda: at.button(key="confusion_swap").click().run()) for _ in range(repeats)
        )
        bare = AppTest.from_file(str(PROJECT / "bench/apps/button.py"), default_timeout=60)
        bare.run()
        bare_click = statistics.median(
            _timed(lambda: bare.button(key="bare_button").click().run()) for _ in range(repeats)
        )
        hello = AppTest.from_file(str(PROJECT / "bench/apps/hello.py"), default_timeout=60)
        hello_first = _timed(hello.run)
        hello_warm = statistics.median(_timed(hello.run) for _ in range(repeats))
    print(json.dumps({"first": first, "warm": warm, "swap_click": swap, "bare_click": bare_click,
                      "hello_first": hello_first, "hello_warm": hello_warm,
                      "tensorflow_imported": "tensorflow" in sys.modules}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
