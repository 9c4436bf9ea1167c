"""Unique, unguessable ids with OpenAI's prefixes."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """`resp_`, `msg_`, `fc_`, `rs_` … followed by 48 hex characters (192 random bits)."""
    return f"{prefix}_{secrets.token_hex(24)}"


def new_call_id() -> str:
    """`call_` followed by 24 alphanumeric characters, as OpenAI's call ids look."""
    return "call_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))
