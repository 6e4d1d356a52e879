"""Bearer tokens: who sent a request and the scopes it carries, checked against hashed tokens.

Which route needs which scope is listed in ``docs/security.md`` (a test walks that table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from livemodel.serving.http import AuthError, ForbiddenError
from livemodel.store.tokens import TokenStore, hash_token

_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a token (id and name) or nobody (an open route, no token)."""

    token_id: int | None
    name: str
    scopes: frozenset[str]

    @property
    def label(self) -> str:
        """How writes record their sender: ``token:<id>:<name>`` or ``anonymous``."""
        return "anonymous" if self.token_id is None else f"token:{self.token_id}:{self.name}"


ANONYMOUS = Principal(None, "anonymous", frozenset())


class Authenticator:
    """Resolves ``Authorization: Bearer <token>`` to a principal, caching answers briefly.

    No token, or one that is unknown or revoked, is a 401; a valid token without the
    scope is a 403. The ``admin`` scope grants every other scope too.
    """

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def require(self, request: Request, scope: str) -> Principal:
        """The token's principal if it grants ``scope``; else a 401 or 403."""
        secret = _secret(request)
        if secret is None:
            raise AuthError(f"this endpoint needs a bearer token with the {scope!r} scope")
        principal = self._identify(secret)
        if principal is None:  # unknown or revoked: the credentials are wrong, not insufficient
            raise AuthError("the bearer token is not valid (unknown or revoked)")
        if scope not in principal.scopes and "admin" not in principal.scopes:
            raise ForbiddenError(f"the token does not grant the {scope!r} scope")
        return principal

    def optional(self, request: Request) -> Principal:
        """On a route opened by configuration: anonymous without a token, but a token that
        is presented must be valid (a 401 otherwise), so what is recorded is never made up."""
        secret = _secret(request)
        if secret is None:
            return ANONYMOUS
        principal = self._identify(secret)
        if principal is None:
            raise AuthError("the bearer token is not valid (unknown or revoked)")
        return principal

    def _identify(self, secret: str) -> Principal | None:
        if len(secret) > 256:
            return None
        key = hash_token(secret)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        info = self.tokens.identify(secret)
        principal = None if info is None else Principal(info.id, info.name, frozenset(info.scopes))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, principal)
        return principal


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()
