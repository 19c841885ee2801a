"""Predict: draw or upload a garment, or pick a test image, and see what both models say."""

import numpy as np
import streamlit as st

from core import figures
from core.artifacts import RunError
from core.data import CLASS_NAMES, first_per_class
from core.modelfile import UnsupportedModel
from core.models import display_name
from core.predict import predict_both, top_k
from core.preprocess import PreprocessError, prepare_drawing, prepare_upload
from core.text import literal
from widgets import cached, nav, picker, urlstate
from widgets.explain import input_cams_ui, nearest_ui
from widgets.testset import add_to_testset_ui

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]
PAD_PX = 280  # ten times the models' 28x28 input
EXAMPLES_PER_CLASS = 3


def drawing_ui() -> tuple[np.ndarray, tuple[str, ...]]:
    """The drawing pad: white strokes on black, as in the dataset; stops while it is empty."""
    from streamlit_drawable_canvas import st_canvas  # needs a running server: import on use

    result = st_canvas(
        stroke_width=20, stroke_color="#FFFFFF", background_color="#000000",
        height=PAD_PX, width=PAD_PX, drawing_mode="freedraw", update_streamlit=True,
        return_image_data=True, key="predict_canvas",
    )  # fmt: skip
    prepared = None if result.image_data is None else prepare_drawing(result.image_data)
    if prepared is None:
        st.info("Draw a garment on the pad, filling most of it, to see what the models say.")
        st.stop()
    return prepared.pixels, prepared.notes


def upload_ui() -> tuple[np.ndarray, tuple[str, ...]]:
    """A picture of one garment, prepared like the dataset; stops with a message if it can't be."""
    upload = st.file_uploader("A picture of one garment", type=UPLOAD_TYPES, key="predict_upload")
    if upload is None:
        st.info("Upload a photo of one garment on a plain background.")
        st.stop()
    try:
        prepared = prepare_upload(upload.getvalue())  # decoded in memory, never saved
    except PreprocessError as exc:
        st.error(f"{literal(upload.name)}: {exc}", icon=":material/broken_image:")
        st.stop()
    return prepared.pixels, prepared.notes


def example_ui() -> tuple[np.ndarray, tuple[str, ...]]:
    """A few real test images of every class."""
    x_test, y_test = cached.test_set()
    index = st.selectbox(
        "Or try a test image", first_per_class(y_test, EXAMPLES_PER_CLASS).tolist(),
        format_func=lambda i: f"{CLASS_NAMES[y_test[i]]} (test image {i})", key="predict_example", bind="query-params",
    )  # fmt: skip
    return (x_test[index] / 255).astype(np.float32), (f"True class: {CLASS_NAMES[y_test[index]]}.",)


INPUTS = {"Draw": drawing_ui, "Upload a picture": upload_ui, "Test image": example_ui}


def predict_ui(runs: dict, models: dict) -> None:
    """The input, what the models see and say, and why (a fragment: the sidebar stays)."""
    source = st.radio(
        "Input", list(INPUTS), horizontal=True, key="predict_source", bind="query-params"
    )
    given, seen = st.columns(2)
    with given:
        pixels, notes = INPUTS[source]()
    with seen:
        st.image(figures.image_png(pixels, scale=8), caption="What the models see (28×28)")
        for note in notes:
            st.caption(note)

    probs = predict_both(models, pixels)
    best = {name: top_k(prob, 1)[0] for name, prob in probs.items()}
    if len({label for label, _ in best.values()}) == 1:
        every = "Both" if len(best) == 2 else "All"
        st.success(f"{every} models say {next(iter(best.values()))[0]}", icon=":material/check:")
    else:
        says = "; ".join(f"{display_name(n)} says {c} ({p:.0%})" for n, (c, p) in best.items())
        st.warning(f"They disagree: {says}.", icon=":material/call_split:")

    chart, ranks = st.columns([2, 1])
    chart.plotly_chart(figures.probability_figure(probs), width="stretch", key="predict_probs")
    for name, prob in probs.items():
        ranks.markdown(f"**{display_name(name)}: top 3**")
        ranks.markdown("\n".join(f"{i}. {c}: {p:.1%}" for i, (c, p) in enumerate(top_k(prob), 1)))
    add_to_testset_ui(pixels, probs, source)  # keep this input, labelled, in My test set

    st.subheader("Why: Grad-CAM and the nearest training images")
    input_cams_ui(models, pixels, probs)
    if st.toggle("Show the nearest training images", key="predict_neighbours"):
        for name, run in runs.items():
            st.markdown(f"**{display_name(name)}**: nearest training images")
            nearest_ui(run, pixels, label=None)


st.title("Predict: what do the two models see?")
url_done = urlstate.watch(
    "predict", (*picker.url_keys(), "predict_source", "predict_example")
)  # the view is its link
runs = picker.selected_runs()
picker.require_runs(runs)
runs = picker.usable(runs)  # every model with a run; those without are named
try:
    models = {name: cached.predictor(run) for name, run in runs.items()}
except (RunError, UnsupportedModel) as exc:
    st.error(f"A model cannot be loaded for prediction: {literal(exc)}. Retrain it on the "
             "Training page.")  # fmt: skip
    st.page_link(nav.TRAINING, label="Go to Training", icon=":material/model_training:")
    st.stop()

st.fragment(predict_ui, key="predict_part")(runs, models)  # a new input reruns this part alone
url_done()
