"""Hostile traffic cannot steer a rollout, and model failures are logged, never leaked.

A real server with its controller, load from another process. 10% of requests carry a
finite but absurd value (1e308 in one numeric feature), which scikit-learn's gradient
boosting refuses as any user would see it fail: it casts to float32, where 1e308 is
infinite ("Input X contains infinity or a value too large for dtype('float32')").

- a candidate identical to the champion (the same artifact registered twice) goes through
  shadow and canary and is promoted: an input both versions fail moves neither, and each
  version's failures are recorded (log records per arm, server log lines, the metric);
- a candidate that fails where the champion does not (its encoder refuses carriers it has
  not seen, and SkyWest starts flying from New York) is still rolled back by the errors
  guard;
- a model whose error message holds a secret: its failures in predict, explain and
  shadow are in the server log with their prediction ids, and the secret is in no answer
  of predict, explain, shadow or feedback;
- a store error (the log directory cannot be written) answers no file-system path.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.serving.conftest import (
    Models,
    Server,
    cli,
    metric,
    records,
    registry_at,
    start_load,
    start_server,
)

from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET, load_flights
from livemodel.store.logreader import LogReader

ABSURD = 1e308
SECRET = "s3cr3t-Tr0ub4dor-42"
LEAKY_MODULE = f'''
"""A model whose errors carry a secret, as database drivers' errors often do."""
import numpy as np


class FeatureStoreModel:
    """Looks up extra features for rows beyond any real flight, which fails."""

    def __init__(self, inner):
        self.inner, self.classes_ = inner, inner.classes_

    def predict_proba(self, X):
        delay = X["dep_delay"].to_numpy(dtype=float, na_value=np.nan)
        if (np.abs(delay) > 1e300).any():
            raise ConnectionError(
                "could not fetch features from "
                "postgresql://scorer:{SECRET}@10.1.2.3:5432/features\\n"
                '  File "/srv/models/risk/features.py", line 12, in lookup'
            )
        return self.inner.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
