"""Bearer keys, compared in constant time; the owner of a response is derived from its key."""

from __future__ import annotations

import hashlib
import hmac

from respgate.protocol.errors import AuthenticationFailed

ANONYMOUS = "anonymous"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyChecker:
    def __init__(self, keys: list[str]) -> None:
        self._digests = [_digest(key) for key in keys]

    @property
    def open(self) -> bool:
        return not self._digests

    def owner(self, authorization: str | None) -> str:
        """The owner id for this `Authorization` header, or 401."""
        if self.open:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        presented = _digest(token)
        matched = False
        for digest in self._digests:
            # No early exit: the time taken does not depend on which key matched.
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            shown = f"{token[:3]}…{token[-4:]}" if len(token) > 8 else "***"
            raise AuthenticationFailed(f"Incorrect API key provided: {shown}.", code="invalid_api_key")
        return presented.hex()[:32]
