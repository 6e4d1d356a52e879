"""Names that cross layers, in one place (imported by every layer; imports nothing).

- :data:`DEFAULT_ALIAS`: the alias a model is served under unless its serving options
  name another (``[serving] alias`` or ``[serving.models.NAME] alias`` in
  ``livemodel.toml``). Rollouts move it, the loop retrains its version, and the monitor,
  the report and the dashboard read it; :func:`livemodel.wiring.served_alias` resolves
  it per model from the project file.
- :data:`AliasOf`: how the layers below the wiring receive that resolution, a function
  from a model name to its served alias.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DEFAULT_ALIAS", "AliasOf", "default_alias"]

DEFAULT_ALIAS = "production"

AliasOf = Callable[[str], str]


def default_alias(name: str) -> str:
    """The served alias of any model when no project file says otherwise."""
    return DEFAULT_ALIAS
