"""API tokens: random secrets shown once, stored only as SHA-256 hashes.

A token is 32 random bytes, so a plain SHA-256 cannot be brute-forced and needs no salt
or slow hash; the server compares hashes, never secrets.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from livemodel.errors import InvalidInputError, NotFoundError
from livemodel.store.database import Database
from livemodel.store.tables import tokens

SCOPES = ("predict", "feedback", "admin")
PREFIX = "lm_"


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked: bool


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, scopes: Sequence[str]) -> tuple[str, TokenInfo]:
        """A new token; the secret is returned here and nowhere else, ever."""
        if not name or len(name) > 128:
            raise InvalidInputError("a token needs a name of 1-128 characters")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidInputError(f"scopes must be among {list(SCOPES)}, got {list(scopes)}")
        secret = PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        ordered = sorted(set(scopes), key=SCOPES.index)
        with self.db.write() as conn:
            token_id = conn.execute(
                tokens.insert()
                .values(name=name, scopes=ordered, sha256=hash_token(secret), created_at=now)
                .returning(tokens.c.id)
            ).scalar_one()
        return secret, TokenInfo(int(token_id), name, tuple(ordered), now, revoked=False)

    def scopes_of(self, secret: str) -> frozenset[str]:
        """The scopes a presented secret grants (empty for unknown or revoked tokens)."""
        info = self.identify(secret)
        return frozenset(info.scopes) if info is not None else frozenset()

    def identify(self, secret: str) -> TokenInfo | None:
        """The active token a presented secret is, or None (unknown or revoked)."""
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(tokens).where(tokens.c.sha256 == hash_token(secret))
            ).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        return TokenInfo(row.id, row.name, tuple(row.scopes), row.created_at, revoked=False)

    def list(self) -> list[TokenInfo]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.id)).all()
        return [
            TokenInfo(r.id, r.name, tuple(r.scopes), r.created_at, r.revoked_at is not None)
            for r in rows
        ]

    def revoke(self, token_id: int) -> None:
        with self.db.write() as conn:
            done = conn.execute(
                tokens.update()
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        if done.rowcount == 0:
            raise NotFoundError(f"no active token with id {token_id}")
