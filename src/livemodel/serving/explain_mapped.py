"""Explaining a class-mapped model through the estimator inside it.

A :class:`~livemodel.registry.classmap.ClassMapped` model answers in the target's values;
SHAP's tree and linear explainers know the estimator inside it, not the wrapper. So the
explainer is built for the estimator (with its own classes), then its outputs are put in
the order of the mapped classes, which is the order the served probabilities have.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.registry.classmap import ClassMapped
from livemodel.serving.handles import ModelHandle

if TYPE_CHECKING:
    from livemodel.serving.explain import Explainer

__all__ = ["mapped", "unwrapped"]

FloatArray = npt.NDArray[np.float64]
E = TypeVar("E", bound="Explainer")


def unwrapped(handle: ModelHandle) -> ModelHandle:
    """The handle of the estimator inside a class-mapped model (its own classes), else as is."""
    model = handle.model
    if not isinstance(model, ClassMapped) or handle.classes is None:
        return handle
    classes = tuple(np.asarray(model.estimator.classes_, dtype=object).tolist())
    return replace(handle, model=model.estimator, classes=classes)


def mapped(made: E, model: Any) -> E:
    """An explainer of the estimator inside ``model`` (a :class:`ClassMapped`) with its
    outputs in the order of the mapped classes: mapped column ``p`` is the estimator's
    column ``column_order_[p]``; a binary log-odds output (of the estimator's class 1) is
    negated when that class comes first once mapped."""
    if not isinstance(model, ClassMapped):
        return made
    order = np.asarray(model.column_order_, dtype=np.intp)
    if made.base_values.size == order.size:

        def contributions(frame: pd.DataFrame) -> FloatArray:
            return made.contributions(frame)[:, :, order]

        def outputs(frame: pd.DataFrame) -> FloatArray:
            return made.outputs(frame)[:, order]

        return replace(
            made, base_values=made.base_values[order], contributions=contributions, outputs=outputs
        )
    if made.base_values.size != 1 or order.size != 2 or order[1] == 1:
        return made

    def negated_contributions(frame: pd.DataFrame) -> FloatArray:
        return -made.contributions(frame)

    def negated_outputs(frame: pd.DataFrame) -> FloatArray:
        return -made.outputs(frame)

    return replace(
        made,
        base_values=-made.base_values,
        contributions=negated_contributions,
        outputs=negated_outputs,
    )
