"""Tokens on SQLite and PostgreSQL: a secret identifies its token (who sent a request)
until it is revoked; unknown secrets identify nobody."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from livemodel.errors import InvalidInputError, NotFoundError
from livemodel.store.database import open_database
from livemodel.store.tokens import TokenStore


@pytest.fixture
def tokens(db_url: str) -> Iterator[TokenStore]:
    db = open_database(db_url)
    yield TokenStore(db)
    db.close()


def test_a_secret_identifies_its_token_until_revoked(tokens: TokenStore) -> None:
    crm, made = tokens.create("crm", ["feedback"])
    ops, _ = tokens.create("ops", ["admin", "predict"])
    found = tokens.identify(crm)
    assert found is not None
    assert (found.id, found.name, found.scopes, found.revoked) == (
        made.id,
        "crm",
        ("feedback",),
        False,
    )
    assert tokens.scopes_of(ops) == frozenset({"predict", "admin"})
    assert tokens.identify("lm_made-up") is None and tokens.scopes_of("lm_made-up") == frozenset()
    tokens.revoke(made.id)
    assert tokens.identify(crm) is None and tokens.scopes_of(crm) == frozenset()
    assert tokens.identify(ops) is not None  # others untouched
    with pytest.raises(NotFoundError):
        tokens.revoke(made.id)  # already revoked


def test_unknown_scopes_are_refused(tokens: TokenStore) -> None:
    with pytest.raises(InvalidInputError):
        tokens.create("x", ["root"])
