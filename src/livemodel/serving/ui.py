"""The live dashboard served at ``/ui``: read-only pages over what the server already knows.

``/ui`` shows every model (live versions and aliases, traffic and error rates from the
server's own counters, latest drift, data quality, realized and estimated performance),
open alerts, rollouts in progress with their guard readings, the review queue and the
audit log; ``/ui/models/{name}`` charts one model over time. Pages are rendered by Jinja2
(autoescaped: model names, feature names and values are user data) and then refresh by
polling ``/ui/api/overview`` or ``/ui/api/models/{name}``, which answer the same data as
JSON. Tables travel as rows of pre-formatted cells so the template and the script show
them alike. Reading the review items, which carry logged features, needs the admin scope
as ``GET /v1/review`` does. Plotly.js is served from the installed ``plotly`` package, so
the pages load nothing from outside the server.
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

from livemodel.errors import LivemodelError, NotFoundError
from livemodel.monitor.resultstore import ResultStore, StoredResult
from livemodel.rollout.machine import RolloutState
from livemodel.serving.http import json_response
from livemodel.serving.state import ServingState
from livemodel.store.rollouts import RolloutStore

__all__ = ["Dashboard", "routes"]

Handler = Callable[[Request], Awaitable[Response]]
Handled = Callable[..., Callable[[Handler], Handler]]
Cell = str | dict[str, str]
POLL_SECONDS = 5
LOOKBACK = timedelta(days=30)
CACHE_SECONDS = 10.0  # monitoring results and the review queue change slowly
HISTORY = 720  # traffic samples kept (one per poll, at least 2 s apart)
HEADLINE = ("roc_auc", "accuracy", "f1", "mae", "rmse")
TEMPLATES = Path(__file__).parent / "templates"


def routes(state: ServingState, handled: Handled) -> list[Route]:
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
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._traffic: deque[tuple[float, datetime, dict[str, float]]] = deque(maxlen=HISTORY)
        self._lock = threading.Lock()
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # model names, features and their values are user data
            undefined=jinja2.StrictUndefined,
        )
        self._plotly: bytes | None = None

    # -- routes ------------------------------------------------------------------------
    async def overview_page(self, request: Request) -> Response:
        data = await asyncio.to_thread(self.overview)
        return self._page("overview.html", data=data, api="/ui/api/overview")

    async def model_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            data = await asyncio.to_thread(self.model, name)
        except NotFoundError as exc:
            return self._page("missing.html", status=404, message=exc.message)
        return self._page("model.html", data=data, api=f"/ui/api/models/{name}")

    async def overview_api(self, request: Request) -> Response:
        return json_response(await asyncio.to_thread(self.overview))

    async def model_api(self, request: Request) -> Response:
        return json_response(await asyncio.to_thread(self.model, request.path_params["name"]))

    async def review_api(self, request: Request) -> Response:
        items = await asyncio.to_thread(self._review_items, 20)
        return json_response({"items": items})

    async def plotly(self, request: Request) -> Response:
        if self._plotly is None:
            spec = importlib.util.find_spec("plotly")
            if spec is None or spec.origin is None:
                return Response("plotly is not installed", status_code=404)
            source = Path(spec.origin).parent / "package_data" / "plotly.min.js"
            self._plotly = await asyncio.to_thread(source.read_bytes)
        return Response(
            self._plotly,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    def _page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = self._templates.get_template(template).render(nonce=nonce, **context)
        policy = (
            f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        )
        headers = {
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return HTMLResponse(html, status_code=status, headers=headers)

    # -- data --------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        counters = _counters(self.state.metrics.exposition())
        history = self._sample_traffic(now, counters)
        models = []
        for summary in self.state.registry.models():
            name = summary.name
            health = self._cached(("health", name), functools.partial(self._health, name))
            served = self.state.endpoints.get(name)
            models.append(
                {
                    "name": name,
                    "served": None if served is None else served.handle.number,
                    "aliases": _aliases(summary.aliases),
                    "versions": summary.n_versions,
                    "counters": _model_counters(counters, name),
                    **health,
                }
            )
        alerts = _open_alerts(self.state, None)
        rollouts = self._rollout_blocks(None)
        pending = self._cached(("review", "*"), lambda: len(self._review_items(10_000)))
        total = _model_counters(counters, None)
        return {
            "generated": _when(now),
            "poll_seconds": POLL_SECONDS,
            "tiles": {
                "models": str(len(models)),
                "predictions": total["predictions"],
                "error_rate": total["error_rate"],
                "alerts": str(len(alerts["rows"])),
                "rollouts": str(len(rollouts)),
                "review": str(pending),
            },
            "models": models,
            "traffic": history,
            "alerts": alerts,
            "rollouts": rollouts,
            "review": {"pending": pending},
            "audit": self._audit(None),
        }

    def model(self, name: str) -> dict[str, Any]:
        registry = self.state.registry
        aliases = registry.aliases(name)  # NotFoundError for an unknown model
        versions = registry.versions(name)
        now = datetime.now(UTC)
        rows = self.results.query(name, since=now - LOOKBACK, segment="*")
        window = _latest_window(rows)
        rows = [r for r in rows if r.window == window]
        served = self.state.endpoints.get(name)
        counters = _model_counters(_counters(self.state.metrics.exposition()), name)
        by_alias = {v: a for a, v in aliases.items()}
        return {
            "name": name,
            "generated": _when(now),
            "poll_seconds": POLL_SECONDS * 2,
            "served": "nothing" if served is None else f"v{served.handle.number}",
            "aliases": _aliases(aliases),
            "window": window,
            "counters": counters,
            "versions": [
                [
                    f"v{v.version}",
                    by_alias.get(v.version, ""),
                    _when(v.created_at),
                    v.actor,
                    v.description or "",
                ]
                for v in reversed(versions)
            ],
            "drift": _drift_series(rows),
            "performance": _performance_series(rows),
            "quality": _quality_series(rows),
            "alerts": _open_alerts(self.state, name),
            "rollouts": self._rollout_blocks(name),
            "audit": self._audit(name),
        }

    def _health(self, name: str) -> dict[str, Any]:
        """Latest drift, quality and performance of a model, and its headline over time."""
        rows = self.results.query(name, since=datetime.now(UTC) - LOOKBACK, segment="*")
        window = _latest_window(rows)
        rows = [r for r in rows if r.window == window]
        if not rows:
            empty: dict[str, list[Any]] = {k: [] for k in ("t", "realized", "estimated")}
            return {
                "status": "unknown",
                "status_text": "no data",
                "drift": "-",
                "quality": "-",
                "realized": "-",
                "estimated": "-",
                "chart": {
                    **empty,
                    "metric": None,
                    "lower": [],
                    "upper": [],
                    "drifted_t": [],
                    "drifted": [],
                },
            }
        last = max(r.start for r in rows)
        latest = [r for r in rows if r.start == last]
        drift = [r for r in latest if r.calculator == "data_drift" and r.metric == "drift"]
        drifted = [r.column or "?" for r in drift if r.alert]
        quality = [r for r in latest if r.calculator == "data_quality" and r.alert]
        perf = [r for r in latest if r.calculator.endswith("_performance") and r.alert]
        problems = [
            *(["drift"] if drifted else []),
            *(["data quality"] if quality else []),
            *(["performance"] if perf else []),
        ]
        series = _performance_series(rows)
        head = series[0] if series else None
        counts = _drift_series(rows)
        return {
            "status": "alert" if perf or quality else "warn" if drifted else "ok",
            "status_text": " \u00b7 ".join(problems) if problems else "healthy",
            "drift": (
                f"{len(drifted)} of {len(drift)} features drifted: {', '.join(drifted)}"
                if drifted
                else f"no drift in {len(drift)} features"
            ),
            "quality": "; ".join(_quality_text(r) for r in quality[:3]) or "no data problems",
            "realized": _latest_metric(latest, "realized_performance", head),
            "estimated": _latest_metric(latest, "estimated_performance", head),
            "chart": {
                "t": head["t"] if head else counts["t"],
                "metric": head["metric"] if head else None,
                "realized": head["realized"] if head else [],
                "estimated": head["estimated"] if head else [],
                "lower": head["estimated_lower"] if head else [],
                "upper": head["estimated_upper"] if head else [],
                "drifted_t": counts["t"],
                "drifted": counts["drifted"],
            },
        }

    def _rollout_blocks(self, name: str | None) -> list[dict[str, Any]]:
        blocks = []
        for stored in self.rollouts.running(name):
            try:
                state = RolloutState.from_dict(stored.state)
            except LivemodelError:
                continue
            steps = state.plan.steps
            blocks.append(
                {
                    "model": state.model,
                    "title": f"{state.model}: v{state.candidate} against v{state.champion}",
                    "step": f"{state.current.label()} (step {state.step + 1} of {len(steps)})",
                    "progress": f"{state.step_rows} of {state.min_step_samples} candidate "
                    f"requests in this step; started {_when(stored.created_at)}",
                    "rows": [_reading_cells(r) for r in state.last_readings],
                }
            )
        return blocks

    def _audit(self, name: str | None) -> list[list[Cell]]:
        events = self.state.registry.audit(name, limit=12)
        rows: list[list[Cell]] = []
        for e in reversed(events):
            move = ""
            if e.alias:
                move = f"{e.alias}: v{e.from_version or '-'} \u2192 v{e.to_version or '-'}"
            rows.append(
                [_at(e.at), _link(e.model), e.action, e.actor, move, _short(e.reason or "")]
            )
        return rows

    def _review_items(self, limit: int) -> list[dict[str, Any]]:
        """Unlabelled low-confidence predictions of the last 7 days, newest first."""
        since = datetime.now(UTC) - timedelta(days=7)
        items: list[dict[str, Any]] = []
        for name in sorted(self.state.endpoints):
            try:
                table = self.state.reader.window(name, start=since, with_labels=True)
            except LivemodelError:
                continue
            for r in table.to_pylist():
                if "low_confidence" in (r.get("flags") or []) and r.get("label") is None:
                    items.append(
                        {
                            "model": name,
                            "prediction_id": r["prediction_id"],
                            "time": _when(r["time"]),
                            "version": r["version"],
                            "label": r.get("o.label"),
                            "features": {k[2:]: v for k, v in r.items() if k.startswith("f.")},
                        }
                    )
        items.sort(key=lambda i: str(i["time"]), reverse=True)
        return items[:limit]

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

    def _sample_traffic(
        self, now: datetime, counters: Mapping[str, Mapping[tuple[str, ...], float]]
    ) -> dict[str, Any]:
        """Requests per second per model between the samples taken at each poll."""
        totals: dict[str, float] = {}
        for labels, value in counters.get("livemodel_requests", {}).items():
            if labels[1] in ("predict", "infer"):
                totals[labels[0]] = totals.get(labels[0], 0.0) + value
        tick = time.monotonic()
        with self._lock:
            if not self._traffic or tick - self._traffic[-1][0] >= 2.0:
                self._traffic.append((tick, now, totals))
            samples = list(self._traffic)
        times: list[str] = []
        series: dict[str, list[float]] = {}
        for (t0, _, before), (t1, at, after) in itertools.pairwise(samples):
            times.append(at.isoformat())
            for model in after:
                rate = max(after[model] - before.get(model, 0.0), 0.0) / max(t1 - t0, 1e-9)
                series.setdefault(model, [0.0] * (len(times) - 1)).append(round(rate, 3))
        return {"t": times, "series": series}


# -- counters -------------------------------------------------------------------------------
def _counters(exposition: bytes) -> dict[str, dict[tuple[str, ...], float]]:
    """Samples of the server's Prometheus metrics: name -> label values -> value."""
    wanted = {
        "livemodel_requests_total": ("model", "endpoint", "status"),
        "livemodel_predictions_total": ("model", "version", "arm"),
        "livemodel_fallbacks_total": ("model", "reason"),
        "livemodel_rejected_requests_total": ("model",),
        "livemodel_request_latency_seconds_sum": ("model",),
        "livemodel_request_latency_seconds_count": ("model",),
    }
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            keys = wanted.get(sample.name)
            if keys is None:
                continue
            name = sample.name.removesuffix("_total")
            labels = tuple(sample.labels.get(k, "") for k in keys)
            bucket = out.setdefault(name, {})
            bucket[labels] = bucket.get(labels, 0.0) + float(sample.value)
    return out


