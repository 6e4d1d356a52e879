"""Deterministic traffic assignment: every replica agrees without talking.

A routing key (an entity id from the request, or the prediction id) is hashed together
with the rollout's id into a number in [0, 1); the candidate answers when it falls below
the step's share. Raising the share keeps everyone who was on the candidate there (their
number does not change), so a user never flips back and forth as a canary grows.
"""

from __future__ import annotations

import hashlib

_SCALE = float(2**64)


def bucket(rollout_id: str, key: str) -> float:
    """A stable, uniform number in [0, 1) for ``key`` within one rollout."""
    digest = hashlib.blake2b(f"{rollout_id}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def to_candidate(rollout_id: str, key: str, percent: float) -> bool:
    return percent > 0 and bucket(rollout_id, key) * 100 < percent
