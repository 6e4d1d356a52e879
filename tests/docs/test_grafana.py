"""The shipped Grafana dashboard only queries metrics the server really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from livemodel.serving.metrics import ServerMetrics

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "livemodel.json"


def exposed_names() -> set[str]:
    metrics = ServerMetrics()
    metrics.requests.labels("m", "predict", "200").inc()
    metrics.latency.labels("m", "1").observe(0.01)
    metrics.rows.labels("m", "1", "champion").inc()
    metrics.outputs.labels("m", "1", "0").inc()
    metrics.values.labels("m", "1").observe(1.0)
    metrics.violations.labels("m", "x", "null").inc()
    metrics.rejected.labels("m").inc()
    metrics.fallbacks.labels("m", "timeout", "default").inc()
    metrics.queue_depth.labels("m").set(1)
    metrics.served_version.labels("m", "production").set(1)
    metrics.review.labels("m").inc()
    text = metrics.exposition().decode()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {line.split("{")[0].split(" ")[0] for line in samples}


def test_every_panel_queries_exposed_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\blivemodel_[a-z_]+", e)}
    assert len(dashboard["panels"]) >= 10
    assert used, "no livemodel metric queried"
    missing = used - exposed_names()
    assert not missing, f"dashboard queries metrics the server does not expose: {missing}"


def test_dashboard_is_importable_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "livemodel" and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["type"] == "prometheus"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
