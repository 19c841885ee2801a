"""Router: `streamlit run dashboard.py`."""

import streamlit as st

# A Material icon, not an emoji: checking an emoji loads Streamlit's emoji table (0.1-0.3 s of
# every cold start; tests/test_runcache_results.py checks the Overview never loads it).
st.set_page_config(
    page_title="Fashion-MNIST: two CNNs compared", page_icon=":material/checkroom:", layout="wide"
)

from widgets import nav  # noqa: E402  (its st.Page objects need the page config first)

nav.run()
