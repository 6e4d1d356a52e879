"""Profiles: spec inference, statistics against numpy/pandas, the monoid law, the codec."""

from __future__ import annotations

import json
import pickle
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.stats.profile import (
    CategoricalColumnProfile,
    ColumnSpec,
    NumericColumnProfile,
    Profile,
    ProfileSpec,
)


def numeric(profile: Profile, name: str) -> NumericColumnProfile:
    col = profile.columns[name]
    assert isinstance(col, NumericColumnProfile)
    return col


def categorical(profile: Profile, name: str) -> CategoricalColumnProfile:
    col = profile.columns[name]
    assert isinstance(col, CategoricalColumnProfile)
    return col


def expected_histogram(edges: np.ndarray, x: np.ndarray) -> list[int]:
    """Closed form: underflow, [e_i, e_i+1) with the last bin closed, overflow."""
    x = x[np.isfinite(x)]
    if len(edges) == 1:
        return [int((x < edges[0]).sum()), int((x == edges[0]).sum()), int((x > edges[0]).sum())]
    counts = [int((x < edges[0]).sum())]
    for i in range(len(edges) - 1):
        upper = x <= edges[i + 1] if i == len(edges) - 2 else x < edges[i + 1]
        counts.append(int(((x >= edges[i]) & upper).sum()))
    counts.append(int((x > edges[-1]).sum()))
    return counts


# -- spec inference --------------------------------------------------------------------
def test_spec_infers_kinds_from_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.5, np.nan, 2.0],
            "b": [True, False, True],
            "o": pd.Series(["a", "b", None], dtype=object),
            "s": pd.Series(["a", "b", "a"], dtype="str"),
            "c": pd.Categorical(["x", "y", "x"]),
            "t": pd.to_datetime(pd.Series(["2024-01-01", "2024-01-02", None])),
            "tz": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]).tz_localize("UTC"),
            "d": pd.to_timedelta([1, 2, 3], unit="s"),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "nb": pd.array([True, None, False], dtype="boolean"),
        }
    )
    spec = ProfileSpec.from_reference(frame)
    kinds = {c.name: c.kind for c in spec.columns}
    assert kinds == {
        "i": "numeric", "f": "numeric", "b": "categorical", "o": "categorical",
        "s": "categorical", "c": "categorical", "t": "numeric", "tz": "numeric",
        "d": "numeric", "n": "numeric", "nb": "categorical",
    }  # fmt: skip
    assert spec.names == tuple(frame.columns)


def test_forced_categorical_and_top_categories() -> None:
    frame = pd.DataFrame({"zip": [1, 1, 1, 2, 2, 3], "x": [1.0] * 6})
    spec = ProfileSpec.from_reference(frame, categorical=["zip"], max_categories=2)
    col = spec.columns[0]
    assert col.kind == "categorical" and col.categories == (1, 2)


def test_numeric_edges_are_reference_quantiles() -> None:
    x = np.random.default_rng(1).normal(size=1001)
    spec = ProfileSpec.from_reference(pd.DataFrame({"x": x}), bins=10)
    np.testing.assert_array_equal(spec.columns[0].edges, np.quantile(x, np.linspace(0, 1, 11)))


def test_edges_deduplicated_constant_and_all_missing() -> None:
    frame = pd.DataFrame(
        {"const": [3.0] * 10, "few": [0, 0, 0, 0, 0, 0, 0, 0, 1, 1], "null": [np.nan] * 10}
    )
    spec = ProfileSpec.from_reference(frame, bins=4)
    edges = {c.name: c.edges for c in spec.columns}
    assert edges == {"const": (3.0,), "few": (0.0, 1.0), "null": ()}


