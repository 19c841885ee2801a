"""My test set: garments you added on Predict (or imported), and how every model scores on them."""

import streamlit as st

from widgets import picker, urlstate
from widgets import testset as ui
from widgets.access import operator_ui

st.title("My test set")
st.caption(
    "Your own drawings and photos, each with the class you say is right, kept under the "
    "artifacts folder with a checksum per image. Every model is scored on them below."
)
url_done = urlstate.watch("testset", picker.url_keys())  # the view is its link
runs = picker.selected_runs()
picker.require_runs(runs)
runs = picker.usable(runs)  # every model with a run; those without are named
operator_ui("testset")  # changing the set is off for visitors of an exposed dashboard
testset = ui.load_ui()

if not len(testset):
    ui.empty_ui()
    st.subheader("Import")
    ui.transfer_ui(testset)
    st.stop()

models = ui.predictors_ui(runs)
probs = ui.predictions(runs, testset)

st.subheader(f"Scores on your {len(testset)} item{'s' * (len(testset) != 1)}")
scores = ui.scores_ui(testset, probs, picker.chosen_pair())

st.subheader("Confusion matrices")
ui.confusion_ui(scores)

st.subheader("Items")
ui.explain_ui(models, testset, probs)
ui.gallery_ui(testset, probs, scores)

st.subheader("Download or import")
ui.transfer_ui(testset)
url_done()
