"""Rollouts over real HTTP: a server with its controller, load from another process.

- a healthy candidate goes through shadow and every canary step and is promoted;
- a candidate raising on 20% of its requests is rolled back within 200 canary requests
  while no client request fails;
- a candidate that is less accurate (it ignores the departure delay) is rolled back by the
  estimated-performance guard before any label arrives;
- a candidate reading another flight's delay (no drift, same confidence) is rolled back by
  the accuracy guard once labels arrive.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tests.serving.conftest import (
    Models,
    Server,
    cli,
    make_token,
    records,
    registry_at,
    start_load,
    start_server,
)

from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET
from livemodel.store.logreader import LogReader

FLAKY_MODULE = '''
"""Candidates that misbehave on purpose (importable by the server process)."""
import os

import numpy as np


class Flaky:
    """Raises on a share of calls (at random), only inside a test server process."""

    def __init__(self, inner, rate):
        self.inner, self.rate, self.classes_ = inner, rate, inner.classes_
        self.rng = np.random.default_rng(0)

    def predict_proba(self, X):
        armed = "LM_FAULTS_TRACE" in os.environ  # set for servers, not at registration
        if armed and self.rng.random() < self.rate:
            raise RuntimeError("flaky candidate")
        return self.inner.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class Misjoined:
    """Fine at registration; once served, it reads another flight's departure delay (an
    upstream join gone wrong). Every input keeps its distribution and every answer its
    confidence, so neither drift nor CBPE can tell: only labels can."""

    def __init__(self, inner, delays):
        self.inner, self.classes_ = inner, inner.classes_
        self.delays = np.asarray(delays, dtype=float)

    def predict_proba(self, X):
        if "LM_FAULTS_TRACE" in os.environ:  # set for servers, not at registration
            distance = np.nan_to_num(X["distance"].to_numpy(dtype=float, na_value=np.nan))
            hour = np.nan_to_num(X["sched_hour"].to_numpy(dtype=float, na_value=np.nan))
            other = (distance * 104729 + hour * 7919).astype(np.int64) % len(self.delays)
            X = X.assign(dep_delay=self.delays[other])
        return self.inner.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
'''


def weak_pipeline() -> Pipeline:
    """A less accurate candidate: it never sees the departure delay, the best predictor."""
    numeric = [c for c in NUMERIC if c != "dep_delay"]
    encode = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])


CONFIG = """
[serving]
poll_seconds = 0.5
max_rows = 500
"""


@pytest.fixture(scope="module")
def rollout_server(
    template_home: Path,
    faults_dir: Path,
    models: Models,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    (faults_dir / "lm_flaky.py").write_text(FLAKY_MODULE)
    import lm_flaky  # type: ignore[import-not-found]

    home = tmp_path_factory.mktemp("rollouts") / "home"
    shutil.copytree(template_home, home)
    (home / "livemodel.toml").write_text(CONFIG)
    registry = registry_at(home)
    data = models.data
    train, valid = data.iloc[:2500], data.iloc[2500:]
    for name, candidate in (
        ("healthy", models.linear_v1),
        ("flaky", lm_flaky.Flaky(models.linear_v1, 0.2)),
        ("worse", weak_pipeline().fit(train[list(FEATURES)], train[TARGET])),
        ("misjoined", lm_flaky.Misjoined(models.linear_v1, train["dep_delay"].dropna())),
    ):
        registry.register(
            name, models.linear_v1, train, target=TARGET, validation=valid, alias="production"
        )
        registry.register(name, candidate, train, target=TARGET, validation=valid)
    registry.metadata.db.close()
    server = start_server(
        home,
        faults_dir,
        config=home / "livemodel.toml",
        ready_models=("healthy", "flaky", "worse", "misjoined"),
        controller=True,
    )
    yield server
    server.stop()


def status(server: Server, name: str) -> dict[str, Any]:
    done = cli(server.home, server.faults, "rollout", "status", name, "--json")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wait_for_end(server: Server, name: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = status(server, name)
        if state["status"] != "running":
            return state
        time.sleep(1)
    raise AssertionError(f"rollout of {name} still running: {status(server, name)}")


def roll_out(
    server: Server, name: str, plan: str, pool: list[dict[str, Any]], where: Path, *extra: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start a rollout of version 2 under load; return its final state and the outcomes."""
    cli(
        server.home,
        server.faults,
        "rollout",
        "start",
        name,
        "--candidate",
        "2",
        "--plan",
        plan,
        *extra,
    )
    load = start_load(server, name, pool, where, seconds=150, threads=4, max_requests=40_000)
    try:
        final = wait_for_end(server, name, 150)
    finally:
        load.stop()
    return final, load.outcomes()