def test_spec_dict_round_trip_is_json_safe() -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5, 3.5], "c": ["a", "b", "a"], "k": [True, False, True]})
    spec = ProfileSpec.from_reference(frame)
    text = json.dumps(spec.to_dict(), allow_nan=False)
    assert ProfileSpec.from_dict(json.loads(text)) == spec


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"columns": "nope"},
        {"columns": [{"name": "x"}]},
        {"columns": [{"name": "x", "kind": "weird"}]},
        {"columns": [{"name": "x", "kind": "numeric", "edges": [2.0, 1.0]}]},
        {"columns": [{"name": "x", "kind": "numeric", "edges": ["nan"]}]},
        {"columns": [{"name": 3, "kind": "numeric"}]},
        {"columns": [{"name": "c", "kind": "categorical", "categories": [[1]]}]},
        {"columns": [{"name": "c", "kind": "categorical", "categories": ["a", "a"]}]},
        {"columns": [{"name": "x", "kind": "numeric"}] * 2},
        {"columns": [], "sketch_k": 2},
        {"columns": [], "unseen_capacity": 0},
    ],
)
def test_malformed_spec_dict(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        ProfileSpec.from_dict(data)


def test_from_reference_rejects_bad_arguments() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(InvalidInputError):
        ProfileSpec.from_reference([[1.0]])  # type: ignore[arg-type]
    bad: list[dict[str, Any]] = [
        {"bins": 0},
        {"bins": True},
        {"max_categories": 0},
        {"categorical": "x"},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidInputError):
            ProfileSpec.from_reference(frame, **kwargs)
    with pytest.raises(SchemaError, match="nope"):
        ProfileSpec.from_reference(frame, categorical=["nope"])
    with pytest.raises(SchemaError):
        ProfileSpec.from_reference(pd.DataFrame({0: [1.0]}))
    with pytest.raises(SchemaError):
        ProfileSpec.from_reference(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]))


def test_empty_reference_gives_a_usable_spec() -> None:
    frame = pd.DataFrame({"x": pd.Series([], dtype=float), "c": pd.Series([], dtype=object)})
    spec = ProfileSpec.from_reference(frame)
    profile = Profile.empty(spec).update(pd.DataFrame({"x": [1.0], "c": ["a"]}))
    assert profile.count == 1 and categorical(profile, "c").other == 1


# -- update ----------------------------------------------------------------------------
@pytest.fixture
def mixed() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(5.0, 2.0, 5000)
    x[::17] = np.nan
    x[3] = np.inf
    x[4] = -np.inf
    cats = rng.choice(["a", "b", "c", "d"], 5000, p=[0.5, 0.3, 0.15, 0.05]).astype(object)
    cats[::11] = None
    return pd.DataFrame({"x": x, "c": cats})


def test_numeric_statistics_match_numpy(mixed: pd.DataFrame) -> None:
    spec = ProfileSpec.from_reference(mixed.iloc[:1000], bins=8)
    col = numeric(Profile.empty(spec).update(mixed), "x")
    x = mixed["x"].to_numpy()
    finite = x[np.isfinite(x)]
    assert (col.count, col.missing, col.infinite) == (5000, int(np.isnan(x).sum()), 2)
    assert col.n == finite.size
    assert (col.min, col.max) == (finite.min(), finite.max())
    assert col.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert col.std == pytest.approx(finite.std(ddof=1), rel=1e-12)
    assert col.sum == pytest.approx(finite.sum(), rel=1e-12)
    assert col.histogram.tolist() == expected_histogram(col.edges, x)
    eps = col.sketch.normalized_rank_error(False)
    for q in (0.01, 0.25, 0.5, 0.9):
        (value,) = col.quantiles(np.array([q]))  # type: ignore[misc]
        assert abs(np.mean(finite <= value) - q) <= eps + 1 / finite.size


def test_categorical_counts_match_pandas(mixed: pd.DataFrame) -> None:
    spec = ProfileSpec.from_reference(mixed, max_categories=2)
    col = categorical(Profile.empty(spec).update(mixed), "c")
    counts = mixed["c"].value_counts()
    assert col.categories == ("a", "b")
    assert col.counts.tolist() == [counts["a"], counts["b"]]
    assert col.other == counts["c"] + counts["d"]
    assert col.missing == mixed["c"].isna().sum()
    assert col.unseen.items() == [("c", counts["c"]), ("d", counts["d"])]


def test_category_values_match_across_dtypes() -> None:
    spec = ProfileSpec.from_reference(pd.DataFrame({"k": [1, 2, 2]}), categorical=["k"])
    cur = pd.DataFrame({"k": [1.0, 2.0, np.nan, 3.0]})  # ints arrive as floats with NaN
    col = categorical(Profile.empty(spec).update(cur), "k")
    assert col.counts.tolist() == [1, 1] and col.missing == 1 and col.other == 1


def test_hostile_category_values() -> None:
    spec = ProfileSpec.from_reference(pd.DataFrame({"c": ["[1]", "x"]}))
    values = pd.Series([[1], {"a": 1}, None, "x", float("inf"), pd.Timestamp(0)], dtype=object)
    col = categorical(Profile.empty(spec).update(pd.DataFrame({"c": values})), "c")
    assert col.counts.tolist() == [1, 1] and col.missing == 1 and col.other == 3
    json.dumps(Profile.empty(spec).update(pd.DataFrame({"c": values})).summary())


