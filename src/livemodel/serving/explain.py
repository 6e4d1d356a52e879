"""Per-row SHAP explanations of a served model: ``POST /v1/models/{name}/explain``.

The explainer follows the model, and is built once per served version (then cached):

* ``TreeExplainer`` for tree ensembles (scikit-learn forests and boosting, LightGBM), and
  ``LinearExplainer`` for linear models (background: the version's reference sample). When
  the model is a scikit-learn ``Pipeline``, the last step is explained on the output of the
  steps before it, and the columns those make (one-hot ones, say) are summed back into the
  raw feature they came from: a sum of contributions is still a contribution, so the
  explanation stays additive.
* a sampled ``KernelExplainer`` on the raw features otherwise (background: a k-means
  summary of the reference sample when it is all numeric, else a small sample of it), with
  fewer rows per request since it calls the model thousands of times per row.

Every explanation satisfies ``base_value + sum(contributions) == output`` where ``output``
is the model's own output in the space named by ``output``: ``probability`` (forests,
Kernel), ``log_odds`` of the positive class (boosting, logistic regression),
``raw_margin`` (multiclass boosting or linear: softmax inputs) or ``value`` (regression).
A tree or linear explainer whose output cannot be matched to the model's own output on
reference rows is not used: the Kernel explainer, additive by construction, is.

A classifier's row is explained for the label the model served for it (its own ``predict``,
as ``/predict`` answers; not the class of highest probability), or for the ``class`` the
request names; ``class_source`` (``served`` or ``request``) says which. A class-mapped model
is explained through the estimator inside it (:mod:`livemodel.serving.explain_mapped`). A
classifier without ``predict_proba`` has no output to explain: 422, not supported.

SHAP is optional (``pip install 'livemodel[explain]'``); without it the endpoint answers 501.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from livemodel.errors import InvalidInputError, LivemodelError, ModelError, ValidationError
from livemodel.registry.classmap import class_key
from livemodel.registry.decision import decide
from livemodel.schema.validation import validate
from livemodel.serving.engine import ModelEndpoint
from livemodel.serving.explain_mapped import mapped, unwrapped
from livemodel.serving.failures import Cause, ModelFailedError, report
from livemodel.serving.handles import ModelHandle
from livemodel.serving.http import PayloadTooLargeError, json_response, read_json, records_from
from livemodel.serving.state import ServingState

__all__ = [
    "ExplainUnsupportedError",
    "ExplainerCache",
    "Explainer",
    "ShapUnavailableError",
    "build_explainer",
    "route",
]

FloatArray = npt.NDArray[np.float64]
Handler = Callable[[Request], Awaitable[Response]]
MAX_ROWS = 200  # tree and linear explainers: cheap per row
KERNEL_MAX_ROWS = 10  # Kernel calls the model (2 * features + 128) * background rows per row
BACKGROUND_ROWS = 200
KERNEL_BACKGROUND = 20
CACHE_SIZE = 8
_CHECK_ROWS = 20
_TOLERANCE = 1e-6
SPACES = {  # the output space an explanation adds up to
    "probability": "probability of the explained class",
    "log_odds": "log-odds of the explained class (before the sigmoid)",
    "raw_margin": "raw margin of the explained class (before the softmax)",
    "value": "the predicted value",
}


class ExplainUnsupportedError(InvalidInputError):
    """The model cannot be explained here (a classifier without ``predict_proba``)."""


class ShapUnavailableError(LivemodelError):
    """SHAP is not installed: explanations are an optional extra."""

    http_status = 501
    public = True  # its message is written for clients (see serving.http.public_message)


@dataclass(frozen=True)
class Explainer:
    """Explains rows of one model version. ``contributions(frame)`` is (rows, features,
    outputs) per raw feature; ``outputs(frame)`` the model's own (rows, outputs)."""

    method: str
    space: str  # probability | log_odds | raw_margin | value
    features: tuple[str, ...]
    base_values: FloatArray  # (outputs,)
    contributions: Callable[[pd.DataFrame], FloatArray]
    outputs: Callable[[pd.DataFrame], FloatArray]
    max_rows: int


def import_shap() -> Any:
    with warnings.catch_warnings():
        # shap's import touches matplotlib colormap APIs that warn about future changes.
        warnings.filterwarnings(
            "ignore", message=r"The set_\w+ function will be deprecated",
            category=PendingDeprecationWarning,
        )  # fmt: skip
        try:
            import shap  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ShapUnavailableError(
                "explanations need SHAP, which is not installed on this server: "
                "pip install 'livemodel[explain]'"
            ) from exc
    return shap