def _model_counters(
    counters: Mapping[str, Mapping[tuple[str, ...], float]], model: str | None
) -> dict[str, str]:
    def total(name: str, where: Callable[[tuple[str, ...]], bool] = lambda _: True) -> float:
        return sum(
            v
            for k, v in counters.get(name, {}).items()
            if (model is None or k[0] == model) and where(k)
        )

    api = ("predict", "infer")
    requests = total("livemodel_requests", lambda k: k[1] in api)
    errors = total("livemodel_requests", lambda k: k[1] in api and k[2].startswith("5"))
    latency = total("livemodel_request_latency_seconds_sum")
    answered = total("livemodel_request_latency_seconds_count")
    return {
        # rows the shadow candidate predicted were answered by the champion, counted once
        "predictions": f"{total('livemodel_predictions', lambda k: k[2] != 'shadow'):,.0f}",
        "requests": f"{requests:,.0f}",
        "errors": f"{errors:,.0f}",
        "error_rate": f"{errors / requests:.1%}" if requests else "-",
        "rejected": f"{total('livemodel_rejected_requests'):,.0f}",
        "fallbacks": f"{total('livemodel_fallbacks'):,.0f}",
        "latency_ms": f"{1000 * latency / answered:.1f} ms" if answered else "-",
    }


