"""The one-line reference app: what Streamlit itself costs."""

import streamlit as st

st.write("Hello")
