"""``livemodel gate``, run as a real process against a real SQLite home (issue 19 item 1).

Three versions of a click model are registered with ``livemodel register``: v1 (one
informative feature) is served as ``production``; v2 (every feature) is better, v3 (a noise
feature only) worse. The verdict's numbers are checked against ``run_gate`` called directly
(and its ROC AUC against scikit-learn), the exit codes against docs/ci.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from livemodel.cli.gate_commands import ERROR, PROMOTE, REJECT, UNDECIDED, USAGE
from livemodel.config import Settings
from livemodel.loop.gate import run_gate
from livemodel.loop.policy import GateSettings, parse_loop
from livemodel.registry.model_io import predict_outputs
from livemodel.store.labels import LabelLog
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord
from livemodel.wiring import connect

EXE = str(Path(sys.executable).parent / "livemodel")
NAME = "clicks"
FEATURES = ["x1", "x2", "x3", "region"]
T0 = datetime(2024, 3, 4, tzinfo=UTC)

MODELS = """
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

def _only(columns):
    return make_pipeline(ColumnTransformer([("num", "passthrough", columns)]), LogisticRegression())

medium = _only(["x1"])
weak = _only(["x3"])
strong = make_pipeline(
    ColumnTransformer([
        ("num", "passthrough", ["x1", "x2", "x3"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
    ]),
    LogisticRegression(),
)
"""

POLICY = """
[loop.models.clicks]
train = "mypackage.training:train"

[loop.models.clicks.gate]
metric = "log_loss"
n_bootstrap = 300
seed = 7
segments = ["region"]
segment_tolerance = 0.05
min_segment_rows = 40
"""


def frame(n: int, seed: int) -> pd.DataFrame:
    """x1 and x2 carry the signal, x3 is noise; region shifts the odds; d and e are rare."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    region = rng.choice(["a", "b", "c", "d", "e"], size=n, p=[0.4, 0.3, 0.24, 0.03, 0.03])
    logit = 1.2 * x[:, 0] + 1.5 * x[:, 1] + np.where(region == "a", 0.8, -0.4)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "region": region, "y": y})


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "LIVEMODEL_HOME": str(home), "LIVEMODEL_ACTOR": "ci"}
    for key in ("LIVEMODEL_DB_URL", "LIVEMODEL_CONFIG", "LIVEMODEL_ARTIFACTS", "LIVEMODEL_LOGS"):
        environ.pop(key, None)
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, cwd=home, env=environ, timeout=180,
        check=False,
    )  # fmt: skip


def gate(home: Path, *args: str, code: int) -> dict[str, Any]:
    done = run(home, "gate", NAME, *args, "--json")
    assert done.returncode == code, done.stderr
    assert done.stderr == ""
    verdict: dict[str, Any] = json.loads(done.stdout)
    assert verdict["exit_code"] == code
    return verdict


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("gate")
    frame(1500, 0).to_parquet(home / "train.parquet", index=False)
    frame(600, 1).to_parquet(home / "holdout.parquet", index=False)
    (home / "gatemodels.py").write_text(MODELS)
    for model, alias in (("medium", ["--alias", "production"]), ("strong", []), ("weak", [])):
        done = run(home, "register", NAME, "--model", f"gatemodels:{model}",
                   "--data", "train.parquet", "--target", "y", "--json", *alias)  # fmt: skip
        assert done.returncode == 0, done.stderr
    return home


def direct(home: Path, holdout: pd.DataFrame, candidate: int, settings: GateSettings) -> Any:
    """run_gate called in this process on the same versions and rows."""
    registry = connect(Settings.at(home))
    try:
        champ, cand = registry.load(f"{NAME}@1"), registry.load(f"{NAME}@{candidate}")
        return run_gate(
            champ.model, cand.model, holdout,
            features=FEATURES, target="y", kind="binary", classes=[0, 1], settings=settings,
        )  # fmt: skip
    finally:
        registry.metadata.db.close()


