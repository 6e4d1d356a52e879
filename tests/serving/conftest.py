"""The model server as a real process: a registry home built once, servers on free ports.

A session fixture trains the models on real flights and registers them in a *template*
home; each server runs ``livemodel serve`` on a copy of it (the SQLite database and the
artifacts copy as files), so tests that move aliases or kill a server do not disturb the
others. Fault-injecting models live in a module written to a temporary folder that is on
``PYTHONPATH`` of this process and of every server.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from livemodel.config import Settings
from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET, load_flights
from livemodel.registry.registry import Registry
from livemodel.wiring import connect

EXE = str(Path(sys.executable).parent / "livemodel")
HERE = Path(__file__).parent
LOADGEN = HERE / "loadgen.py"

# Rows whose dep_delay is one of these make the fault model misbehave.
RAISE, NAN, SLEEP = 7777.0, 6666.0, 5555.0
SLEEP_S = 1.5  # how long the sleepy model hangs (timeout_ms is 400)

FAULTS_MODULE = f'''
"""Classifiers that misbehave on purpose (importable by the server process)."""
import os
import time

import numpy as np


class Faulty:
    """Wraps a fitted classifier; raises, answers NaN or hangs on sentinel dep_delay values."""

    def __init__(self, inner, sleep_s=3.0):
        self.inner = inner
        self.classes_ = inner.classes_
        self.sleep_s = sleep_s

    def predict_proba(self, X):
        delay = X["dep_delay"].to_numpy(dtype=float, na_value=np.nan)
        if (delay == {RAISE}).any():
            raise RuntimeError("the model failed on purpose")
        if (delay == {SLEEP}).any():
            time.sleep(self.sleep_s)
            trace = os.environ.get("LM_FAULTS_TRACE")
            if trace:  # lets a test know when the hung call has returned
                with open(trace, "a") as fh:
                    print("woke", file=fh)
        proba = np.array(self.inner.predict_proba(X), dtype=float)
        proba[delay == {NAN}] = np.nan
        return proba

    def predict(self, X):
        return self.classes_[np.nan_to_num(self.predict_proba(X)).argmax(axis=1)]
'''

DEFAULT_OUTPUT = {"label": 0, "proba": {"0": 1.0, "1": 0.0}}

MAIN_CONFIG = """
[serving]
poll_seconds = 0.5
max_rows = 500

[serving.models.flagged]
validation = "flag"

[serving.models.reviewed]
review_threshold = 0.8

[serving.models.fault-prev]
fallback = "previous"

[serving.models.fault-default]
fallback = "default"
default_output = { label = 0, proba = { "0" = 1.0, "1" = 0.0 } }

[serving.models.fault-error]
fallback = "error"

[serving.models.slow-prev]
fallback = "previous"
timeout_ms = 400

