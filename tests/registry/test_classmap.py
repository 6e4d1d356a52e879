"""A model registered with a class_map answers in the target's values wherever it is loaded,
and a retrain of it by the loop keeps the map when its classes are the map's keys."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from livemodel.demo.flights import FEATURES, TARGET
from livemodel.errors import InvalidInputError
from livemodel.loop.data import PinnedSnapshot
from livemodel.loop.retrain import register_candidate
from livemodel.registry.registry import Registry
from livemodel.serving.handles import load_handle


def yes_no(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{TARGET: frame[TARGET].map({0: "no", 1: "yes"})})


def test_a_mapped_version_serves_and_retrains_in_the_targets_values(
    registry: Registry, flights: pd.DataFrame, fitted: Any
) -> None:
    train, rows = yes_no(flights.iloc[:3000]), flights.iloc[3000:3400][list(FEATURES)]
    with pytest.raises(InvalidInputError, match=r"classes \[0, 1\] .*\['no', 'yes'\]"):
        registry.register("churn", fitted, train, target=TARGET)
    parent = registry.register("churn", fitted, train, target=TARGET, class_map={1: "yes", 0: "no"})
    handle = load_handle(registry, "churn@1")
    outputs = handle.predict(rows)
    assert handle.classes == ("no", "yes")
    expected = np.where(fitted.predict(rows) == 1, "yes", "no")
    assert outputs.labels is not None and outputs.labels.tolist() == expected.tolist()
    np.testing.assert_array_equal(outputs.proba, fitted.predict_proba(rows))

    # The loop's train function returned another 0/1 model: the parent's map applies.
    snapshot = PinnedSnapshot(
        train=train, holdout=yes_no(flights.iloc[3000:4000]),
        info={"train": {"artifact": {"sha256": "0" * 64}}},
    )  # fmt: skip
    child = register_candidate(
        registry, "churn", fitted, snapshot, parent=parent, entry_point="tests:x", seed=0,
        run_id="r", trigger={"kind": "manual"},
    )  # fmt: skip
    assert child.lineage["class_map"] == [[0, "no"], [1, "yes"]]
    assert load_handle(registry, child.ref).predict(rows).labels.tolist() == expected.tolist()
    # ... and a model fitted on the target's values needs no map.
    on_values = clone(fitted).fit(train[list(FEATURES)], train[TARGET])
    plain = register_candidate(
        registry, "churn", on_values, snapshot, parent=parent, entry_point="tests:x", seed=0,
        run_id="r", trigger={"kind": "manual"},
    )  # fmt: skip
    assert "class_map" not in plain.lineage
