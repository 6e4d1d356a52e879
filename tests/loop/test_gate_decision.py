"""The gate scores each model on its own decisions: a threshold model's accuracy is that of
its ``predict``, not of its most probable class."""

from __future__ import annotations

import pytest
from sklearn.metrics import accuracy_score
from sklearn.model_selection import FixedThresholdClassifier
from tests.serving.conftest import linear_pipeline

from livemodel.demo.flights import FEATURES, TARGET, load_flights
from livemodel.loop.gate import run_gate
from livemodel.loop.policy import GateSettings


def test_the_gate_scores_what_each_model_decides() -> None:
    data = load_flights((1,)).iloc[:4000][[*FEATURES, TARGET]].reset_index(drop=True)
    x, y = data[list(FEATURES)], data[TARGET]
    champion = linear_pipeline().fit(x.iloc[:3000], y.iloc[:3000])
    candidate = FixedThresholdClassifier(linear_pipeline(), threshold=0.8)
    candidate.fit(x.iloc[:3000], y.iloc[:3000])
    holdout = data.iloc[3000:]
    settings = GateSettings(metric="accuracy", n_bootstrap=200)
    result = run_gate(champion, candidate, holdout, features=FEATURES, target=TARGET,
                      kind="binary", classes=[0, 1], settings=settings)  # fmt: skip
    rows, truth = holdout[list(FEATURES)], holdout[TARGET]
    decided = accuracy_score(truth, candidate.predict(rows))
    most_probable = accuracy_score(truth, candidate.predict_proba(rows).argmax(axis=1))
    assert abs(decided - most_probable) > 0.01  # the two differ here
    assert result.overall.candidate == pytest.approx(decided)
    assert result.overall.champion == pytest.approx(accuracy_score(truth, champion.predict(rows)))
