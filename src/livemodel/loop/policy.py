"""Loop policies: the ``[loop]`` table of ``livemodel.toml``, validated.

Every mistake (an unknown key, a wrong type, a bad duration, a missing ``train``) is one
:class:`~livemodel.errors.ConfigError` naming the key, e.g.
``loop.models.flights.triggers.drift.min_features: must be >= 1``. The format is
documented with a full example in ``docs/loop.md``.

>>> settings = parse_loop({"models": {"m": {"train": "pkg.train:fit", "cooldown": "2d"}}})
>>> settings.models["m"].cooldown.days
2
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from livemodel.errors import ConfigError, InvalidInputError, LivemodelError
from livemodel.monitor.windows import parse_duration, parse_window
from livemodel.registry.refs import check_name
from livemodel.rollout.plan import Plan

__all__ = [
    "ConceptDriftTrigger",
    "DataSettings",
    "DriftTrigger",
    "FairnessSettings",
    "GateSettings",
    "LoopSettings",
    "ModelPolicy",
    "MonitorSettings",
    "PerformanceTrigger",
    "QualityTrigger",
    "RolloutSettings",
    "Triggers",
    "parse_loop",
]

GATE_METRICS = ("roc_auc", "accuracy", "f1", "log_loss", "mae", "rmse")
MONITOR_METRICS = ("accuracy", "roc_auc", "precision", "recall", "f1", "mae", "rmse")
FAIRNESS_METRICS = ("recall", "precision", "selection_rate", "false_positive_rate", "accuracy")
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
DEFAULT_PLAN = "shadow,canary:10,50,100"


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a duration text such as '30d', '12h' or '2w'")
    try:
        return parse_duration(value)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from exc


def _names(value: object) -> object:
    """TOML arrays arrive as lists; names must be non-empty texts."""
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) and v for v in value):
            raise ValueError("must be a list of non-empty names")
        if len(set(value)) != len(value):
            raise ValueError("lists a name twice")
        return tuple(value)
    raise ValueError('must be a list of names, e.g. ["carrier", "origin"]')


def _window(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a window text such as '1d' or '10000rows'")
    try:
        return parse_window(value).label
    except InvalidInputError as exc:
        raise ValueError(exc.message) from exc


def _recent(value: object) -> timedelta | int:
    """``"30d"`` (a duration) or ``"20000rows"`` / ``20000`` (a row count)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration ('30d') or a row count ('20000rows' or 20000)")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a row count must be >= 1")
        return value
    if isinstance(value, str):
        try:
            spec = parse_window(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from exc
        if spec.rows is not None:
            return spec.rows
        if spec.size is not None:
            return spec.size
    raise ValueError("must be a duration ('30d') or a row count ('20000rows' or 20000)")


def duration_text(value: timedelta) -> str:
    """``timedelta(days=7)`` as ``7d``: the largest unit that divides it."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _recent_text(value: timedelta | int) -> str:
    return duration_text(value) if isinstance(value, timedelta) else f"{value}rows"


Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(duration_text, when_used="json")
]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
WindowText = Annotated[str, BeforeValidator(_window)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DriftTrigger(_Table):
    """Retrain when at least ``min_features`` features drift (of ``features``, if given)."""

    min_features: int = Field(default=1, ge=1)
    features: Names | None = None


class PerformanceTrigger(_Table):
    """Retrain when ``metric`` is worse than ``floor`` or dropped by ``max_drop``.

    ``floor`` is the worst acceptable value: for error metrics (mae, rmse) a ceiling. The
    drop is measured against the metric on the version's reference.
    """

    metric: Literal["accuracy", "roc_auc", "precision", "recall", "f1", "mae", "rmse"]
    source: Literal["realized", "estimated", "any"] = "any"
    floor: float | None = None
    max_drop: float | None = Field(default=None, ge=0.0)
    min_rows: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _one_bound(self) -> PerformanceTrigger:
        if self.floor is None and self.max_drop is None:
            raise ValueError("give floor, max_drop or both")
        return self


class QualityTrigger(_Table):
    """Retrain when a data-quality rate of a feature (of ``columns``) exceeds its maximum."""

    max_missing_rate: Share | None = None
    max_unseen_rate: Share | None = None
    max_out_of_range_rate: Share | None = None
    columns: Names | None = None

    @model_validator(mode="after")
    def _one_rate(self) -> QualityTrigger:
        if (self.max_missing_rate, self.max_unseen_rate, self.max_out_of_range_rate) == (
            None,
            None,
            None,
        ):
            raise ValueError("give max_missing_rate, max_unseen_rate or max_out_of_range_rate")
        return self


class ConceptDriftTrigger(_Table):
    """Retrain when a concept-drift detector found a change in the production version's
    labelled error stream: at least ``min_detections`` detections by one of ``detectors``
    in ``order`` (see ``docs/monitoring.md``)."""

    detectors: tuple[Literal["page_hinkley", "adwin", "kswin"], ...] = ("page_hinkley", "adwin")
    order: Literal["arrival", "prediction_time"] = "arrival"
    min_detections: int = Field(default=1, ge=1)

    @field_validator("detectors", mode="before")
    @classmethod
    def _as_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value


def _performance_list(value: object) -> object:
    return [value] if isinstance(value, Mapping) else value


class Triggers(_Table):
    drift: DriftTrigger | None = None
    multivariate: bool = False
    performance: Annotated[
        tuple[PerformanceTrigger, ...], BeforeValidator(_performance_list), Field(strict=False)
    ] = ()
    quality: QualityTrigger | None = None
    schedule: Duration | None = None
    concept_drift: ConceptDriftTrigger | None = None


class MonitorSettings(_Table):
    """Which windows the loop monitors each tick: those of ``window`` in the last
    ``lookback``; triggers read the latest complete one holding ``min_rows`` rows."""

    window: WindowText = "1d"
    lookback: Duration = timedelta(days=7)
    segments: Names = ()
    min_rows: int = Field(default=100, ge=1)


class DataSettings(_Table):
    """The retraining frame: the ``recent`` labelled rows plus older labelled rows making up
    ``older_share`` of the training rows; the most recent ``holdout`` share of the recent
    rows is kept out of training for the gate."""

    recent: Annotated[
        timedelta | int,
        BeforeValidator(_recent),
        PlainSerializer(_recent_text, when_used="json"),
    ] = timedelta(days=30)
    older_share: float = Field(default=0.3, ge=0.0, lt=1.0)
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0)
    history: Duration | None = None
    max_rows: int | None = Field(default=None, ge=2)
    min_rows: int = Field(default=200, ge=2)
    seed: int = Field(default=0, ge=0, lt=2**32)


class FairnessSettings(_Table):
    attribute: str = Field(min_length=1)
    metric: Literal["recall", "precision", "selection_rate", "false_positive_rate", "accuracy"] = (
        "recall"
    )
    max_difference: float | None = Field(default=None, ge=0.0)
    relative_to_champion: bool = False
    tolerance: float = Field(default=0.0, ge=0.0)
    min_group_rows: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _one_rule(self) -> FairnessSettings:
        if self.max_difference is None and not self.relative_to_champion:
            raise ValueError("give max_difference, relative_to_champion = true, or both")
        return self


class GateSettings(_Table):
    """The offline gate: see :mod:`livemodel.loop.gate`."""

    metric: Literal["roc_auc", "accuracy", "f1", "log_loss", "mae", "rmse"] = "roc_auc"
    margin: float = 0.0
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    n_bootstrap: int = Field(default=1000, ge=100, le=100_000)
    seed: int = Field(default=0, ge=0, lt=2**32)
    segments: Names = ()
    segment_tolerance: float = Field(default=0.02, ge=0.0)
    min_segment_rows: int = Field(default=50, ge=1)
    fairness: FairnessSettings | None = None


def _plan(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a plan text such as 'shadow,canary:10,50,100'")
    try:
        return Plan.parse(value).to_text()
    except InvalidInputError as exc:
        raise ValueError(exc.message) from exc


class RolloutSettings(_Table):
    plan: Annotated[str, BeforeValidator(_plan)] = DEFAULT_PLAN
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    min_step_samples: int = Field(default=200, ge=1)
    routing_key: str | None = None


def _entry_point(value: object) -> str:
    if not isinstance(value, str) or not _ENTRY_POINT.match(value):
        raise ValueError("must be 'module:function', e.g. 'mypackage.training:train'")
    return value


class ModelPolicy(_Table):
    """The loop policy of one model (``[loop.models.NAME]``)."""

    train: Annotated[str, BeforeValidator(_entry_point)]
    cooldown: Duration = timedelta(days=7)
    triggers: Triggers = Triggers()
    monitor: MonitorSettings = MonitorSettings()
    data: DataSettings = DataSettings()
    gate: GateSettings = GateSettings()
    rollout: RolloutSettings = RolloutSettings()


class LoopSettings(_Table):
    """The ``[loop]`` table: the controller lease and one policy per model."""

    lease_seconds: float = Field(default=900.0, gt=0.0)
    models: dict[str, ModelPolicy] = Field(default_factory=dict, strict=False)

    @field_validator("models", mode="before")
    @classmethod
    def _names_valid(cls, value: object) -> object:
        if isinstance(value, Mapping):
            for name in value:
                try:
                    check_name(name)
                except LivemodelError as exc:
                    raise ValueError(exc.message) from exc
        return value


def parse_loop(table: object, *, source: str | None = None) -> LoopSettings:
    """Validate the ``[loop]`` table (``None``: no policies); ConfigError names the key."""
    if table is None:
        return LoopSettings()
    if not isinstance(table, Mapping):
        raise ConfigError(f"loop: must be a table{_where(source)}")
    try:
        return LoopSettings.model_validate(dict(table))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        key = ".".join(["loop", *(str(p) for p in loc)])
        raise ConfigError(f"{key}: {_message(error, loc)}{_where(source)}") from None


def _where(source: str | None) -> str:
    return f" (in {source})" if source else ""


def _message(error: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key{hint}"
    if kind == "missing":
        if loc and loc[-1] == "train":
            return "missing: give the training entry point as 'module:function'"
        return "missing"
    message = str(error["msg"]).replace("Input should be", "must be")
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind in ("model_type", "dict_type"):
        return "must be a table"
    if "input" in error and kind.endswith("_type"):
        value = error["input"]
        return f"{message[:1].lower()}{message[1:]}, got {type(value).__name__} {value!r}"
    return message[:1].lower() + message[1:]


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at ``loc`` accepts, found by walking the models' fields."""
    model: type[BaseModel] | None = LoopSettings
    skip_key = False
    for part in loc:
        if skip_key or isinstance(part, int):  # a model name, or an index in a list
            skip_key = False
            continue
        fields = model.model_fields if model is not None else {}
        if part not in fields:
            return []
        annotation = fields[part].annotation
        if typing.get_origin(annotation) is dict:
            model, skip_key = _model_of(typing.get_args(annotation)[1]), True
        else:
            model = _model_of(annotation)
    return sorted(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X | None``, ``tuple[X, ...]``, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        args = args[:1]
    elif origin not in (types.UnionType, typing.Union, tuple):
        return None
    for arg in args:
        found = _model_of(arg)
        if found is not None:
            return found
    return None
