"""Turning an estimator into artifact bytes and back, and asking it for outputs.

Format (``cloudpickle``): the estimator pickled with cloudpickle, which stores classes and
functions by reference to their importable module, like pickle, except those of modules
registered to be pickled by value (a ``--model file.py:attr`` file, see
:func:`livemodel.cli.inputs.load_model_object`) and of ``__main__`` (a script or notebook):
their definitions travel in the artifact, so the server needs neither the file nor the
notebook. Artifacts of the earlier ``joblib-pickle`` format load the same way. The bytes
are only unpickled after the artifact store has verified their SHA-256 against the
registry, because unpickling runs code: a tampered file must never get that far.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import cloudpickle
import joblib
import numpy as np
import pandas as pd

from livemodel.errors import IntegrityError, ModelError
from livemodel.registry.decision import decide

FORMAT = "cloudpickle"


def check_api(model: object) -> None:
    """Refuse objects without the estimator API (a callable ``predict``)."""
    if not callable(getattr(model, "predict", None)):
        raise ModelError(
            f"{type(model).__name__} has no predict() method: register a fitted estimator "
            "with the scikit-learn API (a Pipeline, LightGBM or XGBoost model, ...)"
        )


def check_model(model: object) -> None:
    """Refuse objects that cannot serve predictions, or estimators that were never fitted."""
    check_api(model)
    if callable(getattr(model, "fit", None)):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError as exc:
            raise ModelError(
                f"{type(model).__name__} is not fitted: fit it before registering"
            ) from exc
        except TypeError:
            pass  # not a scikit-learn estimator; the smoke prediction will tell


def dump_model(model: object) -> bytes:
    try:
        data: bytes = cloudpickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
        raise ModelError(f"{type(model).__name__} cannot be serialized: {first_line(exc)}") from exc
    return data


def load_model(data: bytes) -> Any:
    """Unpickle verified bytes (either format: joblib reads plain pickle streams too)."""
    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise IntegrityError(f"the model artifact cannot be deserialized: {exc}") from exc


def predict_outputs(model: Any, features: pd.DataFrame, task: str | None) -> pd.DataFrame:
    """Model outputs as columns: ``prediction`` (the model's own ``predict``) and, for
    classifiers with ``predict_proba``, ``proba_<class>``."""
    try:
        with_proba = task in ("binary", "multiclass") and callable(
            getattr(model, "predict_proba", None)
        )
        prediction, proba = decide(model, features, proba=with_proba)
        out = pd.DataFrame({"prediction": prediction.ravel()}, index=features.index)
        if proba is not None:
            proba = np.asarray(proba, dtype="float64")
            classes = list(getattr(model, "classes_", range(proba.shape[1])))
            for i, cls in enumerate(classes):
                out[f"proba_{cls}"] = proba[:, i]
    except Exception as exc:
        raise ModelError(
            f"{type(model).__name__} failed to predict: {type(exc).__name__}: {first_line(exc)}"
        ) from exc
    if len(out) != len(features):
        raise ModelError(
            f"{type(model).__name__} returned {len(out)} predictions for {len(features)} rows"
        )
    return out


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text (its type's name when it has none)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