# -- monitoring results as series -----------------------------------------------------------
def _latest_window(rows: Iterable[StoredResult]) -> str | None:
    """The window spec computed most recently (runs with other specs are left out)."""
    latest = max(rows, key=lambda r: r.computed_at, default=None)
    return None if latest is None else latest.window


def _times(rows: Iterable[StoredResult]) -> list[datetime]:
    return sorted({r.start for r in rows})


def _drift_series(rows: list[StoredResult]) -> dict[str, Any]:
    """Per window: each feature's drift verdict (1, 0 or None) and its Jensen-Shannon."""
    verdicts = [r for r in rows if r.calculator == "data_drift" and r.metric == "drift"]
    times = _times(verdicts)
    features = sorted({r.column or "?" for r in verdicts})
    at = {t: i for i, t in enumerate(times)}
    z: list[list[float | None]] = [[None] * len(times) for _ in features]
    score: dict[str, list[float | None]] = {f: [None] * len(times) for f in features}
    for r in verdicts:
        z[features.index(r.column or "?")][at[r.start]] = r.value
    for r in rows:
        if r.calculator == "data_drift" and r.metric == "jensen_shannon" and r.start in at:
            score.setdefault(r.column or "?", [None] * len(times))[at[r.start]] = r.value
    drifted = [sum(1 for row in z if row[i] == 1.0) for i in range(len(times))]
    return {
        "t": [t.isoformat() for t in times],
        "features": features,
        "z": z,
        "drifted": drifted,
        "score": score,
    }


