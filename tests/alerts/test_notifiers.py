"""Webhook delivery to a real HTTP listener on 127.0.0.1: payloads, retries, failures."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from livemodel.alerts.check import notify
from livemodel.alerts.notifiers import (
    DeliveryError,
    LogNotifier,
    RetryPolicy,
    WebhookNotifier,
    deliver,
)
from livemodel.alerts.rules import Alert
from livemodel.alerts.store import AlertStore
from livemodel.errors import InvalidInputError
from livemodel.store.database import open_database

from .helpers import T0

NOW = T0 + timedelta(days=1)


@dataclass
class Listener:
    """A tiny HTTP server: answers each POST with the next scripted status (then 200)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
def listener() -> Iterator[Listener]:
    state = Listener(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(
                {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
            )
            if state.delay:
                time.sleep(state.delay)
            status = state.statuses.pop(0) if state.statuses else 200
            try:
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {
        "rule": "drift.temp", "severity": "warning", "model": "flights", "version": 3,
        "subject": "drift:temp", "message": "flights@3: temp drifted <b>&</b>", "at": T0,
        "value": 1.0, "threshold": 0.05, "details": {"column": "temp"},
    }  # fmt: skip
    return Alert(**{**base, **kw})


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_generic_json_payload(listener: Listener) -> None:
    hook = WebhookNotifier("ops", listener.url, headers={"X-Token": "abc"})
    result = deliver(hook, _alert())
    assert (result.state, result.attempts, result.error) == ("sent", 1, None)
    [got] = listener.received
    assert got["path"] == "/hooks/secret-token"
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["headers"]["X-Token"] == "abc"
    body = got["body"]
    assert body["livemodel"] == 1
    alert = body["alert"]
    assert alert["rule"] == "drift.temp" and alert["severity"] == "warning"
    assert alert["key"] == "drift.temp|flights|drift:temp"
    assert alert["model"] == "flights" and alert["version"] == 3
    assert alert["value"] == 1.0 and alert["threshold"] == 0.05
    assert alert["at"] == T0.isoformat() and alert["details"] == {"column": "temp"}


def test_slack_payload(listener: Listener) -> None:
    hook = WebhookNotifier("slack", listener.url, payload="slack")
    long_rule = "r" * 300
    assert deliver(hook, _alert(rule=long_rule, severity="critical")).state == "sent"
    body = listener.received[0]["body"]
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(":rotating_light: CRITICAL: flights")
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in body["text"]  # Slack mrkdwn escaping
    header, section, fields, context = body["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) == 150
    assert section["text"]["type"] == "mrkdwn" and "temp drifted" in section["text"]["text"]
    assert {"type": "mrkdwn", "text": "*version:* 3"} in fields["fields"]
    assert context["type"] == "context"


def test_retry_after_a_500_is_recorded(listener: Listener, tmp_path: Path) -> None:
    listener.statuses = [500]
    sleeps = Sleeps()
    hook = WebhookNotifier("ops", listener.url)
    db = open_database(f"sqlite:///{tmp_path / 'lm.db'}")
    store = AlertStore(db)
    [outcome] = notify(
        [_alert()], store=store, notifiers=[hook], retry=RetryPolicy(initial_delay=0.25),
        now=NOW, sleep=sleeps,
    )  # fmt: skip
    assert outcome.state == "sent"
    assert len(listener.received) == 2
    assert listener.received[0]["body"] == listener.received[1]["body"]
    assert sleeps.calls == [0.25]
    [row] = store.query("flights")
    assert (row.state, row.attempts) == ("sent", 2)
    assert (
        row.last_error
        == f"ops: http://127.0.0.1:{listener.url.split(':')[2].split('/')[0]} answered HTTP 500"
    )
    assert row.details["deliveries"][0]["attempts"] == 2
    db.close()


def test_failure_after_the_bound_is_recorded_and_retried_next_check(
    listener: Listener, tmp_path: Path
) -> None:
    listener.statuses = [503] * 10
    sleeps = Sleeps()
    hook = WebhookNotifier("ops", listener.url)
    log = LogNotifier()
    db = open_database(f"sqlite:///{tmp_path / 'lm.db'}")
    store = AlertStore(db)
    policy = RetryPolicy(max_attempts=3, initial_delay=1.0, factor=3.0, max_delay=5.0)
    [outcome] = notify(
        [_alert()], store=store, notifiers=[hook, log], retry=policy, now=NOW, sleep=sleeps
    )
    assert outcome.state == "failed"
    assert sleeps.calls == [1.0, 3.0]
    assert len(listener.received) == 3
    assert {d.notifier: d.state for d in outcome.deliveries} == {"ops": "failed", "log": "sent"}
    [row] = store.query("flights")
    assert (row.state, row.attempts) == ("failed", 3)
    assert row.last_error is not None and "answered HTTP 503" in row.last_error
    assert "secret-token" not in row.last_error
    # a failed alert does not start a cooldown: the next check delivers it
    listener.statuses = []
    [again] = notify([_alert()], store=store, notifiers=[hook], now=NOW + timedelta(minutes=1))
    assert again.state == "sent"
    [third] = notify([_alert()], store=store, notifiers=[hook], now=NOW + timedelta(minutes=2))
    assert third.state == "suppressed" and third.deliveries == ()
    assert [r.state for r in store.query("flights")] == ["suppressed", "sent", "failed"]
    db.close()


def test_client_errors_are_not_retried(listener: Listener) -> None:
    for status in (404, 302):
        listener.statuses = [status]
        listener.received.clear()
        result = deliver(WebhookNotifier("ops", listener.url), _alert(), sleep=Sleeps())
        assert (result.state, result.attempts) == ("failed", 1)
        assert f"HTTP {status}" in (result.error or "")
        assert len(listener.received) == 1


def test_unreachable_and_slow_listeners_fail_within_the_bound(listener: Listener) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    sleeps = Sleeps()
    result = deliver(WebhookNotifier("down", closed), _alert(), RetryPolicy(max_attempts=2),
                     sleep=sleeps)  # fmt: skip
    assert (result.state, result.attempts) == ("failed", 2)
    assert "unreachable" in (result.error or "") and len(sleeps.calls) == 1
    listener.delay = 1.0
    slow = WebhookNotifier("slow", listener.url, timeout=0.2)
    result = deliver(slow, _alert(), RetryPolicy(max_attempts=1))
    assert result.state == "failed" and "unreachable" in (result.error or "")


def test_a_broken_notifier_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        name = "broken"
        min_severity = "info"

        def send(self, alert: Alert) -> None:
            raise RuntimeError("boom")

    assert deliver(Broken(), _alert()).error == "RuntimeError: boom"  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="livemodel.alerts"):
        assert deliver(LogNotifier(), _alert(severity="critical")).state == "sent"
    [record] = caplog.records
    assert record.levelno == logging.CRITICAL and "temp drifted" in record.getMessage()


def test_min_severity_and_bad_notifier_settings(listener: Listener, tmp_path: Path) -> None:
    hook = WebhookNotifier("ops", listener.url, min_severity="critical")
    db = open_database(f"sqlite:///{tmp_path / 'lm.db'}")
    [outcome] = notify([_alert()], store=AlertStore(db), notifiers=[hook], now=NOW)
    assert outcome.state == "sent" and outcome.deliveries == () and listener.received == []
    db.close()
    for url in ("file:///etc/passwd", "ftp://h/x", "http://", "not a url"):
        with pytest.raises(InvalidInputError, match="http"):
            WebhookNotifier("x", url)
    with pytest.raises(InvalidInputError, match="payload"):
        WebhookNotifier("x", "http://h/", payload="xml")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="timeout"):
        WebhookNotifier("x", "http://h/", timeout=0)
    for bad in ({"max_attempts": 0}, {"max_attempts": 1000}, {"initial_delay": -1.0}):
        with pytest.raises(InvalidInputError):
            RetryPolicy(**bad)  # type: ignore[arg-type]
    assert RetryPolicy(initial_delay=1, factor=2, max_delay=5).delay(10) == 5.0
    assert issubclass(DeliveryError, Exception)
