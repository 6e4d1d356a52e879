"""Every read path answers in every state: the matrix of states by commands.

Each test is one command walked over every state of ``conftest.STATES`` (the CLI as real
processes, a few at a time; ``/ui`` over HTTP from the real server). An answer is useful
when it exits 0, says something, and shows no internal error or traceback; each test also
checks what the answer says where the state decides it. Failures of all states are
gathered, so one run shows the whole row of the matrix.

The tests before ``test_monitor_run`` see the home as traffic left it (no monitoring
results); the ones after see it monitored.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import STATES, States

# real processes a few at a time: a loaded machine needs more than the default 300 s
pytestmark = pytest.mark.timeout(900)
Done = subprocess.CompletedProcess[str]
PARALLEL = 3
HEADLINE = {
    "fresh": "accuracy", "unlabelled": "accuracy", "noreflabels": "accuracy",
    "noproba": "accuracy", "multiclass": "accuracy", "regression": "mae",
    "rolledback": "accuracy",
}  # fmt: skip
SERVED = {name: 1 for name in STATES} | {"noreflabels": 2}


def across(states: States, args: Callable[[str], list[str]]) -> dict[str, Done]:
    """Run ``livemodel *args(state)`` for every state, a few processes at a time."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        done = pool.map(lambda name: states.cli(*args(name)), STATES)
        return dict(zip(STATES, done, strict=True))


def useful(done: Done) -> str | None:
    """Why an answer is not useful (None: it is)."""
    text = done.stdout + done.stderr
    if "Traceback" in text or "internal error" in text:
        return f"internal error: {text.strip()[-400:]}"
    if done.returncode != 0:
        return f"exit {done.returncode}: {text.strip()[-400:]}"
    if not done.stdout.strip():
        return "said nothing"
    return None


