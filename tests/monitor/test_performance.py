"""Performance and multivariate calculators against scikit-learn and the stats layer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression

from livemodel.monitor import compare
from livemodel.stats.cbpe import CBPE
from livemodel.stats.multivariate import PCAReconstructionDrift


def binary(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
    p = 1 / (1 + np.exp(-(1.5 * x1 - x2)))
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "y": (rng.random(n) < p).astype(int),
         "pred": (p >= 0.5).astype(int), "p1": p}
    )  # fmt: skip


def test_realized_metrics_are_sklearns() -> None:
    current = binary(1500, 1, shift=0.5)
    report = compare(binary(3000, 0), current, target="y", prediction="pred", probability="p1",
                     multivariate=False)  # fmt: skip
    perf = report.performance
    y, pred, p = current["y"], current["pred"], current["p1"]
    assert perf["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    assert perf["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, p))
    assert perf["precision"].value == pytest.approx(skm.precision_score(y, pred))
    assert perf["recall"].value == pytest.approx(skm.recall_score(y, pred))
    assert perf["f1"].value == pytest.approx(skm.f1_score(y, pred))
    acc = perf["accuracy"]
    se = np.sqrt(acc.value * (1 - acc.value) / 1500)  # type: ignore[operator]
    assert acc.lower == pytest.approx(acc.value - 3 * se)  # type: ignore[operator]
    ref = binary(3000, 0)
    assert acc.threshold == pytest.approx(skm.accuracy_score(ref["y"], ref["pred"]))


def test_estimated_metrics_are_cbpes_fitted_on_the_reference() -> None:
    ref, current = binary(3000, 0), binary(1500, 1, shift=0.5)
    report = compare(ref, current.drop(columns=["y"]), target="y", prediction="pred",
                     probability="p1", multivariate=False)  # fmt: skip
    cbpe = CBPE().fit(ref["y"].to_numpy(), ref[["p1"]].assign(p0=1 - ref["p1"])[["p0", "p1"]],
                      classes=[0, 1])  # fmt: skip
    direct = cbpe.estimate(np.column_stack([1 - current["p1"], current["p1"]]), current["pred"])
    for metric, estimate in report.performance.items():
        assert estimate.calculator == "estimated_performance"
        assert estimate.value == pytest.approx(direct[metric].value)
        # the band is simulated: rows come in another order (the sample's), so the draws
        # differ and the band agrees to Monte-Carlo error only
        assert estimate.lower == pytest.approx(direct[metric].lower, abs=0.005)
        assert estimate.upper == pytest.approx(direct[metric].upper, abs=0.005)
    # covariate shift only: the realized value lies in the band
    realized = skm.accuracy_score(current["y"], current["pred"])
    acc = report.performance["accuracy"]
    assert acc.lower <= realized <= acc.upper  # type: ignore[operator]


def test_concept_drift_alerts_through_realized_performance() -> None:
    ref = binary(3000, 0)
    flipped = binary(1500, 2).assign(y=lambda f: 1 - f["y"])  # P(y | x) reversed
    report = compare(ref, flipped, target="y", prediction="pred", probability="p1",
                     multivariate=False)  # fmt: skip
    assert report.performance["accuracy"].alert
    assert report.performance["roc_auc"].alert


def regression(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    c = rng.choice(["u", "v"], n)
    y = 2 * x + (c == "v") + rng.normal(0, 0.5 + np.abs(x), n)
    return pd.DataFrame({"x": x, "c": c, "y": y})


def test_regression_realized_and_estimated() -> None:
    ref, current = regression(3000, 0), regression(1500, 1, shift=0.5)
    model = LinearRegression().fit(pd.get_dummies(ref[["x", "c"]]), ref["y"])
    ref["pred"] = model.predict(pd.get_dummies(ref[["x", "c"]]))
    current["pred"] = model.predict(pd.get_dummies(current[["x", "c"]]))
    realized = compare(ref, current, target="y", prediction="pred", multivariate=False)
    mae = realized.performance["mae"]
    assert mae.value == pytest.approx(skm.mean_absolute_error(current["y"], current["pred"]))
    assert realized.performance["rmse"].value == pytest.approx(
        skm.root_mean_squared_error(current["y"], current["pred"])
    )
    estimated = compare(ref, current.drop(columns=["y"]), target="y", prediction="pred",
                        multivariate=False)  # fmt: skip
    est = estimated.performance["mae"]
    assert est.calculator == "estimated_performance"
    assert est.details["method"] == "DLE"
    assert est.lower <= mae.value <= est.upper  # type: ignore[operator]


def test_multivariate_drift_sees_a_correlation_change() -> None:
    rng = np.random.default_rng(0)

    def correlated(n: int, rho: float) -> pd.DataFrame:
        a = rng.normal(size=n)
        b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
        return pd.DataFrame({"a": a, "b": b, "noise": rng.normal(size=n)})

    ref = correlated(3000, 0.9)
    same = compare(ref, correlated(1000, 0.9))
    broken = compare(ref, correlated(1000, -0.9))  # same marginals, reversed correlation
    assert broken.drifted_columns == ()  # no univariate test can see it
    pca = next(r for r in broken.results if r.calculator == "multivariate_drift")
    assert pca.alert
    assert not next(r for r in same.results if r.calculator == "multivariate_drift").alert
    direct = PCAReconstructionDrift(0.65, threshold_sigmas=3.0, seed=0).fit(ref)
    assert pca.details["reference_error"] == pytest.approx(direct.reference_error_)


def test_segments_are_compared_with_their_own_reference() -> None:
    rng = np.random.default_rng(0)

    def frame(n: int, b_shift: float) -> pd.DataFrame:
        seg = rng.choice(["a", "b"], n)
        x = np.where(seg == "a", rng.normal(0, 1, n), rng.normal(5 + b_shift, 1, n))
        return pd.DataFrame({"seg": seg, "x": x})

    report = compare(frame(4000, 0.0), frame(2000, 1.0), segments=["seg"])
    assert set(report.segments) == {"seg=a", "seg=b"}
    assert "x" not in report.segments["seg=a"].drifted_columns
    assert "x" in report.segments["seg=b"].drifted_columns
    assert report.segments["seg=a"].n_rows + report.segments["seg=b"].n_rows == 2000
    frame_out = report.to_frame()
    assert set(frame_out["segment"]) == {"*", "seg=a", "seg=b"}
