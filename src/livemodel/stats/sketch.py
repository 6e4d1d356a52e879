"""Small mergeable sketches used by column profiles.

* KLL quantile sketches (Apache DataSketches ``kll_doubles_sketch``): thin helpers to copy,
  read retained items and evaluate CDFs/quantiles as numpy arrays.
* Histograms on fixed edges with underflow/overflow buckets (:func:`bucket_counts`).
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
from typing import Any, cast

import numpy as np
from datasketches import kll_doubles_sketch

from livemodel.errors import InvalidInputError

FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
IntArray = np.ndarray[tuple[int], np.dtype[np.int64]]

_COUNTING_MAX_EDGES = 64
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


def kll_equal(a: kll_doubles_sketch, b: kll_doubles_sketch) -> bool:
    """Same k, n, extremes and multiset of weighted retained items (the layout of levels
    may differ, e.g. after merging into an empty sketch, without changing any answer)."""
    if a.k != b.k or a.n != b.n:
        return False
    if a.is_empty():
        return True
    return (
        sorted(a) == sorted(b)
        and a.get_min_value() == b.get_min_value()
        and a.get_max_value() == b.get_max_value()
    )


def kll_distances(
    a: kll_doubles_sketch, b: kll_doubles_sketch, *, trim: float = 0.0
) -> tuple[float, float]:
    """``(sup |F_a - F_b|, W)`` for the distributions two non-empty sketches describe:
    the KS statistic and the first Wasserstein distance ``W``, computed as the mean of
    ``|Q_a(p) - Q_b(p)|`` over ranks ``trim <= p <= 1 - trim`` (``trim=0``: the usual W).

    A sketch that has not compacted yet holds its data exactly; its CDF is the empirical
    step function and both numbers are exact (they match scipy). A compacting sketch
    keeps items standing for ``2^h`` values each; read as steps, its CDF jumps by
    ``2^h / n`` at sparse points, and those jumps integrated over a long tail dominate
    the distance. There the CDF is read as the line through each item's mid-step
    (``F(x) - w / 2n``), anchored at the exact minimum and maximum. Both curves are then
    linear (or constant) between consecutive points of the merged grid, so the sup and
    the integral are exact for the two curves.
    """
    if not 0.0 <= trim < 0.5:
        raise InvalidInputError(f"trim must be in [0, 0.5), got {trim}")
    cdf_a, cdf_b = _SketchCdf(a), _SketchCdf(b)
    grid = np.union1d(cdf_a.knots, cdf_b.knots)
    start = cdf_a.right(grid) - cdf_b.right(grid)  # value on [g_i, g_i+1) at its start
    end = cdf_a.left(grid[1:]) - cdf_b.left(grid[1:])  # limit at the interval's end
    ks = float(max(np.abs(start).max(), np.abs(end).max(initial=0.0)))
    ranks = np.union1d(cdf_a.ranks(), cdf_b.ranks())
    ranks = np.concatenate([[trim], ranks[(ranks > trim) & (ranks < 1 - trim)], [1 - trim]])
    q_start = cdf_a.quantile(ranks[:-1], upper=True) - cdf_b.quantile(ranks[:-1], upper=True)
    q_end = cdf_a.quantile(ranks[1:], upper=False) - cdf_b.quantile(ranks[1:], upper=False)
    area = _integral_of_abs(q_start, q_end, np.diff(ranks))
    return ks, area / (1 - 2 * trim)


def _integral_of_abs(start: FloatArray, end: FloatArray, width: FloatArray) -> float:
    """Integral of ``|f|`` for ``f`` linear on each interval from ``start`` to ``end``."""
    s, e = np.abs(start), np.abs(end)
    crossing = np.sign(start) * np.sign(end) < 0  # a product of values could overflow
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.where(crossing, (s * s + e * e) / (2 * (s + e)), (s + e) / 2)
    return float(np.sum(area * width))


class _SketchCdf:
    """A sketch's CDF: the exact step function, or the mid-step line when compacting."""

    def __init__(self, sketch: kll_doubles_sketch) -> None:
        # The retained items come from iterating the sketch, but their weights from
        # ``get_cdf``: the binding's iterator (datasketches 5.2) reports weight 1 for
        # every item of some merged sketches, which would spread the mass evenly over
        # items that stand for very different numbers of values.
        pairs = np.array(list(sketch), dtype=np.float64).reshape(-1, 2)
        items = np.unique(pairs[:, 0])
        cdf = sketch.get_cdf(items.tolist(), inclusive=True)[:-1]
        cumulative: FloatArray = np.asarray(cdf, dtype=np.float64)
        cumulative = np.maximum.accumulate(np.clip(cumulative, 0.0, 1.0))
        cumulative[-1] = 1.0
        total = float(sketch.n)
        weights = np.diff(cumulative, prepend=0.0) * total
        self.low, self.high = float(sketch.get_min_value()), float(sketch.get_max_value())
        self.smooth = bool(sketch.is_estimation_mode())
        if not self.smooth:
            self.knots, self._values = items, cumulative
            return
        mid = cumulative - weights / (2 * total)
        xs, fs = items, mid
        if self.low < xs[0]:
            xs, fs = np.concatenate([[self.low], xs]), np.concatenate([[0.0], fs])
        if self.high > xs[-1]:
            xs, fs = np.concatenate([xs, [self.high]]), np.concatenate([fs, [1.0]])
        self.knots, self._values = xs, fs

    def right(self, x: FloatArray) -> FloatArray:
        """``F(x) = P(X <= x)``."""
        if not self.smooth:
            return self._step(np.searchsorted(self.knots, x, side="right"))
        values = np.interp(x, self.knots, self._values, left=0.0, right=1.0)
        values[x >= self.high] = 1.0
        return values

    def left(self, x: FloatArray) -> FloatArray:
        """``F(x-) = P(X < x)``."""
        if not self.smooth:
            return self._step(np.searchsorted(self.knots, x, side="left"))
        values = np.interp(x, self.knots, self._values, left=0.0, right=1.0)
        values[x <= self.low] = 0.0
        return values

    def ranks(self) -> FloatArray:
        """The ranks where the quantile function bends or steps."""
        return self._values

    def quantile(self, p: FloatArray, *, upper: bool) -> FloatArray:
        """``Q(p+)`` (``upper``) or ``Q(p-)``; ``Q`` is the inverse of the CDF above."""
        if self.smooth:
            return np.interp(p, self._values, self.knots)
        index = np.searchsorted(self._values, p, side="right" if upper else "left")
        return cast(FloatArray, self.knots[np.minimum(index, self.knots.size - 1)])

    def _step(self, index: Any) -> FloatArray:
        padded = np.concatenate([[0.0], self._values])
        return cast(FloatArray, padded[index])


