"""Stand-ins that let AppTest (no browser) run the pages, shared by the tests and the benchmarks.

The drawing pad (streamlit-drawable-canvas) is a custom component that imports only inside a
running server, and AppTest would see only its default value anyway: the Predict page imports
it on use, and AppTest runs get this stand-in in its place.
"""

from __future__ import annotations

import sys
import types

import numpy as np

CANVAS_MODULE = "streamlit_drawable_canvas"


def fake_canvas(image: np.ndarray | None = None) -> types.ModuleType:
    """A ``streamlit_drawable_canvas`` whose pad returns ``image`` (RGBA; None: nothing drawn).

    Set ``module.image`` to change what the pad returns; ``module.calls`` records the keyword
    arguments of every ``st_canvas`` call (how the page built the pad).
    """
    module = types.ModuleType(CANVAS_MODULE)
    module.image = image
    module.calls = []

    def st_canvas(**kwargs):
        module.calls.append(kwargs)
        return types.SimpleNamespace(image_data=module.image, json_data=None)

    module.st_canvas = st_canvas
    return module


def install_fake_canvas(image: np.ndarray | None = None) -> types.ModuleType:
    """Put a ``fake_canvas`` in ``sys.modules`` for the rest of this process."""
    module = sys.modules[CANVAS_MODULE] = fake_canvas(image)
    return module
