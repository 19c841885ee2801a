"""Every page of the dashboard, defined once as an ``st.Page``.

``dashboard.py`` routes through ``run()``; ``st.page_link`` takes these objects, so a page's
path, title and icon are written in one place. Import this module only while a script runs
(``st.Page`` resolves its file against the running app's main script).
"""

from __future__ import annotations

import gc
import threading

import streamlit as st

OVERVIEW = st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True)
TRAINING = st.Page("pages/training.py", title="Training", icon=":material/model_training:")
CONFUSION = st.Page("pages/confusion.py", title="Confusion matrices", icon=":material/grid_on:")
ROC = st.Page("pages/roc.py", title="ROC & calibration", icon=":material/show_chart:")
COMPARE = st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:")
MAP = st.Page("pages/map.py", title="Map of the test set", icon=":material/scatter_plot:")
ROBUSTNESS = st.Page("pages/robustness.py", title="Robustness", icon=":material/broken_image:")
PREDICT = st.Page("pages/predict.py", title="Predict", icon=":material/draw:")
TESTSET = st.Page("pages/testset.py", title="My test set", icon=":material/fact_check:")
PAGES = (OVERVIEW, TRAINING, CONFUSION, ROC, COMPARE, MAP, ROBUSTNESS, PREDICT, TESTSET)

_ROUTED_ONCE = "nav_routed_deep_link"
_routing = threading.local()  # set while the router runs a page on this script thread
_warm = threading.Event()  # set once the server's first page run is over


def run() -> None:
    """The router: the navigation menu, then the page the URL asks for.

    The server's first run imports pandas, pyarrow and the rest while allocating; Python's
    cyclic GC then runs full collections over every object those imports made (measured in a
    first Overview run under AppTest: 3 full collections, 0.36 s of 4.8 s). It stays off for
    that one run, and what survives it (modules, caches) is frozen (``gc.freeze``), so later
    collections never walk those objects again. Reference counting frees memory as usual.
    """
    page = st.navigation(list(PAGES))
    _routing.active = True
    first = not _warm.is_set()
    if first:  # the cold start: no cyclic GC while the first page imports its libraries
        gc.disable()
    try:
        page.run()
    finally:
        _routing.active = False
        if first:
            _warm.set()
            gc.enable()
            gc.freeze()


def route_deep_link() -> None:
    """Send a page that runs without the router back through it.

    Streamlit treats a ``pages/`` folder beside the main script as its legacy multipage app
    until some session calls ``st.navigation``: on a fresh server a deep link (say
    ``/confusion``) runs that page on its own, without page config or our menu. Calling
    ``st.navigation`` ends that mode for the server (documented: once an app calls it, the
    ``pages/`` folder is ignored), and the rerun lets ``dashboard.py`` route the link. Public
    API only; the browser test of deep links on a fresh server fails if an upgrade breaks it.
    Once per session, so a page run on its own in a test (no router at all) is not rerun
    forever.
    """
    if getattr(_routing, "active", False) or st.session_state.get(_ROUTED_ONCE):
        return
    st.session_state[_ROUTED_ONCE] = True
    st.navigation(list(PAGES), position="hidden")
    st.rerun()
