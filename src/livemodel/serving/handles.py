"""A loaded model version ready to answer: its estimator, signature and output shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import ModelError
from livemodel.registry.decision import decide
from livemodel.registry.registry import Registry
from livemodel.registry.version import ModelVersion


@dataclass(frozen=True)
class BatchOutputs:
    """Outputs of one ``predict`` call: labels (+ probabilities) or regression values."""

    labels: np.ndarray | None
    proba: np.ndarray | None
    values: np.ndarray | None

    def ok_rows(self) -> np.ndarray:
        """Rows whose outputs are finite numbers."""
        ok = np.ones(self._n(), dtype=bool)
        if self.labels is not None:
            ok &= ~pd.isna(self.labels)
        if self.proba is not None:
            ok &= np.isfinite(self.proba).all(axis=1)
        if self.values is not None:
            ok &= np.isfinite(self.values)
        return ok

    def _n(self) -> int:
        for arr in (self.labels, self.proba, self.values):
            if arr is not None:
                return len(arr)
        return 0


@dataclass(frozen=True)
class ModelHandle:
    """An immutable, verified, deserialized version: swapping models swaps handles."""

    version: ModelVersion
    model: Any
    classes: tuple[Any, ...] | None

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def number(self) -> int:
        return self.version.version

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def decides_labels(self) -> bool:
        """Does the model answer with class labels (a classifier, with or without
        ``predict_proba``) rather than numbers?"""
        task = self.version.signature.task
        return self.classes is not None or (task is not None and task.kind != "regression")

    def predict(self, frame: pd.DataFrame) -> BatchOutputs:
        """Run the estimator on ``frame``: the label is the model's own ``predict`` (which
        may decide at a threshold of its own), probabilities come from ``predict_proba``.

        A classifier without ``predict_proba`` answers labels only; a regressor values.
        """
        n = len(frame)
        raw, proba = decide(self.model, frame, proba=self.classes is not None)
        if raw.ndim == 2 and raw.shape[1] == 1:
            raw = raw.ravel()
        if raw.ndim != 1 or raw.shape[0] != n:
            raise ModelError(f"predict returned shape {raw.shape} for {n} rows")
        if proba is not None:
            proba = np.asarray(proba, dtype=np.float64)
            if proba.ndim != 2 or proba.shape != (n, len(self.classes or ())):
                raise ModelError(f"predict_proba returned shape {proba.shape}")
        if self.decides_labels or raw.dtype.kind not in "fiub":
            return BatchOutputs(labels=raw.astype(object), proba=proba, values=None)
        return BatchOutputs(labels=None, proba=None, values=raw.astype(np.float64))


def row_outputs(handle: ModelHandle, outputs: BatchOutputs | None, i: int) -> dict[str, Any]:
    """Row ``i`` of ``outputs`` as JSON-ready ``label`` / ``proba`` / ``value``."""
    if outputs is None:
        return {}
    out: dict[str, Any] = {}
    if outputs.labels is not None:
        out["label"] = _plain(outputs.labels[i])
    if outputs.proba is not None and handle.classes is not None:
        out["proba"] = {
            str(c): float(p) for c, p in zip(handle.classes, outputs.proba[i], strict=True)
        }
    if outputs.values is not None:
        out["value"] = float(outputs.values[i])
    return out


def concat_outputs(parts: Sequence[BatchOutputs | None], sizes: Sequence[int]) -> BatchOutputs:
    """Outputs of consecutive slices as one; a failed slice (None) is left as None/NaN rows,
    which the caller must mark as failed (a label-only model's rows would not show it).
    """
    template = next((p for p in parts if p is not None), None)
    if template is None:
        raise ValueError("concat_outputs needs at least one slice that did not fail")
    n = sum(sizes)
    labels = np.full(n, None, dtype=object)
    proba = None
    if template.proba is not None:
        proba = np.full((n, template.proba.shape[1]), np.nan)
    values = np.full(n, np.nan)
    start = 0
    for part, size in zip(parts, sizes, strict=True):
        if part is not None:
            if part.labels is not None:
                labels[start : start + size] = part.labels
            if proba is not None and part.proba is not None:
                proba[start : start + size] = part.proba
            if part.values is not None:
                values[start : start + size] = part.values
        start += size
    return BatchOutputs(
        labels=labels if template.labels is not None else None,
        proba=proba,
        values=values if template.values is not None else None,
    )


def load_handle(registry: Registry, ref: str) -> ModelHandle:
    loaded = registry.load(ref)
    task = loaded.version.signature.task
    classes: tuple[Any, ...] | None = None
    if (
        task is not None
        and task.kind != "regression"
        and callable(getattr(loaded.model, "predict_proba", None))
    ):
        fitted = getattr(loaded.model, "classes_", None)
        classes = tuple(_plain(c) for c in (fitted if fitted is not None else task.classes or ()))
    return ModelHandle(version=loaded.version, model=loaded.model, classes=classes or None)


def _plain(value: Any) -> Any:
    """numpy scalars as Python scalars, so they serialize to JSON."""
    return value.item() if isinstance(value, np.generic) else value