def test_bool_column_with_missing() -> None:
    spec = ProfileSpec.from_reference(pd.DataFrame({"b": [True, False, True]}))
    cur = pd.DataFrame({"b": pd.Series([True, None, False, True], dtype=object)})
    col = categorical(Profile.empty(spec).update(cur), "b")
    assert dict(zip(col.categories, col.counts.tolist(), strict=True)) == {True: 2, False: 1}


def test_unseen_values_are_bounded() -> None:
    spec = ProfileSpec.from_reference(pd.DataFrame({"id": ["a"]}), unseen_capacity=8)
    ids = pd.DataFrame({"id": [f"u{i}" for i in range(10_000)] + ["hot"] * 5000})
    col = categorical(Profile.empty(spec).update(ids), "id")
    assert len(col.unseen) <= 8
    assert col.other == 15_000
    # Misra-Gries: a value above total / (capacity + 1) survives, underestimated by at
    # most (total - kept) / (capacity + 1).
    kept = dict(col.unseen.items())
    assert 5000 - (15_000 - sum(kept.values())) / 9 <= kept["hot"] <= 5000


def test_datetimes_are_epoch_seconds() -> None:
    stamps = pd.to_datetime(pd.Series(["1970-01-01 00:00:10", None, "2024-05-01 12:00:00"]))
    spec = ProfileSpec.from_reference(pd.DataFrame({"t": stamps}))
    col = numeric(Profile.empty(spec).update(pd.DataFrame({"t": stamps})), "t")
    expected = (stamps.dropna() - pd.Timestamp(0)).dt.total_seconds()
    assert (col.min, col.max, col.missing) == (expected.min(), expected.max(), 1)
    aware = pd.DataFrame({"t": stamps.dt.tz_localize("Europe/Paris")})
    col = numeric(Profile.empty(spec).update(aware), "t")
    assert col.min == expected.min() - 3600  # 00:00:10 in Paris is 23:00:10 UTC


def test_update_requires_every_spec_column_and_is_atomic() -> None:
    spec = ProfileSpec.from_reference(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}))
    profile = Profile.empty(spec).update(pd.DataFrame({"x": [1.0], "y": [2.0], "extra": [0]}))
    before = profile.to_bytes()
    with pytest.raises(SchemaError, match="'y'"):
        profile.update(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(SchemaError, match="'y'"):
        profile.update(pd.DataFrame({"x": [1.0], "y": ["not a number"]}))
    with pytest.raises(SchemaError):
        profile.update(pd.DataFrame([[1.0, 2.0, 3.0]], columns=["x", "y", "y"]))
    with pytest.raises(InvalidInputError):
        profile.update({"x": [1.0], "y": [1.0]})  # type: ignore[arg-type]
    assert profile.to_bytes() == before


def test_numeric_column_accepts_numeric_objects_and_rejects_text() -> None:
    spec = ProfileSpec.from_reference(pd.DataFrame({"x": [1.0, 2.0]}))
    ok = pd.DataFrame({"x": pd.Series([1, 2.5, None], dtype=object)})
    assert numeric(Profile.empty(spec).update(ok), "x").n == 2
    for bad in (pd.Series(["a", "b"]), pd.Series(pd.Categorical(["a", "b"]))):
        with pytest.raises(SchemaError):
            Profile.empty(spec).update(pd.DataFrame({"x": bad}))


def test_huge_values_never_give_nan() -> None:
    frame = pd.DataFrame({"x": [1e308, 1e308, -1e308, 5e307]})
    spec = ProfileSpec.from_reference(frame)
    summary = Profile.empty(spec).update(frame).summary()["x"]
    json.dumps(summary, allow_nan=False)
    assert summary["max"] == 1e308 and summary["std"] is None
    same = pd.DataFrame({"x": [1e308, 1e308]})
    assert Profile.empty(spec).update(same).summary()["x"]["mean"] == 1e308


def test_summary_of_empty_and_all_missing_columns_is_json_safe() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "c": [None, None]})
    spec = ProfileSpec.from_reference(frame)
    for profile in (Profile.empty(spec), Profile.empty(spec).update(frame)):
        summary = profile.summary()
        json.dumps(summary, allow_nan=False)
        assert summary["x"]["mean"] is None and summary["x"]["quantiles"]["p50"] is None
    assert Profile.empty(spec).update(frame).summary()["x"]["missing_rate"] == 1.0
    assert Profile.empty(spec).summary()["c"]["missing_rate"] is None


