from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from livemodel.errors import InvalidInputError
from livemodel.rollout.plan import Plan, Step
from livemodel.rollout.routing import bucket, to_candidate


def test_parse_shadow_and_canary_steps() -> None:
    plan = Plan.parse("shadow,canary:5,25,50,100")
    assert plan.steps == (
        Step("shadow", 0.0), Step("canary", 5.0), Step("canary", 25.0),
        Step("canary", 50.0), Step("canary", 100.0),
    )  # fmt: skip
    assert not plan.is_ab
    assert Plan.parse(plan.to_text()) == plan
    assert Plan.from_dict(plan.to_dict()) == plan
    assert Plan.parse("canary:10,100").steps[0] == Step("canary", 10.0)
    assert Plan.parse(" shadow ").steps == (Step("shadow", 0.0),)


def test_parse_ab() -> None:
    plan = Plan.parse("ab:50")
    assert plan.is_ab and plan.steps == (Step("ab", 50.0),)
    assert plan.to_text() == "ab:50"


@pytest.mark.parametrize(
    "text",
    [
        "", "  ", "canary", "canary:0", "canary:101", "canary:50,25", "canary:5,5", "shadow:5",
        "canary:5,shadow", "ab:100", "ab:0", "ab:50,60", "blue:5", "canary:x", "canary:5,,10",
        "canary:nan", "canary:-3", "ab", "canary:1e400",
    ],
)  # fmt: skip
def test_bad_plans_are_clear_errors(text: str) -> None:
    with pytest.raises(InvalidInputError):
        Plan.parse(text)


def test_buckets_are_stable_uniform_and_rollout_specific() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    values = np.array([bucket("r1", k) for k in keys])
    assert values.min() >= 0 and values.max() < 1
    assert stats.kstest(values, "uniform").pvalue > 0.001
    assert [bucket("r1", k) for k in keys[:100]] == list(values[:100])  # deterministic
    other = np.array([bucket("r2", k) for k in keys])
    assert abs(np.corrcoef(values, other)[0, 1]) < 0.05  # another rollout, another split


def test_share_matches_percent_and_growing_keeps_users_on_the_candidate() -> None:
    keys = [f"k{i}" for i in range(40_000)]
    at5 = {k for k in keys if to_candidate("r", k, 5)}
    at25 = {k for k in keys if to_candidate("r", k, 25)}
    assert abs(len(at5) / len(keys) - 0.05) < 0.006
    assert abs(len(at25) / len(keys) - 0.25) < 0.01
    assert at5 <= at25
    assert not any(to_candidate("r", k, 0) for k in keys[:1000])
    assert all(to_candidate("r", k, 100) for k in keys[:1000])
