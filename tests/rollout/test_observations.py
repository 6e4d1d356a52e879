"""Guard values from a window of the log: latency counts requests, not rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from livemodel.rollout.observations import champion_p99, observe

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def window(requests: list[tuple[str, int, float | None, list[list[str]]]]) -> pa.Table:
    """One row per record: (arm, request number, latency, flags of each of its rows)."""
    rows: dict[str, list[object]] = {
        "prediction_id": [], "time": [], "latency_ms": [], "arm": [], "flags": []
    }  # fmt: skip
    for arm, number, latency, flags in requests:
        for i, f in enumerate(flags):
            rows["prediction_id"].append(f"{arm}-{number}-{i}")
            rows["time"].append(T0 + timedelta(milliseconds=number // 4))  # 4 per micro-batch
            rows["latency_ms"].append(latency)
            rows["arm"].append(arm)
            rows["flags"].append(f)
    return pa.table(rows)


def test_a_slow_request_of_25_rows_counts_once() -> None:
    requests = [("candidate", n, 30.0 if n == 0 else 10.0 + n / 100, [[]] * 25) for n in range(6)]
    requests += [("champion", 100 + n, 10.0 + n / 100, [[]] * 25) for n in range(18)]
    obs = observe(
        window(requests), shadow=False, proba_columns=(), confidence={}, latency_threshold_ms=20.0
    )
    cand, champ = obs.values["latency"]
    assert cand.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # 1 of 6 requests, not 25 of 150
    assert len(champ) == 18 and champ.sum() == 0
    assert obs.candidate_rows == 150  # steps still count rows


def test_errors_and_flags_stay_per_row() -> None:
    failed = [[]] * 24 + [["model_error"]]
    requests = [("candidate", 0, 12.0, failed), ("champion", 2, 10.0, [[], ["null:x"]])]
    obs = observe(
        window(requests), shadow=False, proba_columns=(), confidence={}, latency_threshold_ms=None
    )
    cand, champ = obs.values["errors"]
    assert cand.sum() == 1 and len(cand) == 25 and champ.tolist() == [0.0, 0.0]
    assert obs.values["flags"][1].tolist() == [0.0, 1.0]


def test_requests_of_one_micro_batch_share_a_time_but_not_a_latency() -> None:
    # Requests 0-3 share a time (one micro-batch) but each has its own latency.
    requests = [("candidate", n, 10.0 + n, [[]] * 3) for n in range(4)]
    obs = observe(
        window(requests), shadow=False, proba_columns=(), confidence={}, latency_threshold_ms=11.5
    )
    assert obs.values["latency"][0].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_champion_p99_is_over_requests() -> None:
    rng = np.random.default_rng(0)
    latencies = rng.uniform(5, 15, size=150)
    sizes = rng.integers(1, 40, size=150)
    requests = [
        ("champion", n, float(x), [[]] * int(k))
        for n, (x, k) in enumerate(zip(latencies, sizes, strict=True))
    ]
    assert champion_p99(window(requests)) == np.quantile(latencies, 0.99)
    assert champion_p99(window(requests[:99])) is None  # under 100 requests


def records(rows: list[tuple[str, str, list[str], str | None]]) -> pa.Table:
    """One row per record: (prediction id, arm, flags, label)."""
    return pa.table(
        {
            "prediction_id": [r[0] for r in rows],
            "time": [T0 + timedelta(milliseconds=i) for i in range(len(rows))],
            "latency_ms": [5.0 + i for i in range(len(rows))],
            "arm": [r[1] for r in rows],
            "flags": [r[2] for r in rows],
            "o.label": [r[3] for r in rows],
        }
    )


def test_an_input_both_versions_fail_is_left_out_of_both_canary_arms() -> None:
    bad = ["out_of_range:income", "model_error"]
    window = records(
        [
            ("a", "candidate", bad, None),  # both fail: the champion answered as fallback
            ("a", "fallback", bad, None),
            ("b", "champion", bad, None),  # both fail: the candidate was probed
            ("b", "probe", bad, None),
            ("c", "candidate", ["model_error"], None),  # the candidate alone fails
            ("c", "fallback", [], "1"),
            ("d", "champion", ["model_error"], None),  # the champion alone fails
            ("d", "probe", [], "1"),
            ("e", "candidate", [], "0"),
            ("f", "champion", [], "0"),
        ]
    )
    obs = observe(window, shadow=False, proba_columns=(), confidence={}, latency_threshold_ms=None)
    cand, champ = obs.values["errors"]
    assert sorted(cand.tolist()) == [0.0, 1.0] and sorted(champ.tolist()) == [0.0, 1.0]
    assert obs.values["flags"][0].tolist() == [1.0, 0.0, 0.0]  # flags still count every row
    assert obs.candidate_rows == 3


def test_shadow_compares_errors_and_labels_on_inputs_both_versions_saw() -> None:
    window = records(
        [
            ("a", "champion", ["model_error"], None),  # both fail: left out
            ("a", "shadow", ["model_error"], None),
            ("b", "champion", [], "1"),  # the candidate alone fails
            ("b", "shadow", ["model_error"], None),
            ("c", "champion", ["model_error"], None),  # the champion alone fails
            ("c", "shadow", [], "0"),
            ("d", "champion", [], "1"),  # agree
            ("d", "shadow", [], "1"),
            ("e", "champion", ["model_error"], None),  # its copy was dropped: not compared
        ]
    )
    obs = observe(window, shadow=True, proba_columns=(), confidence={}, latency_threshold_ms=None)
    cand, champ = obs.values["errors"]
    assert cand.tolist() == [1.0, 0.0, 0.0] and champ.tolist() == [0.0, 1.0, 0.0]
    assert obs.values["divergence"][0].tolist() == [0.0]  # only "d" was answered by both


def test_a_window_of_no_rows_observes_nothing() -> None:
    """A rollout with no traffic yet: the labelled window has its columns but no rows."""
    empty = pa.table(
        {
            "prediction_id": pa.array([], pa.string()),
            "arm": pa.array([], pa.string()),
            "flags": pa.array([], pa.list_(pa.string())),
            "o.label": pa.array([], pa.int64()),
            "label": pa.array([], pa.int64()),
        }
    )
    obs = observe(empty, shadow=False, proba_columns=(), confidence={}, latency_threshold_ms=None)
    cand, champ = obs.values["accuracy"]
    assert (cand.size, champ.size, obs.candidate_rows) == (0, 0, 0)
