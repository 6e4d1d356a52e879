"""A request no version answered (503, or 422 when the model failed on its records)
leaves no exportable prediction and no labellable id.

During a rollout the server logs each row a version failed on (its features, arm and
version, the failure's flag, no outputs), and asks the other version about the same input,
so the rollout guards compare like with like. Those records are not answers a client got:

- ``livemodel predictions --json`` does not export them (``--include-failures`` does); a
  row the champion answered as the candidate's fallback is exported once, as answered;
- feedback for the ids of a 503'd request is answered like feedback for an unknown id
  (``unknown_ids``), also when the candidate answered a shadow copy of it;
- realized and estimated performance leave failure records out (they have no outputs).

A real server over HTTP and the real CLI, on a model that raises on marked inputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.serving.conftest import (
    Models,
    Server,
    cli,
    make_token,
    records,
    registry_at,
    start_server,
)

from livemodel.demo.flights import FEATURES, TARGET
from livemodel.monitor.performance import EstimatedPerformance, RealizedPerformance
from livemodel.monitor.reference import MonitorReference, canonical_frame
from livemodel.monitor.results import ALL
from livemodel.monitor.summary import ChunkPlan, WindowSummary, row_keys, summarize_chunk
from livemodel.store.answered import answered
from livemodel.store.logreader import LogReader

BOTH, CANDIDATE_ONLY = 7001.0, 7002.0  # dep_delay values the versions refuse
PICKY_MODULE = '''
"""A classifier that raises on chosen dep_delay values (importable by the server)."""
import numpy as np


class Picky:
    def __init__(self, inner, refuse):
        self.inner, self.classes_, self.refuse = inner, inner.classes_, tuple(refuse)

    def predict_proba(self, X):
        delay = X["dep_delay"].to_numpy(dtype=float, na_value=np.nan)
        if np.isin(delay, self.refuse).any():
            raise RuntimeError("refused on purpose")
        return self.inner.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
'''
CONFIG = """
[serving]
poll_seconds = 0.5
max_rows = 500
"""


@pytest.fixture(scope="module")
def picky_server(faults_dir: Path, models: Models, tmp_path_factory: pytest.TempPathFactory) -> Any:
    (faults_dir / "lm_picky.py").write_text(PICKY_MODULE)
    import lm_picky  # type: ignore[import-not-found]

    home = tmp_path_factory.mktemp("failed-rows") / "home"
    home.mkdir()
    (home / "livemodel.toml").write_text(CONFIG)
    registry = registry_at(home)
    train = models.data.iloc[:3000]
    champion = lm_picky.Picky(models.linear_v1, [BOTH])
    # canary: the candidate also refuses CANDIDATE_ONLY (the champion answers it instead);
    # shadow: the candidate answers everything, also what the champion refuses.
    candidates = {
        "canaried": lm_picky.Picky(models.linear_v1, [BOTH, CANDIDATE_ONLY]),
        "shadowed": models.linear_v1,
    }
    for name, candidate in candidates.items():
        registry.register(name, champion, train, target=TARGET, alias="production")
        registry.register(name, candidate, train, target=TARGET)
    registry.metadata.db.close()
    server = start_server(
        home, faults_dir, config=home / "livemodel.toml", ready_models=tuple(candidates)
    )
    for name, plan in (("canaried", "canary:100"), ("shadowed", "shadow")):
        cli(server.home, server.faults, "rollout", "start", name, "--candidate", "2",
            "--plan", plan, "--min-step-samples", "1000000")  # fmt: skip
    yield server
    server.stop()


def logged(server: Server, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = LogReader(server.home / "logs").window(name).to_pylist()
    return rows


def wait_for(server: Server, name: str, check: Any, what: str) -> list[dict[str, Any]]:
    """The log once ``check(rows)`` holds (records off the response path come later)."""
    deadline = time.monotonic() + 60
    while True:
        rows = logged(server, name)
        if check(rows):
            return rows
        assert time.monotonic() < deadline, f"{what}: {rows[-5:]}"
        time.sleep(0.2)


def exported(server: Server, name: str, *args: str) -> list[dict[str, Any]]:
    done = cli(server.home, server.faults, "predictions", name, "--json", *args)
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def refused(response: httpx.Response) -> bool:
    """The model failed and no fallback answered: 503, or 422 for a failure on the records
    themselves (both name the request's prediction ids; either way no answer)."""
    body = response.json()
    return response.status_code in (422, 503) and body["error"]["type"] == "ModelFailedError"


def flights(models: Models, n: int) -> list[dict[str, Any]]:
    return records(models.data.dropna(subset=list(FEATURES)).iloc[:n])


def test_a_503_in_a_canary_is_not_exported_and_not_labellable(
    picky_server: Server, models: Models
) -> None:
    server = picky_server
    client = server.client()
    normal = flights(models, 4)
    deadline = time.monotonic() + 60
    while True:  # the server picks the rollout up within poll_seconds
        probe = client.post("/v1/models/canaried/predict", json={"records": normal[:1]})
        assert probe.status_code == 200, probe.text
        if probe.json()["predictions"][0]["version"] == 2:
            break
        assert time.monotonic() < deadline, "the canary never started"
        time.sleep(0.2)

    failed = client.post(
        "/v1/models/canaried/predict", json={"records": [{**normal[1], "dep_delay": BOTH}]}
    )
    assert refused(failed)
    failed_ids = failed.json()["error"]["prediction_ids"]
    fell = client.post(
        "/v1/models/canaried/predict",
        json={"records": [{**normal[2], "dep_delay": CANDIDATE_ONLY}]},
    )
    assert fell.status_code == 200, fell.text
    fell_answer = fell.json()["predictions"][0]
    assert fell_answer["version"] == 1  # the champion answered for the candidate
    ok = client.post("/v1/models/canaried/predict", json={"records": [normal[3]]})
    assert ok.status_code == 200, ok.text
    ok_id = ok.json()["predictions"][0]["id"]

    # Both versions' failures on the 503'd row are in the log, for the guards.
    rows = wait_for(
        server, "canaried",
        lambda rs: sum(r["prediction_id"] in failed_ids for r in rs) == 2
        and any(r["prediction_id"] == ok_id for r in rs),
        "the failed request's records",
    )  # fmt: skip
    on_failed = [r for r in rows if r["prediction_id"] in failed_ids]
    assert {(r["arm"], r["version"]) for r in on_failed} == {("candidate", 2), ("fallback", 1)}
    assert all("model_error" in r["flags"] for r in on_failed)
    on_fell = [r for r in rows if r["prediction_id"] == fell_answer["id"]]
    assert {(r["arm"], r["version"]) for r in on_fell} == {("candidate", 2), ("fallback", 1)}

    out = exported(server, "canaried")
    ids = [r["prediction_id"] for r in out]
    assert not set(failed_ids) & set(ids)
    assert ids.count(fell_answer["id"]) == 1 and ok_id in ids
    fell_row = next(r for r in out if r["prediction_id"] == fell_answer["id"])
    assert (fell_row["arm"], fell_row["version"]) == ("fallback", 1)
    assert fell_row["o.label"] == fell_answer["label"]  # what the client got
    assert not any("model_error" in (r["flags"] or []) and r["o.label"] is None for r in out)
    # --version keeps the id's answer: the fallback-answered row is not version 2's
    v2 = [r["prediction_id"] for r in exported(server, "canaried", "--version", "2")]
    assert ok_id in v2 and fell_answer["id"] not in v2 and not set(failed_ids) & set(v2)
    everything = exported(server, "canaried", "--include-failures")
    assert sum(r["prediction_id"] in failed_ids for r in everything) == 2

    # Feedback for the 503'd id is answered as for an id that was never logged.
    headers = {"authorization": f"Bearer {make_token(server.home, 'feedback')}"}
    label = fell_answer["label"]
    sent = [*failed_ids, "never-logged", fell_answer["id"], ok_id]
    feedback = client.post(
        "/v1/models/canaried/feedback",
        json={"labels": [{"id": i, "label": label} for i in sent]},
        headers=headers,
    )
    assert feedback.status_code == 200, feedback.text
    assert feedback.json() == {"accepted": 2, "unknown_ids": sorted([*failed_ids, "never-logged"])}
    labelled = {r["prediction_id"] for r in exported(server, "canaried") if r["label"] is not None}
    assert labelled == {fell_answer["id"], ok_id}


def test_a_503_whose_shadow_copy_was_answered_is_not_exported(
    picky_server: Server, models: Models
) -> None:
    server = picky_server
    client = server.client()
    normal = flights(models, 2)
    ok = client.post("/v1/models/shadowed/predict", json={"records": normal[:1]})
    assert ok.status_code == 200, ok.text
    ok_id = ok.json()["predictions"][0]["id"]
    deadline = time.monotonic() + 60
    while not any(r["arm"] == "shadow" for r in logged(server, "shadowed")):
        assert time.monotonic() < deadline, "the shadow never started"
        ok = client.post("/v1/models/shadowed/predict", json={"records": normal[:1]})
        ok_id = ok.json()["predictions"][0]["id"]
        time.sleep(0.2)

    failed = client.post(
        "/v1/models/shadowed/predict", json={"records": [{**normal[1], "dep_delay": BOTH}]}
    )
    assert refused(failed)
    (failed_id,) = failed.json()["error"]["prediction_ids"]

    def both_logged(rs: list[dict[str, Any]]) -> bool:
        return {r["arm"] for r in rs if r["prediction_id"] == failed_id} >= {"champion", "shadow"}

    rows = wait_for(
        server, "shadowed", both_logged, "the champion's failure and the candidate's shadow answer"
    )
    shadow = next(r for r in rows if r["prediction_id"] == failed_id and r["arm"] == "shadow")
    assert shadow["o.label"] is not None  # the candidate answered a copy no client saw

    ids = [r["prediction_id"] for r in exported(server, "shadowed")]
    assert failed_id not in ids and ok_id in ids
    everything = [r["prediction_id"] for r in exported(server, "shadowed", "--include-failures")]
    assert everything.count(failed_id) == 2

    headers = {"authorization": f"Bearer {make_token(server.home, 'feedback')}"}
    feedback = client.post(
        "/v1/models/shadowed/feedback",
        json={"labels": [{"id": failed_id, "label": shadow["o.label"]}]},
        headers=headers,
    )
    assert feedback.status_code == 200, feedback.text
    assert feedback.json() == {"accepted": 0, "unknown_ids": [failed_id]}


# -- performance windows ----------------------------------------------------------------
def window(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    p = 1 / (1 + np.exp(-2 * x))
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"x": x, "y": y, "pred": (p >= 0.5).astype(int), "p1": p})