class Matrix:
    """Collects the failures of one command over the states."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.failures: list[str] = []

    def check(self, state: str, ok: bool, why: str) -> None:
        if not ok:
            self.failures.append(f"{state}: {why}")

    def useful(self, state: str, done: Done) -> bool:
        why = useful(done)
        self.check(state, why is None, why or "")
        return why is None

    def verify(self) -> None:
        assert not self.failures, f"{self.command}:\n" + "\n".join(self.failures)


@pytest.fixture(scope="module")
def monitored(states: States) -> dict[str, Done]:
    """``monitor run --json`` of every state (stores the results later tests read)."""
    return across(states, lambda n: ["monitor", "run", n, "--since", "2d", "--window", "1d",
                                     "--json"])  # fmt: skip


@pytest.fixture
def matrix(request: pytest.FixtureRequest) -> Iterator[Matrix]:
    found = Matrix(request.node.name)
    yield found


# -- before monitoring ---------------------------------------------------------------------
def test_models_show(states: States, matrix: Matrix) -> None:
    for state, done in across(states, lambda n: ["models", "show", n]).items():
        if matrix.useful(state, done):  # the latest version's card
            latest = 2 if state in ("noreflabels", "rolledback") else 1
            matrix.check(state, f"{state}@{latest}" in done.stdout, done.stdout[:200])
    matrix.verify()


def test_predictions(states: States, matrix: Matrix) -> None:
    for state, done in across(states, lambda n: ["predictions", n, "--json"]).items():
        if not matrix.useful(state, done):
            continue
        rows = json.loads(done.stdout)
        matrix.check(state, len(rows) == states.predicted[state],
                     f"{len(rows)} rows, {states.predicted[state]} predicted")  # fmt: skip
        labelled = sum(r.get("label") is not None for r in rows)
        matrix.check(state, labelled == states.labelled[state],
                     f"{labelled} labelled rows, {states.labelled[state]} labels sent")  # fmt: skip
    matrix.verify()


def test_report_before_monitoring(states: States, matrix: Matrix, tmp_path: Path) -> None:
    _report(states, matrix, tmp_path)
    matrix.verify()


def test_ui_before_monitoring(states: States, matrix: Matrix) -> None:
    _ui(states, matrix)
    matrix.verify()


def test_alerts_check_before_monitoring(states: States, matrix: Matrix) -> None:
    for state, done in across(states, lambda n: ["alerts", "check", n, "--json"]).items():
        if not matrix.useful(state, done):
            continue
        rules = {a["rule"] for a in json.loads(done.stdout)}
        # the alias rollback is an event the default rules announce (once)
        wanted = {"rollback"} if state == "rolledback" else set()
        matrix.check(state, rules == wanted, f"alerts of rules {sorted(rules)}")
    matrix.verify()


def test_loop_status(states: States, matrix: Matrix) -> None:
    for state, done in across(states, lambda n: ["loop", "status", n]).items():
        if not matrix.useful(state, done):
            continue
        if state == "fresh":
            matrix.check(state, "no loop policy" in done.stdout, done.stdout)
        else:
            matrix.check(state, "no retrain runs yet" in done.stdout, done.stdout)
            matrix.check(state, f"production=v{SERVED[state]}" in done.stdout, done.stdout)
    matrix.verify()


def test_rollout_status(states: States, matrix: Matrix) -> None:
    for state, done in across(states, lambda n: ["rollout", "status", n]).items():
        if not matrix.useful(state, done):
            continue
        if state == "rolledback":
            matrix.check(state, "aborted" in done.stdout, done.stdout)
        else:
            matrix.check(state, f"no rollout of {state}" in done.stdout, done.stdout)
    for state in ("fresh", "rolledback"):
        done = states.cli("rollout", "status", state, "--json")
        if matrix.useful(state, done):
            answer = json.loads(done.stdout)
            matrix.check(state, (answer.get("status") == "aborted") == (state == "rolledback"),
                         str(answer)[:300])  # fmt: skip
    matrix.verify()


# -- monitoring ---------------------------------------------------------------------------
def _metric(result: dict[str, Any], calculator: str, metric: str) -> list[dict[str, Any]]:
    return [
        r
        for w in result["windows"]
        if w["segment"] == "*"
        for r in w["results"]
        if r["calculator"] == calculator and r["metric"] == metric
    ]


def test_monitor_run(states: States, monitored: dict[str, Done], matrix: Matrix) -> None:
    for state, done in monitored.items():
        if not matrix.useful(state, done):
            continue
        result = json.loads(done.stdout)
        matrix.check(state, result["version"] == SERVED[state], f"version {result['version']}")
        rows = sum(w["n_rows"] for w in result["windows"] if w["segment"] == "*")
        served_rows = 0 if state in ("fresh", "rolledback") else states.predicted[state]
        matrix.check(state, rows == served_rows, f"{rows} rows monitored, {served_rows} served")
        metric = HEADLINE[state]
        realized = [r for r in _metric(result, "realized_performance", metric) if r["value"]]
        estimated = [r for r in _metric(result, "estimated_performance", metric) if r["value"]]
        labelled = states.labelled[state] > 0 and state != "rolledback"
        matrix.check(state, bool(realized) == labelled, f"realized {metric}: {realized}")
        # estimates need probabilities (CBPE) or a regression (DLE), and reference labels
        can_estimate = state in ("unlabelled", "multiclass", "regression")
        matrix.check(state, bool(estimated) == can_estimate, f"estimated {metric}: {estimated}")
        if not can_estimate and states.predicted[state] and state != "rolledback":
            reasons = {r["reason"] for r in _metric(result, "estimated_performance", metric)}
            matrix.check(state, all(reasons), "an undefined estimate without a reason")
    matrix.verify()


def test_monitor_run_of_the_rolled_back_version(states: States, matrix: Matrix) -> None:
    """The served v1 has no traffic (said in words); v2, rolled back, keeps its own."""
    done = states.cli("monitor", "run", "rolledback", "--since", "2d")
    if matrix.useful("rolledback", done):
        matrix.check("rolledback", "no predictions of rolledback@1" in done.stdout, done.stdout)
    done = states.cli("monitor", "run", "rolledback", "--since", "2d", "--version", "2", "--json")
    if matrix.useful("rolledback", done):
        result = json.loads(done.stdout)
        rows = sum(w["n_rows"] for w in result["windows"] if w["segment"] == "*")
        matrix.check("rolledback", rows == states.predicted["rolledback"], f"{rows} rows")
        realized = _metric(result, "realized_performance", "accuracy")
        matrix.check("rolledback", any(r["value"] is not None for r in realized), str(realized))
    matrix.verify()


# -- after monitoring ---------------------------------------------------------------------
def test_report_after_monitoring(
    states: States, monitored: dict[str, Done], matrix: Matrix, tmp_path: Path
) -> None:
    _report(states, matrix, tmp_path)
    matrix.verify()


def test_ui_after_monitoring(states: States, monitored: dict[str, Done], matrix: Matrix) -> None:
    _ui(states, matrix)
    matrix.verify()


def test_alerts_check_after_monitoring(
    states: States, monitored: dict[str, Done], matrix: Matrix
) -> None:
    for state, done in across(states, lambda n: ["alerts", "check", n, "--json"]).items():
        if matrix.useful(state, done):
            matrix.check(state, isinstance(json.loads(done.stdout), list), done.stdout[:200])
    matrix.verify()


# -- shared walks -------------------------------------------------------------------------
def _report(states: States, matrix: Matrix, where: Path) -> None:
    runs = across(states, lambda n: ["report", n, "-o", str(where / f"{n}.html"), "--no-explain"])
    for state, done in runs.items():
        if not matrix.useful(state, done):
            continue
        html = (where / f"{state}.html").read_text()
        matrix.check(state, "<html" in html and state in html, "not a report of the model")
        matrix.check(state, "Traceback" not in html, "a traceback in the report")


def _ui(states: States, matrix: Matrix) -> None:
    client = states.server.client()
    page = client.get("/ui")
    matrix.check("*", page.status_code == 200, f"/ui {page.status_code}: {page.text[-300:]}")
    overview = client.get("/ui/api/overview")
    matrix.check("*", overview.status_code == 200, f"/ui/api/overview {overview.status_code}")
    if overview.status_code == 200:
        shown = {m["name"] for m in overview.json()["models"]}
        matrix.check("*", shown == set(STATES), f"/ui lists {sorted(shown)}")
    for state in STATES:
        html = client.get(f"/ui/models/{state}")
        matrix.check(state, html.status_code == 200 and state in html.text,
                     f"/ui/models {html.status_code}: {html.text[-300:]}")  # fmt: skip
        data = client.get(f"/ui/api/models/{state}")
        matrix.check(state, data.status_code == 200, f"/ui/api/models {data.status_code}")
        if data.status_code == 200:
            served = data.json()["served"]
            matrix.check(state, served == f"v{SERVED[state]}", f"served {served}")
