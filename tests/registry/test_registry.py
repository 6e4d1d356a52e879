"""The registry over real databases (SQLite and PostgreSQL) and a local artifact store."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from livemodel.demo.flights import FEATURES, TARGET
from livemodel.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    SchemaError,
)
from livemodel.registry.registry import Registry


def test_register_records_signature_lineage_reference_and_metrics(
    registry: Registry, flights: pd.DataFrame, fitted: Any, tmp_path: Path
) -> None:
    train, valid = flights.iloc[:4000], flights.iloc[4000:]
    v = registry.register(
        "flights",
        fitted,
        train,
        target=TARGET,
        validation=valid,
        seed=7,
        tags={"team": "ops"},
        description="first",
        code_dir=tmp_path,
    )
    assert (v.name, v.version, v.actor, v.aliases) == ("flights", 1, "tester", ())
    assert v.signature.names == FEATURES
    assert v.signature.task is not None
    assert (v.signature.task.kind, v.signature.task.target) == ("binary", TARGET)
    carrier = v.signature.column("carrier")
    assert carrier.categories is not None and set(carrier.categories) == set(train["carrier"])
    assert v.signature.column("dep_delay").max == train["dep_delay"].max()

    data = v.lineage["data"]
    assert (data["rows"], data["columns"]) == (4000, len(FEATURES) + 1)
    assert v.lineage["seed"] == 7
    assert v.lineage["code"] is None  # tmp_path is not a git repository
    assert v.lineage["estimator"]["class"] == "sklearn.pipeline.Pipeline"
    assert v.lineage["estimator"]["params"]["model__max_iter"] == 500
    assert "scikit-learn" in v.lineage["environment"]["packages"]
    assert v.tags == {"team": "ops"}

    # Holdout metrics agree with scikit-learn on the same rows.
    proba = fitted.predict_proba(valid[list(FEATURES)])[:, 1]
    holdout = v.metrics["holdout"]
    assert holdout["roc_auc"]["value"] == pytest.approx(
        roc_auc_score(valid[TARGET], proba), abs=1e-12
    )
    assert holdout["accuracy"]["value"] == pytest.approx(
        accuracy_score(valid[TARGET], fitted.predict(valid[list(FEATURES)])), abs=1e-12
    )

    ref = registry.reference("flights@1")
    assert ref.profile.count == 4000
    assert len(ref.sample) == 2000  # the whole validation frame: under the sample cap
    assert {"prediction", "proba_0", "proba_1", TARGET}.issubset(ref.sample.columns)
    np.testing.assert_allclose(np.sort(ref.sample["proba_1"]), np.sort(proba))


def test_same_data_same_fingerprint_and_load_round_trip(
    registry: Registry, flights: pd.DataFrame, fitted: Any
) -> None:
    a = registry.register("m", fitted, flights, target=TARGET)
    b = registry.register("m", fitted, flights.copy(), target=TARGET)
    c = registry.register("m", fitted, flights.iloc[:-1], target=TARGET)
    assert [a.version, b.version, c.version] == [1, 2, 3]
    assert a.lineage["data"]["fingerprint"] == b.lineage["data"]["fingerprint"]
    assert a.lineage["data"]["fingerprint"] != c.lineage["data"]["fingerprint"]
    assert registry.get("m").version == 3
    loaded = registry.load("m@2")
    rows = flights[list(FEATURES)].head(50)
    np.testing.assert_array_equal(loaded.model.predict(rows), fitted.predict(rows))
    assert loaded.version.version == 2


def test_git_state_is_recorded_with_dirty_flag(
    registry: Registry, flights: pd.DataFrame, fitted: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    clean = registry.register("m", fitted, flights, target=TARGET, code_dir=repo)
    assert clean.lineage["code"]["commit"] == head.stdout.strip()
    assert clean.lineage["code"]["dirty"] is False
    (repo / "train.py").write_text("print(2)\n")
    dirty = registry.register("m", fitted, flights, target=TARGET, code_dir=repo)
    assert dirty.lineage["code"]["dirty"] is True


def test_aliases_rollback_and_audit(registry: Registry, flights: pd.DataFrame, fitted: Any) -> None:
    registry.register("m", fitted, flights, target=TARGET, alias="production")
    registry.register("m", fitted, flights, target=TARGET)
    assert registry.set_alias("m", "production", 2, reason="better") == 1
    assert registry.get("m@production").version == 2
    assert registry.get("m@production").aliases == ("production",)
    assert registry.rollback("m", reason="regression") == (2, 1)
    with pytest.raises(ConflictError):
        registry.rollback("m")
    actions = [(e.action, e.from_version, e.to_version, e.reason) for e in registry.audit("m")]
    assert actions == [
        ("version.registered", None, 1, None),
        ("alias.set", None, 1, "registered"),
        ("version.registered", None, 2, None),
        ("alias.set", 1, 2, "better"),
        ("alias.rollback", 2, 1, "regression"),
    ]


def test_tampered_artifact_is_never_unpickled(
    registry: Registry, flights: pd.DataFrame, fitted: Any, tmp_path: Path
) -> None:
    v = registry.register("m", fitted, flights, target=TARGET)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.write_text, (marker, "executed"))

    import pickle

    path = tmp_path / "artifacts" / v.artifact.key
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(IntegrityError, match="tampered"):
        registry.load("m@1")
    assert not marker.exists()


def test_corrupt_artifact_with_matching_hash_is_a_clear_error(
    registry: Registry, flights: pd.DataFrame, fitted: Any
) -> None:
    # Bytes that hash right but are not a model: stored directly, then referenced.
    registry.register("m", fitted, flights, target=TARGET)
    junk = registry.artifacts.put(b"not a pickle at all")
    version = registry.get("m@1")
    with pytest.raises(IntegrityError, match="cannot be deserialized"):
        from livemodel.registry.model_io import load_model

        load_model(registry.artifacts.get(junk))
    assert version.artifact.sha256 != junk.sha256


class NoPredict:
    def fit(self, x: Any, y: Any) -> NoPredict:
        return self


class Explodes:
    def predict(self, x: Any) -> Any:
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        (NoPredict(), ModelError, "no predict"),
        (LogisticRegression(), ModelError, "not fitted"),
        (Explodes(), ModelError, "failed to predict.*boom"),
        ("a string", ModelError, "no predict"),
    ],
)
def test_unusable_models_are_refused(
    registry: Registry, flights: pd.DataFrame, model: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        registry.register("m", model, flights, target=TARGET)
    assert registry.models() == []


def test_bad_frames_are_refused(registry: Registry, flights: pd.DataFrame, fitted: Any) -> None:
    with pytest.raises(SchemaError, match="empty"):
        registry.register("m", fitted, flights.iloc[:0], target=TARGET)
    with pytest.raises(SchemaError, match="nope"):
        registry.register("m", fitted, flights, target="nope")
    with pytest.raises(InvalidInputError, match="DataFrame"):
        registry.register("m", fitted, flights.to_dict(), target=TARGET)  # type: ignore[arg-type]
    weird = flights.assign(carrier=[complex(1, 1)] * len(flights))
    with pytest.raises(SchemaError, match="carrier"):
        registry.register("m", fitted, weird, target=TARGET)
    with pytest.raises(SchemaError, match="validation frame lacks"):
        registry.register("m", fitted, flights, target=TARGET, validation=flights[[TARGET]])
    assert registry.models() == []


@pytest.mark.parametrize("name", ["", "a/b", "../x", "x" * 200, "has space", "-lead", "é"])
def test_bad_names_are_refused(
    registry: Registry, flights: pd.DataFrame, fitted: Any, name: str
) -> None:
    with pytest.raises(InvalidInputError, match="invalid model name"):
        registry.register(name, fitted, flights, target=TARGET)


@pytest.mark.parametrize("ref", ["m@0", "m@", "m@bad alias", "m@1@2", "@1", "m@99999999999"])
def test_bad_references_are_refused(registry: Registry, ref: str) -> None:
    with pytest.raises(InvalidInputError):
        registry.get(ref)


def test_unknown_things_are_not_found(
    registry: Registry, flights: pd.DataFrame, fitted: Any
) -> None:
    with pytest.raises(NotFoundError, match="unknown model"):
        registry.get("ghost")
    registry.register("m", fitted, flights, target=TARGET)
    with pytest.raises(NotFoundError, match="no version 4"):
        registry.get("m@4")
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        registry.load("m@production")


def test_lightgbm_models_register_and_load(registry: Registry, flights: pd.DataFrame) -> None:
    import lightgbm

    numeric = flights.drop(columns=["carrier", "origin"])
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(
        numeric.drop(columns=TARGET), numeric[TARGET]
    )
    v = registry.register("lgbm", model, numeric, target=TARGET)
    assert v.lineage["estimator"]["class"].startswith("lightgbm")
    assert "lightgbm" in v.lineage["environment"]["packages"]
    X = numeric.drop(columns=TARGET).head(20)
    np.testing.assert_allclose(
        registry.load("lgbm").model.predict_proba(X), model.predict_proba(X), rtol=0, atol=0
    )
