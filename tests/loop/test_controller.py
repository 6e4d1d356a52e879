"""The loop end to end on real databases, a real log and real flights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from livemodel.loop.history import loop_runs

from tests.loop.conftest import JAN, JUL, NAME, Flights, World, policy, spread, write_traffic

AFTER_JAN = datetime(2013, 2, 4, tzinfo=UTC)
AFTER_JUL = datetime(2013, 7, 29, tzinfo=UTC)


def test_drift_triggers_retrain_gate_and_rollout(world: World, flights: Flights) -> None:
    ctl = world.controller(policy())
    write_traffic(world, flights.jan.iloc[6000:8000], spread(JAN, 20, 2000), prefix="jan")
    first = ctl.tick(AFTER_JAN)
    print(first)
    write_traffic(world, flights.jul.iloc[:3000], spread(JUL, 27, 3000), prefix="jul")
    second = ctl.tick(AFTER_JUL)
    print(second)
    for e in world.registry.audit(NAME):
        print(e.action, e.reason)
    assert False
