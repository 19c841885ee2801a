"""Everything that imports Streamlit, shared by the pages: one module per kind of widget.

- ``nav``: each page defined once as an ``st.Page`` (the router and ``st.page_link`` use them)
- ``picker``: the sidebar run picker and the guard
- ``cached``: cached reads of a run (metrics, comparisons, the test set, models)
- ``charts``: the figure builders, each figure built once per input and shared
- ``gallery``, ``explain``, ``analysis``: galleries, why-a-prediction, seeds and calibration
"""