def kll_quantiles(sketch: kll_doubles_sketch, ranks: FloatArray) -> FloatArray:
    """Estimated quantiles at normalized ``ranks``; the sketch must not be empty."""
    return np.asarray(sketch.get_quantiles(ranks.tolist()), dtype=np.float64)


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


def n_buckets(n_edges: int) -> int:
    """Histogram size for ``n_edges`` edges: underflow + bins + overflow.

    One edge (a constant reference) still gets a middle bucket holding that exact value,
    so any change away from the constant shows up in the under/overflow buckets.
    No edges (an all-missing reference) gives a single bucket.
    """
    if n_edges == 0:
        return 1
    return max(n_edges - 1, 1) + 2


def bucket_counts(edges: FloatArray, x: FloatArray) -> IntArray:
    """Counts of finite ``x`` per bucket: underflow ``x < e_0``, bins ``[e_i, e_i+1)`` (the
    last one closed), overflow ``x > e_last``; see :func:`n_buckets` for degenerate edges."""
    if edges.size == 0:
        return np.array([x.size], dtype=np.int64)
    if edges.size > _COUNTING_MAX_EDGES:
        last_bin = max(edges.size - 1, 1)
        idx = np.searchsorted(edges, x, side="right")
        np.clip(idx, 1, last_bin, out=idx)
        idx[x < edges[0]] = 0
        idx[x > edges[-1]] = last_bin + 1
        return np.bincount(idx, minlength=last_bin + 2).astype(np.int64)
    # A few vectorized comparisons beat a binary search per value (branch mispredictions)
    # by an order of magnitude for the usual ~20 edges.
    at_least = [np.count_nonzero(x >= e) for e in edges[:-1].tolist()]
    above_last = np.count_nonzero(x > edges[-1])
    if edges.size == 1:
        at_least = [np.count_nonzero(x >= edges[0])]
    tail = np.array([x.size, *at_least, above_last, 0], dtype=np.int64)
    return -np.diff(tail)