[serving.models.slow-error]
fallback = "error"
timeout_ms = 400
"""


def linear_pipeline(c: float = 1.0) -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    encode = ColumnTransformer(
        [
            ("num", numeric, list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=c, max_iter=500))])


def forest_pipeline() -> Pipeline:
    encode = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    trees = RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=1, random_state=0)
    return Pipeline([("encode", encode), ("trees", trees)])


@dataclass(frozen=True)
class Models:
    """The fitted estimators the template home holds (for comparing answers)."""

    data: pd.DataFrame
    linear_v1: Pipeline
    linear_v2: Pipeline
    forest: Pipeline


@pytest.fixture(scope="session")
def faults_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("faults")
    (folder / "lm_faults.py").write_text(FAULTS_MODULE)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("lm_faults", None)


@pytest.fixture(scope="session")
def flights() -> pd.DataFrame:
    """4,000 real flights of January 2013 (features + target)."""
    return load_flights((1,)).iloc[:4000][[*FEATURES, TARGET]].reset_index(drop=True)


@pytest.fixture(scope="session")
def models(flights: pd.DataFrame) -> Models:
    x, y = flights[list(FEATURES)], flights[TARGET]
    return Models(
        data=flights,
        linear_v1=linear_pipeline().fit(x.iloc[:3000], y.iloc[:3000]),
        linear_v2=linear_pipeline(c=0.05).fit(x.iloc[1000:], y.iloc[1000:]),
        forest=forest_pipeline().fit(x, y),
    )


@pytest.fixture(scope="session")
def template_home(
    tmp_path_factory: pytest.TempPathFactory, models: Models, faults_dir: Path
) -> Path:
    """A registry with every model the tests serve (copied for each server)."""
    import lm_faults  # type: ignore[import-not-found]

    home = tmp_path_factory.mktemp("template")
    registry = connect(Settings.at(home, actor="tests"))
    train = models.data.iloc[:3000]

    def two_versions(name: str, second: Any, *, v3: Any = None) -> None:
        registry.register(name, models.linear_v1, train, target=TARGET, alias="production")
        registry.register(name, second, train, target=TARGET)
        if v3 is not None:
            registry.register(name, v3, train, target=TARGET)

    two_versions("flights", models.linear_v2, v3=models.linear_v1)
    two_versions("swapper", models.linear_v2, v3=models.linear_v1)
    for name in ("flagged", "reviewed"):
        registry.register(name, models.linear_v1, train, target=TARGET, alias="production")
    registry.register("forest", models.forest, train, target=TARGET, alias="production")
    faulty = lm_faults.Faulty(models.linear_v1)
    sleepy = lm_faults.Faulty(models.linear_v1, sleep_s=SLEEP_S)
    for name in ("fault-prev", "fault-default", "fault-error"):
        two_versions(name, faulty)
        registry.set_alias(name, "production", 2, reason="test faults")
    for name in ("slow-prev", "slow-error"):
        two_versions(name, sleepy)
        registry.set_alias(name, "production", 2, reason="test timeouts")
    registry.metadata.db.close()
    (home / "livemodel.toml").write_text(MAIN_CONFIG)
    return home


def copy_home(template: Path, where: Path) -> Path:
    shutil.copytree(template, where)
    return where


def registry_at(home: Path) -> Registry:
    return connect(Settings.at(home, actor="tests"))


# -- processes ------------------------------------------------------------------------------
def process_env(home: Path, faults: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIVEMODEL_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["LIVEMODEL_HOME"] = str(home)
    env["LIVEMODEL_ACTOR"] = "tests"
    env["LM_FAULTS_TRACE"] = str(home / "faults-trace.txt")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(faults), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


def cli(
    home: Path, faults: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``livemodel ARGS`` as a real process against ``home``."""
    done = subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        cwd=home,
        env=process_env(home, faults),
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    home: Path
    faults: Path
    proc: subprocess.Popen[bytes]
    url: str
    output: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        made = httpx.Client(base_url=self.url, timeout=30, **kwargs)
        self.clients.append(made)
        return made

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        for made in self.clients:
            made.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")