def test_healthy_candidate_goes_through_shadow_and_canary_to_production(
    rollout_server: Server, models: Models, tmp_path: Path
) -> None:
    server = rollout_server
    pool = records(models.data.iloc[:400])
    final, outcomes = roll_out(
        server, "healthy", "shadow,canary:20,50,100", pool, tmp_path, "--min-step-samples", "60"
    )
    assert final["status"] == "promoted", final
    assert all(o["ok"] for o in outcomes)
    assert registry_at(server.home).get("healthy@production").version == 2
    actions = [
        e["action"]
        for e in json.loads(cli(server.home, server.faults, "audit", "healthy", "--json").stdout)
    ]
    assert actions.count("rollout.step") == 3 and actions[-2:] == ["rollout.promote", "alias.set"]
    # Shadow answers were logged under the champion's prediction ids.
    table = LogReader(server.home / "logs").window("healthy", columns=["prediction_id", "arm"])
    rows = table.to_pylist()
    shadow_ids = {r["prediction_id"] for r in rows if r["arm"] == "shadow"}
    champion_ids = {r["prediction_id"] for r in rows if r["arm"] == "champion"}
    assert shadow_ids and shadow_ids <= champion_ids


def test_candidate_failing_20_percent_is_rolled_back_without_failed_requests(
    rollout_server: Server, models: Models, tmp_path: Path
) -> None:
    server = rollout_server
    final, outcomes = roll_out(
        server, "flaky", "canary:10,50,100", records(models.data.iloc[:400]), tmp_path
    )
    assert final["status"] == "rolled_back", final
    assert final["reason"].startswith("errors:")
    errors = next(r for r in final["last_readings"] if r["guard"] == "errors")
    assert errors["n_candidate"] <= 200, errors
    assert outcomes and all(o["ok"] for o in outcomes), [o for o in outcomes if not o["ok"]][:3]
    assert registry_at(server.home).get("flaky@production").version == 1


def test_less_accurate_candidate_is_rolled_back_by_estimated_performance(
    rollout_server: Server, models: Models, tmp_path: Path
) -> None:
    server = rollout_server
    final, outcomes = roll_out(
        server, "worse", "canary:50,100", records(models.data.iloc[:1500]), tmp_path
    )
    assert final["status"] == "rolled_back", final
    assert "estimated" in final["reason"]
    estimated = next(r for r in final["last_readings"] if r["guard"] == "estimated")
    assert estimated["effect"] < 0 and estimated["ci"][1] < 0
    assert all(o["ok"] for o in outcomes)


def test_candidate_wrong_where_cbpe_cannot_see_is_rolled_back_once_labels_arrive(
    rollout_server: Server, models: Models
) -> None:
    """A misjoined feature keeps every distribution, so only labels reveal it."""
    server = rollout_server
    cli(
        server.home,
        server.faults,
        "rollout",
        "start",
        "misjoined",
        "--candidate",
        "2",
        "--plan",
        "canary:50,100",
        "--min-step-samples",
        "100000",
    )
    pool = records(models.data.iloc[:1500])
    truth = models.data[TARGET].iloc[:1500].tolist()
    client = server.client()
    feedback = {"authorization": f"Bearer {make_token(server.home, 'feedback')}"}
    sent: list[tuple[str, int]] = []
    deadline = time.monotonic() + 150
    state = status(server, "misjoined")
    i = 0
    while state["status"] == "running" and time.monotonic() < deadline:
        for _ in range(100):  # traffic, then the labels of that traffic (late, in a batch)
            answer = client.post("/v1/models/misjoined/predict", json={"records": [pool[i % 1500]]})
            assert answer.status_code == 200, answer.text
            sent.append((answer.json()["predictions"][0]["id"], int(truth[i % 1500])))
            i += 1
        labels = [{"id": pid, "label": y} for pid, y in sent]
        assert (
            client.post(
                "/v1/models/misjoined/feedback", json={"labels": labels}, headers=feedback
            ).status_code
            == 200
        )
        sent.clear()
        time.sleep(1.0)
        state = status(server, "misjoined")
    assert state["status"] == "rolled_back", state
    assert "accuracy" in state["reason"], state["reason"]
    accuracy = next(r for r in state["last_readings"] if r["guard"] == "accuracy")
    assert accuracy["effect"] < -0.1 and accuracy["n_candidate"] > 0