def _performance_series(rows: list[StoredResult]) -> list[dict[str, Any]]:
    """Realized and estimated performance per metric over windows, with their bands."""
    perf = [r for r in rows if r.calculator in ("realized_performance", "estimated_performance")]
    times = _times(perf)
    at = {t: i for i, t in enumerate(times)}
    metrics = sorted(
        {r.metric for r in perf},
        key=lambda m: (m not in HEADLINE, HEADLINE.index(m) if m in HEADLINE else 0, m),
    )
    out = []
    for metric in metrics:
        series: dict[str, Any] = {"metric": metric, "t": [t.isoformat() for t in times]}
        for kind in ("realized", "estimated"):
            for part in ("", "_lower", "_upper"):
                series[kind + part] = [None] * len(times)
        threshold = None
        for r in perf:
            if r.metric != metric:
                continue
            kind = r.calculator.removesuffix("_performance")
            i = at[r.start]
            series[kind][i], series[kind + "_lower"][i], series[kind + "_upper"][i] = (
                r.value,
                r.lower,
                r.upper,
            )
            threshold = r.threshold if r.threshold is not None else threshold
        out.append({**series, "threshold": threshold})
    return out


def _quality_series(rows: list[StoredResult]) -> dict[str, Any]:
    """Data-quality rates over windows, for the columns where any is above zero."""
    quality = [r for r in rows if r.calculator == "data_quality"]
    times = _times(quality)
    at = {t: i for i, t in enumerate(times)}
    series: dict[str, list[float | None]] = {}
    for r in quality:
        if r.value:
            key = f"{r.metric.removesuffix('_rate').replace('_', ' ')}: {r.column or 'label'}"
            series.setdefault(key, [None] * len(times))
    for r in quality:
        key = f"{r.metric.removesuffix('_rate').replace('_', ' ')}: {r.column or 'label'}"
        if key in series:
            series[key][at[r.start]] = r.value
    return {"t": [t.isoformat() for t in times], "series": series}