def start_server(
    home: Path,
    faults: Path,
    *,
    config: Path | None = None,
    workers: int = 1,
    ready_models: Sequence[str] = (),
    controller: bool = False,
) -> Server:
    """``livemodel serve`` on a free port; returns once ``/readyz`` answers 200."""
    port = free_port()
    args = [EXE, "serve", "--port", str(port), "--workers", str(workers)]
    if config is not None:
        args += ["--config", str(config)]
    if controller:
        args.append("--with-controller")
    output = home / f"server-{port}.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            args, cwd=home, env=process_env(home, faults), stdout=sink, stderr=subprocess.STDOUT
        )
    server = Server(home, faults, proc, f"http://127.0.0.1:{port}", output)
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.log_text()}")
        with contextlib.suppress(httpx.TransportError):
            ready = httpx.get(f"{server.url}/readyz", timeout=2)
            if ready.status_code == 200 and set(ready_models) <= set(ready.json()["models"]):
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server did not get ready:\n{server.log_text()}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def main_home(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_home(template_home, tmp_path_factory.mktemp("main") / "home")


@pytest.fixture(scope="session")
def server(main_home: Path, faults_dir: Path) -> Iterator[Server]:
    """The shared server: every model of the template, options from its livemodel.toml."""
    running = start_server(main_home, faults_dir, config=main_home / "livemodel.toml")
    yield running
    running.stop()


LOCKED_CONFIG = """
[serving]
require_predict_token = true
"""


@pytest.fixture(scope="session")
def locked(
    template_home: Path, faults_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with two worker processes that wants a token for everything but probes."""
    home = copy_home(template_home, tmp_path_factory.mktemp("locked") / "home")
    (home / "locked.toml").write_text(LOCKED_CONFIG)
    running = start_server(home, faults_dir, config=home / "locked.toml", workers=2)
    yield running
    running.stop()


@pytest.fixture
def http(server: Server) -> httpx.Client:
    return server.client()


@pytest.fixture(scope="session")
def admin_token(server: Server) -> str:
    """Made by the real CLI; the secret is the last line it prints."""
    out = cli(server.home, server.faults, "token", "create", "tests-admin", "--scope", "admin")
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def feedback_headers(server: Server) -> dict[str, str]:
    """Feedback needs a token with the feedback scope (docs/security.md)."""
    return {"authorization": f"Bearer {make_token(server.home, 'feedback')}"}


def make_token(home: Path, *scopes: str) -> str:
    """A token made in this process (tests of the CLI itself use ``livemodel token create``)."""
    from livemodel.store.tokens import TokenStore

    registry = registry_at(home)
    try:
        secret, _ = TokenStore(registry.metadata.db).create("tests", scopes)
    finally:
        registry.metadata.db.close()
    return secret


# -- data helpers ---------------------------------------------------------------------------
def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN as null)."""
    out: list[dict[str, Any]] = []
    for row in frame[list(FEATURES)].to_dict(orient="records"):
        out.append(
            {
                str(k): (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in row.items()
            }
        )
    return out


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def assert_json_error(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """A client error with a JSON body naming the problem, never a traceback."""
    if status is not None:
        assert response.status_code == status, response.text
    assert 400 <= response.status_code < 500, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    if isinstance(error, str):  # the Open Inference Protocol's shape
        error = {"message": error}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


# -- load from another process --------------------------------------------------------------
@dataclass
class Load:
    proc: subprocess.Popen[bytes]
    out: Path

    def outcomes(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def acknowledged(self) -> list[str]:
        return [pid for o in self.outcomes() if o["ok"] for pid in o["ids"]]

    def stop(self) -> None:
        """Ask the load to stop (it finishes its requests in flight) and wait for it."""
        (self.out.parent / "stop").touch()
        self.wait()

    def wait(self) -> None:
        try:
            self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.returncode == 0

    def wait_until(self, predicate: Any, what: str, seconds: float = 30) -> None:
        """Poll the outcomes until ``predicate(outcomes)`` holds (bounded)."""
        deadline = time.monotonic() + seconds
        while not predicate(self.outcomes()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            if self.proc.poll() is not None and not predicate(self.outcomes()):
                raise AssertionError(f"the load ended before {what}")
            time.sleep(0.05)


def start_load(
    server: Server,
    model: str,
    pool: list[dict[str, Any]],
    where: Path,
    *,
    seconds: float,
    threads: int = 4,
    max_requests: int = 5_000,
    max_rows: int = 3,
) -> Load:
    where.mkdir(parents=True, exist_ok=True)
    (where / "records.json").write_text(json.dumps(pool))
    out = where / "outcomes.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(LOADGEN),
            server.url,
            model,
            str(where / "records.json"),
            str(out),
            "--seconds",
            str(seconds),
            "--threads",
            str(threads),
            "--max-requests",
            str(max_requests),
            "--stop-file",
            str(where / "stop"),
            "--max-rows",
            str(max_rows),
        ],
        env=process_env(server.home, server.faults),
    )
    return Load(proc, out)