def build_explainer(shap: Any, handle: ModelHandle, background: pd.DataFrame) -> Explainer:
    """The first explainer (tree, linear, Kernel) whose output matches the model's own.

    A class-mapped model (:class:`ClassMapped`) is explained through the estimator inside
    it, whose outputs are then put in the order of the mapped classes."""
    names = list(handle.version.signature.names)
    if background.empty:
        raise ModelError("the reference sample is empty: nothing to explain against")
    # The same types a request's rows get, so the model and Kernel's synthetic rows agree.
    background = validate(handle.version.signature, background[names]).frame
    background = background.reset_index(drop=True)
    check = background.iloc[:_CHECK_ROWS]
    inner = unwrapped(handle)
    pre, final = _split(inner.model)
    try:
        groups = _groups(pre, final, names, _transform(pre, final, check).shape[1])
    except (AttributeError, ValueError, TypeError, KeyError, IndexError):
        groups = None
    if groups is not None:
        parts = _Parts(inner, pre, final, groups)
        for maker in (_tree, _linear):
            try:
                made = maker(shap, parts, background)
                if made is not None and _additive(made, check):
                    return mapped(made, handle.model)
            except Exception:  # noqa: BLE001 - an explainer that fails is just not used
                continue
    return _kernel(shap, handle, names, background)


@dataclass(frozen=True)
class _Parts:
    """A model cut for explaining: preprocessing, final estimator, column ownership."""

    handle: ModelHandle
    pre: Any
    final: Any
    groups: FloatArray


def _tree(shap: Any, parts: _Parts, bg: pd.DataFrame) -> Explainer | None:
    module = type(parts.final).__module__
    if not module.startswith(("sklearn.ensemble", "sklearn.tree", "lightgbm", "xgboost")):
        return None
    return _in_model_space("TreeExplainer", shap.TreeExplainer(parts.final), parts)


def _linear(shap: Any, parts: _Parts, bg: pd.DataFrame) -> Explainer | None:
    if not (hasattr(parts.final, "coef_") and hasattr(parts.final, "intercept_")):
        return None
    masker = _transform(parts.pre, parts.final, bg.iloc[:BACKGROUND_ROWS])
    return _in_model_space("LinearExplainer", shap.LinearExplainer(parts.final, masker), parts)


def _in_model_space(method: str, explainer: Any, parts: _Parts) -> Explainer:
    """Pick the output space the explainer's values add up to, from the model's kind."""
    handle, pre, final, groups = parts.handle, parts.pre, parts.final, parts.groups
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    n_out = base.size

    def contributions(frame: pd.DataFrame) -> FloatArray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"LightGBM binary classifier with")
            values = _as_3d(explainer.shap_values(_transform(pre, final, frame)))
        return np.asarray(np.einsum("rcs,fc->rfs", values, groups), dtype=np.float64)

    outputs: Callable[[pd.DataFrame], FloatArray]
    if not handle.is_classifier:
        space = "value"

        def outputs(frame: pd.DataFrame) -> FloatArray:
            return np.asarray(handle.model.predict(frame), dtype=np.float64).reshape(len(frame), 1)

    elif n_out == len(handle.classes or ()) and method == "TreeExplainer" and _is_forest(final):
        space = "probability"

        def outputs(frame: pd.DataFrame) -> FloatArray:
            return np.asarray(handle.model.predict_proba(frame), dtype=np.float64)

    else:
        space = "log_odds" if n_out == 1 else "raw_margin"
        margin = _margin(final)

        def outputs(frame: pd.DataFrame) -> FloatArray:
            raw = np.asarray(margin(_transform(pre, final, frame)), dtype=np.float64)
            return raw.reshape(len(frame), -1)

    return Explainer(
        method, space, tuple(handle.version.signature.names), base, contributions, outputs, MAX_ROWS
    )


def _kernel(shap: Any, handle: ModelHandle, names: list[str], bg: pd.DataFrame) -> Explainer:
    dtypes = bg.dtypes.to_dict()
    model = handle.model
    classifier = handle.is_classifier

    def outputs(frame: pd.DataFrame) -> FloatArray:
        raw = model.predict_proba(frame) if classifier else model.predict(frame)
        return np.asarray(raw, dtype=np.float64).reshape(len(frame), -1)

    def f(rows: Any) -> FloatArray:
        return outputs(pd.DataFrame(np.asarray(rows, dtype=object), columns=names).astype(dtypes))

    floats = bg.select_dtypes(include=[np.floating])
    if floats.shape[1] == len(names) and not floats.isna().to_numpy().any():
        # k-means centroids are not values an integer or categorical column can hold.
        summary = shap.kmeans(floats.to_numpy(dtype=np.float64), min(10, len(bg)))
    else:
        summary = shap.sample(bg, min(KERNEL_BACKGROUND, len(bg)), random_state=0)
    explainer = shap.KernelExplainer(f, summary, keep_index=False)
    nsamples = min(2 ** len(names) - 2, 2 * len(names) + 128) if len(names) > 1 else "auto"

    def contributions(frame: pd.DataFrame) -> FloatArray:
        rows = frame.astype(object).to_numpy()
        return _as_3d(explainer.shap_values(rows, nsamples=nsamples, silent=True, l1_reg=False))

    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    space = "probability" if classifier else "value"
    return Explainer(
        "KernelExplainer", space, tuple(names), base, contributions, outputs, KERNEL_MAX_ROWS
    )


