"""Loop policies: every mistake is one ConfigError naming the key."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livemodel.config import Settings
from livemodel.errors import ConfigError
from livemodel.loop.policy import DEFAULT_PLAN, parse_loop
from livemodel.wiring import loop_controller

DOC = Path(__file__).parents[2] / "docs" / "loop.md"


def model(**table: Any) -> dict[str, Any]:
    return {"models": {"flights": {"train": "pkg.training:train", **table}}}


def test_defaults_of_a_minimal_policy() -> None:
    policy = parse_loop(model()).models["flights"]
    assert policy.train == "pkg.training:train"
    assert policy.cooldown == timedelta(days=7)
    assert policy.rollout.plan == DEFAULT_PLAN == "shadow,canary:10,50,100"
    assert policy.data.recent == timedelta(days=30)
    assert (policy.data.older_share, policy.data.holdout, policy.data.seed) == (0.3, 0.2, 0)
    assert (policy.gate.metric, policy.gate.margin, policy.gate.confidence) == ("roc_auc", 0, 0.95)
    assert policy.triggers.drift is None and policy.triggers.performance == ()


def test_a_full_policy_parses() -> None:
    policy = parse_loop(
        model(
            cooldown="2w",
            triggers={
                "drift": {"min_features": 3, "features": ["temp", "humid"]},
                "multivariate": True,
                "performance": [
                    {"metric": "roc_auc", "source": "estimated", "floor": 0.7},
                    {"metric": "mae", "max_drop": 2.5},
                ],
                "quality": {"max_missing_rate": 0.1, "columns": ["temp"]},
                "schedule": "30d",
            },
            monitor={"window": "10000rows", "lookback": "3d", "segments": ["carrier"]},
            data={"recent": 20000, "older_share": 0.0, "history": "365d", "max_rows": 50000},
            gate={
                "metric": "f1",
                "margin": -0.01,
                "fairness": {"attribute": "origin", "metric": "recall", "max_difference": 0.1},
            },
            rollout={"plan": "canary:5,100", "alpha": 0.01},
        )
    ).models["flights"]
    assert policy.cooldown == timedelta(weeks=2)
    assert policy.triggers.drift is not None and policy.triggers.drift.features == ("temp", "humid")
    assert [p.metric for p in policy.triggers.performance] == ["roc_auc", "mae"]
    assert policy.triggers.schedule == timedelta(days=30)
    assert policy.monitor.window == "10000rows"
    assert policy.data.recent == 20000
    assert policy.gate.fairness is not None and policy.gate.fairness.max_difference == 0.1
    assert policy.rollout.plan == "canary:5,100"


def test_a_single_performance_table_is_a_list_of_one() -> None:
    policy = parse_loop(model(triggers={"performance": {"metric": "accuracy", "floor": 0.8}}))
    assert len(policy.models["flights"].triggers.performance) == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"models": {"flights": {}}}, "loop.models.flights.train: missing"),
        (model(train="pkg.training"), "loop.models.flights.train: must be 'module:function'"),
        (model(train="../evil:x"), "loop.models.flights.train: must be 'module:function'"),
        (model(train=3), "loop.models.flights.train: must be 'module:function'"),
        (model(colldown="7d"), "loop.models.flights.colldown: unknown key (allowed: cooldown,"),
        (model(cooldown="7 days"), "loop.models.flights.cooldown: '7 days' is not a duration"),
        (model(cooldown="0d"), "loop.models.flights.cooldown: '0d' is not a duration"),
        (model(cooldown=7), "loop.models.flights.cooldown: must be a duration text"),
        (model(triggers={"drift": {"min_features": 0}}),
         "loop.models.flights.triggers.drift.min_features: must be greater than or equal to 1"),
        (model(triggers={"drift": {"min_features": True}}),
         "loop.models.flights.triggers.drift.min_features: must be a valid integer, got bool"),
        (model(triggers={"drift": {"k": 2}}),
         "loop.models.flights.triggers.drift.k: unknown key (allowed: features, min_features)"),
        (model(triggers={"drift": 2}), "loop.models.flights.triggers.drift: must be a table"),
        (model(triggers={"performance": {"metric": "roc_auc"}}),
         "loop.models.flights.triggers.performance.0: give floor, max_drop or both"),
        (model(triggers={"performance": [{"metric": "auc", "floor": 1}]}),
         "loop.models.flights.triggers.performance.0.metric: must be 'accuracy'"),
        (model(triggers={"quality": {}}), "loop.models.flights.triggers.quality: give max_"),
        (model(triggers={"quality": {"max_missing_rate": 1.5}}),
         "loop.models.flights.triggers.quality.max_missing_rate: must be less than or equal to 1"),
        (model(triggers={"schedule": "monthly"}),
         "loop.models.flights.triggers.schedule: 'monthly' is not a duration"),
        (model(triggers={"multivariate": "yes"}),
         "loop.models.flights.triggers.multivariate: must be a valid boolean"),
        (model(monitor={"window": "1 day"}), "loop.models.flights.monitor.window: '1 day' is not"),
        (model(monitor={"segments": "carrier"}),
         "loop.models.flights.monitor.segments: must be a list of names"),
        (model(monitor={"segments": ["a", "a"]}),
         "loop.models.flights.monitor.segments: lists a name twice"),
        (model(data={"recent": "0rows"}), "loop.models.flights.data.recent: a count window needs"),
        (model(data={"recent": -5}), "loop.models.flights.data.recent: a row count must be >= 1"),
        (model(data={"recent": 2.5}), "loop.models.flights.data.recent: must be a duration"),
        (model(data={"older_share": 1.0}), "loop.models.flights.data.older_share: must be less"),
        (model(data={"holdout": 0}), "loop.models.flights.data.holdout: must be greater than 0"),
        (model(data={"seed": -1}), "loop.models.flights.data.seed: must be greater than or equal"),
        (model(gate={"metric": "auc"}), "loop.models.flights.gate.metric: must be 'roc_auc'"),
        (model(gate={"margin": float("nan")}), "loop.models.flights.gate.margin: must be a finite"),
        (model(gate={"margin": float("inf")}), "loop.models.flights.gate.margin: must be a finite"),
        (model(gate={"confidence": 1.0}), "loop.models.flights.gate.confidence: must be less"),
        (model(gate={"n_bootstrap": 10**9}), "loop.models.flights.gate.n_bootstrap: must be less"),
        (model(gate={"fairness": {"attribute": "origin"}}),
         "loop.models.flights.gate.fairness: give max_difference, relative_to_champion"),
        (model(gate={"fairness": {"attribute": "o", "metric": "tpr", "max_difference": 0.1}}),
         "loop.models.flights.gate.fairness.metric: must be 'recall'"),
        (model(rollout={"plan": "canary:50,10"}),
         "loop.models.flights.rollout.plan: canary steps must increase"),
        (model(rollout={"plan": ""}), "loop.models.flights.rollout.plan: a plan is e.g."),
        ({"models": {"bad name!": {"train": "a:b"}}}, "loop.models: invalid model name"),
        ({"models": {"flights": "a:b"}}, "loop.models.flights: must be a table"),
        ({"models": []}, "loop.models: must be a table"),
        ({"lease_seconds": 0}, "loop.lease_seconds: must be greater than 0"),
        ({"lease": 3}, "loop.lease: unknown key (allowed: lease_seconds, models)"),
        ("loop", "loop: must be a table"),
    ],
)  # fmt: skip
def test_every_mistake_names_its_key(table: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_loop(table, source="livemodel.toml")
    assert str(caught.value).startswith(message), str(caught.value)
    assert str(caught.value).endswith("(in livemodel.toml)")
    assert "\n" not in str(caught.value)


def test_no_table_means_no_policies() -> None:
    assert parse_loop(None).models == {}


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["train", "cooldown", "triggers", "data", "gate", "monitor", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                  st.lists(st.text(max_size=3), max_size=3),
                  st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)),
        max_size=5,
    )
)  # fmt: skip
def test_hostile_tables_give_a_config_error_or_a_policy(table: dict[str, Any]) -> None:
    try:
        parse_loop({"models": {"m": table}})
    except ConfigError as exc:
        assert str(exc).startswith("loop.models")


def test_the_documented_example_parses() -> None:
    text = DOC.read_text()
    block = text.split("```toml", 1)[1].split("```", 1)[0]
    settings = parse_loop(tomllib.loads(block)["loop"], source="docs/loop.md")
    assert "flights" in settings.models


def test_wiring_reads_the_project_file(tmp_path: Path) -> None:
    config = tmp_path / "livemodel.toml"
    config.write_text('[loop.models.flights]\ntrain = "x:y"\ncooldown = "soon"\n')
    env = {"LIVEMODEL_HOME": str(tmp_path / "home"), "LIVEMODEL_CONFIG": str(config)}
    with pytest.raises(ConfigError, match=r"loop.models.flights.cooldown: .* \(in .*toml\)"):
        loop_controller(Settings.from_env(env))
    config.write_text("[serving]\n")
    assert loop_controller(Settings.from_env(env)) is None
