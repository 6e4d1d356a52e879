"""Bearer tokens: the scopes a request carries, checked against hashed tokens in the DB."""

from __future__ import annotations

import time

from starlette.requests import Request

from livemodel.serving.http import AuthError, ForbiddenError
from livemodel.store.tokens import TokenStore, hash_token

_CACHE_SECONDS = 10.0


class Authenticator:
    """Resolves ``Authorization: Bearer <token>`` to scopes, caching answers briefly.

    No token, or one that is unknown or revoked, is a 401; a valid token without the
    scope is a 403. The ``admin`` scope grants every other scope too.
    """

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def require(self, request: Request, scope: str) -> None:
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise AuthError(f"this endpoint needs a bearer token with the {scope!r} scope")
        granted = self._scopes(secret.strip())
        if not granted:  # unknown or revoked: the credentials are wrong, not insufficient
            raise AuthError("the bearer token is not valid (unknown or revoked)")
        if scope not in granted and "admin" not in granted:
            raise ForbiddenError(f"the token does not grant the {scope!r} scope")

    def _scopes(self, secret: str) -> frozenset[str]:
        if len(secret) > 256:
            return frozenset()
        key = hash_token(secret)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        scopes = self.tokens.scopes_of(secret)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, scopes)
        return scopes
