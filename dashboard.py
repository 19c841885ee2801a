"""Router: `streamlit run dashboard.py`."""

import streamlit as st

st.set_page_config(page_title="Fashion-MNIST: two CNNs compared", page_icon="👕", layout="wide")

from widgets import nav  # noqa: E402  (its st.Page objects need the page config first)

nav.run()
