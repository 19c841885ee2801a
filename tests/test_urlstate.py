"""Which URL parameters a page ignored (core.urlstate), and Streamlit's binding behind it."""

from __future__ import annotations

from core import urlstate


def test_unknown_and_invalid_parameters_are_named():
    before = {"page": "3", "cls": "Nope", "bogus": "1", "embed": "true"}
    after = {"page": "3"}
    notes = urlstate.ignored(before, after, {"page", "cls"}, {"page": 3, "cls": "Shirt"})
    assert notes == ["not a valid value here: cls=Nope", "not a setting of this page: bogus"]
    text = urlstate.note_text(notes)
    assert text.startswith("Part of this link was ignored") and "bogus" in text


def test_defaults_dropped_from_the_url_are_not_called_invalid():
    before = {"page": "1", "flag": "FALSE", "conf": ["0", "100"], "cls": "T-shirt/top"}
    current = {"page": 1, "flag": False, "conf": (0, 100), "cls": 0}
    formats = {"cls": lambda i: ["T-shirt/top", "Trouser"][i]}
    assert urlstate.ignored(before, {}, set(before), current, formats) == []
    assert urlstate.note_text([]) == ""


def test_a_value_the_widget_corrected_is_kept_silently_and_long_values_are_cut():
    assert urlstate.ignored({"page": "2"}, {"page": "2"}, {"page"}, {"page": 2}) == []
    long = "x" * 500
    (note,) = urlstate.ignored({"cls": long}, {}, {"cls"}, {"cls": "Shirt"})
    assert len(note) < 100 and note.endswith("…")


def test_url_text_matches_streamlits_forms():
    assert urlstate.url_text(True) == "true"
    assert urlstate.url_text((5, 95)) == ["5", "95"]
    assert urlstate.url_text(3.0) == "3"
    assert urlstate.url_text("Shirt") == "Shirt"


APP = """
import streamlit as st
from widgets import urlstate
done = urlstate.watch("demo", ["cls", "page"])
st.selectbox("Class", ["T-shirt", "Shirt", "Coat"], key="cls", bind="query-params")
st.number_input("Page", 1, 10, key="page", bind="query-params")
done()
"""


def test_a_link_seeds_the_widgets_and_bad_parts_get_one_note(tmp_path):
    from streamlit.testing.v1 import AppTest

    script = tmp_path / "app.py"
    script.write_text(APP)
    at = AppTest.from_file(str(script))
    at.query_params.update({"cls": "Coat", "page": "99", "zoom": "2"})
    at.run()
    assert not at.exception
    assert at.selectbox[0].value == "Coat"
    assert at.number_input[0].value == 1  # out of range: dropped
    (note,) = [c.value for c in at.caption]
    assert "page=99" in note and "zoom" in note and "cls" not in note
    at.number_input[0].set_value(4).run()  # a click is not a link: no note again
    assert not at.caption and at.number_input[0].value == 4
