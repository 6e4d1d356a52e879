"""A reference fitted once, compared with any number of windows: :class:`Reference`.

:func:`~livemodel.monitor.compare.compare` fits every calculator (CBPE calibrators or the
DLE nannies, the PCA fold models, the profiles' drift references) on the reference frame
and then compares one frame. A :class:`Reference` keeps them fitted:

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
>>> ref = Reference(frame)
>>> [ref.compare(frame.assign(x=frame["x"] + s)).drifted_columns for s in (0.0, 1.0)]
[(), ('x',)]

``ref.compare(window)`` gives the same report as ``compare(frame, window)`` with the same
settings (that function is ``Reference(...).compare(window)``). ``ref.save(path)`` and
:meth:`Reference.load` keep the fitted state in a file (see
:mod:`livemodel.monitor.reffile` for its format). The monitor of the prediction log uses
the same object, built from a registered version's stored reference
(:meth:`Reference.registered`), and keeps it in the registry's artifact store so that a
later process loads it instead of fitting it again (:mod:`livemodel.monitor.refstore`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError
from livemodel.monitor.calculators import QualityConfig
from livemodel.monitor.reference import (
    PREDICTION,
    MonitorReference,
    canonical_frame,
    proba_column,
)
from livemodel.monitor.results import ALL, ESTIMATED, MetricResult
from livemodel.monitor.suite import MonitorSuite
from livemodel.monitor.summary import SAMPLE_ROWS, WindowSummary, merge_all, row_keys
from livemodel.monitor.summary import summarize_chunk as _summarize_chunk
from livemodel.stats.drift import DriftConfig

if TYPE_CHECKING:
    from livemodel.monitor.compare import Report
    from livemodel.registry.refs import ModelRef
    from livemodel.registry.registry import Registry
    from livemodel.schema.signature import Signature
    from livemodel.stats.profile import Profile

__all__ = ["Reference", "ReferenceSettings"]

_CHUNK_ROWS = 100_000
Probability = str | Mapping[Any, str] | None


@dataclass(frozen=True)
class ReferenceSettings:
    """How a :class:`Reference` names the model's columns and configures its calculators."""

    target: str | None = None
    prediction: str | None = None
    probability: str | tuple[tuple[Any, str], ...] | None = None
    segments: tuple[str, ...] = ()
    drift: DriftConfig | None = None
    quality: QualityConfig | None = None
    multivariate: bool = True
    estimate: bool = True
    seed: int = 0

    @property
    def probability_columns(self) -> Probability:
        """``probability`` as :func:`compare` takes it: a column or a class -> column map."""
        if self.probability is None or isinstance(self.probability, str):
            return self.probability
        return dict(self.probability)


def _probability(probability: object) -> str | tuple[tuple[Any, str], ...] | None:
    if probability is None or isinstance(probability, str):
        return probability
    if isinstance(probability, Mapping):
        return tuple(probability.items())
    raise InvalidInputError(
        "probability must be a column name or a mapping of every class to its column"
    )