def _additive(explainer: Explainer, frame: pd.DataFrame) -> bool:
    """Do base + contributions give the model's own output on these rows?"""
    values = explainer.contributions(frame)
    out = explainer.outputs(frame)
    if values.shape[2] != out.shape[1] or explainer.base_values.size != out.shape[1]:
        return False
    made = explainer.base_values[None, :] + values.sum(axis=1)
    return bool(np.allclose(made, out, rtol=_TOLERANCE, atol=_TOLERANCE))


def _is_forest(final: Any) -> bool:
    """Trees whose raw output is a probability (averaged leaf class frequencies)."""
    return type(final).__module__.startswith(("sklearn.ensemble._forest", "sklearn.tree"))


def _margin(final: Any) -> Callable[[Any], Any]:
    if type(final).__module__.startswith("lightgbm"):
        return lambda x: final.predict(x, raw_score=True)
    if callable(getattr(final, "decision_function", None)):
        return final.decision_function  # type: ignore[no-any-return]
    return final.predict  # type: ignore[no-any-return]


def _split(model: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator) of a scikit-learn Pipeline or a model."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and len(steps) > 1:
        return model[:-1], steps[-1][1]
    return None, model


def _transform(pre: Any, final: Any, frame: pd.DataFrame) -> Any:
    """What the final estimator is given: floats, as a frame when it was fitted on one (so
    it sees the feature names it knows), else as an array."""
    if pre is None:
        fitted = getattr(final, "feature_names_in_", None)
        if fitted is None:
            return frame.to_numpy(dtype=np.float64)
        return frame[[str(c) for c in fitted]].astype(np.float64)
    out = pre.transform(frame)
    if hasattr(out, "toarray"):
        out = out.toarray()
    if isinstance(out, pd.DataFrame):
        return out.astype(np.float64)
    return np.asarray(out, dtype=np.float64)


def _groups(pre: Any, final: Any, names: list[str], width: int) -> FloatArray | None:
    """A (features, columns) 0/1 matrix: the raw feature each explained column comes from,
    or None when some column has no single owner (then the Kernel explainer is used)."""
    if pre is None:
        fitted = getattr(final, "feature_names_in_", None)
        used = names if fitted is None else [str(c) for c in fitted]
        if len(used) != width or not set(used) <= set(names):
            return None
        owners = used
    else:
        found = _owners(pre, names, width)
        if found is None:
            return None
        owners = found
    matrix = np.zeros((len(names), width))
    for column, owner in enumerate(owners):
        matrix[names.index(owner), column] = 1.0
    return matrix


def _owners(pre: Any, names: list[str], width: int) -> list[str] | None:
    outputs = [str(n) for n in pre.get_feature_names_out()]
    if len(outputs) != width:
        return None
    ct = pre if hasattr(pre, "transformers_") else None
    if ct is None and hasattr(pre, "steps") and hasattr(pre.steps[0][1], "transformers_"):
        ct = pre.steps[0][1]
    # Which input columns fed each output column, as far as a ColumnTransformer says.
    candidates: list[list[str]] = [names] * width
    if ct is not None and len(ct.get_feature_names_out()) == width:
        inputs = np.asarray(ct.feature_names_in_, dtype=object)
        for tname, _, cols in ct.transformers_:
            block = ct.output_indices_[tname]
            picked = _input_columns(cols, inputs)
            for j in range(block.start, block.stop):
                candidates[j] = picked
                outputs[j] = outputs[j].removeprefix(f"{tname}__")
    owners: list[str] = []
    for out, among in zip(outputs, candidates, strict=True):
        if len(among) == 1:
            owners.append(among[0])
            continue
        longest = sorted(among, key=len, reverse=True)
        owner = next((f for f in longest if out == f or out.startswith(f"{f}_")), None)
        if owner is None:
            return None
        owners.append(owner)
    return owners if set(owners) <= set(names) else None