def test_summary_values(mixed: pd.DataFrame) -> None:
    spec = ProfileSpec.from_reference(mixed)
    summary = Profile.empty(spec).update(mixed).summary()
    assert set(summary["x"]["quantiles"]) == {"p01", "p05", "p25", "p50", "p75", "p95", "p99"}
    assert summary["c"]["top"][0] == {"value": "a", "count": mixed["c"].eq("a").sum()}
    assert summary["c"]["n_other"] == 0


# -- monoid law --------------------------------------------------------------------------
POOL = ["a", "b", "c", "zz", "new1", "new2"]
SPEC = ProfileSpec.from_reference(
    pd.DataFrame(
        {"x": np.linspace(-3, 3, 50), "i": np.arange(50) % 7, "c": (["a", "b", "c"] * 17)[:50]}
    ),
    bins=6,
)
floats = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -3.0, 3.0]),
)
rows = st.lists(
    st.tuples(floats, st.integers(-3, 10), st.one_of(st.none(), st.sampled_from(POOL))),
    max_size=400,
)


def to_frame(data: list[tuple[float, int, str | None]]) -> pd.DataFrame:
    x, i, c = zip(*data, strict=True) if data else ((), (), ())
    return pd.DataFrame(
        {
            "x": np.array(x, dtype=float),
            "i": np.array(i, dtype=np.int64),
            "c": pd.Series(c, dtype=object),
        }
    )


def assert_profiles_agree(merged: Profile, whole: Profile, data: pd.DataFrame) -> None:
    assert merged.count == whole.count == len(data)
    for name in ("x", "i"):
        m, w = numeric(merged, name), numeric(whole, name)
        assert (m.count, m.missing, m.infinite, m.n) == (w.count, w.missing, w.infinite, w.n)
        assert (m.min, m.max) == (w.min, w.max)
        assert m.histogram.tolist() == w.histogram.tolist()
        for a, b in ((m.mean, w.mean), (m.variance, w.variance), (m.sum, w.sum)):
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9 * max(1.0, abs(b)))
        values = data[name].to_numpy(dtype=float)
        finite = np.sort(values[np.isfinite(values)])
        if finite.size:
            eps = m.sketch.normalized_rank_error(False) if m.sketch.is_estimation_mode() else 0
            ranks = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
            for q, v in zip(ranks, m.quantiles(ranks), strict=True):  # type: ignore[arg-type]
                below = np.searchsorted(finite, v, side="left") / finite.size
                upto = np.searchsorted(finite, v, side="right") / finite.size
                assert below - eps - 1e-12 <= q <= upto + eps + 1e-12
    mc, wc = categorical(merged, "c"), categorical(whole, "c")
    assert (mc.count, mc.missing, mc.other) == (wc.count, wc.missing, wc.other)
    assert mc.counts.tolist() == wc.counts.tolist()
    assert mc.unseen == wc.unseen  # exact while distinct unseen values fit the capacity


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, rows)
def test_merge_equals_profile_of_concatenation(a: list[Any], b: list[Any]) -> None:
    fa, fb = to_frame(a), to_frame(b)
    both = pd.concat([fa, fb], ignore_index=True)
    merged = Profile.empty(SPEC).update(fa).merge(Profile.empty(SPEC).update(fb))
    assert_profiles_agree(merged, Profile.empty(SPEC).update(both), both)
    # update in two steps is the same monoid operation
    stepwise = Profile.empty(SPEC).update(fa).update(fb)
    assert_profiles_agree(stepwise, Profile.empty(SPEC).update(both), both)


@settings(max_examples=40, deadline=None)
@given(rows)
def test_empty_is_identity_and_bytes_round_trip(a: list[Any]) -> None:
    profile = Profile.empty(SPEC).update(to_frame(a))
    assert Profile.from_bytes(profile.to_bytes()) == profile
    assert Profile.empty(SPEC).merge(profile) == profile
    assert profile.merge(Profile.empty(SPEC)) == profile
    assert pickle.loads(pickle.dumps(profile)) == profile


