"""Prometheus metrics of the server, in a registry of its own (no global state).

With several workers, ``livemodel serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers
start (prometheus-client reads it at import), and ``/metrics`` aggregates every worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
VALUE_BUCKETS = (-100, -10, -1, -0.1, 0, 0.1, 1, 10, 100, 1_000, 10_000)


class ServerMetrics:
    def __init__(self, *, multiprocess: bool = False) -> None:
        self.multiprocess = multiprocess
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "livemodel_requests", "HTTP requests answered", ["model", "endpoint", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "livemodel_request_latency_seconds", "Time to answer a predict request",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rows = Counter(
            "livemodel_predictions", "Rows predicted", ["model", "version", "arm"], registry=r
        )
        self.outputs = Counter(
            "livemodel_predicted_class", "Predicted classes", ["model", "version", "label"],
            registry=r,
        )  # fmt: skip
        self.values = Histogram(
            "livemodel_predicted_value", "Predicted values (regression)", ["model", "version"],
            buckets=VALUE_BUCKETS, registry=r,
        )  # fmt: skip
        self.violations = Counter(
            "livemodel_validation_violations", "Signature violations per feature and kind",
            ["model", "feature", "kind"], registry=r,
        )  # fmt: skip
        self.batches = Counter(
            "livemodel_batches", "Model calls: micro-batches taken from the queue", ["model"],
            registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "livemodel_batch_rows", "Rows per micro-batch", ["model"], buckets=BATCH_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "livemodel_rejected_requests", "Requests refused for violating the signature",
            ["model"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "livemodel_fallbacks", "Rows answered by a fallback", ["model", "reason", "fallback"],
            registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "livemodel_queue_depth", "Requests waiting for the model", ["model"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.served_version = Gauge(
            "livemodel_served_version", "Version being served per model and alias",
            ["model", "alias"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.model_failures = Counter(
            "livemodel_model_failures",
            "Rows a model failed on (raised, NaN or infinity, timed out), answered by a "
            "fallback or not; arm: champion, candidate, shadow, fallback, probe or explain",
            ["model", "version", "arm", "reason"], registry=r,
        )  # fmt: skip
        self.review = Counter(
            "livemodel_review_flagged", "Predictions flagged for human review", ["model"],
            registry=r,
        )  # fmt: skip

    def count_violations(self, model: str, counts: Mapping[tuple[str, Any], int]) -> None:
        for (feature, kind), n in counts.items():
            if n:
                self.violations.labels(model, feature, str(kind)).inc(n)

    def exposition(self) -> bytes:
        if self.multiprocess:
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(merged))
        return bytes(generate_latest(self.registry))
