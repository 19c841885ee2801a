"""The operator lock: read-only for visitors of an exposed dashboard, unlocked by the token."""

from __future__ import annotations

import time

import streamlit as st

from core import access

UNLOCKED = "operator_unlocked"  # session state: this session gave the right token
WRONG_DELAY_S = 1.0  # a wrong token costs a second: guessing stays slow


def _policy() -> access.Access:
    return access.access_for(st.get_option("server.address"))


def _check_token(key: str) -> None:
    """The form's callback: runs before the script, so the field can be emptied here and the
    token is never kept in the session, whatever the browser does."""
    given = st.session_state.get(f"{key}_token") or ""
    st.session_state[f"{key}_token"] = ""
    if access.token_matches(given, access.operator_token() or ""):
        st.session_state[UNLOCKED] = True
    else:
        time.sleep(WRONG_DELAY_S)
        st.session_state[f"{key}_refused"] = True


def operator_ui(key: str) -> bool:
    """Whether this session may change state; when it may not, say why and offer the token.

    The token is read from a password field, compared in constant time and never stored,
    shown, logged or put in the URL.
    """
    policy = _policy()
    if policy.may_change(st.session_state.get(UNLOCKED, False)):
        return True
    st.info(policy.read_only_note(), icon=":material/lock:")
    weak = access.token_problem(access.operator_token())
    if weak:
        st.warning(weak)
    if not policy.token_set:
        return False
    with st.form(f"{key}_unlock", border=False):
        st.text_input("Operator token", type="password", key=f"{key}_token")
        st.form_submit_button(
            "Unlock", icon=":material/lock_open:", on_click=_check_token, args=(key,)
        )
    if st.session_state.pop(f"{key}_refused", False):
        st.error("That token is not right. Nothing was unlocked.", icon=":material/block:")
    return False
