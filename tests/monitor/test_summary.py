"""Window summaries: chunked profiling equals one-shot profiling, samples merge exactly,
labels and types are aligned the same way in every chunk."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livemodel.errors import InvalidInputError
from livemodel.monitor.reference import MonitorReference
from livemodel.monitor.results import ALL
from livemodel.monitor.suite import segment_plan
from livemodel.monitor.summary import (
    ChunkPlan,
    RowSample,
    SegmentPlan,
    WindowSummary,
    align_labels,
    merge_all,
    row_keys,
    summarize_chunk,
)
from livemodel.stats.drift import compare_profiles


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    cat = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    p = 1 / (1 + np.exp(-x))
    p = np.where(np.isnan(p), 0.5, p)
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame(
        {"x": x, "z": rng.exponential(2.0, n), "cat": cat, "y": y,
         "pred": (p >= 0.5).astype(int), "p1": p}
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> MonitorReference:
    return MonitorReference.from_frame(
        frame(3000, 0), target="y", prediction="pred", probability="p1"
    )


def canonical(df: pd.DataFrame, ref: MonitorReference) -> pd.DataFrame:
    from livemodel.monitor.reference import canonical_frame

    return canonical_frame(df, target="y", prediction="pred", probability="p1", classes=ref.classes)


def chunked(plan: ChunkPlan, data: pd.DataFrame, cuts: list[int]) -> dict[str, WindowSummary]:
    keys = row_keys(np.arange(len(data)))
    bounds = [0, *sorted(set(cuts)), len(data)]
    out: dict[str, WindowSummary] = {ALL: WindowSummary.empty(plan)}
    for a, b in itertools.pairwise(bounds):
        out = merge_all(out, summarize_chunk(plan, data.iloc[a:b], keys[a:b]))
    return out


def assert_same(a: WindowSummary, b: WindowSummary) -> None:
    assert (a.n_rows, a.n_labelled, a.label_errors) == (b.n_rows, b.n_labelled, b.label_errors)
    assert dict(a.type_errors) == dict(b.type_errors)
    for name, col in a.features.columns.items():
        other = b.features.columns[name]
        assert (col.count, col.missing, col.n) == (other.count, other.missing, other.n)
        if hasattr(col, "histogram"):
            assert np.array_equal(col.histogram, other.histogram)  # type: ignore[union-attr]
            assert col.mean == pytest.approx(other.mean, rel=1e-9)  # type: ignore[union-attr]
            assert col.std == pytest.approx(other.std, rel=1e-9)  # type: ignore[union-attr]
        else:
            assert np.array_equal(col.counts, other.counts)  # type: ignore[union-attr]
    pd.testing.assert_frame_equal(a.rows.rows(), b.rows.rows())
    pd.testing.assert_frame_equal(a.labelled.rows(), b.labelled.rows())


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.integers(0, 1500), max_size=6), capacity=st.sampled_from([50, 400, 5000]))
def test_chunked_summary_equals_one_shot(
    reference: MonitorReference, cuts: list[int], capacity: int
) -> None:
    data = canonical(frame(1500, 1, shift=0.3), reference)
    seg = segment_plan(reference, "cat", max_segments=2)
    plan = ChunkPlan.of(reference, [seg], sample_rows=capacity)
    once = summarize_chunk(plan, data, row_keys(np.arange(len(data))))
    pieces = chunked(plan, data, cuts)
    assert set(once) == set(pieces) == {ALL, "cat=a", "cat=b", "cat=(other)"}
    for key in once:
        assert_same(once[key], pieces[key])
    # the drift numbers of both agree: exactly for histogram and category methods, to the
    # KLL sketch's randomised error (documented as about 0.05) for KS and Wasserstein
    a = compare_profiles(reference.profile, once[ALL].features)
    b = compare_profiles(reference.profile, pieces[ALL].features)
    for ra, rb in zip(a.results, b.results, strict=True):
        exact = ra.method in ("psi", "jensen_shannon", "chi2")
        assert ra.statistic == pytest.approx(
            rb.statistic, rel=1e-9 if exact else 0, abs=0 if exact else 0.06
        )
    assert a.drifted_columns == b.drifted_columns


def test_segments_partition_the_window(reference: MonitorReference) -> None:
    data = canonical(frame(2000, 2), reference)
    plan = ChunkPlan.of(reference, [SegmentPlan("cat", ("a", "b"))])
    out = summarize_chunk(plan, data.assign(cat=data["cat"].where(data.index % 10 != 0)),
                          row_keys(np.arange(len(data))))  # fmt: skip
    parts = [k for k in out if k != ALL]
    assert sorted(parts) == ["cat=(missing)", "cat=(other)", "cat=a", "cat=b"]
    assert sum(out[k].n_rows for k in parts) == out[ALL].n_rows == 2000


@given(
    keys=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=60, unique=True),
    split=st.integers(0, 60),
    capacity=st.integers(1, 20),
)
def test_bottom_k_sample_is_order_free(keys: list[int], split: int, capacity: int) -> None:
    arr = np.array(keys, dtype=np.uint64)
    rows = pd.DataFrame({"v": np.arange(len(keys))})
    whole = RowSample.of(rows, arr, capacity)
    left = RowSample.of(rows.iloc[:split], arr[:split], capacity)
    right = RowSample.of(rows.iloc[split:], arr[split:], capacity)
    for merged in (left.merge(right), right.merge(left)):
        assert merged.rows()["v"].tolist() == whole.rows()["v"].tolist()
    assert sorted(whole.rows()["v"].tolist()) == sorted(
        np.argsort(arr, kind="stable")[:capacity].tolist()
    )


def test_row_keys_are_stable_and_spread() -> None:
    ids = np.array([f"id{i}" for i in range(1000)], dtype=object)
    assert np.array_equal(row_keys(ids), row_keys(ids.copy()))
    assert len(set(row_keys(ids).tolist())) == 1000


def test_labels_of_the_wrong_type_are_counted_not_crashed(reference: MonitorReference) -> None:
    plan = ChunkPlan.of(reference)
    labels = pd.Series([0, 1, "1", "0", "yes", None, 1.0, [1]], dtype=object)
    aligned, bad = align_labels(labels, plan)
    assert aligned.tolist() == [0, 1, 1, 0, None, None, 1, None]
    assert bad.tolist() == [False, False, False, False, True, False, False, True]


def test_wrong_typed_cells_are_type_errors(reference: MonitorReference) -> None:
    data = canonical(frame(10, 3), reference)
    data["x"] = data["x"].astype(object)
    data.loc[0:2, "x"] = "oops"
    data["y"] = data["y"].astype(object)
    data.loc[3, "y"] = "maybe"
    out = summarize_chunk(ChunkPlan.of(reference), data, row_keys(np.arange(10)))[ALL]
    assert out.type_errors == {"x": 3}
    assert out.label_errors == 1
    assert out.features.columns["x"].missing >= 3  # the bad cells read as missing


def test_absent_and_unexpected_columns(reference: MonitorReference) -> None:
    data = canonical(frame(20, 4), reference).drop(columns=["z"]).assign(extra=1)
    out = summarize_chunk(ChunkPlan.of(reference), data, row_keys(np.arange(20)))[ALL]
    assert out.absent_rows["z"] == 20
    assert out.features.columns["z"].missing == 20
    assert out.unexpected == frozenset({"extra"})


def test_bad_chunks_are_invalid_input(reference: MonitorReference) -> None:
    plan = ChunkPlan.of(reference)
    with pytest.raises(InvalidInputError):
        summarize_chunk(plan, [1, 2], row_keys(np.arange(2)))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        summarize_chunk(plan, frame(5, 0), row_keys(np.arange(4)))
    with pytest.raises(InvalidInputError):
        ChunkPlan.of(reference, sample_rows=0)


def test_empty_chunk_and_pickling(reference: MonitorReference) -> None:
    import pickle

    plan = ChunkPlan.of(reference)
    empty = summarize_chunk(
        plan, canonical(frame(10, 0), reference).iloc[:0], row_keys(np.arange(0))
    )
    assert empty[ALL].n_rows == 0
    # a plan and a summary cross process boundaries (Ray, multiprocessing) intact
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan
    one = summarize_chunk(plan, canonical(frame(50, 5), reference), row_keys(np.arange(50)))[ALL]
    assert_same(pickle.loads(pickle.dumps(one)), one)


def test_a_regression_label_that_is_not_a_number_is_a_label_error() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    reference = MonitorReference.from_frame(ref, target="y")
    window = pd.DataFrame(
        {"x": [0.1, 0.2, 0.3, 0.4], "y": pd.Series(["1.5", "oops", None, "inf"], dtype=object)}
    )
    out = summarize_chunk(ChunkPlan.of(reference), window, row_keys(np.arange(4)))[ALL]
    assert out.label_errors == 2  # "oops" and an infinite label
    assert out.n_labelled == 1
    assert out.type_errors == {}


def test_samples_stay_bounded_however_many_rows(reference: MonitorReference) -> None:
    plan = ChunkPlan.of(reference, sample_rows=300)
    out: dict[str, WindowSummary] = {ALL: WindowSummary.empty(plan)}
    for i in range(8):
        chunk = canonical(frame(5000, 10 + i), reference)
        out = merge_all(out, summarize_chunk(plan, chunk, row_keys(np.arange(5000) + 5000 * i)))
    assert out[ALL].n_rows == 40_000
    assert len(out[ALL].rows.rows()) == 300
    assert len(out[ALL].labelled.frame) == 300
