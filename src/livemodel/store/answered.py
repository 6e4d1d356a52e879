"""Which logged prediction records are answers a client got.

During a rollout the server also logs records no client saw as an answer, so the rollout
guards can compare versions like with like (see :mod:`livemodel.serving.failures` and
:mod:`livemodel.serving.router`):

* a row a version failed on with no fallback answering it: the failure's flag
  (``model_error``, ``nan_output`` or ``timeout``) and no outputs. The server writes
  outputs for a failed row exactly when a fallback answered it, and flags that row
  ``fallback:<kind>``, so "a failure flag and no ``fallback:`` flag" is "no outputs";
* arm ``probe``: the other version asked about the same input off the response path.

An id is *answered* when it has a record a client got: one on no arm or on ``champion``,
``candidate`` or ``fallback`` that is not a failure without outputs. A request no version
answered leaves no answered id. Exports (``livemodel predictions``), labels (feedback refuses
ids that are not answered) and monitor performance keep to answered records; records on
arm ``shadow`` of an answered id are kept (the candidate's answer to the same input).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

__all__ = ["FAILURE_FLAGS", "answered", "answered_ids", "unanswered"]

#: the flags of a row a version failed on (as written by the server)
FAILURE_FLAGS: Final = frozenset({"model_error", "nan_output", "timeout"})
_NOT_TO_CLIENTS: Final = frozenset({"shadow", "probe"})


def unanswered(flags: object) -> bool:
    """A record (its ``flags``, a list of strings) of a failure no fallback answered: it
    has no outputs."""
    present = {str(f) for f in flags} if isinstance(flags, list | tuple) else set()
    return bool(FAILURE_FLAGS & present) and not any(f.startswith("fallback:") for f in present)


def answered_ids(
    ids: Iterable[object], arms: Iterable[object], flags: Iterable[object]
) -> set[str]:
    """The ids, among records given column by column, that a client got an answer for."""
    return {
        str(pid)
        for pid, arm, flag in zip(ids, arms, flags, strict=True)
        if arm not in _NOT_TO_CLIENTS and not unanswered(flag)
    }


def answered(table: pa.Table) -> pa.Table:
    """The records of ``table`` (a window of the log with ``prediction_id``, ``flags`` and
    ``arm``) that are answers: no failure without outputs, no probe, and only of ids a
    client got an answer for. Order is kept."""
    if table.num_rows == 0 or "flags" not in table.column_names:
        return table
    ids = table.column("prediction_id").to_pylist()
    flags = table.column("flags").to_pylist()
    arms = table.column("arm").to_pylist() if "arm" in table.column_names else [None] * len(ids)
    good = answered_ids(ids, arms, flags)
    keep = [
        pid in good and arm != "probe" and not unanswered(flag)
        for pid, arm, flag in zip(ids, arms, flags, strict=True)
    ]
    return table.filter(pa.array(keep, type=pa.bool_()))
