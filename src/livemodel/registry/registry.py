"""The model registry: immutable numbered versions, movable aliases, an audit trail.

>>> import livemodel                                             # doctest: +SKIP
>>> reg = livemodel.connect()                                    # doctest: +SKIP
>>> v = reg.register("flights", model, train, target="late")     # doctest: +SKIP
>>> reg.set_alias("flights", "production", v.version)            # doctest: +SKIP
>>> reg.load("flights@production").model.predict(rows)           # doctest: +SKIP

A retrained version can be registered with ``accepts=`` its parent's signature, so that it
keeps accepting the nulls, categories and ranges the parent did (see :meth:`register`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError, ModelError, SchemaError
from livemodel.registry import lineage
from livemodel.registry.classmap import ClassMapped, check_classes, map_classes, unwrap
from livemodel.registry.model_io import FORMAT, check_model, dump_model, load_model, predict_outputs
from livemodel.registry.reference import Reference, build_reference, load_reference, save_reference
from livemodel.registry.refs import ModelRef, check_alias, check_name
from livemodel.registry.version import LoadedModel, ModelVersion
from livemodel.schema.signature import Signature, infer_signature
from livemodel.schema.validation import validate
from livemodel.schema.widen import widen_signature
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.metadata import AuditEvent, MetadataStore, ModelSummary

_MAX_TEXT = 2_000
#: training rows set to null in one column to check that the model can predict them
_NULL_PROBE_ROWS = 5


class Registry:
    """Registers, finds and loads model versions; moves aliases with an audit trail."""

    def __init__(self, metadata: MetadataStore, artifacts: ArtifactStore, *, actor: str) -> None:
        self.metadata = metadata
        self.artifacts = artifacts
        self.actor = actor

    # -- writing ------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        data: pd.DataFrame,
        *,
        target: str,
        validation: pd.DataFrame | None = None,
        alias: str | None = None,
        tags: Mapping[str, Any] | None = None,
        seed: int | None = None,
        description: str | None = None,
        task: str | None = None,
        code_dir: str | Path | None = None,
        data_source: str | None = None,
        accepts: Signature | None = None,
        class_map: Mapping[Any, Any] | None = None,
    ) -> ModelVersion:
        """Store a fitted estimator with what it was trained on and return its new version.

        ``data`` is the training frame including the ``target`` column. With ``validation``
        (same columns), holdout metrics are recorded and the reference sample is drawn from it.

        ``accepts`` (e.g. the parent version's signature, on a retrain) widens the inferred
        signature so the new version accepts every request ``accepts`` does
        (:func:`~livemodel.schema.widen.widen_signature`): ranges and categories always, but a
        column becomes nullable only if the model predicts finite outputs for a few training
        rows with a null there. Columns kept non-nullable are recorded, with the reason, in
        the lineage under ``signature.kept_narrow`` (and their names in the tag
        ``signature_kept_narrow``); widened columns under ``signature.widened``.

        A classifier's classes must be the values of ``target``, or ``class_map`` maps each
        of the model's classes to one (``{0: "no", 1: "yes"}``): the version then answers,
        logs and takes feedback in the target's values (see :mod:`.classmap`); the map is
        recorded in the lineage under ``class_map``.
        """
        if accepts is not None and not isinstance(accepts, Signature):
            raise InvalidInputError(
                f"accepts must be a Signature (such as a version's .signature), "
                f"not {type(accepts).__name__}"
            )
        check_name(name)
        if alias is not None:
            check_alias(alias)
        _check_frame(data, "training")
        if validation is not None:
            _check_frame(validation, "validation")
        check_model(model)
        signature = infer_signature(data, target, task=task)
        classes = signature.task.classes if signature.task is not None else None
        if class_map is not None:
            if classes is None:
                raise InvalidInputError(
                    f"class_map is for classifiers: target {target!r} is a regression target"
                )
            model = map_classes(model, class_map, classes)
        features = list(signature.names)
        if validation is not None:
            missing = [c for c in (*features, target) if c not in validation.columns]
            if missing:
                raise SchemaError(f"the validation frame lacks columns {missing[:5]}")
        smoke = predict_outputs(model, data[features].head(5), _kind(signature))
        if classes is not None:
            check_classes(model, target, classes, smoke["prediction"])
        widening: dict[str, Any] | None = None
        if accepts is not None:
            signature, widening = _widen(model, signature, accepts, data)

        reference = build_reference(model, signature, data, validation, seed=seed or 0)
        if classes is not None:
            check_classes(model, target, classes, reference.sample["prediction"])
        reference_info = save_reference(
            reference, self.artifacts, source="validation" if validation is not None else "training"
        )
        artifact = self.artifacts.put(dump_model(model))
        lineage_info: dict[str, Any] = {
            "data": {
                "fingerprint": lineage.data_fingerprint(data),
                "rows": len(data),
                "columns": len(data.columns),
                "source": data_source,
                "validation_fingerprint": (
                    lineage.data_fingerprint(validation) if validation is not None else None
                ),
            },
            "code": lineage.git_state(Path(code_dir) if code_dir else Path.cwd()),
            "estimator": lineage.estimator_params(unwrap(model)),
            "environment": lineage.environment(unwrap(model)),
            "seed": seed,
        }
        if isinstance(model, ClassMapped):
            lineage_info["class_map"] = [
                [lineage.json_safe(k), lineage.json_safe(v)] for k, v in model.class_map.items()
            ]
        if widening is not None:
            lineage_info["signature"] = widening
        metrics = _holdout_metrics(model, signature, validation) if validation is not None else {}
        number = self.metadata.add_version(
            name,
            actor=self.actor,
            description=_text(description),
            artifact={**artifact.to_dict(), "format": FORMAT},
            signature=signature.to_dict(),
            reference=reference_info,
            lineage=lineage_info,
            metrics=metrics,
            tags=_tags(tags, widening),
        )
        if alias is not None:
            self.metadata.set_alias(name, alias, number, actor=self.actor, reason="registered")
        return self.get(ModelRef(name, version=number))

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before."""
        check_name(name)
        check_alias(alias)
        return self.metadata.set_alias(name, alias, version, actor=self.actor, reason=_text(reason))

    def rollback(
        self, name: str, alias: str = "production", *, reason: str | None = None
    ) -> tuple[int, int]:
        """Move ``alias`` back to where it pointed before; returns (from, to)."""
        check_name(name)
        check_alias(alias)
        return self.metadata.rollback_alias(name, alias, actor=self.actor, reason=_text(reason))

    def record_event(
        self,
        name: str,
        action: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.metadata.record_event(
            name, action, actor=self.actor, reason=_text(reason), details=details
        )

    # -- reading ------------------------------------------------------------------------
    def get(self, ref: str | ModelRef) -> ModelVersion:
        """The version named by ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` (NAME: latest)."""
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        return ModelVersion.from_record(self.metadata.get_version(ref.name, self._number(ref)))

    def load(self, ref: str | ModelRef) -> LoadedModel:
        """Deserialize a version's estimator after verifying its SHA-256."""
        version = self.get(ref)
        return LoadedModel(version=version, model=load_model(self.artifacts.get(version.artifact)))

    def reference(self, ref: str | ModelRef) -> Reference:
        return load_reference(dict(self.get(ref).reference), self.artifacts)

    def models(self) -> list[ModelSummary]:
        return self.metadata.list_models()

    def versions(self, name: str) -> list[ModelVersion]:
        return [ModelVersion.from_record(r) for r in self.metadata.list_versions(check_name(name))]

    def aliases(self, name: str) -> dict[str, int]:
        return self.metadata.aliases(check_name(name))

    def audit(self, name: str | None = None, *, limit: int | None = None) -> list[AuditEvent]:
        return self.metadata.audit(check_name(name) if name is not None else None, limit=limit)

    def _number(self, ref: ModelRef) -> int:
        if ref.version is not None:
            return ref.version
        if ref.alias is not None:
            return self.metadata.resolve_alias(ref.name, ref.alias)
        return self.metadata.latest_version(ref.name)


def _check_frame(frame: object, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"the {what} data must be a pandas DataFrame, not {type(frame).__name__}"
        )
    if frame.empty:
        raise SchemaError(f"the {what} frame is empty")


def _kind(signature: Signature) -> str | None:
    return signature.task.kind if signature.task is not None else None


def _widen(
    model: Any, inferred: Signature, accepts: Signature, data: pd.DataFrame
) -> tuple[Signature, dict[str, Any]]:
    """``inferred`` widened by ``accepts``, keeping a column non-nullable where the model
    cannot predict a null in it; also what was widened and what was kept narrow, and why."""
    wide = widen_signature(inferred, accepts)
    kept_narrow: dict[str, str] = {}
    columns = []
    for before, after in zip(inferred.columns, wide.columns, strict=True):
        reason = None
        if after.nullable and not before.nullable:
            reason = _null_refused(model, wide, data, after.name)
        if reason is not None:
            kept_narrow[after.name] = reason
        columns.append(after if reason is None else replace(after, nullable=False))
    wide = Signature(columns=tuple(columns), task=wide.task)
    widened = [a.name for a, b in zip(wide.columns, inferred.columns, strict=True) if a != b]
    return wide, {"widened": widened, "kept_narrow": kept_narrow}


def _null_refused(model: Any, signature: Signature, data: pd.DataFrame, column: str) -> str | None:
    """Why the model cannot predict rows with a null in ``column`` (None if it can).

    The rows are a few training rows with ``column`` set to null, coerced by the same
    validation the server runs, so the model sees the frame it would be served.
    """
    rows = data[list(signature.names)].head(_NULL_PROBE_ROWS).copy()
    rows[column] = None
    try:
        outputs = predict_outputs(model, validate(signature, rows).frame, _kind(signature))
    except ModelError as exc:
        return _text_cut(exc.message)
    numbers = outputs.select_dtypes(include="number").to_numpy(dtype=np.float64)
    if not np.isfinite(numbers).all():
        return "non-finite outputs for a null"
    return None


def _tags(tags: Mapping[str, Any] | None, widening: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {str(k): lineage.json_safe(v) for k, v in (tags or {}).items()}
    if widening is not None and widening["kept_narrow"]:
        # exceptional and actionable (requests the parent served are rejected): shown
        # with the tags on the model card, not only in the lineage
        out.setdefault("signature_kept_narrow", sorted(widening["kept_narrow"]))
    return out


def _text_cut(text: str, limit: int = 200) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _holdout_metrics(model: Any, signature: Signature, validation: pd.DataFrame) -> dict[str, Any]:
    from livemodel.stats.metrics import realized_metrics

    task = signature.task
    if task is None:
        return {}
    outputs = predict_outputs(model, validation[list(signature.names)], task.kind)
    y_true = validation[task.target].to_numpy()
    proba_cols = [c for c in outputs.columns if c.startswith("proba_")]
    y_proba = outputs[proba_cols].to_numpy() if proba_cols else None
    if task.kind == "binary" and y_proba is not None:
        y_proba = y_proba[:, -1]
    values = realized_metrics(
        task.kind,
        y_true,
        y_pred=outputs["prediction"].to_numpy(),
        y_proba=y_proba,
        classes=list(task.classes) if task.classes else None,
    )
    return {
        "holdout": {
            name: {"value": m.value, "n": m.n, "reason": m.reason} for name, m in values.items()
        },
        "holdout_rows": len(validation),
    }


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError("reasons and descriptions must be text")
    if len(value) > _MAX_TEXT:
        raise InvalidInputError(f"text longer than {_MAX_TEXT} characters")
    return value
