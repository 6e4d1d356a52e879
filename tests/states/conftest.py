"""One home holding a model in each state a user meets, served by a real ``livemodel serve``.

States (one model each, small scikit-learn models on synthetic rows):

- ``fresh``: just registered, no traffic, no loop policy
- ``unlabelled``: traffic, no labels
- ``noreflabels``: traffic and labels, but a reference sample without the target
- ``noproba``: a classifier without ``predict_proba`` (``RidgeClassifier``), labelled traffic
- ``multiclass``: three string classes, labelled traffic
- ``regression``: ``Ridge``, labelled traffic
- ``rolledback``: v2 served and labelled, then ``production`` rolled back to v1; a rollout
  of v2 that was aborted

Traffic goes through the server over HTTP (predict, then feedback), so the log is the
one the server writes. Half of each batch is shifted, so drift shows where it can.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.serving.conftest import EXE, Server, make_token, start_server

from livemodel.config import Settings
from livemodel.registry.reference import Reference, save_reference
from livemodel.registry.registry import Registry
from livemodel.wiring import connect, rollout_controller

STATES = (
    "fresh",
    "unlabelled",
    "noreflabels",
    "noproba",
    "multiclass",
    "regression",
    "rolledback",
)
FEATURES = ("a", "b", "c")
TRAFFIC_ROWS = 120

CONFIG = """
[serving]
poll_seconds = 0.5
timeout_ms = 60000  # a loaded test machine must not turn slow answers into 503s
"""
LOOP = """
[loop.models.{name}]
train = "states_trainers:train"
"""


def pipeline(estimator: Any) -> Pipeline:
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["c"]), remainder="passthrough"
    )
    return make_pipeline(encode, estimator)


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Features and the three targets (binary ``y``, multiclass ``k``, regression ``r``)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n) + shift
    b = rng.normal(size=n)
    c = rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5])
    noise = rng.normal(scale=0.5, size=n)
    score = a + b + noise
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "c": c,
            "y": (score > 0).astype(int),
            "k": np.where(score < -0.7, "low", np.where(score < 0.7, "mid", "high")),
            "r": 2 * a - b + noise,
        }
    )


@dataclass(frozen=True)
class States:
    """The served home, and what was sent to each model."""

    home: Path
    server: Server
    predicted: dict[str, int]
    labelled: dict[str, int]

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """``livemodel ARGS`` as a real process in the home (its livemodel.toml applies)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMODEL_")}
        env.update({"LIVEMODEL_HOME": str(self.home), "LIVEMODEL_ACTOR": "states-test"})
        done = subprocess.run(
            [EXE, *args], capture_output=True, text=True, cwd=self.home, env=env,
            timeout=180, check=False,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, done.stderr
        return done


def _register(registry: Registry, train: pd.DataFrame) -> None:
    x = train[list(FEATURES)]
    binary = train[[*FEATURES, "y"]]
    lr = pipeline(LogisticRegression()).fit(x, train["y"])
    for name in ("fresh", "unlabelled"):
        registry.register(name, lr, binary, target="y", alias="production")
    _register_without_reference_labels(registry, lr, binary)
    ridge = pipeline(RidgeClassifier()).fit(x, train["y"])
    registry.register("noproba", ridge, binary, target="y", alias="production")
    multi = pipeline(LogisticRegression()).fit(x, train["k"])
    registry.register("multiclass", multi, train[[*FEATURES, "k"]], target="k", alias="production")
    regression = pipeline(Ridge()).fit(x, train["r"])
    registry.register("regression", regression, train[[*FEATURES, "r"]], target="r",
                      alias="production")  # fmt: skip
    registry.register("rolledback", lr, binary, target="y", alias="production")
    weaker = pipeline(LogisticRegression(C=0.01)).fit(x.iloc[:100], train["y"].iloc[:100])
    registry.register("rolledback", weaker, binary, target="y")
    registry.set_alias("rolledback", "production", 2, reason="tests: v2 goes live")


def _register_without_reference_labels(
    registry: Registry, model: Any, binary: pd.DataFrame
) -> None:
    """v1 as registered; v2 the same model whose stored reference has no target column
    (a reference built from unlabelled rows), served as production."""
    registry.register("noreflabels", model, binary, target="y")
    first = registry.metadata.get_version("noreflabels", 1)
    stored = registry.reference("noreflabels@1")
    unlabelled = Reference(stored.profile, stored.sample.drop(columns=["y"]))
    number = registry.metadata.add_version(
        "noreflabels", actor="states-test", description="reference without labels",
        artifact=first.artifact, signature=first.signature,
        reference=save_reference(unlabelled, registry.artifacts, source="training"),
        lineage=first.lineage, metrics={}, tags={},
    )  # fmt: skip
    registry.set_alias("noreflabels", "production", number, reason="tests")


def _send(
    client: httpx.Client, name: str, rows: pd.DataFrame, target: str | None
) -> tuple[int, int]:
    """Predict every row over HTTP; send every label when ``target`` is given."""
    records = rows[list(FEATURES)].to_dict(orient="records")
    response = client.post(f"/v1/models/{name}/predict", json={"records": records})
    assert response.status_code == 200, response.text
    ids = [p["id"] for p in response.json()["predictions"]]
    if target is None:
        return len(ids), 0
    values = rows[target].tolist()
    labels = [{"id": i, "label": v} for i, v in zip(ids, values, strict=True)]
    answer = client.post(f"/v1/models/{name}/feedback", json={"labels": labels})
    assert answer.status_code == 200, answer.text
    return len(ids), len(labels)


TARGETS = {
    "unlabelled": None,
    "noreflabels": "y",
    "noproba": "y",
    "multiclass": "k",
    "regression": "r",
    "rolledback": "y",
}


@pytest.fixture(scope="session")
def states(tmp_path_factory: pytest.TempPathFactory) -> Iterator[States]:
    home = tmp_path_factory.mktemp("states") / "home"
    registry = connect(Settings.at(home, actor="states-test"))
    _register(registry, frame(400, seed=1))
    loop = "".join(LOOP.format(name=n) for n in STATES if n != "fresh")
    (home / "livemodel.toml").write_text(CONFIG + loop)
    server = start_server(
        home, tmp_path_factory.mktemp("nothing"), config=home / "livemodel.toml",
        ready_models=STATES,
    )  # fmt: skip
    predicted = dict.fromkeys(STATES, 0)
    labelled = dict.fromkeys(STATES, 0)
    try:
        # labels need a token with the feedback scope (the admin scope grants it)
        token = make_token(home, "admin")
        client = server.client(headers={"Authorization": f"Bearer {token}"})
        traffic = pd.concat([frame(TRAFFIC_ROWS // 2, 2), frame(TRAFFIC_ROWS // 2, 3, shift=1.0)])
        for name, target in TARGETS.items():
            p, n = _send(client, name, traffic, target)
            predicted[name] += p
            labelled[name] += n
        # rolledback: v2 served the traffic above; a rollout of v2 against v1 is aborted,
        # then production goes back to v1
        registry.rollback("rolledback", reason="tests: v2 was worse")
        controller = rollout_controller(Settings.at(home, actor="states-test"))
        controller.start("rolledback", 2, "shadow,canary:50,100")
        controller.abort("rolledback", "tests: not this one")
        controller.registry.metadata.db.close()
        registry.metadata.db.close()
        yield States(home, server, predicted, labelled)
    finally:
        server.stop()
