"""Tests for livemodel.stats.detectors: River wrappers, tuned defaults, bad input, no River."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift as river_drift

from livemodel.errors import ConfigError, InvalidInputError
from livemodel.stats.detectors import (
    ADWIN,
    KSWIN,
    PageHinkley,
    StreamDetector,
    detect_on_stream,
    detector_from_dict,
)

CHANGE = 3000


def shifted_errors(seed: int, before: float, after: float, n_after: int = 1000) -> np.ndarray:
    """0/1 error indicators whose rate jumps from ``before`` to ``after`` at CHANGE."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(CHANGE) < before, rng.random(n_after) < after].astype(float)


def shifted_losses(seed: int, n_after: int = 1000) -> np.ndarray:
    """Per-request losses N(1, 1) whose mean moves up by one sigma at CHANGE."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(1.0, 1.0, CHANGE), rng.normal(2.0, 1.0, n_after)]


def delay(positions: list[int]) -> int | None:
    after = [p for p in positions if p >= CHANGE]
    return after[0] - CHANGE if after else None


# -- detection of a clean mean shift --------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("make", "max_delay"),
    [(PageHinkley, 120), (ADWIN, 100)],
    ids=["page_hinkley", "adwin"],
)
def test_one_sigma_shift_in_a_loss_stream_is_found_quickly(
    make: type[StreamDetector], max_delay: int, seed: int
) -> None:
    """Measured delays (seeds 1-3): Page-Hinkley 70-87 samples, ADWIN 39-71."""
    positions = detect_on_stream(shifted_losses(seed), make())
    assert [p for p in positions if p < CHANGE] == []
    found = delay(positions)
    assert found is not None and found <= max_delay


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("make", "max_delay"),
    [(PageHinkley, 300), (ADWIN, 100)],
    ids=["page_hinkley", "adwin"],
)
def test_error_rate_jump_is_found(make: type[StreamDetector], max_delay: int, seed: int) -> None:
    """0/1 errors 5% -> 50% (failing half the requests): Page-Hinkley 215-238 samples."""
    positions = detect_on_stream(shifted_errors(seed, 0.05, 0.5), make())
    assert [p for p in positions if p < CHANGE] == []
    found = delay(positions)
    assert found is not None and found <= max_delay


def test_kswin_finds_a_one_sigma_shift_within_150_samples() -> None:
    rng = np.random.default_rng(4)
    values = np.r_[rng.normal(1.0, 1.0, 1000), rng.normal(2.0, 1.0, 300)]
    positions = detect_on_stream(values, KSWIN())
    assert positions and positions[0] >= 1000 and positions[0] - 1000 <= 150


# -- no false alarm on long stationary streams ------------------------------------------------
def test_page_hinkley_defaults_are_quiet_where_rivers_false_alarm() -> None:
    rng = np.random.default_rng(42)
    losses = rng.normal(1.0, 1.0, 100_000)
    errors = (rng.random(100_000) < 0.05).astype(float)
    assert detect_on_stream(losses, PageHinkley()) == []
    assert detect_on_stream(errors, PageHinkley()) == []
    # The reason for different defaults: River's own raise dozens of alarms here.
    river_defaults = river_drift.PageHinkley()
    alarms = 0
    for x in losses.tolist():
        river_defaults.update(x)
        alarms += river_defaults.drift_detected
    assert alarms > 10


def test_adwin_is_quiet_on_a_long_stationary_stream() -> None:
    rng = np.random.default_rng(43)
    assert detect_on_stream(rng.normal(1.0, 1.0, 100_000), ADWIN()) == []
    assert detect_on_stream((rng.random(100_000) < 0.05).astype(float), ADWIN()) == []


def test_kswin_is_quiet_on_a_stationary_stream() -> None:
    """KSWIN runs a KS test per sample (~1 ms), so the stream is 2,500 long here."""
    rng = np.random.default_rng(44)
    assert detect_on_stream(rng.normal(1.0, 1.0, 2500), KSWIN()) == []


# -- the wrapper is thin and keeps positions ----------------------------------------------------
@pytest.mark.parametrize(
    ("ours", "theirs", "segment"),
    [
        (
            PageHinkley(),
            lambda: river_drift.PageHinkley(delta=0.1, threshold=75.0, alpha=1.0),
            3000,
        ),
        (ADWIN(delta=0.01), lambda: river_drift.ADWIN(delta=0.01), 3000),
        (
            KSWIN(),
            lambda: river_drift.KSWIN(alpha=1e-6, window_size=300, stat_size=100, seed=0),
            500,
        ),
    ],
    ids=["page_hinkley", "adwin", "kswin"],
)
def test_detections_are_rivers(ours: StreamDetector, theirs: Any, segment: int) -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(mean, 1.0, segment) for mean in (1.0, 2.0, 0.5)])
    raw = theirs()
    expected = []
    for i, x in enumerate(values.tolist()):
        raw.update(x)
        if raw.drift_detected:
            expected.append(i)
    assert detect_on_stream(values, ours) == expected
    assert ours.detections == expected and ours.n_detections == len(expected) >= 2
    assert ours.n_seen == len(values)


def test_positions_continue_across_calls_and_update_returns_self() -> None:
    detector = PageHinkley()
    first = detect_on_stream([0.0] * 500, detector)
    second = detect_on_stream([1.0] * 500, detector)
    assert first == [] and second == [91]
    assert detector.detections == [591] and detector.n_seen == 1000
    assert detector.update(1.0) is detector and not detector.drift_detected
    assert detector.update(True).n_seen == 1002


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6) | st.integers(-1000, 1000), max_size=300))
def test_positions_are_valid_indices_for_any_finite_stream(values: list[float]) -> None:
    for detector in (PageHinkley(), ADWIN()):
        positions = detect_on_stream(values, detector)
        assert positions == sorted(set(positions))
        assert all(0 <= p < len(values) for p in positions)
        assert detector.n_detections == len(positions) and detector.n_seen == len(values)


# -- parameters --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "detector", [PageHinkley(threshold=20.0, mode="up"), ADWIN(clock=8), KSWIN(seed=None)]
)
def test_parameters_round_trip_through_json(detector: StreamDetector) -> None:
    detector.update(1.0)
    rebuilt = detector_from_dict(json.loads(json.dumps(detector.to_dict())))
    assert type(rebuilt) is type(detector)
    assert rebuilt.get_params() == detector.get_params()
    assert rebuilt.n_seen == 0  # parameters only, not state
    assert detector.clone().get_params() == detector.get_params()
    assert type(detector).__name__ in repr(detector)


@pytest.mark.parametrize(
    "data",
    [{}, {"detector": "cusum", "params": {}}, {"detector": "adwin"},
     {"detector": "adwin", "params": {"bogus": 1}}, {"detector": "adwin", "params": None},
     {"detector": "adwin", "params": {"delta": 2.0}}],
)  # fmt: skip
def test_malformed_descriptions_are_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        detector_from_dict(data)


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [(PageHinkley, {"delta": -0.1}), (PageHinkley, {"threshold": 0.0}),
     (PageHinkley, {"forgetting": 0.0}), (PageHinkley, {"forgetting": 1.5}),
     (PageHinkley, {"mode": "sideways"}), (PageHinkley, {"min_instances": 0}),
     (PageHinkley, {"threshold": math.nan}), (PageHinkley, {"delta": True}),
     (ADWIN, {"delta": 0.0}), (ADWIN, {"delta": 1.0}), (ADWIN, {"clock": 0}),
     (ADWIN, {"grace_period": 2.5}), (KSWIN, {"alpha": 0.0}), (KSWIN, {"alpha": "0.1"}),
     (KSWIN, {"stat_size": 200}), (KSWIN, {"window_size": 1}), (KSWIN, {"seed": -1})],
)  # fmt: skip
def test_bad_parameters_are_rejected(make: type[StreamDetector], kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        make(**kwargs)


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1.0", None, [1.0], 1j])
def test_bad_values_are_rejected_and_leave_the_detector_untouched(bad: Any) -> None:
    for detector in (PageHinkley(), ADWIN(), KSWIN()):
        detector.update(0.5)
        with pytest.raises(InvalidInputError):
            detector.update(bad)
        with pytest.raises(InvalidInputError):
            detect_on_stream([0.1, 0.2, bad], detector)
        assert detector.n_seen == 1


@pytest.mark.parametrize("values", [[[1.0, 2.0]], "abc", None, 5, [np.nan]])
def test_malformed_streams_are_rejected(values: Any) -> None:
    with pytest.raises(InvalidInputError):
        detect_on_stream(values, PageHinkley())


def test_detect_on_stream_needs_a_detector() -> None:
    with pytest.raises(InvalidInputError):
        detect_on_stream([1.0], river_drift.ADWIN())  # type: ignore[arg-type]


def test_empty_stream_has_no_detections() -> None:
    detector = ADWIN()
    assert detect_on_stream([], detector) == [] and detector.n_seen == 0
    assert not detector.drift_detected


# -- River is optional ----------------------------------------------------------------------
@pytest.mark.parametrize("make", [PageHinkley, ADWIN, KSWIN])
def test_missing_river_gives_a_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, make: type[StreamDetector]
) -> None:
    monkeypatch.setitem(sys.modules, "river", None)
    monkeypatch.setitem(sys.modules, "river.drift", None)
    with pytest.raises(ConfigError, match=r"pip install livemodel\[stream\]"):
        make()


def test_module_imports_without_river() -> None:
    code = (
        "import sys; sys.modules['river'] = None\n"
        "import livemodel.stats.detectors as d\n"
        "try:\n    d.ADWIN()\nexcept d.ConfigError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install livemodel[stream]" in out.stdout
