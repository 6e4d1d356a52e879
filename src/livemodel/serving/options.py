"""Settings of the model server, per server and per model (validated, with clear errors).

They come from ``livemodel serve`` flags and the ``[serving]`` table of ``livemodel.toml``::

    [serving]
    max_body_bytes = 1048576
    require_predict_token = false         # predict, infer, explain need the 'predict' scope
    open_feedback = false                 # true: labels accepted without a token (trusted network)

    [serving.models.flights]
    alias = "production"                  # served alias: rollouts, loop, monitor follow it
    validation = "reject"                 # or "flag": predict anyway, record the violations
    reject_kinds = ["missing_column", "wrong_type", "null"]
    fallback = "previous"                 # "error" (503), "default" or "previous" version
    timeout_ms = 500
    review_threshold = 0.6                # flag predictions less confident than this
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from livemodel.errors import ConfigError
from livemodel.schema.validation import ViolationKind
from livemodel.vocabulary import DEFAULT_ALIAS

STRUCTURAL = ("missing_column", "wrong_type", "null")


class ModelOptions(BaseModel):
    """How one model is served."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alias: str = DEFAULT_ALIAS
    validation: Literal["reject", "flag"] = "reject"
    reject_kinds: tuple[ViolationKind, ...] = tuple(ViolationKind(k) for k in STRUCTURAL)
    fallback: Literal["error", "default", "previous"] = "error"
    default_output: Any = None
    timeout_ms: float = Field(default=2_000, gt=0, le=600_000)
    review_threshold: float | None = Field(default=None, gt=0, le=1)
    max_batch_size: int = Field(default=64, ge=1, le=10_000)
    max_queue: int = Field(default=4_096, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _default_needs_value(self) -> ModelOptions:
        if self.fallback == "default" and self.default_output is None:
            raise ValueError("fallback = 'default' needs default_output")
        return self


class ServerOptions(BaseModel):
    """Server-wide limits and the per-model options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(default=1 << 20, ge=1_024, le=1 << 30)
    max_rows: int = Field(default=1_000, ge=1, le=1_000_000)
    require_predict_token: bool = False
    #: Feedback needs a token with the ``feedback`` scope unless this opens it (docs/security.md).
    open_feedback: bool = False
    poll_seconds: float = Field(default=1.0, gt=0, le=3_600)
    fsync: bool = False
    defaults: ModelOptions = ModelOptions()
    models: dict[str, ModelOptions] = Field(default_factory=dict)

    def for_model(self, name: str) -> ModelOptions:
        return self.models.get(name, self.defaults)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ServerOptions:
        """From the ``[serving]`` table; unknown keys and bad values are ConfigErrors."""
        data = dict(data)
        defaults = {k: data.pop(k) for k in list(data) if k in ModelOptions.model_fields}
        models = data.pop("models", {}) or {}
        try:
            base = ModelOptions(**defaults)
            if not isinstance(models, Mapping):
                raise ConfigError("[serving.models] must be a table of model names")
            merged = {
                str(name): ModelOptions(**{**base.model_dump(), **dict(opts)})
                for name, opts in models.items()
            }
            return cls(**data, defaults=base, models=merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "serving"
            raise ConfigError(f"invalid serving option {where}: {first['msg']}") from exc
        except TypeError as exc:
            raise ConfigError(f"invalid [serving] table: {exc}") from exc
