"""Small layout helpers shared by the pages."""


def table_height(rows: int) -> int:
    """Pixels for st.dataframe to show ``rows`` rows and the header without scrolling."""
    return (rows + 1) * 35 + 3
