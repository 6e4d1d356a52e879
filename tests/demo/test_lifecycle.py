"""The lifecycle demo, shortened (April-August), end to end on real data over real HTTP.

Asserts on the audit log: drift detected once the seasons change, retraining triggered,
gate numbers recorded, a candidate promoted through shadow and canary, the sabotaged build
rolled back, and no client request failed along the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livemodel.config import Settings
from livemodel.demo import lifecycle
from livemodel.wiring import connect


@pytest.mark.slow
def test_shortened_lifecycle(tmp_path: Path) -> None:
    said: list[str] = []
    result = lifecycle.run(
        tmp_path / "home", months=(4, 5, 6, 7, 8), per_month=2000, say=said.append
    )
    assert result.requests > 400
    assert result.failed_requests == 0
    assert result.labels_sent > 5000

    audit = connect(Settings.at(tmp_path / "home")).audit("flights")
    actions = [e.action for e in audit]
    # What the demo said and the whole audit trail, shown in full when an assertion fails.
    story = "\n".join([*said, "-- audit --", *(f"{e.action}: {e.reason}" for e in audit)])
    retrains = [e for e in audit if e.action == "loop.retrain"]
    assert retrains, story
    assert all("drifted" in (e.reason or "") for e in retrains)
    assert any("temp" in (e.reason or "") for e in retrains)  # the weather changes first

    gates = [e for e in audit if e.action.startswith("loop.gate.")]
    assert gates, story
    for gate in gates:
        assert "log_loss" in (gate.reason or "")
        assert gate.details, "the gate's numbers are in the audit log"

    assert "loop.gate.passed" in actions, story
    assert "rollout.promote" in actions, story
    promoted = [e for e in audit if e.action == "alias.set" and e.alias == "production"]
    assert promoted and promoted[-1].to_version > 1

    rollbacks = [e for e in audit if e.action == "rollout.rollback"]
    assert rollbacks and (rollbacks[-1].reason or "").startswith("errors:"), story
    assert result.report is not None and result.report.stat().st_size > 100_000
