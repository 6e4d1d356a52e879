"""``livemodel register`` checks what it is given, as a real process against a real home:
classes defined in a ``--model FILE.py:ATTR`` travel in the artifact, the model's classes
must be the target's values (or ``--class-map`` says how they map), and an object without
the estimator API is one clear error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from tests.serving.conftest import linear_pipeline

from livemodel.cli.app import main
from livemodel.config import Settings
from livemodel.demo.flights import FEATURES, NUMERIC, TARGET, load_flights
from livemodel.wiring import connect

EXE = str(Path(sys.executable).parent / "livemodel")

USER_MODULE = f"""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

NUMERIC = {list(NUMERIC)!r}


def numbers(frame):
    return frame[NUMERIC].fillna(0.0).to_numpy(dtype=float)


class Cautious(ClassifierMixin, BaseEstimator):
    '''Says late (1) from a probability of 0.35: defined here, nowhere else.'''

    def __init__(self, threshold=0.35):
        self.threshold = threshold

    def fit(self, X, y):
        self.inner_ = LogisticRegression(max_iter=500).fit(numbers(X), y)
        self.classes_ = self.inner_.classes_
        return self

    def predict_proba(self, X):
        return self.inner_.predict_proba(numbers(X))

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] >= self.threshold).astype(int)]


def make():
    return Cautious(threshold=0.3)


pipeline = make_pipeline(FunctionTransformer(numbers), LogisticRegression(max_iter=500))


class Zeros:
    '''Predicts 0 for every row and has no classes_.'''

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


class Broken(Zeros):
    def predict(self, X):
        raise RuntimeError("line one\\nline two")


class OnlyFit:
    def fit(self, X, y):
        return self


weights = {{"a": 1.0}}
answer = 42
"""


def run(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``livemodel ARGS`` as a process of its own (which has never seen the user's file)."""
    env = {**os.environ, "LIVEMODEL_HOME": str(home), "LIVEMODEL_ACTOR": "cli-test"}
    env.pop("LIVEMODEL_DB_URL", None)
    env.pop("LIVEMODEL_CONFIG", None)
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False
    )


@dataclass
class Cli:
    """The command's entry point in this process (the machine is shared: a process per
    command costs seconds); stdout, stderr and the exit code as the shell sees them."""

    home: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        with self.monkeypatch.context() as patch:
            patch.chdir(self.home)
            patch.setenv("LIVEMODEL_HOME", str(self.home))
            patch.setenv("LIVEMODEL_ACTOR", "cli-test")
            patch.delenv("LIVEMODEL_DB_URL", raising=False)
            patch.delenv("LIVEMODEL_CONFIG", raising=False)
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return out

    def fails(self, *args: str, message: str) -> str:
        """Exit 1 with one line ``error: ...`` containing ``message``."""
        code, out, err = self(*args)
        assert code == 1, err
        assert "Traceback" not in err + out
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("error:") and "internal error" not in lines[0], lines
        assert message in lines[0], lines[0]
        return lines[0]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return load_flights((1,)).iloc[:3000][[*FEATURES, TARGET]].reset_index(drop=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, data: pd.DataFrame) -> Path:
    """Training data (``late`` as 0/1 and as no/yes), rows to score, a model fitted on 0/1."""
    home = tmp_path_factory.mktemp("home")
    data.iloc[:2000].to_csv(home / "train.csv", index=False)
    yes_no = data.assign(**{TARGET: data[TARGET].map({0: "no", 1: "yes"})})
    yes_no.iloc[:2000].to_csv(home / "yes_no.csv", index=False)
    data.iloc[2000:].to_parquet(home / "score.parquet", index=False)
    joblib.dump(linear_pipeline().fit(data[list(FEATURES)], data[TARGET]), home / "zero_one.joblib")
    return home


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(home, monkeypatch, capsys)