class Reference:
    """A reference frame with every calculator fitted once (see the module docstring).

    ``frame`` holds the features and, for performance, the ``target`` and the model's
    outputs (``prediction``; ``probability``: the positive-class column of a binary
    model, or a mapping of every class to its column). ``estimate=False`` skips fitting
    the performance estimators (CBPE/DLE): windows without labels then get no estimates.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        target: str | None = None,
        prediction: str | None = None,
        probability: str | Mapping[Any, str] | None = None,
        segments: Sequence[str] = (),
        drift: DriftConfig | None = None,
        quality: QualityConfig | None = None,
        multivariate: bool = True,
        estimate: bool = True,
        seed: int = 0,
    ) -> None:
        if isinstance(segments, str):
            raise InvalidInputError("segments must be a sequence of column names, e.g. ['carrier']")
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError(f"reference must be a DataFrame, not {type(frame).__name__}")
        for role, column in (("target", target), ("prediction", prediction)):
            if column is not None and column not in frame.columns:
                raise InvalidInputError(
                    f"the reference has no {role} column {column!r}: performance is realized "
                    "and estimated against a reference with the target and the model outputs"
                )
        settings = ReferenceSettings(
            target=target, prediction=prediction, probability=_probability(probability),
            segments=tuple(segments), drift=drift, quality=quality,
            multivariate=multivariate, estimate=estimate, seed=seed,
        )  # fmt: skip
        reference = MonitorReference.from_frame(
            frame, target=target, prediction=prediction, probability=probability
        )
        if len(reference.sample) > SAMPLE_ROWS:  # row-based methods fit on a bounded sample
            sample = reference.sample.sample(n=SAMPLE_ROWS, random_state=seed)
            reference = replace(reference, sample=sample.reset_index(drop=True))
        self._init(settings, _suite(settings).fit(reference, settings.segments))

    def _init(self, settings: ReferenceSettings, suite: MonitorSuite) -> None:
        self.settings = settings
        self.suite = suite
        #: ``fitted`` in this process, or ``loaded`` from the artifact store
        self.origin = "fitted"

    @classmethod
    def _of(cls, settings: ReferenceSettings, suite: MonitorSuite) -> Reference:
        ref = cls.__new__(cls)
        ref._init(settings, suite)
        return ref

    @classmethod
    def from_registry(
        cls,
        signature: Signature,
        profile: Profile,
        sample: pd.DataFrame,
        *,
        segments: Sequence[str] = (),
        suite: MonitorSuite | None = None,
    ) -> Reference:
        """The reference of a registered version: its signature, stored profile and sample
        (outputs already in the canonical ``prediction``/``proba_<class>`` columns).
        ``suite`` is an unfitted :class:`MonitorSuite` with other settings than the
        defaults."""
        if isinstance(segments, str):
            raise InvalidInputError("segments must be a sequence of column names")
        reference = MonitorReference.from_registry(signature, profile, sample)
        suite = suite if suite is not None else MonitorSuite()
        settings = _registry_settings(reference, segments, suite)
        return cls._of(settings, suite.fit(reference, settings.segments))

    @classmethod
    def registered(
        cls,
        registry: Registry,
        ref: str | ModelRef,
        *,
        segments: Sequence[str] = (),
        suite: MonitorSuite | None = None,
        store: bool = True,
    ) -> Reference:
        """The reference stored with a registered version (``NAME``, ``NAME@VERSION`` or
        ``NAME@ALIAS``), fitted: what ``livemodel monitor run`` compares its windows with.
        Windows are then frames in the log's shape (``prediction``, ``proba_<class>``).

        With ``store`` (the default) the fitted reference is kept in the registry's
        artifact store, keyed by the version, its settings and the livemodel version
        (:mod:`livemodel.monitor.refstore`): a later process loads it instead of fitting
        again (``.origin == "loaded"``); a damaged or outdated file is fitted again and
        replaced, with a logged warning."""
        from livemodel.monitor.refstore import load_fitted, save_fitted, stored_key
        from livemodel.registry.refs import ModelRef

        if isinstance(segments, str):
            raise InvalidInputError("segments must be a sequence of column names")
        version = registry.get(ref)
        stored = registry.reference(ModelRef(version.name, version=version.version))
        reference = MonitorReference.from_registry(version.signature, stored.profile, stored.sample)
        suite = suite if suite is not None else MonitorSuite()
        settings = _registry_settings(reference, segments, suite)
        key = stored_key(version, settings, suite) if store else None
        if key is not None:
            loaded = load_fitted(registry.artifacts, key, settings, suite)
            if loaded is not None:
                return loaded
        fitted = cls._of(settings, suite.fit(reference, settings.segments))
        if key is not None:
            save_fitted(registry.artifacts, key, fitted)
        return fitted

    # -- what it holds ----------------------------------------------------------------------
    @property
    def reference(self) -> MonitorReference:
        """The profiles and the row sample every calculator was fitted on."""
        return self.suite.reference_

    @property
    def task(self) -> str | None:
        """``binary``, ``multiclass``, ``regression`` or ``None`` (no target)."""
        return self.reference.task

    @property
    def features(self) -> tuple[str, ...]:
        return self.reference.features

    def __repr__(self) -> str:
        ref = self.reference
        return (
            f"Reference(features={len(ref.features)}, task={ref.task!r}, "
            f"sample_rows={len(ref.sample)}, segments={list(self.settings.segments)})"
        )

    # -- comparing ----------------------------------------------------------------------------
    def calculate(
        self, summaries: Mapping[str, WindowSummary], *, estimated: bool = True
    ) -> dict[str, tuple[MetricResult, ...]]:
        """Results per segment key of one window's summaries (see :class:`MonitorSuite`);
        ``estimated=False`` leaves out the performance estimates."""
        results = self.suite.calculate(summaries)
        if estimated:
            return results
        return {k: tuple(r for r in v if r.calculator != ESTIMATED) for k, v in results.items()}

    def compare(self, current: pd.DataFrame) -> Report:
        """Drift, quality and performance of ``current`` against this reference.

        With the target in ``current``, realized performance (and no estimates); without
        it, CBPE or DLE estimates from the fitted estimator."""
        from livemodel.monitor.compare import Report

        if not isinstance(current, pd.DataFrame):
            raise InvalidInputError(
                f"current must be a pandas DataFrame, not {type(current).__name__}"
            )
        settings, ref = self.settings, self.reference
        target, prediction = settings.target, settings.prediction
        probability = settings.probability_columns
        has_target = target is not None and target in current.columns
        outputs_given = prediction is not None and prediction in current.columns
        if target is not None and not has_target and outputs_given and not ref.has_labels:
            raise InvalidInputError(
                "to estimate performance without labels, the reference needs the target and "
                "the model outputs"
            )
        canonical = canonical_frame(
            current,
            target=target if has_target else None,
            prediction=prediction if outputs_given else None,
            probability=_present(probability, current),
            classes=ref.classes,
        )
        plan = self.suite.plan_
        summaries: dict[str, WindowSummary] = {ALL: WindowSummary.empty(plan)}
        for start in range(0, len(canonical), _CHUNK_ROWS):
            chunk = canonical.iloc[start : start + _CHUNK_ROWS]
            keys = row_keys(np.arange(start, start + len(chunk), dtype=np.int64))
            summaries = merge_all(summaries, _summarize_chunk(plan, chunk, keys))
        results = self.calculate(summaries, estimated=not has_target)
        parts = {
            key: Report(results[key], summaries[key].n_rows, summaries[key].n_labelled, key)
            for key in results
            if key != ALL
        }
        whole = summaries[ALL]
        return Report(results[ALL], whole.n_rows, whole.n_labelled, ALL, parts)

    # -- keeping it -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted reference to ``path`` (format: :mod:`livemodel.monitor.reffile`)."""
        from livemodel.monitor.reffile import write_reference

        return write_reference(self, Path(path))

    def to_bytes(self) -> bytes:
        from livemodel.monitor.reffile import reference_bytes

        return reference_bytes(self)

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        """A reference saved by :meth:`save`, verified before it is used."""
        from livemodel.monitor.reffile import read_reference

        return read_reference(Path(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        from livemodel.monitor.reffile import reference_from_bytes

        return reference_from_bytes(data)


def _registry_settings(
    reference: MonitorReference, segments: Sequence[str], suite: MonitorSuite
) -> ReferenceSettings:
    return ReferenceSettings(
        target=reference.target,
        prediction=PREDICTION if PREDICTION in reference.sample.columns else None,
        probability=tuple(
            (c, proba_column(c)) for c in reference.classes or () if reference.proba_columns
        )
        or None,
        segments=tuple(dict.fromkeys(segments)),
        drift=suite.drift,
        quality=suite.quality,
        multivariate=suite.multivariate,
        estimate=suite.estimate,
        seed=suite.seed,
    )


def _suite(settings: ReferenceSettings) -> MonitorSuite:
    return MonitorSuite(
        drift=settings.drift, quality=settings.quality, estimate=settings.estimate,
        multivariate=settings.multivariate, seed=settings.seed,
    )  # fmt: skip


def _present(probability: Probability, frame: pd.DataFrame) -> Probability:
    if isinstance(probability, str):
        return probability if probability in frame.columns else None
    if probability is None:
        return None
    if all(column in frame.columns for column in probability.values()):
        return probability
    return None
