"""Notifiers: where alerts go (a webhook, the log), and delivery with bounded retries.

A :class:`Notifier` sends one alert or raises :class:`DeliveryError` saying whether trying
again may help. :func:`deliver` never raises: it tries up to ``RetryPolicy.max_attempts``
times, sleeping ``initial_delay * factor ** (attempt - 1)`` (at most ``max_delay``)
between tries, and returns a :class:`Delivery` with the state (``sent``/``failed``), the
attempts made and the last error. A webhook retries on connection errors, timeouts, 408,
425, 429 and 5xx answers; another 4xx (a wrong URL, a revoked token) fails at once.

Webhook payloads: ``"json"`` posts :meth:`Alert.to_dict` under ``alert`` (with the
``livemodel`` schema version); ``"slack"`` posts Slack's incoming-webhook shape
``{"text": ..., "blocks": [...]}`` (also accepted by Mattermost and Rocket.Chat).
A webhook URL often holds a secret, so errors name only its scheme and host.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from livemodel.alerts.rules import Alert, Severity
from livemodel.errors import InvalidInputError, UnavailableError

__all__ = [
    "Delivery",
    "DeliveryError",
    "LogNotifier",
    "Notifier",
    "RetryPolicy",
    "WebhookNotifier",
    "deliver",
    "json_payload",
    "slack_payload",
]

PAYLOAD_VERSION = 1
RANK: Mapping[str, int] = {"info": 0, "warning": 1, "critical": 2}
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


class DeliveryError(UnavailableError):
    """A notifier could not deliver; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Notifier(Protocol):
    """Sends one alert, or raises :class:`DeliveryError`."""

    @property
    def name(self) -> str: ...
    @property
    def min_severity(self) -> Severity: ...
    def send(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff."""

    max_attempts: int = 4
    initial_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not 1 <= self.max_attempts <= 20:
            raise InvalidInputError(f"max_attempts must be 1..20, got {self.max_attempts!r}")
        for name in ("initial_delay", "factor", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 3600:
                raise InvalidInputError(f"{name} must be a number in [0, 3600], got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.initial_delay * self.factor ** (attempt - 1)))


@dataclass(frozen=True)
class Delivery:
    notifier: str
    state: Literal["sent", "failed"]
    attempts: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def deliver(
    notifier: Notifier,
    alert: Alert,
    policy: RetryPolicy | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send with retries; never raises for a delivery problem."""
    policy = policy or RetryPolicy()
    error: str | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            notifier.send(alert)
        except DeliveryError as exc:
            error = exc.message
            if not exc.retryable:
                return Delivery(notifier.name, "failed", attempt, error)
        except Exception as exc:  # noqa: BLE001 - a notifier bug must not stop the others
            return Delivery(notifier.name, "failed", attempt, f"{type(exc).__name__}: {exc}")
        else:
            return Delivery(notifier.name, "sent", attempt, error)
        if attempt < policy.max_attempts:
            sleep(policy.delay(attempt))
    return Delivery(notifier.name, "failed", policy.max_attempts, error)


def json_payload(alert: Alert) -> dict[str, Any]:
    return {"livemodel": PAYLOAD_VERSION, "alert": alert.to_dict()}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack's ``text`` (fallback and notification) plus Block Kit ``blocks``."""
    title = f"{alert.severity.upper()}: {alert.model} — {alert.rule}"
    facts = [f"*severity:* {alert.severity}", f"*model:* {_esc(alert.model)}"]
    if alert.version is not None:
        facts.append(f"*version:* {alert.version}")
    if alert.value is not None:
        facts.append(f"*value:* {alert.value:.4g}")
    if alert.threshold is not None:
        facts.append(f"*threshold:* {alert.threshold:.4g}")
    return {
        "text": f"{_EMOJI[alert.severity]} {_esc(title)}: {_esc(alert.message)}"[:3000],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _esc(alert.message)[:3000]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": _esc(f"{alert.key} · {alert.at.isoformat()}")}
                ],
            },
        ],
    }


@dataclass(frozen=True)
class WebhookNotifier:
    """POSTs each alert as JSON to ``url`` (``payload``: ``json`` or ``slack``)."""

    name: str
    url: str
    payload: Literal["json", "slack"] = "json"
    timeout: float = 5.0
    headers: Mapping[str, str] = field(default_factory=dict)
    min_severity: Severity = "info"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"webhook {self.name!r} needs an http(s) URL with a host")
        if self.payload not in ("json", "slack"):
            raise InvalidInputError(f"webhook payload must be 'json' or 'slack': {self.payload!r}")
        if not 0 < self.timeout <= 300:
            raise InvalidInputError(f"webhook timeout must be in (0, 300] s: {self.timeout!r}")

    @property
    def target(self) -> str:
        """Scheme, host and port only: the path of a webhook URL is often its secret."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"

    def send(self, alert: Alert) -> None:
        body = json_payload(alert) if self.payload == "json" else slack_payload(alert)
        data = json.dumps(body, default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "livemodel-alerts"}
        request = urllib.request.Request(
            self.url, data=data, headers={**headers, **self.headers}, method="POST"
        )
        try:
            opener = urllib.request.build_opener(_NoRedirect())
            with opener.open(request, timeout=self.timeout) as response:
                response.read(65_536)
        except urllib.error.HTTPError as exc:
            retry = exc.code in _RETRYABLE_STATUS or exc.code >= 500
            raise DeliveryError(f"{self.target} answered HTTP {exc.code}", retryable=retry) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{self.target} unreachable: {reason}", retryable=True) from exc


@dataclass(frozen=True)
class LogNotifier:
    """Writes alerts to a :mod:`logging` logger (``livemodel.alerts`` by default)."""

    name: str = "log"
    logger: str = "livemodel.alerts"
    min_severity: Severity = "info"

    def send(self, alert: Alert) -> None:
        logging.getLogger(self.logger).log(
            _LOG_LEVEL[alert.severity],
            "[%s] %s: %s (%s)",
            alert.severity,
            alert.rule,
            alert.message,
            alert.key,
        )


def wants(notifier: Notifier, alert: Alert) -> bool:
    """Whether ``alert`` is severe enough for ``notifier``."""
    return RANK[alert.severity] >= RANK[notifier.min_severity]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would be replayed as a GET elsewhere: treat it as an error instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _esc(text: str) -> str:
    """Slack mrkdwn escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
