"""Which parts of a page's URL query were not used, and why: the notes "every view is a link" owes.

The view itself lives in the URL through Streamlit's own widget binding (``bind="query-params"``
on every widget that makes a view: the widget's key is the parameter's name). Streamlit then
seeds the widget from a link and drops a value that is not valid for it, silently. This module
decides, from what the URL held before the page ran and what it holds after, which parameters
the page ignored, so it can say so in one short note instead of showing a different view
without a word. Pure functions: no Streamlit here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

Query = Mapping[str, str | list[str]]

# Streamlit's own parameters (embedding), never ours to judge.
RESERVED = frozenset({"embed", "embed_options"})
MAX_SHOWN = 60  # characters of a parameter's value quoted in a note


def url_text(value) -> str | list[str]:
    """The URL form Streamlit gives a widget value: ``true``/``false``, numbers, option labels,
    a list for ranges."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return [url_text(v) for v in value]  # type: ignore[misc]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _quote(value: str | list[str]) -> str:
    text = ",".join(value) if isinstance(value, list) else value
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def ignored(
    before: Query,
    after: Query,
    known: Iterable[str],
    current: Mapping[str, object],
    formats: Mapping[str, Callable[[object], str | list[str]]] | None = None,
) -> list[str]:
    """The parameters of ``before`` (the URL as the page was opened) that the page did not use.

    ``known`` are the page's parameter names; ``after`` is the URL once the page's widgets have
    run; ``current`` the widgets' values (session state) then. A known parameter that vanished
    from the URL was either the default (Streamlit drops those; its value then matches the
    widget's) or invalid. ``formats`` give a widget's URL text where it is not ``url_text`` (a
    selectbox shows its option through ``format_func``).
    """
    known = set(known)
    formats = formats or {}
    unknown, invalid = [], []
    for name, value in before.items():
        if name in RESERVED:
            continue
        if name not in known:
            unknown.append(name)
            continue
        if name in after:
            continue  # kept: the widget took it (possibly corrected, e.g. clamped)
        if name in current:
            shown = formats.get(name, url_text)(current[name])
            if _same(shown, value):
                continue  # the default, dropped from the URL to keep it short
        invalid.append(f"{name}={_quote(value)}")
    notes = []
    if invalid:
        notes.append(f"not a valid value here: {', '.join(invalid)}")
    if unknown:
        notes.append(f"not a setting of this page: {', '.join(sorted(unknown))}")
    return notes


def _same(shown: str | list[str], value: str | list[str]) -> bool:
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    return [s.lower() for s in as_list(shown)] == [v.lower() for v in as_list(value)]


def note_text(notes: list[str]) -> str:
    """One short sentence for the page, or an empty string."""
    if not notes:
        return ""
    return "Part of this link was ignored (" + "; ".join(notes) + "); the rest is shown."
