"""The served decision is the model's own ``predict``, row for row, over real HTTP.

One server serves every kind of :mod:`tests.serving.decision_kinds` (thresholds of their
own, string and odd integer labels, multiclass, no ``predict_proba``, regression, LightGBM,
class weights): each answer's ``label`` equals ``model.predict`` and its ``proba`` equals
``model.predict_proba`` for one request of many rows, for single-row requests sent at once
(which the server gathers into micro-batches) and for what a shadow candidate logs; the
log holds what was answered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import FixedThresholdClassifier

from livemodel.store.logreader import LogReader

from .conftest import Server, cli, registry_at, start_server
from .decision_kinds import KINDS, Kind, _lr, fit

CONFIG = """
[serving]
poll_seconds = 0.5
max_rows = 1000
"""

TRAIN, SERVED = slice(0, 3000), slice(3000, 3600)


@dataclass(frozen=True)
class Served:
    server: Server
    models: dict[str, Any]  # name -> the fitted estimator registered as version 1
    shadow: Any  # version 2 of "fixed-threshold"
    flights: pd.DataFrame


@pytest.fixture(scope="module")
def served(
    flights: pd.DataFrame, faults_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("decision") / "home"
    home.mkdir()
    registry = registry_at(home)
    models: dict[str, Any] = {}
    for name, kind in KINDS.items():
        models[name], frame = fit(kind, flights.iloc[TRAIN])
        registry.register(name, models[name], frame, target=kind.target_name, alias="production")
    frame = KINDS["fixed-threshold"].frame(flights.iloc[TRAIN])
    shadow = FixedThresholdClassifier(_lr(), threshold=0.3).fit(
        frame.drop(columns="late"), frame["late"]
    )
    registry.register("fixed-threshold", shadow, frame, target="late")
    registry.metadata.db.close()
    (home / "livemodel.toml").write_text(CONFIG)
    server = start_server(
        home, faults_dir, config=home / "livemodel.toml", ready_models=tuple(KINDS)
    )
    yield Served(server, models, shadow, flights)
    server.stop()


def features(kind: Kind, flights: pd.DataFrame) -> pd.DataFrame:
    return kind.frame(flights).drop(columns=kind.target_name)


def send(client: httpx.Client, name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post(f"/v1/models/{name}/predict", json={"records": rows})
    assert response.status_code == 200, response.text
    answer: list[dict[str, Any]] = response.json()["predictions"]
    return answer


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN as null), whatever the columns."""
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def check_answers(answers: list[dict[str, Any]], model: Any, rows: pd.DataFrame) -> None:
    """Every answer is the model's own: label = predict, proba = predict_proba."""
    assert len(answers) == len(rows)
    expected = model.predict(rows).tolist()
    if not hasattr(model, "classes_"):  # regression
        assert [a["value"] for a in answers] == expected
        assert all("label" not in a for a in answers)
        return
    assert [a["label"] for a in answers] == expected
    if not callable(getattr(model, "predict_proba", None)):
        assert all("proba" not in a for a in answers)
        return
    proba = model.predict_proba(rows)
    keys = [str(c) for c in model.classes_]
    served = np.array([[a["proba"][k] for k in keys] for a in answers])
    np.testing.assert_allclose(served, proba, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(KINDS))
def test_one_request_answers_the_models_predict_row_for_row(served: Served, name: str) -> None:
    kind, model = KINDS[name], served.models[name]
    rows = features(kind, served.flights.iloc[SERVED])
    answers = send(served.server.client(), name, json_records(rows))
    check_answers(answers, model, rows)
    # ... and the log holds what was answered.
    log = LogReader(served.server.home / "logs").window(name).to_pandas()
    logged = log.set_index("prediction_id").loc[[a["id"] for a in answers]]
    output = "value" if kind.regression else "label"
    assert logged[f"o.{output}"].tolist() == [a[output] for a in answers]


def test_thresholded_models_decide_unlike_the_most_probable_class(served: Served) -> None:
    """The kinds above would catch a server answering argmax(predict_proba)."""
    for name in ("fixed-threshold", "tuned-threshold", "string-labels"):
        model = served.models[name]
        rows = features(KINDS[name], served.flights.iloc[SERVED])
        argmax = model.classes_[model.predict_proba(rows).argmax(axis=1)]
        assert (argmax != model.predict(rows)).sum() >= 10, name


@pytest.mark.parametrize("name", ["fixed-threshold", "string-labels", "no-proba", "lightgbm"])
def test_single_rows_sent_at_once_answer_the_models_predict(served: Served, name: str) -> None:
    kind, model = KINDS[name], served.models[name]
    rows = features(kind, served.flights.iloc[3600:3700])
    client = served.server.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda r: send(client, name, [r])[0], json_records(rows)))
    check_answers(answers, model, rows)


def test_a_shadow_candidate_logs_its_own_decision(served: Served) -> None:
    server, name = served.server, "fixed-threshold"
    cli(
        server.home, server.faults, "rollout", "start", name, "--candidate", "2", "--plan", "shadow"
    )
    try:
        rows = features(KINDS[name], served.flights.iloc[3700:3900])
        client = server.client()
        ids = _ids_once_shadowed(server, client, name, json_records(rows))
        log = LogReader(server.home / "logs").window(name).to_pandas()
        by_arm = {
            arm: part.set_index("prediction_id").loc[ids]["o.label"].tolist()
            for arm, part in log[log["prediction_id"].isin(ids)].groupby("arm")
        }
        assert by_arm["champion"] == served.models[name].predict(rows).tolist()
        assert by_arm["shadow"] == served.shadow.predict(rows).tolist()
        assert by_arm["shadow"] != by_arm["champion"]  # the thresholds differ: 0.3 vs 0.8
    finally:
        cli(server.home, server.faults, "rollout", "abort", name, "--reason", "test over")


def _ids_once_shadowed(
    server: Server, client: httpx.Client, name: str, rows: list[dict[str, Any]]
) -> list[str]:
    """Send ``rows`` once the server mirrors traffic to the shadow, in requests of 20, and
    wait until each has its shadow answer logged; returns their prediction ids."""
    deadline = time.monotonic() + 60
    while True:  # the server picks the rollout up from the database within poll_seconds
        probe = send(client, name, rows[:1])[0]["id"]
        if _shadowed(server, name, [probe]):
            break
        assert time.monotonic() < deadline, "the server never mirrored traffic to the shadow"
        time.sleep(0.3)
    ids = [
        a["id"]
        for start in range(0, len(rows), 20)
        for a in send(client, name, rows[start : start + 20])
    ]
    while not _shadowed(server, name, ids):
        assert time.monotonic() < deadline, "shadow answers were not all logged"
        time.sleep(0.3)
    return ids


def _shadowed(server: Server, name: str, ids: list[str]) -> bool:
    table = LogReader(server.home / "logs").window(name, columns=["prediction_id", "arm"])
    shadow = {r["prediction_id"] for r in table.to_pylist() if r["arm"] == "shadow"}
    return set(ids) <= shadow
