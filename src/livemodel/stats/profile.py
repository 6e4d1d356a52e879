"""Mergeable column profiles: the monoid every drift number is computed from.

A :class:`ProfileSpec` fixes, from a reference frame, which columns are numeric or
categorical, the numeric histogram edges and the categories counted exactly. A
:class:`Profile` of that spec is a monoid: ``Profile.empty(spec)`` is the zero,
``update(frame)`` adds rows, ``merge(other)`` combines two profiles, and merging the
profiles of two shards equals profiling their union (exactly for counts, histograms,
categories and extremes; to rounding for moments; within the KLL sketch's rank error for
quantiles). Profiles hold plain data only, so they can be built per partition anywhere,
shipped as ``to_bytes()`` and merged.

>>> import pandas as pd
>>> ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "a"]})
>>> spec = ProfileSpec.from_reference(ref, bins=2)
>>> p = Profile.empty(spec).update(ref.iloc[:2]).merge(Profile.empty(spec).update(ref.iloc[2:]))
>>> p.count, p.columns["x"].histogram.tolist(), p.columns["x"].mean
(4, [0, 2, 2, 0], 2.5)
>>> Profile.from_bytes(p.to_bytes()) == p
True
>>> p.summary()["c"]["top"]
[{'value': 'a', 'count': 3}, {'value': 'b', 'count': 1}]

Byte format (``to_bytes``): the magic ``LMPROF`` and a format byte, then a zlib stream of
a little-endian ``uint32`` header length, a JSON header (spec, row count, per-column sketch
sizes and unseen-value counts) and, per column in spec order, its int64 counters, float64
moments, int64 histogram or category counts and its serialized KLL sketch.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.stats.columns import (
    CategoricalColumnProfile,
    CategoryValue,
    ColumnProfile,
    NumericColumnProfile,
    category_key,
    factorize_categories,
    numeric_values,
)
from livemodel.stats.sketch import (
    MAX_SKETCH_K,
    MIN_SKETCH_K,
    FrequentValues,
    kll_equal,
    load_kll,
)

__all__ = [
    "CategoricalColumnProfile",
    "ColumnSpec",
    "NumericColumnProfile",
    "Profile",
    "ProfileSpec",
]

ColumnKind = Literal["numeric", "categorical"]
_MAGIC = b"LMPROF\x01"
_MAX_DECODED_BYTES = 64 * 1024 * 1024  # thousands of columns fit in a few MB


@dataclass(frozen=True)
class ColumnSpec:
    """One column: numeric with histogram ``edges``, or categorical with ``categories``."""

    name: str
    kind: ColumnKind
    edges: tuple[float, ...] = ()
    categories: tuple[CategoryValue, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise SchemaError(f"column names must be strings, got {self.name!r}")
        if self.kind == "numeric":
            edges = np.asarray(self.edges, dtype=np.float64)
            if self.categories or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
                raise InvalidInputError(
                    f"numeric column {self.name!r} needs strictly increasing finite edges"
                )
        elif self.kind == "categorical":
            keys = [category_key(c) for c in self.categories]
            if self.edges or keys != list(self.categories) or len(set(keys)) != len(keys):
                raise InvalidInputError(
                    f"categorical column {self.name!r} needs distinct JSON-safe categories"
                )
        else:
            raise InvalidInputError(f"unknown column kind {self.kind!r}")


@dataclass(frozen=True)
class ProfileSpec:
    """What a profile measures; two profiles merge only if their specs are equal."""

    columns: tuple[ColumnSpec, ...]
    sketch_k: int = 200
    unseen_capacity: int = 64

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise SchemaError("column names in a profile spec must be unique")
        if not MIN_SKETCH_K <= self.sketch_k <= MAX_SKETCH_K:
            raise InvalidInputError(f"sketch_k must be in [{MIN_SKETCH_K}, {MAX_SKETCH_K}]")
        if self.unseen_capacity < 1:
            raise InvalidInputError("unseen_capacity must be >= 1")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @classmethod
    def from_reference(
        cls,
        frame: pd.DataFrame,
        *,
        categorical: Sequence[str] | None = None,
        bins: int = 20,
        max_categories: int = 100,
        sketch_k: int = 200,
        unseen_capacity: int = 64,
    ) -> ProfileSpec:
        """Infer the spec: bool/object/string/category columns (and ``categorical``) are
        categorical, numbers, datetimes and timedeltas numeric. Numeric edges are the
        reference's ``bins + 1`` quantiles, deduplicated (a constant column gets one
        edge); categorical columns keep the ``max_categories`` most frequent values."""
        _check_frame(frame)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise InvalidInputError(f"bins must be a positive integer, got {bins!r}")
        if isinstance(max_categories, bool) or not isinstance(max_categories, int):
            raise InvalidInputError("max_categories must be an integer")
        if max_categories < 1:
            raise InvalidInputError("max_categories must be >= 1")
        if isinstance(categorical, str):
            raise InvalidInputError("categorical must be a sequence of column names")
        forced = set(categorical or ())
        unknown = sorted(forced - {c for c in frame.columns if isinstance(c, str)})
        if unknown:
            raise SchemaError(f"categorical columns not in the reference: {unknown}")
        if not frame.columns.is_unique:
            raise SchemaError("the reference frame has duplicate column names")
        specs = []
        for name in frame.columns:
            series = frame[name]
            if name in forced or not _is_numeric_dtype(series.dtype):
                specs.append(_categorical_spec(name, series, max_categories))
            else:
                specs.append(_numeric_spec(name, series, bins))
        return cls(tuple(specs), sketch_k=sketch_k, unseen_capacity=unseen_capacity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sketch_k": self.sketch_k,
            "unseen_capacity": self.unseen_capacity,
            "columns": [
                {"name": c.name, "kind": c.kind, "edges": list(c.edges)}
                if c.kind == "numeric"
                else {"name": c.name, "kind": c.kind, "categories": list(c.categories)}
                for c in self.columns
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileSpec:
        try:
            columns = tuple(
                ColumnSpec(
                    name=col["name"],
                    kind=col["kind"],
                    edges=tuple(float(e) for e in col.get("edges", ())),
                    categories=tuple(col.get("categories", ())),
                )
                for col in data["columns"]
            )
            return cls(
                columns,
                sketch_k=int(data.get("sketch_k", 200)),
                unseen_capacity=int(data.get("unseen_capacity", 64)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"malformed profile spec: {exc!r}") from exc


class Profile:
    """A mergeable profile of the columns of a :class:`ProfileSpec`."""

    __slots__ = ("_columns", "_count", "_spec")

    def __init__(self, spec: ProfileSpec) -> None:
        if not isinstance(spec, ProfileSpec):
            raise InvalidInputError("a Profile needs a ProfileSpec")
        self._spec = spec
        self._count = 0
        self._columns: dict[str, ColumnProfile] = {
            c.name: _empty_column(c, spec) for c in spec.columns
        }

    @classmethod
    def empty(cls, spec: ProfileSpec) -> Profile:
        return cls(spec)

    @property
    def spec(self) -> ProfileSpec:
        return self._spec

    @property
    def count(self) -> int:
        """Rows seen."""
        return self._count

    @property
    def columns(self) -> Mapping[str, ColumnProfile]:
        return MappingProxyType(self._columns)

    def update(self, frame: pd.DataFrame) -> Profile:
        """Add the rows of ``frame`` (extra columns ignored) and return ``self``.

        Every spec column must be present (:class:`SchemaError` names the absent ones).
        The update is all-or-nothing: on error the profile is unchanged.
        """
        _check_frame(frame)
        absent = [name for name in self._spec.names if name not in frame.columns]
        if absent:
            raise SchemaError(f"columns missing from the frame: {absent}")
        batch = Profile(self._spec)
        for col in self._spec.columns:
            series = frame[col.name]
            if isinstance(series, pd.DataFrame):
                raise SchemaError(f"column {col.name!r} appears more than once in the frame")
            target = batch._columns[col.name]
            if isinstance(target, NumericColumnProfile):
                target.update(numeric_values(col.name, series))
            else:
                target.update(series)
        batch._count = len(frame)
        if self._count == 0:
            self._columns = batch._columns
            self._count = batch._count
        else:
            self._absorb(batch)
        return self

    def merge(self, other: Profile) -> Profile:
        """A new profile of both inputs' rows; neither input changes."""
        if not isinstance(other, Profile):
            raise InvalidInputError(f"cannot merge a Profile with {type(other).__name__}")
        if other._spec != self._spec:
            raise InvalidInputError("cannot merge profiles built from different specs")
        result = self.copy()
        result._absorb(other)
        return result

    def copy(self) -> Profile:
        clone = Profile.__new__(Profile)
        clone._spec = self._spec
        clone._count = self._count
        clone._columns = {name: col.copy() for name, col in self._columns.items()}
        return clone

    def _absorb(self, other: Profile) -> None:
        for name, col in self._columns.items():
            _merge_column(col, other._columns[name])
        self._count += other._count

    def summary(self) -> dict[str, dict[str, Any]]:
        """JSON-safe statistics per column; undefined values are ``None``."""
        return {name: col.summary() for name, col in self._columns.items()}

    def __eq__(self, other: object) -> bool:
        """Identical state: spec, counters, bit-equal moments, same sketch contents.

        A merge of shards is *not* ``==`` to profiling their union in general, because
        floating-point moments differ in the last bits and sketches compact differently;
        the monoid law holds to the tolerances in the module docstring.
        """
        if not isinstance(other, Profile):
            return NotImplemented
        return (
            self._spec == other._spec
            and self._count == other._count
            and all(_same_column(c, other._columns[n]) for n, c in self._columns.items())
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # KLL sketches do not pickle; the byte format does (Ray, multiprocessing).
        return (Profile.from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        return f"Profile(columns={len(self._columns)}, count={self._count})"

    # -- codec -------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        blobs: list[bytes] = []
        meta: list[dict[str, Any]] = []
        for col in self._columns.values():
            if isinstance(col, NumericColumnProfile):
                ints, moments, hist = col.state_arrays()
                sketch = col.sketch.serialize()
                blobs += [_i8(ints), moments.astype("<f8").tobytes(), _i8(hist), sketch]
                meta.append({"sketch": len(sketch)})
            else:
                ints, counts = col.state_arrays()
                blobs += [_i8(ints), _i8(counts)]
                meta.append({"unseen": col.unseen.to_dict()})
        header = json.dumps(
            {"spec": self._spec.to_dict(), "count": self._count, "columns": meta},
            separators=(",", ":"),
            allow_nan=False,
        ).encode()
        body = b"".join([struct.pack("<I", len(header)), header, *blobs])
        return _MAGIC + zlib.compress(body, 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Decode :meth:`to_bytes` output; :class:`InvalidInputError` on anything else."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError("profile bytes must be bytes")
        data = bytes(data)
        if not data.startswith(_MAGIC):
            raise InvalidInputError("not a livemodel profile (bad magic or format version)")
        try:
            inflater = zlib.decompressobj()
            body = inflater.decompress(data[len(_MAGIC) :], _MAX_DECODED_BYTES)
            if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
                raise InvalidInputError("profile bytes are truncated or too large")
            return _decode(body)
        except InvalidInputError:
            raise
        except (zlib.error, ValueError, TypeError, KeyError, IndexError, struct.error) as exc:
            raise InvalidInputError(f"corrupt profile bytes: {exc!r}") from exc


def _decode(body: bytes) -> Profile:
    (header_len,) = struct.unpack_from("<I", body, 0)
    header = json.loads(body[4 : 4 + header_len].decode())
    profile = Profile(ProfileSpec.from_dict(header["spec"]))
    count = header["count"]
    if not isinstance(count, int) or count < 0:
        raise InvalidInputError("profile row count must be a non-negative integer")
    profile._count = count
    reader = _Reader(body, 4 + header_len)
    metas = header["columns"]
    if not isinstance(metas, list) or len(metas) != len(profile._columns):
        raise InvalidInputError("profile header does not match its spec")
    for col, meta in zip(profile._columns.values(), metas, strict=True):
        if isinstance(col, NumericColumnProfile):
            ints, moments = reader.i8(3), reader.f8(5)
            hist = reader.i8(col.histogram.size)
            col.sketch = load_kll(reader.raw(int(meta["sketch"])))
            if col.sketch.k != profile.spec.sketch_k:
                raise InvalidInputError("sketch accuracy does not match the spec")
            col.set_state(ints, moments, hist)
        else:
            ints, counts = reader.i8(3), reader.i8(len(col.categories))
            unseen = meta["unseen"]
            if not isinstance(unseen, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in unseen.values()
            ):
                raise InvalidInputError("unseen-value counts must be integers")
            col.set_state(ints, counts, FrequentValues(profile.spec.unseen_capacity, unseen))
        if col.count != count:
            raise InvalidInputError("column row count differs from the profile's")
    if reader.offset != len(body):
        raise InvalidInputError("trailing bytes after the profile")
    return profile


class _Reader:
    def __init__(self, body: bytes, offset: int) -> None:
        self.body, self.offset = body, offset

    def raw(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.body):
            raise InvalidInputError("profile bytes are truncated")
        chunk = self.body[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def i8(self, n: int) -> Any:
        return np.frombuffer(self.raw(8 * n), dtype="<i8").astype(np.int64)

    def f8(self, n: int) -> Any:
        return np.frombuffer(self.raw(8 * n), dtype="<f8").astype(np.float64)


def _i8(values: Any) -> bytes:
    return np.asarray(values).astype("<i8").tobytes()


def _check_frame(frame: object) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"expected a pandas DataFrame, got {type(frame).__name__}")


def _is_numeric_dtype(dtype: Any) -> bool:
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        return False
    return bool(
        pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
    )


def _numeric_spec(name: str, series: pd.Series[Any], bins: int) -> ColumnSpec:
    values = numeric_values(name, series)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return ColumnSpec(name, "numeric")
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    return ColumnSpec(name, "numeric", edges=tuple(float(e) for e in edges))


def _categorical_spec(name: str, series: pd.Series[Any], max_categories: int) -> ColumnSpec:
    codes, keys = factorize_categories(series)
    counts = np.bincount(codes[codes >= 0], minlength=len(keys))
    chosen: dict[CategoryValue, None] = {}
    for i in np.argsort(-counts, kind="stable").tolist():
        if len(chosen) == max_categories:
            break
        chosen.setdefault(keys[i], None)  # values equal as dict keys (1 and True) collapse
    return ColumnSpec(name, "categorical", categories=tuple(chosen))


def _empty_column(col: ColumnSpec, spec: ProfileSpec) -> ColumnProfile:
    if col.kind == "numeric":
        return NumericColumnProfile(col.edges, spec.sketch_k)
    return CategoricalColumnProfile(col.categories, spec.unseen_capacity)


def _merge_column(mine: ColumnProfile, theirs: ColumnProfile) -> None:
    if isinstance(mine, NumericColumnProfile):
        if not isinstance(theirs, NumericColumnProfile):
            raise InvalidInputError("cannot merge a numeric column with a categorical one")
        mine.merge_from(theirs)
        return
    if not isinstance(theirs, CategoricalColumnProfile):
        raise InvalidInputError("cannot merge a categorical column with a numeric one")
    mine.merge_from(theirs)


def _same_column(a: ColumnProfile, b: ColumnProfile) -> bool:
    if isinstance(a, NumericColumnProfile) and isinstance(b, NumericColumnProfile):
        sa, sb = a.state_arrays(), b.state_arrays()
        return (
            np.array_equal(sa[0], sb[0])
            and np.array_equal(sa[1], sb[1], equal_nan=True)
            and np.array_equal(sa[2], sb[2])
            and kll_equal(a.sketch, b.sketch)
        )
    if isinstance(a, CategoricalColumnProfile) and isinstance(b, CategoricalColumnProfile):
        return (
            all(
                np.array_equal(x, y)
                for x, y in zip(a.state_arrays(), b.state_arrays(), strict=True)
            )
            and a.unseen == b.unseen
        )
    return False
