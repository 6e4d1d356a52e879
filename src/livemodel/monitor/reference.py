"""What a window is compared with: :class:`MonitorReference`.

Every monitored frame is first put in one *canonical* shape: one column per feature,
the target under its own name, the model's output as ``prediction`` and, for
classifiers with probabilities, ``proba_<class>`` in the order of ``classes`` (the shape
of the registry's reference sample). The reference holds

* ``profile``: the features (and target) profiled on the training frame, as registered;
* ``output_profile``: ``prediction`` (and the probabilities) profiled on the sample;
* ``sample``: up to 5,000 labelled rows with model outputs, for the methods that need
  rows (CBPE, DLE, PCA reconstruction) and for per-segment references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.schema.signature import ColumnType, Signature, infer_signature
from livemodel.stats.columns import CategoricalColumnProfile
from livemodel.stats.profile import Profile, ProfileSpec

__all__ = ["PREDICTION", "MonitorReference", "Task", "proba_column"]

PREDICTION = "prediction"
Task = Literal["binary", "multiclass", "regression"]


def proba_column(cls: object) -> str:
    """The canonical column of the probability of class ``cls`` (as the registry names it)."""
    return f"proba_{cls}"


@dataclass(frozen=True)
class MonitorReference:
    """The reference of one model version (or of one segment of it); plain data."""

    features: tuple[str, ...]
    target: str | None
    task: Task | None
    classes: tuple[Any, ...] | None
    proba_columns: tuple[str, ...]
    signature: Signature | None
    profile: Profile
    output_profile: Profile | None
    sample: pd.DataFrame
    datetime_columns: frozenset[str] = frozenset()
    segment: str | None = None

    @property
    def categorical(self) -> tuple[str, ...]:
        """Features profiled as categories."""
        return tuple(
            name
            for name in self.features
            if isinstance(self.profile.columns.get(name), CategoricalColumnProfile)
        )

    @property
    def output_columns(self) -> tuple[str, ...]:
        return () if self.output_profile is None else self.output_profile.spec.names

    @property
    def has_labels(self) -> bool:
        """Whether the sample has the target and the outputs performance methods need."""
        return (
            self.target is not None
            and self.target in self.sample.columns
            and PREDICTION in self.sample.columns
            and bool(self.sample[self.target].notna().any())
        )

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_registry(
        cls, signature: Signature, profile: Profile, sample: pd.DataFrame
    ) -> MonitorReference:
        """From a registered version: its signature, reference profile and sample."""
        task = signature.task
        classes = None if task is None or task.classes is None else tuple(task.classes)
        probas = _proba_columns(sample, classes)
        datetimes = frozenset(c.name for c in signature.columns if c.type is ColumnType.DATETIME)
        return cls(
            features=signature.names,
            target=None if task is None else task.target,
            task=None if task is None else task.kind,
            classes=classes,
            proba_columns=probas,
            signature=signature,
            profile=profile,
            output_profile=_output_profile(
                sample, task is not None and classes is not None, probas
            ),
            sample=sample.reset_index(drop=True),
            datetime_columns=datetimes,
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        target: str | None = None,
        prediction: str | None = None,
        probability: str | Mapping[Any, str] | None = None,
        exclude: Sequence[str] = (),
        bins: int = 20,
    ) -> MonitorReference:
        """From a reference frame with features, and optionally target and model outputs.

        ``probability`` names the positive-class column of a binary task (the larger of
        the two sorted classes), or maps every class to its column.
        """
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError(f"reference must be a pandas DataFrame, not {type(frame)}")
        if frame.empty:
            raise InvalidInputError("the reference frame is empty")
        canonical = canonical_frame(frame, target=target, prediction=prediction,
                                    probability=probability, exclude=exclude)  # fmt: skip
        reserved = _reserved(frame, target, prediction, probability, exclude)
        features = [c for c in frame.columns if c not in reserved]
        signature = infer_signature(frame[[*features, *([target] if target else [])]], target)
        task = signature.task
        classes = None if task is None or task.classes is None else tuple(task.classes)
        if isinstance(probability, str) and (classes is None or len(classes) != 2):
            raise InvalidInputError("a single probability column needs a binary target")
        probas = _proba_columns(canonical, classes)
        columns = [*signature.names, *([target] if target else [])]
        categorical = [
            c.name for c in signature.columns if c.type.value in ("categorical", "boolean")
        ]
        if task is not None and task.kind != "regression":
            categorical.append(task.target)
        spec = ProfileSpec.from_reference(canonical[columns], categorical=categorical, bins=bins)
        datetimes = frozenset(c.name for c in signature.columns if c.type is ColumnType.DATETIME)
        return cls(
            features=signature.names,
            target=target,
            task=None if task is None else task.kind,
            classes=classes,
            proba_columns=probas,
            signature=signature,
            profile=Profile.empty(spec).update(canonical[columns]),
            output_profile=(
                _output_profile(canonical, classes is not None, probas)
                if PREDICTION in canonical.columns
                else None
            ),
            sample=canonical,
            datetime_columns=datetimes,
        )

    def for_segment(self, key: str, rows: Any) -> MonitorReference:
        """The reference of one segment: profiles of the sample ``rows`` (a mask) in it."""
        part = self.sample[np.asarray(rows, dtype=bool)].reset_index(drop=True)
        columns = list(self.profile.spec.names)
        profile = Profile.empty(self.profile.spec)
        if set(columns) <= set(part.columns):
            profile.update(part[columns])
        outputs = None
        if self.output_profile is not None:
            outputs = Profile.empty(self.output_profile.spec).update(
                part[list(self.output_profile.spec.names)]
            )
        return replace(self, profile=profile, output_profile=outputs, sample=part, segment=key)


def _reserved(
    frame: pd.DataFrame,
    target: str | None,
    prediction: str | None,
    probability: str | Mapping[Any, str] | None,
    exclude: Sequence[str],
) -> set[str]:
    names: set[str] = set(exclude)
    names.update(n for n in (target, prediction) if n is not None)
    if isinstance(probability, str):
        names.add(probability)
    elif probability is not None:
        names.update(probability.values())
    missing = sorted(n for n in names - set(exclude) if n not in frame.columns)
    if missing:
        raise SchemaError(f"columns not in the frame: {missing}")
    return names


def canonical_frame(
    frame: pd.DataFrame,
    *,
    target: str | None,
    prediction: str | None,
    probability: str | Mapping[Any, str] | None,
    exclude: Sequence[str] = (),
    classes: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """``frame`` with the output columns renamed to ``prediction`` and ``proba_<class>``."""
    reserved = _reserved(frame, target, prediction, probability, exclude)
    features = [c for c in frame.columns if c not in reserved]
    clash = [c for c in features if c == PREDICTION or str(c).startswith("proba_")]
    if clash and (prediction is not None or probability is not None):
        raise SchemaError(f"feature names clash with model output names: {clash[:5]}")
    out = frame[[*features, *([target] if target is not None else [])]].copy()
    if prediction is not None:
        out[PREDICTION] = frame[prediction].to_numpy()
    if isinstance(probability, str):
        if classes is None:
            labels = frame[target].dropna().to_numpy() if target is not None else np.array([])
            found = sorted(pd.unique(labels).tolist()) if labels.size else [0, 1]
            classes = found if len(found) == 2 else [0, 1]
        positive = frame[probability].to_numpy(dtype=np.float64, na_value=np.nan)
        out[proba_column(classes[0])] = 1.0 - positive
        out[proba_column(classes[1])] = positive
    elif probability is not None:
        for cls, column in probability.items():
            out[proba_column(cls)] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return out.reset_index(drop=True)


def _proba_columns(sample: pd.DataFrame, classes: tuple[Any, ...] | None) -> tuple[str, ...]:
    if classes is None:
        return ()
    names = tuple(proba_column(c) for c in classes)
    return names if all(n in sample.columns for n in names) else ()


def _output_profile(
    sample: pd.DataFrame, classifier: bool, probas: tuple[str, ...]
) -> Profile | None:
    """Profile of what output drift compares: the prediction and the probabilities (for
    a binary task only the positive class's, the other being its complement)."""
    if PREDICTION not in sample.columns:
        return None
    columns = [PREDICTION, *(probas[1:] if len(probas) == 2 else probas)]
    spec = ProfileSpec.from_reference(
        sample[columns], categorical=[PREDICTION] if classifier else None
    )
    return Profile.empty(spec).update(sample[columns])
