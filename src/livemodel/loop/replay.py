"""Rebuilding a version from its lineage, and checking that it comes out the same.

A version the loop trained records its pinned snapshot, its entry point and its seed
(:mod:`livemodel.loop.retrain`). :func:`replay` reads the snapshot back (verifying the
artifact's SHA-256 and the frame's fingerprint), imports the entry point as it is *now*,
trains with the recorded seed and compares the new model's outputs with the registered
model's on the version's reference sample: same data and same code give identical
predictions and probabilities; anything else is counted. Nothing is registered unless
asked (``register=True``), and then only as a new version tagged ``replay_of``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError, NotFoundError
from livemodel.loop.data import load_pinned
from livemodel.loop.retrain import (
    TrainFunction,
    call_train,
    register_candidate,
    resolve_entry_point,
)
from livemodel.registry.model_io import predict_outputs
from livemodel.registry.refs import ModelRef
from livemodel.registry.registry import Registry

__all__ = ["ReplayResult", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    model: str
    version: int
    entry_point: str
    seed: int
    fingerprint: str
    rows: int
    compared: int
    predictions_differ: int
    probabilities_differ: int
    max_probability_difference: float | None
    registered: int | None = None

    @property
    def identical(self) -> bool:
        return self.predictions_differ == 0 and self.probabilities_differ == 0

    def message(self) -> str:
        if self.identical:
            return (
                f"{self.model}@{self.version} reproduced exactly: {self.compared} identical "
                f"predictions on the reference sample"
            )
        worst = self.max_probability_difference
        proba = "" if worst is None else f", probabilities up to {worst:.3g} apart"
        return (
            f"{self.model}@{self.version} did NOT reproduce: {self.predictions_differ} of "
            f"{self.compared} predictions differ ({self.probabilities_differ} rows with other "
            f"probabilities{proba}); the data matched its fingerprint, so the training code "
            f"or its environment changed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "identical": self.identical, "message": self.message()}


def replay(
    registry: Registry,
    name: str,
    version: int,
    *,
    register: bool = False,
    train: TrainFunction | None = None,
) -> ReplayResult:
    """Retrain ``name@version`` from its lineage and compare; see the module docstring.

    ``train`` replaces the recorded entry point (tests, or checking a code change).
    """
    loaded = registry.load(ModelRef(name, version=version))
    lineage = loaded.version.tags.get("loop")
    if not isinstance(lineage, Mapping) or not isinstance(lineage.get("snapshot"), Mapping):
        raise NotFoundError(
            f"{loaded.version.ref} has no pinned snapshot: only versions the loop trained "
            "can be replayed"
        )
    entry_point = str(lineage.get("train", ""))
    seed = lineage.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"{loaded.version.ref} records no integer seed")
    snapshot = load_pinned(lineage["snapshot"], registry.artifacts)
    fn = train if train is not None else resolve_entry_point(entry_point, key="lineage train")
    model = call_train(fn, snapshot.train, seed=seed, name=entry_point)
    task = loaded.version.signature.task
    kind = None if task is None else task.kind
    sample = registry.reference(loaded.version.ref).sample
    features = sample[list(loaded.version.signature.names)]
    before = predict_outputs(loaded.model, features, kind)
    after = predict_outputs(model, features, kind)
    differ = int((~_same(before["prediction"], after["prediction"])).sum())
    proba_rows, worst = _proba_difference(before, after)
    registered = None
    if register:
        parent_number = lineage.get("parent")
        parent = loaded.version
        if isinstance(parent_number, int):
            try:
                parent = registry.get(ModelRef(name, version=parent_number))
            except NotFoundError:
                parent = loaded.version
        registered = register_candidate(
            registry, name, model, snapshot,
            parent=parent, entry_point=entry_point, seed=seed,
            run_id=str(lineage.get("run", "")), trigger=dict(lineage.get("trigger") or {}),
            extra_tags={"replay_of": version},
        ).version  # fmt: skip
    return ReplayResult(
        model=name,
        version=version,
        entry_point=entry_point,
        seed=seed,
        fingerprint=str(lineage["snapshot"]["train"]["fingerprint"]),
        rows=len(snapshot.train),
        compared=len(features),
        predictions_differ=differ,
        probabilities_differ=proba_rows,
        max_probability_difference=worst,
        registered=registered,
    )


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    left, right = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
    return np.array(
        [x == y or (pd.isna(x) and pd.isna(y)) for x, y in zip(left, right, strict=True)],
        dtype=bool,
    )


def _proba_difference(before: pd.DataFrame, after: pd.DataFrame) -> tuple[int, float | None]:
    columns = sorted({c for c in (*before.columns, *after.columns) if c.startswith("proba_")})
    if not columns:
        return 0, None
    if any(c not in before.columns or c not in after.columns for c in columns):
        return len(before), None  # other classes: every row differs
    old = before[columns].to_numpy(np.float64)
    new = after[columns].to_numpy(np.float64)
    rows = int((old != new).any(axis=1).sum())
    return rows, float(np.abs(old - new).max()) if len(old) else 0.0