def summarize(reference: MonitorReference, frame: pd.DataFrame) -> WindowSummary:
    canonical = canonical_frame(
        frame, target="y", prediction="pred", probability="p1", classes=reference.classes
    )
    plan = ChunkPlan.of(reference)
    return summarize_chunk(plan, canonical, row_keys(np.arange(len(canonical))))[ALL]


def test_performance_leaves_failure_records_out() -> None:
    reference = MonitorReference.from_frame(
        window(2000, 0), target="y", prediction="pred", probability="p1"
    )
    answered_rows = window(400, 1)
    # 100 failures no fallback answered: features and (wrongly sent) labels, no outputs
    failures = window(100, 2).assign(pred=None, p1=np.nan)
    both = pd.concat([answered_rows, failures], ignore_index=True)
    for calculator in (RealizedPerformance(), EstimatedPerformance()):
        calculator.fit(reference)
        alone = calculator.calculate(summarize(reference, answered_rows))
        mixed = calculator.calculate(summarize(reference, both))
        assert [r.value for r in mixed] == [r.value for r in alone]
        assert all(r.n == 400 for r in mixed if r.value is not None)
        assert any(r.value is not None for r in mixed)
        assert all(r.details["dropped_rows"] == 100 for r in mixed if r.value is not None)


def test_answered_keeps_what_clients_got() -> None:
    import pyarrow as pa

    table = pa.table(
        {
            "prediction_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "arm": [
                "candidate",
                "fallback",
                "candidate",
                "fallback",
                "champion",
                "probe",
                "champion",
                "shadow",
            ],
            "flags": [
                ["model_error"],
                [],
                ["model_error"],
                ["timeout"],
                ["nan_output", "fallback:default"],
                [],
                [],
                ["model_error"],
            ],
            "o.label": [None, 1, None, None, 0, 1, 1, None],
        }
    )
    kept = answered(table).to_pydict()
    # a: the fallback's answer; b: a 503; c: the default fallback's answer, not the probe;
    # d: the champion's answer (the shadow's failure is no answer)
    assert list(zip(kept["prediction_id"], kept["arm"], strict=True)) == [
        ("a", "fallback"),
        ("c", "champion"),
        ("d", "champion"),
    ]
