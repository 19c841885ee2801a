"""Every view is a link: the Streamlit side of ``core.urlstate``.

Widgets that make a view are bound to the URL with Streamlit's ``bind="query-params"`` (their key
is the parameter's name), so the URL follows every click and a link opens the same view. A page
calls ``watch`` before its widgets and the returned function after them: when the URL came from
outside (a link opened, an address edited), parameters the page could not use get one short
note at the top of the page, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import streamlit as st

from core import urlstate

_SEEN = "urlstate_seen"  # session key: the query each page last left in the URL


def query() -> dict[str, str | list[str]]:
    """The URL's query now, lists for repeated parameters (a range)."""
    params = st.query_params
    out: dict[str, str | list[str]] = {}
    for name in params:
        values = params.get_all(name)
        out[name] = values if len(values) > 1 else (values[0] if values else "")
    return out


def watch(
    page: str,
    known: Iterable[str],
    formats: Mapping[str, Callable[[object], str | list[str]]] | None = None,
) -> Callable[[], None]:
    """Start watching the URL for ``page``; call the result once the page's widgets have run."""
    before = query()
    seen = st.session_state.setdefault(_SEEN, {})
    from_outside = seen.get(page) != before
    slot = st.empty()
    known = tuple(known)

    def done() -> None:
        if not from_outside:
            seen[page] = query()
            return
        for name in set(before) - set(known) - urlstate.RESERVED:
            del st.query_params[name]  # noted below; a link shared from here is clean
        after = query()
        seen[page] = after
        current = {name: st.session_state[name] for name in known if name in st.session_state}
        text = urlstate.note_text(urlstate.ignored(before, after, known, current, formats))
        if text:
            slot.caption(text, help=None)

    return done