def _latest_metric(latest: list[StoredResult], calculator: str, head: Any) -> str:
    if head is None:
        return "-"
    found = next(
        (r for r in latest if r.calculator == calculator and r.metric == head["metric"]), None
    )
    if found is None or found.value is None:
        return "-" if found is None else f"undefined ({found.reason or 'no value'})"
    band = (
        f" [{found.lower:.3f}, {found.upper:.3f}]"
        if found.lower is not None and found.upper is not None
        else ""
    )
    return f"{head['metric']} {found.value:.3f}{band} (n={found.n:,})"


def _quality_text(r: StoredResult) -> str:
    rate = "-" if r.value is None else f"{r.value:.1%}"
    return f"{r.metric.removesuffix('_rate').replace('_', ' ')} {rate} in {r.column or 'label'}"


# -- alerts (optional module), rollouts ------------------------------------------------------
def _open_alerts(state: ServingState, model: str | None) -> dict[str, Any]:
    """Open alerts if the alerts module and its table are there; else an empty list."""
    try:
        from livemodel.alerts.store import AlertStore

        found = AlertStore(state.registry.metadata.db).open(model)
    except (ImportError, LivemodelError, AttributeError):
        return {"available": False, "rows": []}
    except Exception:  # noqa: BLE001 - e.g. a database without the alerts table yet
        return {"available": False, "rows": []}
    rows: list[list[Cell]] = [
        [
            {"t": a.severity, "c": f"sev-{a.severity}"},
            _link(a.model),
            a.rule,
            _short(a.message),
            _at(a.at),
        ]
        for a in found[:20]
    ]
    return {"available": True, "rows": rows}


def _reading_cells(reading: Mapping[str, Any]) -> list[Cell]:
    verdict = str(reading.get("verdict", "?"))
    ci = reading.get("ci") or [None, None]
    interval = "-" if None in ci else f"[{_num(ci[0])}, {_num(ci[1])}]"
    n = f"{reading.get('n_candidate', 0)} / {reading.get('n_champion', 0)}"
    return [
        str(reading.get("guard", "?")),
        {"t": verdict, "c": f"verdict-{verdict}"},
        _num(reading.get("effect")),
        interval,
        n,
        _short(str(reading.get("reason", ""))),
    ]


# -- formatting and rendering ---------------------------------------------------------------
def _aliases(aliases: Mapping[str, int]) -> str:
    return " \u00b7 ".join(f"{a} v{v}" for a, v in sorted(aliases.items())) or "no alias"


def _when(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M:%S UTC")


def _at(value: datetime) -> str:
    """A time in a table (the year and UTC are in the column's heading)."""
    return _when(value)[5:19]


def _num(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.4g}"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _link(model: str) -> dict[str, str]:
    return {"t": model, "h": f"/ui/models/{model}"}