'''
CONFIG = """
[serving]
poll_seconds = 0.5
max_rows = 500
"""


def boosted(*, unknown: str = "ignore") -> Pipeline:
    """Gradient boosting behind imputation and one-hot encoding (``unknown``: what the
    encoder does with a category it has not seen, ``ignore`` or ``error``)."""
    onehot = OneHotEncoder(handle_unknown=unknown, sparse_output=False)
    encode = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), list(NUMERIC)),
            ("cat", onehot, list(CATEGORICAL)),
        ]
    )
    trees = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0)
    return Pipeline([("encode", encode), ("trees", trees)])


@pytest.fixture(scope="module")
def hostile_server(
    template_home: Path, faults_dir: Path, models: Models, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    (faults_dir / "lm_leaky.py").write_text(LEAKY_MODULE)
    import lm_leaky  # type: ignore[import-not-found]

    home = tmp_path_factory.mktemp("hostile") / "home"
    shutil.copytree(template_home, home)
    (home / "livemodel.toml").write_text(CONFIG)
    registry = registry_at(home)
    train = models.data.iloc[:3000]
    x, y = train[list(FEATURES)], train[TARGET]
    champion = boosted().fit(x, y)
    strict = boosted(unknown="error").fit(x, y)
    leaky = lm_leaky.FeatureStoreModel(champion)
    for name, second in (("twin", champion), ("strict", strict), ("leaky", leaky)):
        first = leaky if name == "leaky" else champion
        registry.register(name, first, train, target=TARGET, alias="production")
        registry.register(name, second, train, target=TARGET)
    registry.register("diskless", champion, train, target=TARGET, alias="production")
    registry.metadata.db.close()
    server = start_server(
        home,
        faults_dir,
        config=home / "livemodel.toml",
        ready_models=("twin", "strict", "leaky", "diskless"),
        controller=True,
    )
    yield server
    server.stop()


def hostile_pool(data: pd.DataFrame, *, new: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """1,000 records of real flights: 10% with one float feature at 1e308; with ``new``
    flights, 20% are drawn from those."""
    rng = random.Random(0)
    floats = [c for c in NUMERIC if c != "sched_hour"]  # an integer column refuses 1e308 (422)
    normal = records(data)
    newcomers = records(new) if new is not None else []
    pool = []
    for i in range(1_000):
        if i % 10 == 0:
            pool.append({**rng.choice(normal), rng.choice(floats): ABSURD})
        elif newcomers and i % 10 in (1, 2):
            pool.append(rng.choice(newcomers))
        else:
            pool.append(rng.choice(normal))
    rng.shuffle(pool)
    return pool


def status(server: Server, name: str) -> dict[str, Any]:
    done = cli(server.home, server.faults, "rollout", "status", name, "--json")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def roll_out(
    server: Server, name: str, plan: str, pool: list[dict[str, Any]], where: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Roll version 2 out under load (one record per request); final state and outcomes."""
    cli(server.home, server.faults, "rollout", "start", name, "--candidate", "2",
        "--plan", plan, "--min-step-samples", "100")  # fmt: skip
    load = start_load(
        server, name, pool, where, seconds=300, threads=4, max_requests=40_000, max_rows=1
    )
    try:
        deadline = time.monotonic() + 300
        state = status(server, name)
        while state["status"] == "running" and time.monotonic() < deadline:
            time.sleep(1)
            state = status(server, name)
    finally:
        load.stop()
    return state, load.outcomes()


def logged(server: Server, name: str) -> list[dict[str, Any]]:
    columns = ["prediction_id", "version", "arm", "flags"]
    rows: list[dict[str, Any]] = (
        LogReader(server.home / "logs").window(name, columns=columns).to_pylist()
    )
    return rows


def failures(server: Server, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return metric(text, "livemodel_model_failures_total", model=name, **labels)


@pytest.mark.timeout(600)  # a rollout under load, on a machine that may be busy
def test_a_candidate_identical_to_the_champion_is_promoted_under_hostile_traffic(
    hostile_server: Server, models: Models, tmp_path: Path
) -> None:
    server = hostile_server
    final, outcomes = roll_out(
        server, "twin", "shadow,canary:50,100", hostile_pool(models.data), tmp_path
    )
    assert final["status"] == "promoted", final
    assert registry_at(server.home).get("twin@production").version == 2
    # Clients saw the absurd requests fail (about 10%, 422 and nothing else), no others.
    refused = [o for o in outcomes if not o["ok"]]
    assert outcomes and {o["status"] for o in refused} <= {422}, refused[:3]
    assert 0.03 < len(refused) / len(outcomes) < 0.2, (len(refused), len(outcomes))
    # Every failure of either version is in the log, under its arm and version.
    failed = [r for r in logged(server, "twin") if "model_error" in (r["flags"] or [])]
    arms = {(r["arm"], r["version"]) for r in failed}
    assert {("champion", 1), ("shadow", 2), ("candidate", 2)} <= arms, arms
    assert arms & {("fallback", 1), ("probe", 2)}, arms  # the other version's answer
    # ... in the server log with the model's own error, and counted per arm.
    text = server.log_text()
    assert "model 'twin' version 1 failed (model_error)" in text
    assert "arm candidate" in text and "too large for dtype('float32')" in text
    for arm in ("champion", "candidate", "shadow"):
        assert failures(server, "twin", arm=arm) > 0, arm


@pytest.mark.timeout(600)
def test_a_candidate_failing_where_the_champion_does_not_is_rolled_back(
    hostile_server: Server, models: Models, tmp_path: Path
) -> None:
    server = hostile_server
    later = load_flights((6, 8, 9, 11))
    skywest = later[later["carrier"] == "OO"]  # a carrier the training months never saw
    pool = hostile_pool(models.data, new=skywest)
    final, outcomes = roll_out(server, "strict", "canary:50,100", pool, tmp_path)
    assert final["status"] == "rolled_back", json.dumps(final, indent=1)[:6000]
    assert final["reason"].startswith("errors:"), final["reason"]
    errors = next(r for r in final["last_readings"] if r["guard"] == "errors")
    assert errors["effect"] > 0.05 and errors["ci"][0] > 0, errors
    # The champion answered the requests the candidate failed: only absurd ones failed.
    refused = [o for o in outcomes if not o["ok"]]
    assert {o["status"] for o in refused} <= {422}
    assert len(refused) / len(outcomes) < 0.2, (len(refused), len(outcomes))
    assert registry_at(server.home).get("strict@production").version == 1


def assert_no_leak(response: httpx.Response) -> None:
    for secret in (SECRET, "postgresql://", "/srv/models", "Traceback", "ConnectionError"):
        assert secret not in response.text, response.text


def test_a_secret_in_a_model_error_reaches_the_server_log_and_no_client(
    hostile_server: Server, models: Models
) -> None:
    server = hostile_server
    client = server.client()
    normal = records(models.data.dropna(subset=list(FEATURES)).iloc[:3])
    absurd = {**normal[0], "dep_delay": ABSURD}
    before = {arm: failures(server, "leaky", arm=arm) for arm in ("champion", "explain")}

    failed = client.post("/v1/models/leaky/predict", json={"records": [normal[1], absurd]})
    assert failed.status_code == 422, failed.text
    assert_no_leak(failed)
    error = failed.json()["error"]
    assert error["type"] == "ModelFailedError" and "no fallback" in error["message"]
    ids = error["prediction_ids"]
    assert len(ids) == 2

    explained = client.post("/v1/models/leaky/explain", json={"records": [absurd]})
    assert explained.status_code == 422, explained.text
    assert_no_leak(explained)
    explain_ids = explained.json()["error"]["prediction_ids"]

    # Labels for the ids of the failed request: accepted or unknown, never an error text.
    feedback = client.post(
        "/v1/models/leaky/feedback", json={"labels": [{"id": i, "label": 1} for i in ids]}
    )
    assert feedback.status_code in (200, 401, 403, 404, 422), feedback.text
    assert_no_leak(feedback)

    # Shadow: the candidate's failures on mirrored copies are logged; clients see nothing.
    cli(server.home, server.faults, "rollout", "start", "leaky", "--candidate", "2",
        "--plan", "shadow", "--min-step-samples", "1000000")  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while failures(server, "leaky", arm="shadow") == 0:
            assert time.monotonic() < deadline, "no shadow failure counted"
            answered = client.post("/v1/models/leaky/predict", json={"records": normal[:1]})
            assert answered.status_code == 200 and SECRET not in answered.text
            hostile = client.post("/v1/models/leaky/predict", json={"records": [absurd]})
            assert hostile.status_code == 422
            assert_no_leak(hostile)
            time.sleep(0.5)
    finally:
        cli(server.home, server.faults, "rollout", "abort", "leaky")

    text = server.log_text()
    assert SECRET in text  # the operator sees the model's own error ...
    for pid in [*ids, *explain_ids]:
        assert pid in text  # ... under the ids the client was given
    assert "arm shadow" in text and "arm explain" in text
    assert failures(server, "leaky", arm="champion") - before["champion"] >= 1
    assert failures(server, "leaky", arm="explain") - before["explain"] == 1


def test_a_store_error_answers_no_path(hostile_server: Server, models: Models) -> None:
    server = hostile_server
    folder = server.home / "logs" / "diskless"
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a directory")  # every write under it fails
    response = server.client().post(
        "/v1/models/diskless/predict", json={"records": records(models.data.iloc[:1])}
    )
    assert response.status_code == 503, response.text
    assert str(server.home) not in response.text and "Errno" not in response.text
    message = response.json()["error"]["message"]
    assert message.startswith("the server's storage failed (error id ")
    error_id = message.split("error id ")[1].split()[0]
    assert error_id in server.log_text()  # the message with its path is in the log
