"""Router: `streamlit run dashboard.py`."""

import streamlit as st

st.set_page_config(page_title="Fashion-MNIST: two CNNs compared", page_icon="👕", layout="wide")
st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
        st.Page("pages/confusion.py", title="Confusion matrices", icon=":material/grid_on:"),
        st.Page("pages/roc.py", title="ROC & calibration", icon=":material/show_chart:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/map.py", title="Map of the test set", icon=":material/scatter_plot:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/draw:"),
    ]
).run()
