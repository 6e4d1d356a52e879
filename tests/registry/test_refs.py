"""Model names and aliases: a trailing newline (which ``re.match`` with ``$`` lets through)
is refused like any other character outside the documented set."""

from __future__ import annotations

import pytest

from livemodel.errors import InvalidInputError
from livemodel.registry.refs import check_alias, check_name


@pytest.mark.parametrize("alias", ["production", "live", "a.b-c_1"])
def test_valid_aliases_pass(alias: str) -> None:
    assert check_alias(alias) == alias


@pytest.mark.parametrize("alias", ["live\n", "\nlive", "li ve", "1live", "", "x" * 65])
def test_invalid_aliases_are_refused(alias: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid alias"):
        check_alias(alias)


@pytest.mark.parametrize("name", ["flights\n", "fl/ights", "", "-x", "x" * 129])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid model name"):
        check_name(name)
