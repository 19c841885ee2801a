"""Safe by default when served: loopback only, read-only when exposed, unlocked by the token."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from streamlit import config as st_config

from bench.server import Server
from core import access
from tests import apptools

TOKEN = "correct-horse-battery-staple"
PAGE = "pages/training.py"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("", False), (None, False), ("0.0.0.0", False), ("::", False),
     ("192.168.1.20", False), ("example.org", False)],
)  # fmt: skip
def test_which_addresses_reach_this_machine_only(address, loopback):
    assert access.is_loopback(address) is loopback


def test_the_policy_of_each_case():
    local = access.access_for("127.0.0.1", {})
    assert not local.exposed and local.may_change(unlocked=False)
    bare = access.access_for("0.0.0.0", {})
    assert bare.exposed and not bare.token_set
    assert not bare.may_change(unlocked=True)  # no token: nothing can unlock it
    assert "without an operator token" in bare.read_only_note()
    guarded = access.access_for("0.0.0.0", {access.TOKEN_ENV: TOKEN})
    assert guarded.token_set and not guarded.may_change(unlocked=False)
    assert guarded.may_change(unlocked=True)
    weak = access.access_for("", {access.TOKEN_ENV: "short"})
    assert weak.exposed and not weak.token_set  # a weak token is ignored, not trusted
    assert "shorter than 12" in access.token_problem("short")
    assert access.operator_token({access.TOKEN_ENV: "   "}) is None


def test_tokens_are_compared_whole():
    assert access.token_matches(TOKEN, TOKEN)
    assert access.token_matches(f" {TOKEN}\n", TOKEN)  # pasted with a newline
    for wrong in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert not access.token_matches(wrong, TOKEN)


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.append(local.rsplit(":", 1)[0])
    return found


def test_started_as_readme_says_it_listens_on_loopback_only(tiny_root, tmp_path):
    """`streamlit run dashboard.py` with no address flag (what `./run dashboard` runs) binds
    127.0.0.1 alone, from .streamlit/config.toml."""
    server = Server("dashboard.py", tiny_root, tmp_path, args=())
    try:
        server.wait_healthy(timeout=90)
        assert _listening(server.port) == ["0100007F"], _listening(server.port)  # 127.0.0.1
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
    finally:
        server.stop()


@pytest.fixture
def exposed(monkeypatch, tiny_root):
    """The Training page as a server on every interface would run it."""
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tiny_root))
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield monkeypatch
    st_config.set_option("server.address", before)


def _actions(at) -> dict[str, bool]:
    """Whether each state-changing button is disabled."""
    keys = {"train_start"} | {f"train_make_default_{m}" for m in ("baseline", "residual")}
    return {b.key: b.disabled for b in at.button if b.key in keys}


def _shown_text(at) -> str:
    parts = [e.value for kind in ("info", "error", "warning", "success", "markdown", "caption")
             for e in getattr(at, kind)]  # fmt: skip
    return "\n".join(str(p) for p in parts)


def test_local_dashboard_has_its_actions(monkeypatch, tiny_root):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tiny_root))
    monkeypatch.delenv(access.TOKEN_ENV, raising=False)
    at = apptools.open_page(tiny_root, monkeypatch, PAGE)
    assert _actions(at)["train_start"] is False
    assert "read-only" not in _shown_text(at) and "locked" not in _shown_text(at)


def test_exposed_without_a_token_is_read_only(exposed, tiny_root):
    exposed.delenv(access.TOKEN_ENV, raising=False)
    at = apptools.open_page(tiny_root, exposed, PAGE)
    actions = _actions(at)
    assert actions and all(actions.values()), actions  # every action disabled
    assert "without an operator token, so it is read-only" in _shown_text(at)
    assert not [t for t in at.text_input if t.key == "train_token"]  # nothing to unlock with
    assert at.get("plotly_chart")  # the results are still shown


def test_exposed_with_a_token_unlocks_once_the_token_is_given(exposed, tiny_root):
    exposed.setenv(access.TOKEN_ENV, TOKEN)
    at = apptools.open_page(tiny_root, exposed, PAGE)
    assert all(_actions(at).values())
    unlock = next(b for b in at.button if b.label == "Unlock")

    at.text_input(key="train_token").input(TOKEN[:-1] + "X")
    unlock.click().run()
    assert "That token is not right. Nothing was unlocked." in _shown_text(at)
    assert all(_actions(at).values())
    assert at.text_input(key="train_token").value == ""  # emptied server-side, not kept

    at.text_input(key="train_token").input(TOKEN)
    next(b for b in at.button if b.label == "Unlock").click().run()
    assert not at.exception
    assert _actions(at)["train_start"] is False  # unlocked for this session
    assert not [t for t in at.text_input if t.key == "train_token"]
    assert TOKEN not in _shown_text(at)
    kept = at.session_state["train_token"] if "train_token" in at.session_state else ""  # noqa: SIM401 (AppTest's state has no .get)
    assert kept == ""  # emptied by the form's callback: the session keeps no token
    assert TOKEN not in str(at.query_params)
