"""A model served under ``alias = "live"``: every part acts on ``live``, none on ``production``.

End to end on a real home: registered by the CLI with ``--alias live``, served by a real
``livemodel serve`` configured with ``[serving.models.credit] alias = "live"``, predictions
and labels over HTTP, a rollout started by the CLI and followed by the rollout controller
(built from the same project file, on an injected clock) until it promotes, ``monitor
run``, ``report``, ``loop status``, a loop retrain, ``rollout abort``, ``rollback`` and the
dashboard. The alias ``production`` must never be set, moved or printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.serving.conftest import EXE, Server, make_token, start_server

from livemodel.config import Settings
from livemodel.rollout.controller import SETTLE, RolloutController
from livemodel.store.rollouts import RolloutStore
from livemodel.vocabulary import DEFAULT_ALIAS
from livemodel.wiring import connect, log_reader, served_alias

# real processes a few at a time: a loaded machine needs more than the default 300 s
pytestmark = pytest.mark.timeout(900)
NAME = "credit"
MODELS = '''
"""The model and the loop's training function of the served-alias test."""
from sklearn.linear_model import LogisticRegression


def model():
    return LogisticRegression()


def train(frame):
    return LogisticRegression().fit(frame[["a", "b"]], frame["y"])
'''
CONFIG = f"""
[serving]
poll_seconds = 0.5
timeout_ms = 60000  # a loaded test machine must not turn slow answers into 503s

[serving.models.{NAME}]
alias = "live"

[serving.models.other]
fallback = "error"

[loop.models.{NAME}]
train = "alias_models:train"

[loop.models.{NAME}.data]
min_rows = 100
holdout = 0.3

[loop.models.{NAME}.gate]
metric = "log_loss"
margin = -1.0
n_bootstrap = 100

[loop.models.{NAME}.rollout]
plan = "canary:50,100"
min_step_samples = 30
"""


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["y"] = (frame.a + frame.b + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return frame


@dataclass
class World:
    home: Path
    server: Server
    client: httpx.Client
    outputs: list[str]

    def cli(self, *args: str) -> str:
        """``livemodel ARGS`` in the home; must succeed. Output is kept for the last check."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMODEL_")}
        env.update({"LIVEMODEL_HOME": str(self.home), "LIVEMODEL_ACTOR": "alias-test",
                    "PYTHONPATH": str(self.home)})  # fmt: skip
        done = subprocess.run(
            [EXE, *args], capture_output=True, text=True, cwd=self.home, env=env, timeout=300,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"livemodel {' '.join(args)}:\n{done.stdout}{done.stderr}"
        self.outputs.append(done.stdout + done.stderr)
        return done.stdout

    def predict(self, frame: pd.DataFrame, *, label: bool = True) -> list[int]:
        """Versions that answered each row; labels sent for every row."""
        records = frame[["a", "b"]].to_dict(orient="records")
        answer = self.client.post(f"/v1/models/{NAME}/predict", json={"records": records})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        ids = [p["id"] for p in body["predictions"]]
        if label:
            labels = [{"id": i, "label": int(y)} for i, y in zip(ids, frame["y"], strict=True)]
            sent = self.client.post(f"/v1/models/{NAME}/feedback", json={"labels": labels})
            assert sent.status_code == 200, sent.text
        return [int(p.get("version", body["version"])) for p in body["predictions"]]

    def until(self, what: str, check: Callable[[], bool], seconds: float = 60) -> None:
        """Wait (bounded) for the server to follow an alias or a rollout it polls for."""
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.server.log_text()}")
            time.sleep(0.2)

    def settings(self) -> Settings:
        from dataclasses import replace

        from livemodel.config import read_project_file

        config = self.home / "livemodel.toml"
        at = Settings.at(self.home, actor="alias-test")
        return replace(at, config_file=config, project=read_project_file(config))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("alias") / "home"
    home.mkdir(parents=True)
    (home / "alias_models.py").write_text(MODELS)
    (home / "livemodel.toml").write_text(CONFIG)
    rows(400, 0).to_csv(home / "train.csv", index=False)
    outputs: list[str] = []
    maker = World(home, None, None, outputs)  # type: ignore[arg-type]
    maker.cli("register", NAME, "--model", "alias_models:model", "--data", "train.csv",
              "--target", "y", "--alias", "live")  # fmt: skip
    server = start_server(home, home, config=home / "livemodel.toml", ready_models=[NAME])
    token = make_token(home, "admin")
    client = server.client(headers={"Authorization": f"Bearer {token}"})
    try:
        yield World(home, server, client, outputs)
    finally:
        server.stop()


def test_served_alias_is_read_from_the_project_file(world: World) -> None:
    alias_of = served_alias(world.settings())
    assert alias_of(NAME) == "live"
    assert alias_of("other") == DEFAULT_ALIAS == "production"
    assert served_alias(Settings.at(world.home))(NAME) == DEFAULT_ALIAS  # no project file


def test_everything_acts_on_the_live_alias(world: World) -> None:
    registry = connect(world.settings())
    assert registry.aliases(NAME) == {"live": 1}
    assert set(world.predict(rows(200, 1))) == {1}

    # a rollout against live's version, followed until it promotes: live moves
    world.cli("register", NAME, "--model", "alias_models:model", "--data", "train.csv",
              "--target", "y")  # fmt: skip
    plan = ["--plan", "canary:50,100", "--min-step-samples", "30", "--alpha", "0.3"]
    started = json.loads(world.cli("rollout", "start", NAME, "--candidate", "2", *plan, "--json"))
    assert (started["champion"], started["candidate"]) == (1, 2)
    world.until("the server to route to v2", lambda: 2 in world.predict(rows(10, 2)))
    controller = _controller(world)
    actions: list[str] = []
    for tick in range(12):  # a canary routes whole requests: many small ones
        for request in range(60):
            world.predict(rows(20, 1000 * tick + request), label=False)
        actions += [e.action for e in controller.tick()]
        if "promote" in actions:
            break
    assert actions[-1] == "promote", actions
    assert registry.aliases(NAME) == {"live": 2, "candidate": 2}
    world.until("the server to serve v2", lambda: set(world.predict(rows(20, 30))) == {2})

    # monitor, report and loop read live's version, not the latest one
    # v3: the latest version, not served
    world.cli("register", NAME, "--model", "alias_models:model", "--data", "train.csv",
              "--target", "y")  # fmt: skip
    run = json.loads(world.cli("monitor", "run", NAME, "--since", "1d", "--json"))
    assert run["version"] == 2
    assert sum(w["n_rows"] for w in run["windows"] if w["segment"] == "*") > 0
    out = world.cli("report", NAME, "-o", str(world.home / "report.html"), "--no-explain")
    assert f"of {NAME}@2" in out
    assert "live=v2" in world.cli("loop", "status", NAME)
    (outcome,) = json.loads(world.cli("retrain", NAME, "--reason", "alias test", "--json"))
    assert outcome["action"] == "rollout_started", outcome
    assert outcome["run"]["parent"] == 2
    retrained = json.loads(world.cli("rollout", "status", NAME, "--json"))
    assert (retrained["champion"], retrained["candidate"]) == (2, outcome["run"]["candidate"])
    world.cli("rollout", "abort", NAME, "--reason", "alias test")
    assert registry.aliases(NAME)["live"] == 2

    # rollback moves live back; the server and the dashboard follow
    back = json.loads(world.cli("rollback", NAME, "--reason", "alias test", "--json"))
    assert (back["alias"], back["from"], back["to"]) == ("live", 2, 1)
    world.until("the server to serve v1 again", lambda: set(world.predict(rows(20, 40))) == {1})
    page = world.client.get(f"/ui/api/models/{NAME}").json()
    assert (page["served"], page["served_alias"]) == ("v1", "live")

    # production was never set, moved or printed
    events = registry.audit(NAME)
    assert {e.alias for e in events if e.alias} == {"live", "candidate"}
    assert "production" not in registry.aliases(NAME)
    started_events = [e for e in events if e.action == "rollout.started"]
    assert {e.details.get("alias") for e in started_events} == {"live"}
    printed = [o for o in world.outputs if "production" in o]
    assert not printed, printed
    registry.metadata.db.close()


def _ahead() -> datetime:
    """Time as the controller sees it: one settling delay ahead of the wall clock, so every
    request the test has sent is read without sleeping through that delay."""
    return datetime.now(UTC) + SETTLE + timedelta(milliseconds=1)


def _controller(world: World) -> RolloutController:
    """The rollout controller ``livemodel controller`` runs, on an injected clock."""
    settings = world.settings()
    registry = connect(settings)
    return RolloutController(
        registry, RolloutStore(registry.metadata.db), log_reader(settings),
        alias_of=served_alias(settings), clock=_ahead,
    )  # fmt: skip
