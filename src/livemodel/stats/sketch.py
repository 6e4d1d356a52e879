"""Small mergeable sketches used by column profiles.

* KLL quantile sketches (Apache DataSketches ``kll_doubles_sketch``): thin helpers to copy,
  read retained items and evaluate CDFs/quantiles as numpy arrays.
* :class:`FrequentValues`: a Misra-Gries summary of the values a categorical column sees
  outside its spec's categories. It keeps at most ``capacity`` counters, so memory is
  bounded whatever the cardinality, and two summaries merge with the classic guarantee of
  Agarwal et al. ("Mergeable summaries", 2012): every stored count underestimates the true
  count by at most ``(total - sum(stored)) / (capacity + 1)``, and a value whose true count
  exceeds ``total / (capacity + 1)`` is always kept. While the number of distinct unseen
  values stays within ``capacity`` the counts are exact.

Neither carries process-local state: both are plain data that serialize to bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import cast

import numpy as np
from datasketches import kll_doubles_sketch

from livemodel.errors import InvalidInputError

FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
IntArray = np.ndarray[tuple[int], np.dtype[np.int64]]

MIN_SKETCH_K = 8
MAX_SKETCH_K = 65535


def new_kll(k: int) -> kll_doubles_sketch:
    """An empty KLL sketch with accuracy parameter ``k`` (8 <= k <= 65535)."""
    if not MIN_SKETCH_K <= k <= MAX_SKETCH_K:
        raise InvalidInputError(f"sketch k must be in [{MIN_SKETCH_K}, {MAX_SKETCH_K}], got {k}")
    return kll_doubles_sketch(k)


def copy_kll(sketch: kll_doubles_sketch) -> kll_doubles_sketch:
    """An independent copy (a serialize/deserialize round trip is exact)."""
    return kll_doubles_sketch.deserialize(sketch.serialize())


def load_kll(data: bytes) -> kll_doubles_sketch:
    """Deserialize a KLL sketch, turning any library error into :class:`InvalidInputError`."""
    try:
        return kll_doubles_sketch.deserialize(data)
    except Exception as exc:  # the binding raises IndexError, RuntimeError, ValueError...
        raise InvalidInputError(f"corrupt quantile sketch: {exc}") from exc


def kll_items(sketch: kll_doubles_sketch) -> FloatArray:
    """Sorted unique retained items: the only points where the sketch's CDF steps."""
    if sketch.is_empty():
        return np.empty(0, dtype=np.float64)
    items = np.fromiter((item for item, _weight in sketch), dtype=np.float64)
    return cast(FloatArray, np.unique(items))


def kll_equal(a: kll_doubles_sketch, b: kll_doubles_sketch) -> bool:
    """Same k, n and multiset of weighted retained items (the layout of levels may differ,
    e.g. after merging into an empty sketch, without changing any answer)."""
    if a.k != b.k or a.n != b.n:
        return False
    if a.is_empty():
        return True
    pairs_a = sorted((item, weight) for item, weight in a)
    pairs_b = sorted((item, weight) for item, weight in b)
    return (
        pairs_a == pairs_b
        and a.get_min_value() == b.get_min_value()
        and (a.get_max_value() == b.get_max_value())
    )


def kll_cdf(sketch: kll_doubles_sketch, points: FloatArray) -> FloatArray:
    """Estimated ``P(X <= x)`` at each of the sorted unique ``points``."""
    if points.size == 0:
        return np.empty(0, dtype=np.float64)
    cdf = sketch.get_cdf(points.tolist(), inclusive=True)
    return np.asarray(cdf[:-1], dtype=np.float64)


def kll_quantiles(sketch: kll_doubles_sketch, ranks: FloatArray) -> FloatArray:
    """Estimated quantiles at normalized ``ranks``; the sketch must not be empty."""
    return np.asarray(sketch.get_quantiles(ranks.tolist()), dtype=np.float64)


def kll_rank_error(sketch: kll_doubles_sketch) -> float:
    """The sketch's stated single-rank error (99% confidence), 0 while it is exact."""
    if not sketch.is_estimation_mode():
        return 0.0
    return float(sketch.normalized_rank_error(False))


class FrequentValues:
    """Bounded, mergeable counts of values (Misra-Gries with ``capacity`` counters)."""

    __slots__ = ("_capacity", "_counts")

    def __init__(self, capacity: int, counts: Mapping[str, int] | None = None) -> None:
        if capacity < 1:
            raise InvalidInputError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._counts: dict[str, int] = {}
        if counts:
            keys = list(counts)
            values = np.fromiter((counts[k] for k in keys), dtype=np.int64, count=len(keys))
            if (values < 0).any():
                raise InvalidInputError("frequent-value counts must be non-negative")
            self._counts = _reduce(keys, values, capacity)

    @property
    def capacity(self) -> int:
        return self._capacity

    def items(self) -> list[tuple[str, int]]:
        """Stored ``(value, count)`` pairs, largest count first (ties by value)."""
        return sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def __len__(self) -> int:
        return len(self._counts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrequentValues):
            return NotImplemented
        return self._capacity == other._capacity and self._counts == other._counts

    __hash__ = None  # type: ignore[assignment]

    def add_counts(self, keys: list[str], counts: IntArray) -> None:
        """Add a batch's exact counts for ``keys`` (distinct), then shrink to capacity."""
        if not keys:
            return
        merged = dict(self._counts)
        for key, count in zip(keys, counts.tolist(), strict=True):
            merged[key] = merged.get(key, 0) + count
        self._shrink(merged)

    def merged(self, other: FrequentValues) -> FrequentValues:
        if other._capacity != self._capacity:
            raise InvalidInputError("cannot merge frequent-value summaries of different capacity")
        result = FrequentValues(self._capacity)
        merged = dict(self._counts)
        for key, count in other._counts.items():
            merged[key] = merged.get(key, 0) + count
        result._shrink(merged)
        return result

    def to_dict(self) -> dict[str, int]:
        return dict(self._counts)

    def _shrink(self, counts: dict[str, int]) -> None:
        if len(counts) <= self._capacity:
            self._counts = counts
            return
        keys = list(counts)
        values = np.fromiter(counts.values(), dtype=np.int64, count=len(keys))
        self._counts = _reduce(keys, values, self._capacity)


def _reduce(keys: list[str], counts: IntArray, capacity: int) -> dict[str, int]:
    """Misra-Gries reduction: subtract the (capacity+1)-th largest count, keep positives."""
    if len(keys) > capacity:
        cut = int(np.partition(counts, len(counts) - capacity - 1)[len(counts) - capacity - 1])
        counts = counts - cut
    keep = np.flatnonzero(counts > 0)
    return {keys[i]: int(counts[i]) for i in keep.tolist()}


def top_k_indices(counts: IntArray, k: int) -> IntArray:
    """Indices of the ``k`` largest counts (all of them if there are fewer), unordered."""
    if counts.size <= k:
        return np.arange(counts.size, dtype=np.int64)
    return cast(IntArray, np.argpartition(counts, counts.size - k)[counts.size - k :])