def test_merge_law_in_estimation_mode() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "x": rng.lognormal(size=60_000),
            "i": rng.poisson(3, 60_000),
            "c": rng.choice(POOL, 60_000),
        }
    )
    parts = [frame.iloc[i : i + 20_000] for i in range(0, 60_000, 20_000)]
    merged = Profile.empty(SPEC)
    for part in parts:
        merged = merged.merge(Profile.empty(SPEC).update(part))
    assert_profiles_agree(merged, Profile.empty(SPEC).update(frame), frame)


def test_merge_does_not_mutate_inputs() -> None:
    a = Profile.empty(SPEC).update(to_frame([(1.0, 1, "a")]))
    b = Profile.empty(SPEC).update(to_frame([(2.0, 2, "new1")]))
    a_bytes, b_bytes = a.to_bytes(), b.to_bytes()
    merged = a.merge(b)
    assert merged.count == 2 and a.to_bytes() == a_bytes and b.to_bytes() == b_bytes


def test_merge_rejects_other_specs() -> None:
    other = ProfileSpec.from_reference(pd.DataFrame({"x": [1.0, 5.0]}))
    with pytest.raises(InvalidInputError):
        Profile.empty(SPEC).merge(Profile.empty(other))
    with pytest.raises(InvalidInputError):
        Profile.empty(SPEC).merge("profile")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Profile.empty({"columns": []})  # type: ignore[arg-type]


# -- codec -------------------------------------------------------------------------------
def test_profile_of_25_columns_is_compact(make_drift_frame: Any) -> None:
    frame = make_drift_frame(100_000, 0)
    profile = Profile.empty(ProfileSpec.from_reference(frame)).update(frame)
    data = profile.to_bytes()
    # 20 KLL sketches at k=200 dominate: about 4 KB each at this size.
    assert len(data) < 128 * 1024
    assert Profile.from_bytes(data) == profile


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_from_bytes_rejects_garbage(data: bytes) -> None:
    with pytest.raises(InvalidInputError):
        Profile.from_bytes(data)
    with pytest.raises(InvalidInputError):
        Profile.from_bytes(b"LMPROF\x01" + data)


def test_from_bytes_rejects_corruption() -> None:
    profile = Profile.empty(SPEC).update(to_frame([(1.0, 1, "a"), (np.nan, 2, None)] * 300))
    good = profile.to_bytes()
    body = zlib.decompress(good[7:])
    header_len = int.from_bytes(body[:4], "little")
    header = json.loads(body[4 : 4 + header_len])
    candidates = [good[:-5], good[:20], good + b"x", "text", b"LMPROF\x02" + good[7:]]
    changes: list[Callable[[dict[str, Any]], None]] = [
        lambda h: h.update(count=-1),
        lambda h: h.update(count=h["count"] + 1),
        lambda h: h["columns"][0].update(sketch=10**9),
        lambda h: h["columns"][2].update(unseen={"a": "many"}),
        lambda h: h.update(columns=[]),
        lambda h: h["spec"].update(sketch_k=100),
    ]
    for change in changes:
        bad_header = json.loads(json.dumps(header))
        change(bad_header)
        encoded = json.dumps(bad_header).encode()
        forged = len(encoded).to_bytes(4, "little") + encoded + body[4 + header_len :]
        candidates.append(b"LMPROF\x01" + zlib.compress(forged))
    counters = bytearray(body)
    counters[4 + header_len : 4 + header_len + 8] = (-5).to_bytes(8, "little", signed=True)
    candidates.append(b"LMPROF\x01" + zlib.compress(bytes(counters)))
    candidates.append(b"LMPROF\x01" + zlib.compress(bytes(body[:-40])))
    for data in candidates:
        with pytest.raises(InvalidInputError):
            Profile.from_bytes(data)  # type: ignore[arg-type]


def test_from_bytes_refuses_decompression_bombs() -> None:
    packer = zlib.compressobj(1)
    chunk = b"\0" * (1024 * 1024)
    stream = b"".join(packer.compress(chunk) for _ in range(65)) + packer.flush()
    bomb = b"LMPROF\x01" + stream
    with pytest.raises(InvalidInputError):
        Profile.from_bytes(bomb)


def test_column_spec_validation() -> None:
    with pytest.raises(InvalidInputError):
        ColumnSpec("x", "numeric", edges=(1.0, 1.0))
    with pytest.raises(InvalidInputError):
        ColumnSpec("x", "numeric", categories=("a",))
    with pytest.raises(InvalidInputError):
        ColumnSpec("c", "categorical", edges=(1.0,))
    with pytest.raises(InvalidInputError):
        ColumnSpec("c", "categorical", categories=(1, True))  # equal as keys
