"""Health tells the truth: a model whose aliased version cannot be loaded is named.

A tampered production artifact leaves its model absent, so ``/readyz`` is not ready and
says which model and why (no paths); a failed load is logged once per change, not once
per poll; a broken new version behind a working one keeps serving the working one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from livemodel.config import Settings
from livemodel.demo.flights import FEATURES, NUMERIC, TARGET
from livemodel.registry.registry import Registry
from livemodel.serving.options import ServerOptions
from livemodel.wiring import serving_state

from .conftest import Models, copy_home, registry_at, start_server


def register_fragile(
    registry: Registry, home: Path, models: Models, c: float, *, alias: bool
) -> Path:
    """A small model of its own artifact (so tampering touches nothing else); its path."""
    frame = models.data.iloc[:800][[*NUMERIC, TARGET]].fillna(0)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(
        frame[list(NUMERIC)], frame[TARGET]
    )
    version = registry.register(
        "fragile", model, frame, target=TARGET, alias="production" if alias else None
    )
    return home / "artifacts" / version.artifact.key


def tamper(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-10] + b"0123456789")


def test_a_tampered_model_is_named_and_logged_once(
    template_home: Path,
    tmp_path: Path,
    models: Models,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = copy_home(template_home, tmp_path / "home")
    registry = registry_at(home)
    tamper(register_fragile(registry, home, models, 0.5, alias=True))
    state = serving_state(Settings.at(home, actor="tests"), ServerOptions())

    async def polls(n: int) -> None:
        for _ in range(n):
            await state.refresh()

    async def scenario() -> None:
        state.ready = True
        with caplog.at_level(logging.WARNING, logger="livemodel.serving"):
            await polls(5)
            failure = state.failures["fragile"]
            assert failure.serving is None and failure.version == 1
            assert "integrity" in failure.reason and "/" not in failure.reason
            assert not state.healthy
            assert "fragile" not in state.endpoints and "flights" in state.endpoints
            errors = [r for r in caplog.records if "fragile" in r.getMessage()]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            assert "no version of it is served" in errors[0].getMessage()
            # A working version: served, healthy, said once.
            caplog.clear()
            register_fragile(registry, home, models, 1.0, alias=False)
            registry.set_alias("fragile", "production", 2, reason="fix")
            await polls(3)
            assert state.healthy and not state.failures
            assert state.endpoints["fragile"].handle.number == 2
            assert len([r for r in caplog.records if "fragile" in r.getMessage()]) == 1
            # A broken version behind it: the working one keeps serving (ready), named.
            caplog.clear()
            tamper(register_fragile(registry, home, models, 2.0, alias=False))
            registry.set_alias("fragile", "production", 3, reason="broken build")
            await polls(4)
            assert state.failures["fragile"].serving == 2
            assert state.healthy and state.endpoints["fragile"].handle.number == 2
            said = [r.getMessage() for r in caplog.records if "fragile" in r.getMessage()]
            assert len(said) == 1 and "still serving version 2" in said[0], said
        await state.stop()

    try:
        asyncio.run(scenario())
    finally:
        registry.metadata.db.close()
        state.registry.metadata.db.close()


def test_readyz_names_the_missing_model_over_http(
    template_home: Path, tmp_path: Path, faults_dir: Path, models: Models
) -> None:
    home = copy_home(template_home, tmp_path / "home")
    server = start_server(home, faults_dir, config=home / "livemodel.toml")
    registry = registry_at(home)
    try:
        tamper(register_fragile(registry, home, models, 0.5, alias=True))
        deadline = time.monotonic() + 60
        while True:  # the server's alias watcher polls every 0.5 s
            answer = httpx.get(f"{server.url}/readyz", timeout=10)
            if answer.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["ready"] is False and "flights" in body["models"]
        assert body["failed"]["fragile"]["serving"] is None
        assert "integrity" in body["failed"]["fragile"]["reason"]
        assert str(home) not in answer.text and "/artifacts" not in answer.text
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 503
        # the other models are served meanwhile
        row = {name: 0.0 for name in NUMERIC} | {f: "x" for f in FEATURES if f not in NUMERIC}
        predicted = httpx.post(f"{server.url}/v1/models/flights/predict", json=[row], timeout=30)
        assert predicted.status_code == 200, predicted.text
        server_log = server.log_text()
        assert server_log.count("cannot load fragile@1") == 1, server_log
    finally:
        registry.metadata.db.close()
        server.stop()
