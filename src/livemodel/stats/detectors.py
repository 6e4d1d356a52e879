"""Streaming concept-drift detectors: thin, typed wrappers over River's.

The algorithms are River's (``river.drift.PageHinkley``, ``ADWIN``, ``KSWIN``); this module
adds one small interface, input validation, the positions of detections, and a JSON-safe
description of the parameters (``to_dict`` / :func:`detector_from_dict`; the detector's
internal state is not persisted: a restarted detector starts afresh).

River is optional (``pip install livemodel[stream]``) and is imported only when a detector
is built, so the rest of livemodel works without it.

Defaults differ from River's where River's false-alarm on long stationary streams:

* ``PageHinkley``: River's ``alpha=0.9999`` forgetting factor makes the cumulative sum settle
  at ``-delta / (1 - alpha)`` with fluctuations (sd ``sigma / sqrt(2 (1 - alpha))``) larger than
  the threshold, so a unit-variance stream raises an alarm every ~1,500 samples. Here
  ``forgetting=1.0`` (the classic test), ``delta=0.1`` and ``threshold=75``: false alarms
  happen at a rate of about ``exp(-2 delta threshold / sigma**2)`` per excursion (none in
  4,000,000 simulated samples of unit variance; ``threshold=50`` still gave one in 100,000).
  A one-sigma mean shift is found in about 60-90 samples, a 0/1 error rate jumping from 5% to
  50% in about 220-240. ``delta`` and ``threshold`` are in the stream's units: they suit
  streams with variance up to 1 (0/1 error indicators, standardised losses); scale both by
  the standard deviation otherwise. Shifts smaller than ``delta`` are not detected.
* ``KSWIN``: River's ``alpha=0.005`` is a per-sample significance level, so a stationary
  stream alarms every few hundred samples. Here ``alpha=1e-6``, ``window_size=300``,
  ``stat_size=100`` and ``seed=0`` (reproducible): a one-sigma shift is found in about 75-100
  samples. Each update runs a KS test (about 1 ms).
* ``ADWIN``: River's defaults (``delta=0.002``) do not false-alarm and are kept.

A detector says *when* a change was noticed; :func:`change_point` estimates where it began
(the least-squares split of one mean shift, detector-agnostic):

>>> detector = PageHinkley()
>>> detect_on_stream([0.0] * 500 + [1.0] * 500, detector)
[591]
>>> change_point([0.0] * 500 + [1.0] * 92)
500
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable
from numbers import Real
from types import ModuleType
from typing import Any, ClassVar, Literal, Self

import numpy as np

from livemodel.errors import ConfigError, InvalidInputError

Mode = Literal["up", "down", "both"]


def _river_drift() -> ModuleType:
    try:
        from river import drift
    except ImportError as exc:
        raise ConfigError(
            "streaming drift detectors need River: pip install livemodel[stream]"
        ) from exc
    return drift


def _int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _real(name: str, value: object, low: float, high: float, *, closed: str = "") -> float:
    """A real number in the interval from low to high; ``closed`` names closed ends."""
    if isinstance(value, Real) and not isinstance(value, bool):
        v = float(value)
        above = v >= low if "low" in closed else v > low
        below = v <= high if "high" in closed else v < high
        if above and below:
            return v
    left, right = "[" if "low" in closed else "(", "]" if "high" in closed else ")"
    raise InvalidInputError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}")


class StreamDetector(abc.ABC):
    """A drift detector over a stream of numbers, River style.

    The constructor validates and stores parameters and builds the River detector;
    ``update(x)`` advances it and returns ``self``; ``drift_detected`` says whether the last
    value completed a drift. ``detections`` lists the 0-based positions (in everything this
    detector has seen) of the values that did.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self._river = self._build(_river_drift())
        self._n_seen = 0
        self._detections: list[int] = []

    @abc.abstractmethod
    def _build(self, drift: ModuleType) -> Any:
        """The River detector for this object's parameters."""

    @abc.abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-safe)."""

    def update(self, x: float) -> Self:
        """Feed one value; NaN, infinities and non-numbers raise InvalidInputError."""
        if isinstance(x, bool):
            x = float(x)
        if not isinstance(x, Real) or not math.isfinite(float(x)):
            raise InvalidInputError(f"drift detectors take finite numbers, got {x!r}")
        self._river.update(float(x))
        if self._river.drift_detected:
            self._detections.append(self._n_seen)
        self._n_seen += 1
        return self

    @property
    def drift_detected(self) -> bool:
        """Whether the last value fed completed a drift."""
        return bool(self._river.drift_detected)

    @property
    def n_detections(self) -> int:
        return len(self._detections)

    @property
    def detections(self) -> list[int]:
        return list(self._detections)

    @property
    def n_seen(self) -> int:
        return self._n_seen

    def to_dict(self) -> dict[str, Any]:
        """Parameters only: ``detector_from_dict(d.to_dict())`` is a fresh detector."""
        return {"detector": self.name, "params": self.get_params()}

    def clone(self) -> Self:
        """A fresh detector with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class PageHinkley(StreamDetector):
    """Page-Hinkley test for a change in the mean (``river.drift.PageHinkley``).

    ``forgetting`` is River's ``alpha``; see the module docstring for the defaults.
    """

    name = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.1,
        threshold: float = 75.0,
        forgetting: float = 1.0,
        mode: Mode = "both",
    ) -> None:
        self.min_instances = _int("min_instances", min_instances, 1)
        self.delta = _real("delta", delta, 0.0, math.inf, closed="low")
        self.threshold = _real("threshold", threshold, 0.0, math.inf)
        self.forgetting = _real("forgetting", forgetting, 0.0, 1.0, closed="high")
        if mode not in ("up", "down", "both"):
            raise InvalidInputError(f"mode must be 'up', 'down' or 'both', got {mode!r}")
        self.mode: Mode = mode
        super().__init__()

    def _build(self, drift: ModuleType) -> Any:
        return drift.PageHinkley(
            min_instances=self.min_instances,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.forgetting,
            mode=self.mode,
        )

    def get_params(self) -> dict[str, Any]:
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "forgetting": self.forgetting,
            "mode": self.mode,
        }


