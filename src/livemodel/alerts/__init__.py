"""Alerts: rules over monitoring results and audit events, notifiers, and their record.

``rules`` (pure) turn results and events into alerts and deduplicate them; ``notifiers``
deliver with bounded retries; ``store`` records every alert; ``check`` ties them together;
``config`` reads ``[alerts]`` from ``livemodel.toml``.
"""

from livemodel.alerts.rules import Alert, Rule, decide, evaluate
from livemodel.alerts.store import AlertStore, StoredAlert

__all__ = ["Alert", "AlertStore", "Rule", "StoredAlert", "decide", "evaluate"]
