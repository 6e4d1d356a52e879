"""One kind's walk through the lifecycle, step by step, each step run once and remembered.

Every test of ``test_conformance.py`` asks for the steps it needs; a step runs the first
time it is asked for and its result (or its failure, raised again) is kept, so each test
checks one promise while the kinds share one home and one server.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd

from livemodel.registry.registry import Registry
from livemodel.rollout.controller import SETTLE
from livemodel.wiring import rollout_controller

from .conftest import Done, Home
from .kinds import Data, Kind

ROWS_PER_REQUEST = 50
CONCURRENT_REQUESTS = 4
#: waits for the server to notice a new alias or rollout (it polls every 0.3 s)
NOTICE_SECONDS = 60.0
#: rows sent to each running rollout between two controller ticks
CANARY_ROWS = 500
#: rounds of canary traffic before a rollout that has not ended is a failure
MAX_ROUNDS = 30


def plain(value: Any) -> Any:
    """A JSON value, exactly (pandas' to_json keeps only 10 significant digits)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: plain JSON values, missing numbers as null."""
    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def json_values(values: pd.Series) -> list[Any]:
    return [plain(v) for v in values.tolist()]


@dataclass(frozen=True)
class Served:
    """What the server answered for the live rows, in order."""

    ids: list[str]
    versions: list[int]
    labels: list[Any]  # the decision (classifiers) or the value (regression)
    proba: pd.DataFrame | None  # one column per class, as the classes are named in JSON


def answers(predictions: list[dict[str, Any]], regression: bool) -> Served:
    key = "value" if regression else "label"
    probas = [p.get("proba") for p in predictions]
    proba = None if regression or any(p is None for p in probas) else pd.DataFrame(probas)
    return Served(
        ids=[p["id"] for p in predictions],
        versions=[int(p.get("version", -1)) for p in predictions],
        labels=[p[key] for p in predictions],
        proba=proba,
    )


def result(run: dict[str, Any], calculator: str, metric: str) -> dict[str, Any]:
    """One number of a single-window ``monitor run --json``."""
    (window,) = run["windows"]
    found = [
        r for r in window["results"] if r["calculator"] == calculator and r["metric"] == metric
    ]
    assert len(found) == 1, f"{calculator}/{metric}: {len(found)} results"
    return dict(found[0])


@dataclass
class Lifecycle:
    kind: Kind
    home: Home
    registry: Registry
    token: str
    _done: dict[str, Any] = field(default_factory=dict)

    # -- memo ------------------------------------------------------------------------------
    def _once(self, step: str, fn: Callable[[], Any]) -> Any:
        if step not in self._done:
            try:
                self._done[step] = ("ok", fn())
            except Exception as exc:
                self._done[step] = ("failed", exc)
                raise
        status, value = self._done[step]
        if status == "failed":
            raise AssertionError(f"{self.kind.name}: the step {step!r} failed earlier") from value
        return value

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def data(self) -> Data:
        return self.kind.data()

    @property
    def regression(self) -> bool:
        return self.kind.task == "regression"

    def client(self) -> httpx.Client:
        return self.home.http

    def lm(self, *args: str) -> Done:
        done = self.home.lm(*args)
        assert "Traceback" not in done.out + done.err
        assert "internal error" not in done.err, done.err
        return done

    def lm_json(self, *args: str) -> Any:
        done = self.lm(*args, "--json")
        command = " ".join(args)
        assert done.code == 0, f"livemodel {command} exited {done.code}: {done.err}{done.out}"
        return json.loads(done.out)

    # -- steps -----------------------------------------------------------------------------
    def registered(self) -> dict[str, Any]:
        """``livemodel register`` of the unfitted estimator with a holdout."""

        def run() -> dict[str, Any]:
            files = {}
            for part in ("train", "holdout", "live"):
                files[part] = self.home.data_file(self.kind, part)
                getattr(self.data, part).to_parquet(files[part], index=False)
            card: dict[str, Any] = self.lm_json(
                "register", self.name,
                "--model", f"tests.conformance.kinds:estimator_{self.name}",
                "--data", str(files["train"]), "--target", self.data.target,
                "--validation", str(files["holdout"]), "--alias", "production", "--seed", "0",
            )  # fmt: skip
            return card

        return dict(self._once("register", run))

    def model(self, version: int) -> Any:
        return self._once(f"model-{version}", lambda: self.registry.load(
            f"{self.name}@{version}").model)  # fmt: skip

    def served(self) -> Served:
        """The live rows sent to ``/predict`` once the server serves version 1."""

        def run() -> Served:
            self.registered()
            self.wait_for_version(1)
            rows = json_records(self.data.live[self.data.features])
            return self.predict(rows)

        return self._once("served", run)  # type: ignore[no-any-return]

    def predict(self, rows: list[dict[str, Any]]) -> Served:
        """``rows`` in requests of ``ROWS_PER_REQUEST``, a few at a time, so the server's
        micro-batcher merges requests; the answers in the order of the rows."""
        chunks = [rows[i : i + ROWS_PER_REQUEST] for i in range(0, len(rows), ROWS_PER_REQUEST)]
        with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
            bodies = list(pool.map(self._predict, chunks))
        predictions = [
            {"version": body["version"], **p} for body in bodies for p in body["predictions"]
        ]
        return answers(predictions, self.regression)

    def _predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        answer = self.client().post(f"/v1/models/{self.name}/predict", json={"records": rows})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert len(body["predictions"]) == len(rows)
        return body

    def wait_for_version(self, version: int) -> None:
        """Until the server serves ``version`` (it polls the registry's aliases)."""
        client = self.client()
        deadline = time.monotonic() + NOTICE_SECONDS
        while True:
            meta = client.get(f"/v2/models/{self.name}")
            if meta.status_code == 200 and meta.json()["versions"] == [str(version)]:
                return
            assert time.monotonic() < deadline, f"{self.name}@{version} not served: {meta.text}"
            time.sleep(0.1)

    def monitored(self, step: str) -> dict[str, Any]:
        """``livemodel monitor run`` over everything served so far, as one window."""

        def run() -> dict[str, Any]:
            self.served()
            if step == "after-labels":
                self.fed_back()
            out: dict[str, Any] = self.lm_json(
                "monitor", "run", self.name, "--since", "1d", "--window", "1000000rows"
            )
            return out

        return dict(self._once(f"monitor-{step}", run))

    def fed_back(self) -> dict[str, Any]:
        """The true labels of the live rows, posted to ``/feedback`` as the data has them."""

        def run() -> dict[str, Any]:
            served = self.served()
            self.monitored("before-labels")
            truth = json_values(self.data.live[self.data.target])
            labels = [{"id": i, "label": y} for i, y in zip(served.ids, truth, strict=True)]
            answer = self.client().post(
                f"/v1/models/{self.name}/feedback",
                json={"labels": labels},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        return dict(self._once("feedback", run))

    def retrained(self) -> dict[str, Any]:
        """``livemodel retrain``: train on the labelled log, gate, start the rollout."""

        def run() -> dict[str, Any]:
            self.fed_back()
            (outcome,) = self.lm_json("retrain", self.name, "--reason", "conformance")
            assert outcome["action"] == "rollout_started", outcome
            return dict(outcome)

        return dict(self._once("retrain", run))

    def canary_pool(self) -> list[dict[str, Any]]:
        pool = json_records(self.data.live[self.data.features])
        while len(pool) < CANARY_ROWS:
            pool += pool
        return pool[:CANARY_ROWS]


@dataclass
class Fleet:
    """Every kind's lifecycle; their rollouts are followed together by one controller, as
    ``livemodel controller`` follows every model's."""

    lives: dict[str, Lifecycle]
    _rollouts: dict[str, dict[str, Any]] | None = None

    def __getitem__(self, name: str) -> Lifecycle:
        return self.lives[name]

    def rolled_out(self, name: str) -> dict[str, Any]:
        """The final state of ``name``'s rollout (each kind's retrain must have started one)."""
        self.lives[name].retrained()
        if self._rollouts is None:
            self._rollouts = self._follow()
        return self._rollouts[name]

    def _follow(self) -> dict[str, dict[str, Any]]:
        """Canary traffic to every running rollout, then one controller tick, until none runs.

        The server logs a request's rows before answering it, so the controller need not
        wait for writes to settle: its clock runs that far ahead instead of the test sleeping.
        """
        started = []
        for life in self.lives.values():
            try:
                life.retrained()
                started.append(life)
            except Exception:  # noqa: BLE001 - that kind's retrain test says why
                continue
        controller = rollout_controller(
            clock=lambda: datetime.now(UTC) + SETTLE + timedelta(milliseconds=1)
        )
        states = {}
        try:
            for _ in range(MAX_ROUNDS):
                running = [x for x in started if controller.status(x.name)[0].status == "running"]
                if not running:
                    break
                for life in running:
                    life.predict(life.canary_pool())
                controller.tick()
            for life in started:
                state, _ = controller.status(life.name)
                if state.status == "running":
                    controller.abort(life.name, f"not decided after {MAX_ROUNDS} rounds")
                states[life.name] = state.to_dict()
        finally:
            controller.store.release("rollout-controller", controller.owner)
            controller.registry.metadata.db.close()
        return states