class ADWIN(StreamDetector):
    """Adaptive windowing (``river.drift.ADWIN``) with River's defaults."""

    name = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = _real("delta", delta, 0.0, 1.0)
        self.clock = _int("clock", clock, 1)
        self.max_buckets = _int("max_buckets", max_buckets, 1)
        self.min_window_length = _int("min_window_length", min_window_length, 1)
        self.grace_period = _int("grace_period", grace_period, 1)
        super().__init__()

    def _build(self, drift: ModuleType) -> Any:
        return drift.ADWIN(**self.get_params())

    def get_params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window_length": self.min_window_length,
            "grace_period": self.grace_period,
        }


class KSWIN(StreamDetector):
    """Kolmogorov-Smirnov windowing (``river.drift.KSWIN``); see the module docstring."""

    name = "kswin"

    def __init__(
        self,
        alpha: float = 1e-6,
        window_size: int = 300,
        stat_size: int = 100,
        seed: int | None = 0,
    ) -> None:
        self.alpha = _real("alpha", alpha, 0.0, 1.0)
        self.window_size = _int("window_size", window_size, 2)
        self.stat_size = _int("stat_size", stat_size, 1)
        if 2 * self.stat_size > self.window_size:
            # River samples stat_size values from the window_size - stat_size older ones.
            raise InvalidInputError("stat_size must be at most window_size / 2")
        self.seed = None if seed is None else _int("seed", seed, 0)
        super().__init__()

    def _build(self, drift: ModuleType) -> Any:
        return drift.KSWIN(**self.get_params())

    def get_params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "window_size": self.window_size,
            "stat_size": self.stat_size,
            "seed": self.seed,
        }


_DETECTORS: dict[str, type[StreamDetector]] = {cls.name: cls for cls in (PageHinkley, ADWIN, KSWIN)}


def detector_from_dict(data: dict[str, Any]) -> StreamDetector:
    """A fresh detector from :meth:`StreamDetector.to_dict` output."""
    try:
        cls = _DETECTORS[data["detector"]]
        params = dict(data["params"])
        return cls(**params)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"malformed detector description: {exc!r}") from exc


def detect_on_stream(values: Iterable[float], detector: StreamDetector) -> list[int]:
    """Feed ``values`` in order; return the positions (indices into ``values``) of drifts.

    All values are validated before any is fed, so bad input leaves the detector untouched.
    The detector keeps its state: call again to continue the same stream.
    """
    try:
        raw = np.asarray(list(values))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"values must be a sequence of numbers: {exc}") from exc
    if raw.size and raw.dtype.kind not in "biuf":  # strings, None, objects, complex
        raise InvalidInputError(f"values must be real numbers, got dtype {raw.dtype}")
    arr = raw.astype(np.float64)
    if arr.ndim != 1:
        raise InvalidInputError(f"values must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInputError("values contain NaN or infinite numbers")
    if not isinstance(detector, StreamDetector):
        raise InvalidInputError(f"detector must be a StreamDetector, got {type(detector)!r}")
    start = detector.n_seen
    for x in arr.tolist():
        detector.update(x)
    return [pos - start for pos in detector.detections if pos >= start]


def change_point(values: Iterable[float]) -> int:
    """Where one shift in the mean most likely began: the ``k`` (``1 <= k < n``) that splits
    ``values`` into ``values[:k]`` and ``values[k:]`` with the least total squared error,
    i.e. maximises ``k (n - k) / n * (mean(values[:k]) - mean(values[k:]))**2`` (the
    maximum-likelihood change point of a Gaussian mean shift). Ties go to the earliest;
    fewer than two values (or no shift at all) give 0.
    """
    try:
        x = np.asarray(list(values), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"values must be a sequence of numbers: {exc}") from exc
    if x.ndim != 1 or not np.isfinite(x).all():
        raise InvalidInputError("values must be one-dimensional finite numbers")
    n = x.size
    if n < 2:
        return 0
    x = x - x.mean()  # centred: the cumulative sums stay small
    k = np.arange(1, n, dtype=np.float64)
    left = np.cumsum(x)[:-1]
    # With a centred x the right segment's sum is -left, so the gain is left**2 n / (k (n-k)).
    gain = left * left * n / (k * (n - k))
    best = int(np.argmax(gain))
    return 0 if gain[best] <= 1e-12 * max(1.0, float(np.dot(x, x))) else best + 1