def _input_columns(cols: Any, inputs: npt.NDArray[np.object_]) -> list[str]:
    """A ColumnTransformer's column spec (names, indices, mask or slice) as names."""
    if isinstance(cols, str):
        return [cols]
    if not isinstance(cols, slice):
        listed = list(np.atleast_1d(np.asarray(cols, dtype=object)))
        if listed and all(isinstance(c, str) for c in listed):
            return [str(c) for c in listed]
    return [str(c) for c in np.atleast_1d(inputs[cols])]


def _as_3d(values: Any) -> FloatArray:
    """SHAP values as (rows, columns, outputs) whatever shape the explainer returned."""
    if isinstance(values, list):
        return np.stack([np.asarray(v, dtype=np.float64) for v in values], axis=2)
    arr = np.asarray(values, dtype=np.float64)
    return arr[:, :, None] if arr.ndim == 2 else arr


# -- serving --------------------------------------------------------------------------------
class ExplainerCache:
    """Explainers per (model, version): built once, the ``size`` last used kept."""

    def __init__(self, state: ServingState, size: int = CACHE_SIZE) -> None:
        self.state = state
        self.size = size
        self._items: OrderedDict[tuple[str, int], Explainer] = OrderedDict()
        self._lock = threading.Lock()
        self._building = threading.Lock()  # one build at a time: they are CPU-bound

    def get(self, handle: ModelHandle) -> Explainer:
        """The explainer of ``handle``'s version (blocking: call it in a thread)."""
        key = (handle.name, handle.number)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        shap = import_shap()
        with self._building:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            sample = self.state.registry.reference(f"{handle.name}@{handle.number}").sample
            made = build_explainer(shap, handle, sample)
            with self._lock:
                self._items[key] = made
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return made


def route(state: ServingState, wrap: Callable[[Handler], Handler]) -> Route:
    """``POST /v1/models/{name}/explain``, wrapped like every API route (auth, errors)."""
    cache = ExplainerCache(state)
    one_at_a_time = asyncio.Semaphore(1)  # explaining is CPU-bound; keep cores for predict

    async def explain(request: Request) -> Response:
        endpoint = state.endpoint(request.path_params["name"])
        body = await read_json(request, state.options.max_body_bytes)
        records = records_from(body, state.options.max_rows)
        wanted = body.get("class") if isinstance(body, dict) else None
        handle = endpoint.handle  # one version for the whole request
        if handle.decides_labels and handle.classes is None:
            raise ExplainUnsupportedError(
                f"explanations are not supported for model {endpoint.name!r}: it is a "
                "classifier without predict_proba, so it has no output to explain"
            )
        async with one_at_a_time:
            answer = await asyncio.to_thread(_answer, cache, handle, endpoint, records, wanted)
        return json_response({"model": endpoint.name, "version": handle.number, **answer})

    return Route("/v1/models/{name}/explain", wrap(explain), methods=["POST"])


def _answer(
    cache: ExplainerCache,
    handle: ModelHandle,
    endpoint: ModelEndpoint,
    records: list[dict[str, Any]],
    wanted: Any,
) -> dict[str, Any]:
    ids = [uuid.uuid4().hex for _ in records]
    try:
        explainer = cache.get(handle)
    except ModelError as exc:
        raise _failed(endpoint, handle, ids, exc) from exc
    except LivemodelError:
        raise  # no SHAP (501), a store error (503): not the model's
    except Exception as exc:  # SHAP building on the model may raise anything
        raise _failed(endpoint, handle, ids, exc) from exc
    if len(records) > explainer.max_rows:
        raise PayloadTooLargeError(
            f"{len(records)} records is over the limit of {explainer.max_rows} "
            f"rows per request for the {explainer.method}"
        )
    options = endpoint.options
    frame = _admitted(handle, records, options.validation, options.reject_kinds)
    try:
        return explain_rows(explainer, handle, frame, wanted)
    except InvalidInputError:
        raise
    except Exception as exc:  # a user's model may raise anything
        raise _failed(endpoint, handle, ids, exc) from exc


def _failed(
    endpoint: ModelEndpoint, handle: ModelHandle, ids: list[str], exc: Exception
) -> ModelFailedError:
    """The model (or its explainer) failed on a client's records: logged and counted with
    the model's own error, answered 422 with the records' ids and no exception text."""
    cause = exc.__cause__ if isinstance(exc, ModelError) and exc.__cause__ else exc
    report(
        endpoint.metrics, model=handle.name, version=handle.number, arm="explain",
        reason="model_error", cause=Cause.of(cause), ids=ids, outcome="answered 422",
    )  # fmt: skip
    message = f"model {handle.name!r} failed (model_error) explaining these records"
    return ModelFailedError(message, ids, "model_error")