def user_file(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "usermodel.py"
    path.write_text(USER_MODULE)
    return path


def scored(home: Path, name: str, tmp: Path) -> pd.DataFrame:
    """``livemodel score`` in a fresh process, from a folder without the user's file."""
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    out = tmp / f"out-{name}"
    done = run(home, "score", f"{name}@1", "--input", str(home / "score.parquet"),
               "--output", str(out), cwd=elsewhere)  # fmt: skip
    assert done.returncode == 0, done.stderr
    parts = sorted(out.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


@pytest.mark.parametrize(
    ("attr", "threshold"), [("Cautious", 0.35), ("make", 0.3), ("pipeline", None)]
)
def test_classes_and_functions_of_the_model_file_travel_in_the_artifact(
    cli: Cli, data: pd.DataFrame, tmp_path: Path, attr: str, threshold: float | None
) -> None:
    home = cli.home
    source = user_file(tmp_path / "src")
    name = f"user-{attr.lower()}"
    cli.ok("register", name, "--model", f"{source}:{attr}", "--data", "train.csv",
           "--target", TARGET)  # fmt: skip
    source.unlink()  # the batch job's process must do without it
    out = scored(home, name, tmp_path)
    registry = connect(Settings.at(home, actor="tests"))
    try:
        model = registry.load(name).model
    finally:
        registry.metadata.db.close()
    rows = data.iloc[2000:][list(FEATURES)]
    assert out["prediction"].tolist() == model.predict(rows).tolist()
    if threshold is not None:  # the file's own decision rule, not the most probable class
        proba = model.predict_proba(rows)[:, 1]
        assert out["prediction"].tolist() == (proba >= threshold).astype(int).tolist()
        assert ((proba >= threshold) != (proba >= 0.5)).sum() > 10


def test_classes_that_are_not_the_targets_values_are_one_clear_error(cli: Cli, home: Path) -> None:
    line = cli.fails("register", "mismatch", "--model", "zero_one.joblib", "--data",
                 "yes_no.csv", "--target", TARGET,
                 message="the model's classes [0, 1]")  # fmt: skip
    assert "['no', 'yes']" in line and "--class-map" in line
    source = user_file(home / "models")
    line = cli.fails("register", "zeros", "--model", f"{source}:Zeros", "--data", "yes_no.csv",
                 "--target", TARGET, message="the model predicts [0]")  # fmt: skip
    assert "['no', 'yes']" in line
    assert "unknown model" in cli("models", "show", "mismatch")[2]


def test_a_class_map_registers_a_model_that_answers_in_the_targets_values(
    cli: Cli, home: Path, data: pd.DataFrame, tmp_path: Path
) -> None:
    card = json.loads(cli.ok("register", "mapped", "--model", "zero_one.joblib", "--data",
                         "yes_no.csv", "--target", TARGET, "--class-map", "0=no,1=yes",
                         "--json"))  # fmt: skip
    assert card["lineage"]["class_map"] == [[0, "no"], [1, "yes"]]
    assert card["signature"]["task"]["classes"] == ["no", "yes"]
    out = scored(home, "mapped", tmp_path)
    fitted = joblib.load(home / "zero_one.joblib")
    rows = data.iloc[2000:][list(FEATURES)]
    expected = np.where(fitted.predict(rows) == 1, "yes", "no")
    assert out["prediction"].tolist() == expected.tolist()
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]], fitted.predict_proba(rows))
    # A map the other way round is the user's statement too: labels follow it.
    cli.ok("register", "flipped", "--model", "zero_one.joblib", "--data", "yes_no.csv",
       "--target", TARGET, "--class-map", "0=yes,1=no")  # fmt: skip
    flipped = scored(home, "flipped", tmp_path)
    assert flipped["prediction"].tolist() == np.where(expected == "yes", "no", "yes").tolist()
    np.testing.assert_allclose(flipped["proba_no"], fitted.predict_proba(rows)[:, 1])


def test_bad_class_maps_are_one_clear_error(cli: Cli) -> None:
    base = ["--model", "zero_one.joblib", "--data", "yes_no.csv", "--target", TARGET]
    cli.fails("register", "m", *base, "--class-map", "0=no", message="does not map")
    cli.fails("register", "m", *base, "--class-map", "0=no,1=no", message="two classes")
    cli.fails("register", "m", *base, "--class-map", "0=no,2=yes", message="'2' is not a class")
    cli.fails("register", "m", *base, "--class-map", "0=no,1=maybe", message="'maybe'")
    cli.fails("register", "m", *base, "--class-map", "0:no", message="MODEL_CLASS=TARGET")
    cli.fails("register", "m", "--model", "zero_one.joblib", "--data", "train.csv",
          "--target", "distance", "--class-map", "0=no,1=yes",
          message="regression")  # fmt: skip


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("answer", "int has no predict()"),
        ("weights", "dict has no predict()"),
        ("OnlyFit", "OnlyFit has no predict()"),
        ("Broken", "Broken failed to predict: RuntimeError: line one"),
    ],
)
def test_an_object_without_the_estimator_api_is_one_clear_error(
    cli: Cli, home: Path, attr: str, message: str
) -> None:
    source = user_file(home / "models")
    cli.fails("register", "bad", "--model", f"{source}:{attr}", "--data", "train.csv",
          "--target", TARGET, message=message)  # fmt: skip
