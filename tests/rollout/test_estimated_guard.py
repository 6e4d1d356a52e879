"""The estimated-performance guard scores each row's logged decision, not its argmax."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from livemodel.rollout.observations import observe


def _window() -> pa.Table:
    # p(yes) = 0.7 everywhere: a model deciding at 0.8 says "no" on every row
    arms = ["candidate"] * 4 + ["champion"] * 4
    return pa.table(
        {
            "prediction_id": [f"r{i}" for i in range(8)],
            "arm": arms,
            "flags": [[] for _ in arms],
            "o.label": ["no", "no", "no", None, "yes", "yes", "yes", "yes"],
            "o.proba.no": [0.3] * 8,
            "o.proba.yes": [0.7] * 8,
        }
    )


def test_each_arm_gets_the_probability_of_the_label_it_decided() -> None:
    seen: list[list[str]] = []

    def confidence(proba: np.ndarray, decided: np.ndarray) -> np.ndarray:
        seen.append([str(d) for d in decided])
        column = np.array([{"no": 0, "yes": 1}[str(d)] for d in decided])
        return np.asarray(proba[np.arange(len(column)), column], dtype=float)

    obs = observe(
        _window(), shadow=False, proba_columns=("o.proba.no", "o.proba.yes"),
        confidence={"candidate": confidence, "champion": confidence},
        latency_threshold_ms=None,
    )  # fmt: skip
    candidate, champion = obs.values["estimated"]
    assert candidate.tolist() == [0.3, 0.3, 0.3]  # decided "no" at 0.7: right with 0.3
    assert champion.tolist() == [0.7] * 4
    assert seen == [["no"] * 3, ["yes"] * 4]  # the row without a logged label is left out


def test_a_decision_outside_the_classes_is_dropped() -> None:
    def confidence(proba: np.ndarray, decided: np.ndarray) -> np.ndarray:
        return np.where(decided == "no", 0.3, np.nan)

    obs = observe(
        _window(), shadow=False, proba_columns=("o.proba.no", "o.proba.yes"),
        confidence={"champion": confidence}, latency_threshold_ms=None,
    )  # fmt: skip
    candidate, champion = obs.values["estimated"]
    assert candidate.size == 0 and champion.size == 0
