"""register(accepts=...): the inferred signature widened by another, nullable only where
the model can predict a null (checked on the frame the server would build)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from livemodel.demo.flights import TARGET
from livemodel.errors import InvalidInputError
from livemodel.registry.model_io import predict_outputs
from livemodel.registry.registry import Registry
from livemodel.schema.signature import infer_signature
from livemodel.schema.validation import ViolationKind, validate

COLUMNS = ["dep_delay", "temp", "humid", "carrier"]


class NanOnNull:
    """Predicts NaN for a row whose temp is null, instead of failing."""

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        temp = pd.to_numeric(frame["temp"]).to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isnan(temp), np.nan, 0.0)


@pytest.fixture(scope="module")
def frames(flights: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The parent's training frame (nulls in temp and humid, every carrier, long delays)
    and a retrain window without nulls, without HA flights and without delays over 60."""
    parent = flights[[*COLUMNS, TARGET]]
    assert parent[["temp", "humid"]].isna().any().all() and "HA" in set(parent["carrier"])
    window = parent.dropna()
    window = window[(window["carrier"] != "HA") & (window["dep_delay"] < 60)]
    return parent, window.reset_index(drop=True)


def imputes_temp_only(window: pd.DataFrame) -> Pipeline:
    encode = ColumnTransformer(
        [
            ("temp", SimpleImputer(strategy="median"), ["temp"]),
            ("raw", "passthrough", ["dep_delay", "humid"]),  # a NaN here makes sklearn raise
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["carrier"]),
        ]
    )
    model = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])
    return model.fit(window[COLUMNS], window[TARGET])


def test_nullable_where_the_model_imputes_narrow_and_recorded_where_it_cannot(
    registry: Registry, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    parent_frame, window = frames
    parent = infer_signature(parent_frame, TARGET)
    narrow = infer_signature(window, TARGET)
    assert not narrow.column("temp").nullable and not narrow.column("humid").nullable
    model = imputes_temp_only(window)

    v = registry.register("flights", model, window, target=TARGET, accepts=parent, seed=1)
    sig = v.signature
    assert sig.column("temp").nullable  # the pipeline imputes it
    assert not sig.column("humid").nullable  # LogisticRegression cannot take a NaN
    assert sig.column("carrier").categories == parent.column("carrier").categories
    assert sig.column("dep_delay").max == parent_frame["dep_delay"].max() > 60
    assert sig.task == narrow.task
    record = v.lineage["signature"]
    assert set(record["kept_narrow"]) == {"humid"}
    assert "NaN" in record["kept_narrow"]["humid"]
    assert set(record["widened"]) == {"temp", "carrier", "dep_delay"}
    assert v.tags["signature_kept_narrow"] == ["humid"]

    row = {str(k): x for k, x in window[COLUMNS].iloc[:1].to_dict("records")[0].items()}
    served = validate(sig, [{**row, "temp": None, "carrier": "HA", "dep_delay": 300}])
    assert served.n_violations == 0, served.summary()
    outputs = predict_outputs(registry.load(v.ref).model, served.frame, "binary")
    assert np.isfinite(outputs[["proba_0", "proba_1"]].to_numpy()).all()
    refused = validate(sig, [{**row, "humid": None}])
    assert [x.kind for x in refused.violations] == [ViolationKind.NULL]


def test_non_finite_outputs_for_a_null_keep_the_column_narrow(
    registry: Registry, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    parent_frame, window = frames
    v = registry.register(
        "nan", NanOnNull(), window, target=TARGET, accepts=infer_signature(parent_frame, TARGET)
    )
    assert not v.signature.column("temp").nullable
    assert v.signature.column("humid").nullable  # NanOnNull ignores humid
    assert v.lineage["signature"]["kept_narrow"] == {"temp": "non-finite outputs for a null"}


def test_without_accepts_the_signature_is_the_inferred_one(
    registry: Registry, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, window = frames
    v = registry.register("plain", imputes_temp_only(window), window, target=TARGET)
    assert v.signature == infer_signature(window, TARGET)
    assert "signature" not in v.lineage and v.tags == {}


@pytest.mark.parametrize("bad", [{"columns": []}, "flights@1", 3])
def test_accepts_must_be_a_signature(
    registry: Registry, frames: tuple[pd.DataFrame, pd.DataFrame], bad: Any
) -> None:
    _, window = frames
    with pytest.raises(InvalidInputError, match=r"^accepts must be a Signature .*, not \w+$"):
        registry.register("flights", imputes_temp_only(window), window, target=TARGET, accepts=bad)
    assert registry.models() == []