def _admitted(
    handle: ModelHandle, records: list[dict[str, Any]], mode: str, kinds: tuple[Any, ...]
) -> pd.DataFrame:
    """The validated frame, or the same refusal ``predict`` gives for these records."""
    result = validate(handle.version.signature, records)
    if mode == "reject" and not result.valid.all():
        reject = {str(k) for k in kinds}
        bad: list[dict[str, str]] = []
        for row in np.flatnonzero(~result.valid)[:100]:
            for flag in result.row_flags(int(row)):
                kind, _, column = flag.partition(":")
                if kind in reject and len(bad) < 20:
                    bad.append({"field": column, "problem": kind, "row": str(row)})
        if bad:
            shown = "; ".join(f"{b['field']}: {b['problem'].replace('_', ' ')}" for b in bad[:5])
            error = ValidationError(f"problem(s) with the input: {shown}")
            error.details = bad  # type: ignore[attr-defined]
            raise error
    return result.frame


def explain_rows(
    explainer: Explainer, handle: ModelHandle, frame: pd.DataFrame, wanted: Any = None
) -> dict[str, Any]:
    """Contributions of every raw feature per row, toward one class per row: the one
    asked for (``wanted``), else the label the model served for the row (its ``predict``)."""
    try:
        values = explainer.contributions(frame)  # (rows, features, outputs)
        outputs = explainer.outputs(frame)  # (rows, outputs)
    except Exception as exc:
        raise ModelError(
            f"the model or its explainer failed on these rows: {type(exc).__name__}: {exc}"[:300]
        ) from exc
    base = explainer.base_values
    if values.shape[0] != len(frame) or values.shape[2] != outputs.shape[1] != base.size:
        raise ModelError("the explainer's output does not match the model's")
    if not (np.isfinite(values).all() and np.isfinite(outputs).all()):
        raise ModelError("the model or its explainer returned non-finite numbers")
    classes = handle.classes
    column, sign, explained = _targets(explainer, handle, frame, wanted, outputs.shape[1])
    rows = np.arange(len(frame))
    contrib = values[rows, :, column] * sign[:, None]
    base_rows = base[column] * sign
    out_rows = outputs[rows, column] * sign
    error = float(np.abs(base_rows + contrib.sum(axis=1) - out_rows).max())
    items = [
        {
            **({"class": explained[i]} if classes is not None else {}),
            "base_value": float(base_rows[i]),
            "output": float(out_rows[i]),
            "contributions": dict(zip(explainer.features, map(float, contrib[i]), strict=True)),
        }
        for i in range(len(frame))
    ]
    return {
        "method": explainer.method,
        "output": explainer.space,
        "output_description": SPACES[explainer.space],
        "additivity_error": error,
        **({"class_source": "served" if wanted is None else "request"} if classes else {}),
        "explanations": items,
    }


def _targets(
    explainer: Explainer, handle: ModelHandle, frame: pd.DataFrame, wanted: Any, n_out: int
) -> tuple[npt.NDArray[np.intp], FloatArray, list[Any]]:
    """Per row: the output column to read, its sign, and the class it explains."""
    n = len(frame)
    classes = handle.classes
    if classes is None:
        if wanted is not None:
            raise InvalidInputError('"class" applies to classifiers only')
        return np.zeros(n, dtype=np.intp), np.ones(n), [None] * n
    if wanted is not None:
        keys = [str(c) for c in classes]
        if not isinstance(wanted, str | int | float | bool) or str(wanted) not in keys:
            shown = ", ".join(keys[:20])
            raise InvalidInputError(f'"class" must be one of the classes: {shown}')
        index = np.full(n, keys.index(str(wanted)), dtype=np.intp)
    else:  # the label served for the row: the model's own predict, as /predict answers
        served, _ = decide(handle.model, frame, proba=False)
        where = {class_key(c): i for i, c in enumerate(classes)}
        labels = np.asarray(served, dtype=object).ravel().tolist()
        if len(labels) != n or any(class_key(v) not in where for v in labels):
            raise ModelError("the model's predict answered labels that are not its classes")
        index = np.asarray([where[class_key(v)] for v in labels], dtype=np.intp)
    explained = [classes[i] for i in index]
    if n_out == len(classes):
        return index, np.ones(n), explained
    if n_out == 1 and len(classes) == 2:  # log-odds of class 1; class 0's are their negation
        return np.zeros(n, dtype=np.intp), np.where(index == 1, 1.0, -1.0), explained
    raise ModelError(f"the explainer has {n_out} outputs for {len(classes)} classes")
