"""Names of models and aliases, and references such as ``flights@3`` or ``flights@production``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from livemodel.errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidInputError(
            f"invalid alias {alias!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A model name plus at most one of a version number or an alias (neither: latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
        if not isinstance(text, str):
            raise InvalidInputError(f"invalid model reference {text!r}")
        name, sep, tail = text.partition("@")
        check_name(name)
        if not sep:
            return cls(name)
        if tail.isdigit() and tail.isascii():
            version = int(tail)
            if not 1 <= version < 2**31:
                raise InvalidInputError(f"invalid version {tail!r} in {text!r}")
            return cls(name, version=version)
        return cls(name, alias=check_alias(tail))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