def as_json(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


def test_a_better_candidate_is_promoted_with_the_numbers_of_run_gate(home: Path) -> None:
    verdict = gate(home, "--candidate", "2", "--data", "holdout.parquet", code=PROMOTE)
    assert verdict["decision"] == "promote"
    assert verdict["champion"] == {"version": 1, "alias": "production"}
    assert verdict["candidate"] == {"version": 2}
    assert verdict["data"]["rows"] == 600
    holdout = pd.read_parquet(home / "holdout.parquet")
    expected = direct(home, holdout, 2, GateSettings())
    assert expected.passed
    assert verdict["gate"] == as_json(expected.to_dict())
    assert verdict["reasons"] == []
    # the champion's and candidate's ROC AUC are scikit-learn's
    registry = connect(Settings.at(home))
    for version, key in ((1, "champion"), (2, "candidate")):
        out = predict_outputs(registry.load(f"{NAME}@{version}").model, holdout[FEATURES], "binary")
        auc = roc_auc_score(holdout["y"], out["proba_1"])
        assert verdict["gate"]["overall"][key] == pytest.approx(auc, abs=1e-12)
    registry.metadata.db.close()
    assert verdict["gate"]["overall"]["lower"] > 0.0


def test_a_worse_candidate_is_refused_and_the_markdown_says_why(home: Path) -> None:
    summary = home / "summary.md"
    verdict = gate(home, "--candidate", "3", "--data", "holdout.parquet",
                   "--markdown", str(summary), code=REJECT)  # fmt: skip
    assert verdict["decision"] == "do not promote"
    assert verdict["reasons"] and verdict["reasons"][0].startswith("not better enough: roc_auc")
    assert verdict["gate"]["overall"]["upper"] < 0.0
    text = summary.read_text()
    assert "clicks v3 — **do not promote**" in text
    assert "| roc_auc |" in text and "not better enough" in text
    assert f"{verdict['gate']['overall']['champion']:.4g}" in text
    assert "Exit code 1." in text
    # without --json the Markdown summary goes to stdout
    done = run(home, "gate", NAME, "--candidate", "3", "--data", "holdout.parquet")
    assert done.returncode == REJECT
    assert done.stdout == text


def test_metric_and_margin_options_override_the_defaults(home: Path) -> None:
    verdict = gate(home, "--candidate", "2", "--data", "holdout.parquet",
                   "--metric", "accuracy", "--margin", "0.5", code=REJECT)  # fmt: skip
    assert verdict["settings"]["metric"] == "accuracy"
    assert verdict["settings"]["margin"] == 0.5
    holdout = pd.read_parquet(home / "holdout.parquet")
    expected = direct(home, holdout, 2, GateSettings(metric="accuracy", margin=0.5))
    assert verdict["gate"] == as_json(expected.to_dict())


def test_too_little_data_cannot_decide(home: Path) -> None:
    frame(12, 3).to_parquet(home / "tiny.parquet", index=False)
    verdict = gate(home, "--candidate", "2", "--data", "tiny.parquet", code=UNDECIDED)
    assert verdict["decision"] == "cannot decide"
    assert verdict["reasons"][0] == "only 12 labelled rows; --min-rows is 30"
    # a metric undefined on the rows (one class only) cannot decide either
    one_class = frame(200, 4)
    one_class["y"] = 1
    one_class.to_parquet(home / "one_class.parquet", index=False)
    verdict = gate(home, "--candidate", "2", "--data", "one_class.parquet", code=UNDECIDED)
    assert verdict["gate"] is None
    assert "undefined" in verdict["reasons"][0]


def test_recent_traffic_and_the_policy_gate_settings(home: Path) -> None:
    """--recent reads the labelled log like the loop; the [loop] policy's gate is used."""
    traffic = frame(800, 5)
    times = [T0 + timedelta(minutes=10 * i) for i in range(len(traffic))]
    write_log(home, traffic, times, labelled=np.arange(len(traffic)) % 4 != 0)
    (home / "gate.toml").write_text(POLICY)
    at = (T0 + timedelta(days=6)).isoformat()
    args = ["--candidate", "2", "--recent", "5d", "--at", at, "--config", "gate.toml"]
    verdict = gate(home, *args, code=PROMOTE)
    since = T0 + timedelta(days=1)
    window = [t >= since for t in times]
    labelled = traffic[np.array(window) & (np.arange(len(traffic)) % 4 != 0)]
    assert verdict["data"]["rows"] == len(labelled) > 400
    settings = parse_loop({"models": {NAME: {"train": "m:f", "gate": {
        "metric": "log_loss", "n_bootstrap": 300, "seed": 7, "segments": ["region"],
        "segment_tolerance": 0.05, "min_segment_rows": 40}}}}).models[NAME].gate  # fmt: skip
    expected = direct(home, labelled.reset_index(drop=True), 2, settings)
    assert verdict["gate"] == as_json(expected.to_dict())
    segments = {s["value"]: s for s in verdict["gate"]["segments"]}
    assert set(segments) == {"a", "b", "c", "(long tail)"}
    assert segments["(long tail)"]["n"] == int(labelled["region"].isin(["d", "e"]).sum())


def write_log(
    home: Path, data: pd.DataFrame, times: list[datetime], labelled: Any, prefix: str = "p"
) -> None:
    """Log v1's predictions of ``data`` as the server does, and the labels of ``labelled``."""
    registry = connect(Settings.at(home))
    out = predict_outputs(registry.load(f"{NAME}@1").model, data[FEATURES], "binary")
    registry.metadata.db.close()
    records = [
        PredictionRecord(
            prediction_id=f"{prefix}{i}",
            model=NAME,
            version=1,
            features={str(k): v for k, v in row.items()},
            outputs={
                "label": int(out["prediction"].iloc[i]),
                "proba": {"0": float(out["proba_0"].iloc[i]), "1": float(out["proba_1"].iloc[i])},
            },
            time=times[i],
            latency_ms=1.0,
        )
        for i, row in enumerate(data[FEATURES].to_dict("records"))
    ]
    options = LogOptions(compact=False)
    with PredictionLog(home / "logs", options) as log:
        log.append(records)
    labels = [
        (f"{prefix}{i}", int(data["y"].iloc[i]), times[i] + timedelta(hours=1), "test")
        for i in np.flatnonzero(labelled).tolist()
    ]
    with LabelLog(home / "logs", options) as label_log:
        label_log.append(NAME, labels)


def errors(home: Path) -> list[tuple[list[str], str]]:
    full = pd.read_parquet(home / "holdout.parquet")
    full.drop(columns=["x2"]).to_parquet(home / "no_x2.parquet", index=False)
    (home / "broken.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    return [
        (["gate", "nosuch", "--candidate", "2", "--data", "holdout.parquet"], "nosuch"),
        (["gate", NAME, "--candidate", "9", "--data", "holdout.parquet"], "9"),
        (["gate", NAME, "--candidate", "2", "--data", "missing.parquet"], "no such file"),
        (["gate", NAME, "--candidate", "2", "--data", "broken.parquet"], "cannot read"),
        (["gate", NAME, "--candidate", "2", "--data", "no_x2.parquet"], "lacks columns ['x2']"),
        (["gate", NAME, "--candidate", "1", "--data", "holdout.parquet"], "already the champion"),
        (["gate", NAME, "--candidate", "2"], "either --data"),
        (["gate", NAME, "--candidate", "2", "--data", "holdout.parquet", "--metric", "auc"],
         "--metric 'auc'"),
        (["gate", NAME, "--candidate", "2", "--recent", "7d", "--at", "2020-01-01T00:00:00"],
         "no labelled predictions of clicks"),
    ]  # fmt: skip


def in_process(
    home: Path, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """The console script's entry point, called in this process (no 5 s interpreter start
    per case on a busy machine): the same argument parsing and error handling."""
    from livemodel.cli.app import main

    monkeypatch.chdir(home)
    monkeypatch.setenv("LIVEMODEL_HOME", str(home))
    for key in ("LIVEMODEL_DB_URL", "LIVEMODEL_CONFIG", "LIVEMODEL_ARTIFACTS", "LIVEMODEL_LOGS"):
        monkeypatch.delenv(key, raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_errors_are_one_line_with_their_own_code(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, message in errors(home):
        code, out, err = in_process(home, [*args, "--json"], monkeypatch, capsys)
        assert code == ERROR, (args, err)
        assert out == ""
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, err)
        assert message in lines[0], (args, lines[0])
    # and as a real process
    done = run(home, "gate", "nosuch", "--candidate", "2", "--data", "holdout.parquet")
    assert done.returncode == ERROR
    assert (
        done.stdout == "" and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    )


def test_recent_without_labels_is_an_error(tmp_path: Path, home: Path) -> None:
    """Predictions logged but none labelled: an error (3), not 'cannot decide'."""
    traffic = frame(50, 9)
    times = [T0 + timedelta(days=30, minutes=i) for i in range(len(traffic))]
    write_log(home, traffic, times, labelled=np.zeros(len(traffic), dtype=bool), prefix="u")
    at = (T0 + timedelta(days=31)).isoformat()
    done = run(home, "gate", NAME, "--candidate", "2", "--recent", "1d", "--at", at)
    assert done.returncode == ERROR
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: no labelled predictions of clicks in the last 1d before {at} "
        "(50 predictions, 50 without a label): nothing to gate on"
    ]


def test_usage_errors_do_not_read_as_cannot_decide(home: Path) -> None:
    done = run(home, "gate", NAME, "--candidate", "2", "--data", "holdout.parquet", "--nope")
    assert done.returncode == USAGE
    assert "No such option" in done.stderr


FAIRNESS = """
[loop.models.clicks]
train = "mypackage.training:train"

[loop.models.clicks.gate]
n_bootstrap = 200

[loop.models.clicks.gate.fairness]
attribute = "region"
metric = "recall"
max_difference = 0.01
min_group_rows = 40
"""


def test_fairness_configured_in_the_policy_is_checked(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A better candidate whose recall differs across regions by more than 0.01: refused."""
    pytest.importorskip("fairlearn")
    (home / "fair.toml").write_text(FAIRNESS)
    args = ["gate", NAME, "--candidate", "2", "--data", "holdout.parquet", "--config", "fair.toml"]
    code, out, err = in_process(home, [*args, "--json"], monkeypatch, capsys)
    assert code == REJECT, err
    verdict = json.loads(out)
    settings = parse_loop({"models": {NAME: {"train": "m:f", "gate": {
        "n_bootstrap": 200, "fairness": {"attribute": "region", "metric": "recall",
        "max_difference": 0.01, "min_group_rows": 40}}}}}).models[NAME].gate  # fmt: skip
    expected = direct(home, pd.read_parquet(home / "holdout.parquet"), 2, settings)
    assert verdict["gate"] == as_json(expected.to_dict())
    fairness = verdict["gate"]["fairness"]
    assert not fairness["passed"] and fairness["candidate_difference"] > 0.01
    assert verdict["reasons"] == [f"fairness: {fairness['reason']}"]
    assert set(fairness["excluded"]) == {"d", "e"}
