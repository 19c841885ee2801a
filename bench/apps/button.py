"""The one-button reference app: what a click costs in Streamlit itself."""

import streamlit as st

clicks = st.session_state.setdefault("bare_clicks", 0)
if st.button("Click", key="bare_button"):
    clicks = st.session_state["bare_clicks"] = clicks + 1
st.subheader(f"Clicked {clicks} times")
