"""Who may change state: read-only when served beyond this machine, unless unlocked by a token.

Served as README says, the dashboard listens on the loopback interface only (``.streamlit/
config.toml``), like TensorBoard, MLflow's UI and Jupyter. Whoever exposes it on purpose
(``--server.address 0.0.0.0``) sets an operator token in ``FMNIST_OPERATOR_TOKEN``; visitors then
see every result read-only, and entering the token once per session unlocks the actions that
change state (train, stop, make default). Without a token an exposed dashboard stays read-only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass

TOKEN_ENV = "FMNIST_OPERATOR_TOKEN"
MIN_TOKEN_LENGTH = 12


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only.

    Streamlit's empty default means every interface, so it is not loopback.
    """
    if not address:
        return False
    host = address.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def operator_token(environ: dict | None = None) -> str | None:
    """The operator token from the environment, or None when none (or an empty one) is set."""
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return token or None


def token_problem(token: str | None) -> str | None:
    """Why ``token`` is too weak to guard an exposed dashboard (None if it will do)."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        return (
            f"{TOKEN_ENV} is shorter than {MIN_TOKEN_LENGTH} characters, so it is ignored and the "
            "dashboard stays read-only. Set a longer one (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe())'`) and restart."
        )
    return None


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of digests: the time taken says nothing about which characters
    (or how many) were right."""
    digest = lambda text: hashlib.sha256(text.encode()).digest()  # noqa: E731
    return hmac.compare_digest(digest(given.strip()), digest(expected))


@dataclass(frozen=True)
class Access:
    """What a session of a server bound to ``address`` may do."""

    address: str
    token_set: bool  # a usable operator token is configured

    @property
    def exposed(self) -> bool:
        return not is_loopback(self.address)

    def may_change(self, unlocked: bool) -> bool:
        """Whether state-changing actions are on for a session (``unlocked``: gave the token)."""
        return not self.exposed or (self.token_set and unlocked)

    def read_only_note(self) -> str:
        """Why actions are off, for a visitor of an exposed dashboard."""
        where = self.address or "every network interface"
        if self.token_set:
            return (
                f"This dashboard is served on {where}, so training, stopping and changing the "
                "default runs are locked. Every result can be viewed. The operator can unlock "
                "the actions for this session with the token."
            )
        return (
            f"This dashboard is served on {where} without an operator token, so it is read-only: "
            "training, stopping and changing the default runs are off. Every result can be "
            f"viewed. Whoever runs it can set {TOKEN_ENV} and restart it to allow them."
        )


def access_for(address: str | None, environ: dict | None = None) -> Access:
    """The access policy of a server bound to ``address`` with the environment ``environ``."""
    token = operator_token(environ)
    return Access(address or "", token is not None and token_problem(token) is None)
