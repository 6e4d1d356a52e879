"""The live dashboard served at ``/ui``: read-only pages over what the server already knows.

``/ui`` shows every model (live versions and aliases, traffic and error rates from the
server's own counters, latest drift, data quality, realized and estimated performance),
open alerts, rollouts in progress with their guard readings, the review queue and the
audit log; ``/ui/models/{name}`` charts one model over time. Pages are rendered by Jinja2
(autoescaped: model names, feature names and values are user data) and then refresh by
polling ``/ui/api/overview`` or ``/ui/api/models/{name}``, which answer the same data as
JSON. Tables travel as rows of pre-formatted cells (text, or ``{"t": text, "c": class,
"h": link}``) so the template and the script show them alike. The review items carry
logged features, so reading them needs the admin scope, as ``GET /v1/review`` does.
Plotly.js is served from the installed ``plotly`` package: the pages load nothing from
outside the server, and a Content-Security-Policy with a nonce per page enforces it.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from livemodel.errors import LivemodelError
from livemodel.monitor.concept import CONCEPT, SEGMENT
from livemodel.monitor.conceptstore import concept_text, concept_view, detection_rows
from livemodel.monitor.resultstore import ResultStore, StoredResult
from livemodel.rollout.machine import RolloutState
from livemodel.serving.http import json_response
from livemodel.serving.state import ServingState
from livemodel.store.rollouts import RolloutStore

__all__ = ["Dashboard", "routes"]

Handler = Callable[[Request], Awaitable[Response]]
Cell = str | dict[str, str]
Counters = dict[str, dict[tuple[str, ...], float]]
POLL_SECONDS = 5
LOOKBACK = timedelta(days=30)
CACHE_SECONDS = 10.0  # monitoring results and the review queue change slowly
HISTORY = 720  # traffic samples kept (one per refresh, at least 2 s apart)
HEADLINE = ("roc_auc", "accuracy", "f1", "mae", "rmse")
REVIEW_DAYS = 7
TEMPLATES = Path(__file__).parent / "templates"
_COUNTERS = {  # the server's metrics the dashboard reads, and the labels it keeps
    "livemodel_requests_total": ("model", "endpoint", "status"),
    "livemodel_predictions_total": ("model", "version", "arm"),
    "livemodel_fallbacks_total": ("model",),
    "livemodel_rejected_requests_total": ("model",),
    "livemodel_request_latency_seconds_sum": ("model",),
    "livemodel_request_latency_seconds_count": ("model",),
}


def routes(
    state: ServingState, handled: Callable[..., Callable[[Handler], Handler]]
) -> list[Route]:
    """The dashboard's routes; ``handled`` is the app's wrapper (auth, errors as JSON)."""
    ui = Dashboard(state)
    return [
        Route("/ui", ui.overview_page, methods=["GET"]),
        Route("/ui/models/{name}", ui.model_page, methods=["GET"]),
        Route("/ui/api/overview", handled("ui")(ui.overview_api), methods=["GET"]),
        Route("/ui/api/models/{name}", handled("ui")(ui.model_api), methods=["GET"]),
        Route("/ui/api/review", handled("ui_review", "admin")(ui.review_api), methods=["GET"]),
        Route("/ui/static/plotly.min.js", ui.plotly, methods=["GET"]),
    ]


class Dashboard:
    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.results = ResultStore(state.registry.metadata.db)
        self.rollouts = RolloutStore(state.registry.metadata.db)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # model names, features and their values are user data
            undefined=jinja2.StrictUndefined,
        )
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._traffic: deque[tuple[float, datetime, dict[str, float]]] = deque(maxlen=HISTORY)
        self._lock = threading.Lock()
        self._plotly: bytes | None = None

    # -- routes ------------------------------------------------------------------------
    async def overview_page(self, request: Request) -> Response:
        try:
            data = await asyncio.to_thread(self.overview)
        except LivemodelError as exc:  # e.g. the database is down for a moment
            return self._page("error.html", status=exc.http_status, message=exc.message)
        return self._page("overview.html", data=data, api="/ui/api/overview")

    async def model_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            data = await asyncio.to_thread(self.model, name)
        except LivemodelError as exc:  # an unknown model is a 404 page
            return self._page("error.html", status=exc.http_status, message=exc.message)
        return self._page("model.html", data=data, api=f"/ui/api/models/{name}")

    async def overview_api(self, request: Request) -> Response:
        return json_response(await asyncio.to_thread(self.overview))

    async def model_api(self, request: Request) -> Response:
        return json_response(await asyncio.to_thread(self.model, request.path_params["name"]))

    async def review_api(self, request: Request) -> Response:
        return json_response({"items": await asyncio.to_thread(self.review_items, 8)})

    async def plotly(self, request: Request) -> Response:
        if self._plotly is None:
            spec = importlib.util.find_spec("plotly")
            if spec is None or spec.origin is None:
                return Response("plotly is not installed", status_code=404)
            source = Path(spec.origin).parent / "package_data" / "plotly.min.js"
            self._plotly = await asyncio.to_thread(source.read_bytes)
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(self._plotly, media_type="text/javascript", headers=headers)

    def _page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = self.templates.get_template(template).render(nonce=nonce, status=status, **context)
        policy = (
            f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        )
        headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}  # fmt: skip
        return HTMLResponse(html, status_code=status, headers=headers)

    # -- data (blocking: called in a thread) ------------------------------------------
    def overview(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        counters = _counters(self.state.metrics.exposition())
        models = []
        for summary in self.state.registry.models():
            served = self.state.endpoints.get(summary.name)
            health = self._cached(
                ("health", summary.name), functools.partial(self._health, summary.name)
            )
            models.append({
                "name": summary.name,
                "served": None if served is None else served.handle.number,
                "aliases": _aliases(summary.aliases),
                "counters": _model_counters(counters, summary.name),
                **health,
            })  # fmt: skip
        alerts, rollouts = _open_alerts(self.state, None), self._rollout_blocks(None)
        pending = self._cached(("review", "*"), self.review_count)
        total = _model_counters(counters, None)
        tiles = {"models": len(models), "predictions": total["predictions"],
                 "error_rate": total["error_rate"], "alerts": len(alerts["rows"]),
                 "rollouts": len(rollouts), "review": pending}  # fmt: skip
        return {
            "generated": _when(now),
            "poll_seconds": POLL_SECONDS,
            "tiles": {k: str(v) for k, v in tiles.items()},
            "models": models,
            "traffic": self._sample_traffic(now, counters),
            "alerts": alerts,
            "rollouts": rollouts,
            "review": {"pending": pending},
            "audit": self._audit(None),
        }

    def model(self, name: str) -> dict[str, Any]:
        registry = self.state.registry
        aliases = registry.aliases(name)  # NotFoundError for an unknown model
        window, rows = self._monitoring(name)
        served = self.state.endpoints.get(name)
        by_version: dict[int, list[str]] = {}
        for alias, number in sorted(aliases.items()):
            by_version.setdefault(number, []).append(alias)
        versions: list[list[Cell]] = [
            [f"v{v.version}", ", ".join(by_version.get(v.version, [])), _when(v.created_at),
             v.actor, v.description or ""]
            for v in reversed(registry.versions(name))
        ]  # fmt: skip
        return {
            "name": name,
            "generated": _when(datetime.now(UTC)),
            "poll_seconds": POLL_SECONDS * 2,
            "served": "nothing" if served is None else f"v{served.handle.number}",
            "served_alias": self.state.options.for_model(name).alias,
            "aliases": _aliases(aliases),
            "window": window,
            "counters": _model_counters(_counters(self.state.metrics.exposition()), name),
            "versions": versions,
            "drift": _drift_series(rows),
            "performance": _performance_series(rows),
            "quality": _quality_series(rows),
            "concept": self._concept(name),
            "alerts": _open_alerts(self.state, name),
            "rollouts": self._rollout_blocks(name),
            "audit": self._audit(name),
        }

    def review_items(self, limit: int) -> list[dict[str, Any]]:
        """Unlabelled low-confidence predictions of the last days, newest first."""
        items: list[dict[str, Any]] = []
        for name, table in self._review_tables(None):
            for r in table.to_pylist():
                if "low_confidence" in (r.get("flags") or []) and r.get("label") is None:
                    features = {k[2:]: v for k, v in r.items() if k.startswith("f.")}
                    items.append({"model": name, "prediction_id": r["prediction_id"],
                                  "time": _when(r["time"]), "version": r["version"],
                                  "label": r.get("o.label"), "features": features})  # fmt: skip
        items.sort(key=lambda i: str(i["time"]), reverse=True)
        return items[:limit]

    def review_count(self) -> int:
        return sum(
            1
            for _, table in self._review_tables(["flags"])
            for flags, label in zip(
                table.column("flags").to_pylist(), table.column("label").to_pylist(), strict=True
            )
            if "low_confidence" in (flags or []) and label is None
        )

    def _review_tables(self, columns: list[str] | None) -> Iterable[tuple[str, Any]]:
        since = datetime.now(UTC) - timedelta(days=REVIEW_DAYS)
        for name in sorted(self.state.endpoints):
            try:
                yield (
                    name,
                    self.state.reader.window(name, start=since, columns=columns, with_labels=True),
                )
            except LivemodelError:
                continue

    def _monitoring(self, name: str) -> tuple[str | None, list[StoredResult]]:
        """Results of the served version, of the window spec computed last (runs with other
        specs are left out)."""
        since = datetime.now(UTC) - LOOKBACK
        rows = self.results.query(name, since=since, segment="*", version=self._served(name))
        latest = max(rows, key=lambda r: r.computed_at, default=None)
        window = None if latest is None else latest.window
        return window, [r for r in rows if r.window == window]

    def _served(self, name: str) -> int | None:
        """The version served under the model's alias (None: no version has it)."""
        endpoint = self.state.endpoints.get(name)
        if endpoint is not None:
            return endpoint.handle.number
        alias = self.state.options.for_model(name).alias
        return self.state.registry.aliases(name).get(alias)

    def _health(self, name: str) -> dict[str, Any]:
        """Latest drift, quality and performance of a model, and its headline over time."""
        _, rows = self._monitoring(name)
        last = max((r.start for r in rows), default=None)
        latest = [r for r in rows if r.start == last]
        drift = [r for r in latest if r.calculator == "data_drift" and r.metric == "drift"]
        drifted = [r.column or "?" for r in drift if r.alert]
        quality = [r for r in latest if r.calculator == "data_quality" and r.alert]
        perf = [r for r in latest if r.calculator.endswith("_performance") and r.alert]
        problems = [w for w, bad in (("drift", drifted), ("data quality", quality),
                                     ("performance", perf)) if bad]  # fmt: skip
        series = _performance_series(rows)
        head = series[0] if series else None
        if not rows:
            status = "unknown"
        else:
            status = "alert" if perf or quality else "warn" if drifted else "ok"
        none = "no problems" if rows else "-"
        return {
            "status": status,
            "status_text": " \u00b7 ".join(problems) or ("healthy" if rows else "no data"),
            "drift": _drift_text(drift, drifted),
            "quality": "; ".join(map(_quality_text, quality[:3])) or none,
            "realized": _latest_metric(latest, "realized_performance", head),
            "estimated": _latest_metric(latest, "estimated_performance", head),
            "concept": self._concept(name)["text"],
            "chart": {"performance": head, "drift": _drift_series(rows)},
        }

    def _concept(self, name: str) -> dict[str, Any]:
        """Concept-drift detections of the served version (else the newest with results)."""
        rows = self.results.query(name, calculator=CONCEPT, segment=SEGMENT)
        served = self.state.endpoints.get(name)
        newest = max((r.version for r in rows), default=None)
        view = concept_view(rows, served.handle.number if served is not None else newest)
        return {"text": concept_text(view), "rows": detection_rows(view)}

    def _rollout_blocks(self, name: str | None) -> list[dict[str, Any]]:
        blocks = []
        for stored in self.rollouts.running(name):
            try:
                state = RolloutState.from_dict(stored.state)
            except LivemodelError:
                continue
            blocks.append({
                "model": state.model,
                "title": f"{state.model}: v{state.candidate} against v{state.champion}",
                "step": f"{state.current.label()} (step {state.step + 1} of "
                f"{len(state.plan.steps)})",
                "progress": f"{state.step_rows} of {state.min_step_samples} candidate requests "
                f"in this step; started {_when(stored.created_at)}",
                "rows": [_reading_cells(r) for r in state.last_readings],
            })  # fmt: skip
        return blocks

    def _audit(self, name: str | None) -> list[list[Cell]]:
        rows: list[list[Cell]] = []
        for e in reversed(self.state.registry.audit(name, limit=12)):
            move = f"{e.alias}: v{e.from_version or '-'} \u2192 v{e.to_version or '-'}"
            rows.append([_at(e.at), _link(e.model), e.action, e.actor, move if e.alias else "",
                         _short(e.reason or "")])  # fmt: skip
        return rows

    def _cached(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = compute()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def _sample_traffic(self, now: datetime, counters: Counters) -> dict[str, Any]:
        """Requests per second per model between the samples taken at each refresh."""
        totals: dict[str, float] = {}
        for (model, endpoint, _), value in counters.get("livemodel_requests", {}).items():
            if endpoint in ("predict", "infer"):
                totals[model] = totals.get(model, 0.0) + value
        tick = time.monotonic()
        with self._lock:
            if not self._traffic or tick - self._traffic[-1][0] >= 2.0:
                self._traffic.append((tick, now, totals))
            samples = list(self._traffic)
        times: list[str] = []
        series: dict[str, list[float]] = {}
        for (t0, _, before), (t1, at, after) in itertools.pairwise(samples):
            times.append(at.isoformat())
            for model, value in after.items():
                rate = max(value - before.get(model, 0.0), 0.0) / max(t1 - t0, 1e-9)
                series.setdefault(model, [0.0] * (len(times) - 1)).append(round(rate, 3))
        return {"t": times, "series": series}


# -- the server's counters --------------------------------------------------------------------
def _counters(exposition: bytes) -> Counters:
    """The samples the dashboard reads: metric -> label values -> value (summed)."""
    out: Counters = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            keys = _COUNTERS.get(sample.name)
            if keys is not None:
                bucket = out.setdefault(sample.name.removesuffix("_total"), {})
                labels = tuple(sample.labels.get(k, "") for k in keys)
                bucket[labels] = bucket.get(labels, 0.0) + float(sample.value)
    return out


def _model_counters(counters: Counters, model: str | None) -> dict[str, str]:
    def total(name: str, keep: Callable[[tuple[str, ...]], bool] = lambda _: True) -> float:
        found = counters.get(name, {}).items()
        return sum(v for k, v in found if model in (None, k[0]) and keep(k))

    api = ("predict", "infer")
    requests = total("livemodel_requests", lambda k: k[1] in api)
    errors = total("livemodel_requests", lambda k: k[1] in api and k[2].startswith("5"))
    seconds = total("livemodel_request_latency_seconds_sum")
    answered = total("livemodel_request_latency_seconds_count")
    # rows the shadow candidate predicted were answered by the champion: counted once
    rows = total("livemodel_predictions", lambda k: k[2] != "shadow")
    return {
        "predictions": f"{rows:,.0f}",
        "requests": f"{requests:,.0f}",
        "errors": f"{errors:,.0f}",
        "error_rate": f"{errors / requests:.1%}" if requests else "-",
        "rejected": f"{total('livemodel_rejected_requests'):,.0f}",
        "fallbacks": f"{total('livemodel_fallbacks'):,.0f}",
        "latency_ms": f"{1000 * seconds / answered:.1f} ms" if answered else "-",
    }


# -- monitoring results as series (one point per window start) --------------------------------
def _axis(rows: Iterable[StoredResult]) -> tuple[list[str], dict[datetime, int]]:
    times = sorted({r.start for r in rows})
    return [t.isoformat() for t in times], {t: i for i, t in enumerate(times)}


def _drift_series(rows: list[StoredResult]) -> dict[str, Any]:
    """Each feature's drift verdict (1, 0, None) and Jensen-Shannon distance per window."""
    verdicts = [r for r in rows if r.calculator == "data_drift" and r.metric == "drift"]
    t, at = _axis(verdicts)
    features = sorted({r.column or "?" for r in verdicts})
    z: list[list[float | None]] = [[None] * len(t) for _ in features]
    score: dict[str, list[float | None]] = {f: [None] * len(t) for f in features}
    for r in verdicts:
        z[features.index(r.column or "?")][at[r.start]] = r.value
    for r in rows:
        if r.calculator == "data_drift" and r.metric == "jensen_shannon" and r.start in at:
            score.setdefault(r.column or "?", [None] * len(t))[at[r.start]] = r.value
    drifted = [sum(1 for row in z if row[i] == 1.0) for i in range(len(t))]
    return {"t": t, "features": features, "z": z, "drifted": drifted, "score": score}


def _performance_series(rows: list[StoredResult]) -> list[dict[str, Any]]:
    """Realized and estimated values of each metric with their bands, headline first."""
    perf = [r for r in rows if r.calculator in ("realized_performance", "estimated_performance")]
    t, at = _axis(perf)
    rank = {m: i for i, m in enumerate(HEADLINE)}
    out = []
    for metric in sorted({r.metric for r in perf}, key=lambda m: (rank.get(m, len(rank)), m)):
        series: dict[str, Any] = {"metric": metric, "t": t, "threshold": None}
        for kind, part in itertools.product(("realized", "estimated"), ("", "_lower", "_upper")):
            series[kind + part] = [None] * len(t)
        for r in (r for r in perf if r.metric == metric):
            kind, i = r.calculator.removesuffix("_performance"), at[r.start]
            series[kind][i], series[f"{kind}_lower"][i] = r.value, r.lower
            series[f"{kind}_upper"][i] = r.upper
            series["threshold"] = r.threshold if r.threshold is not None else series["threshold"]
        out.append(series)
    return out


def _quality_series(rows: list[StoredResult]) -> dict[str, Any]:
    """Data-quality rates per window, for the (problem, column) pairs ever above zero."""
    quality = [r for r in rows if r.calculator == "data_quality"]
    t, at = _axis(quality)
    series: dict[str, list[float | None]] = {}
    for key in sorted({_quality_key(r) for r in quality if r.value}):
        series[key] = [None] * len(t)
    for r in quality:
        if _quality_key(r) in series:
            series[_quality_key(r)][at[r.start]] = r.value
    return {"t": t, "series": series}


def _drift_text(verdicts: list[StoredResult], drifted: list[str]) -> str:
    if not verdicts:
        return "-"
    if not drifted:
        return f"no drift in {len(verdicts)} features"
    return f"{len(drifted)} of {len(verdicts)} features drifted: {', '.join(drifted)}"


def _quality_key(r: StoredResult) -> str:
    return f"{r.metric.removesuffix('_rate').replace('_', ' ')}: {r.column or 'label'}"


def _quality_text(r: StoredResult) -> str:
    rate = "-" if r.value is None else f"{r.value:.1%}"
    problem, _, column = _quality_key(r).partition(": ")
    return f"{problem} {rate} in {column}"


def _latest_metric(latest: list[StoredResult], calculator: str, head: Any) -> str:
    metric = None if head is None else head["metric"]
    found = next((r for r in latest if r.calculator == calculator and r.metric == metric), None)
    if found is None:
        return "-"
    if found.value is None:
        return f"{metric} undefined ({found.reason or 'no value'})"
    band = "" if found.lower is None or found.upper is None else (
        f" [{found.lower:.3f}, {found.upper:.3f}]"
    )  # fmt: skip
    return f"{metric} {found.value:.3f}{band} (n={found.n:,})"


# -- alerts (an optional module), rollouts -----------------------------------------------------
def _open_alerts(state: ServingState, model: str | None) -> dict[str, Any]:
    """Open alerts when the alerts module and its table are there; else none."""
    try:
        from livemodel.alerts.store import AlertStore

        found = AlertStore(state.registry.metadata.db).open(model)
    except Exception:  # noqa: BLE001 - no alerts module or table yet: the page still shows
        return {"available": False, "rows": []}
    rows: list[list[Cell]] = [
        [{"t": a.severity, "c": f"sev-{a.severity}"}, _link(a.model), a.rule,
         _short(a.message), _at(a.at)]
        for a in found[:20]
    ]  # fmt: skip
    return {"available": True, "rows": rows}


def _reading_cells(reading: Mapping[str, Any]) -> list[Cell]:
    verdict = str(reading.get("verdict", "?"))
    low, high = [*(reading.get("ci") or []), None, None][:2]
    interval = "-" if low is None or high is None else f"[{_num(low)}, {_num(high)}]"
    n = f"{reading.get('n_candidate', 0)} / {reading.get('n_champion', 0)}"
    reason = _short(str(reading.get("reason", "")))
    return [str(reading.get("guard", "?")), {"t": verdict, "c": f"verdict-{verdict}"},
            _num(reading.get("effect")), interval, n, reason]  # fmt: skip


# -- formatting -------------------------------------------------------------------------------
def _aliases(aliases: Mapping[str, int]) -> str:
    return " \u00b7 ".join(f"{a} v{v}" for a, v in sorted(aliases.items())) or "no alias"


def _when(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M:%S UTC")


def _at(value: datetime) -> Cell:
    """A time in a table (the year and UTC are in the column's heading)."""
    return {"t": _when(value)[5:19], "c": "nowrap"}


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _link(model: str) -> dict[str, str]:
    return {"t": model, "h": f"/ui/models/{model}"}
