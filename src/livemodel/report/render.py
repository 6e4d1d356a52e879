"""Render report data (:mod:`livemodel.report.build`) as ONE self-contained HTML file.

Figures are Plotly specifications (``data`` + ``layout``) drawn by plotly.js, which is
embedded whole (``plotly.offline.get_plotlyjs()``): no CDN, no fonts, no request of any
kind, so the file opens offline and can be mailed or archived.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from livemodel.errors import InvalidInputError
from livemodel.monitor.results import json_safe
from livemodel.report.build import ReportData
from livemodel.report.template import TEMPLATE

__all__ = ["figures", "render_html", "write_report"]

REF, CUR = "#8c96a8", "#3552c8"
REALIZED, ESTIMATED = "#2e7d32", "#b26a00"
_LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "paper_bgcolor": "#ffffff",
    "plot_bgcolor": "#ffffff",
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "legend": {"orientation": "h", "y": -0.2},
    "height": 320,
}


def render_html(data: ReportData | Mapping[str, Any]) -> str:
    """The report as one HTML document (text)."""
    import plotly.offline  # type: ignore[import-untyped]

    d = data.to_dict() if isinstance(data, ReportData) else json_safe(dict(data))
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters.update({"num": _num, "pct": _pct, "when": _when})
    template = env.from_string(TEMPLATE)
    return template.render(
        d=d,
        figs=figures(d),
        figures_json=Markup(_script_json(figures(d))),
        plotly_js=Markup(plotly.offline.get_plotlyjs()),
    )


def write_report(data: ReportData | Mapping[str, Any], path: str | Path) -> Path:
    """Render and write the report; returns the path written."""
    target = Path(path)
    html = render_html(data)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write the report to {str(target)!r}: {exc}") from exc
    return target


def figures(d: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure of the report, by the name its element refers to."""
    out: dict[str, dict[str, Any]] = {}
    drift = d.get("drift") or {}
    if drift.get("features") and drift.get("windows"):
        out["drift"] = _drift(drift)
    for i, dist in enumerate(d.get("distributions") or []):
        out[f"dist-{i}"] = _distribution(dist)
    for i, perf in enumerate(d.get("performance") or []):
        out[f"perf-{i}"] = _performance(perf)
    fairness = d.get("fairness") or {}
    if fairness.get("audit"):
        out["fairness"] = _fairness(fairness["audit"], fairness["attribute"])
    importance = d.get("importance") or {}
    if importance.get("method"):
        out["importance"] = _importance(importance)
    return out


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_LAYOUT, "title": {"text": title, "x": 0.01, "font": {"size": 14}}, **extra}


def _drift(drift: Mapping[str, Any]) -> dict[str, Any]:
    marks = [["●" if v else "" for v in row] for row in drift["drifted"]]
    height = max(260, 60 + 26 * len(drift["features"]))
    trace = {
        "type": "heatmap",
        "x": [str(w)[:16].replace("T", " ") for w in drift["windows"]],
        "y": drift["features"],
        "z": drift["score"],
        "text": marks,
        "texttemplate": "%{text}",
        "textfont": {"color": "#1d2433"},
        "colorscale": [[0, "#eef1fb"], [0.5, "#8a9be0"], [1, "#b71c1c"]],
        "zmin": 0,
        "colorbar": {"title": {"text": "JS distance"}},
        "hovertemplate": "%{y}<br>%{x}<br>JS distance %{z:.3f}<extra></extra>",
        "xgap": 2,
        "ygap": 2,
    }
    layout = _layout("Jensen-Shannon distance to the reference", height=height)
    layout["yaxis"] = {"autorange": "reversed", "automargin": True}
    layout["xaxis"] = {"type": "category", "title": {"text": "window start (UTC)"}}
    return {"data": [trace], "layout": layout}


def _distribution(dist: Mapping[str, Any]) -> dict[str, Any]:
    x = dist["centers"] if dist["kind"] == "numeric" else dist["labels"]
    bars = [
        {"type": "bar", "name": f"reference (n={dist['n_reference']:,})", "x": x,
         "y": dist["reference"], "marker": {"color": REF}, "opacity": 0.75},
        {"type": "bar", "name": f"current (n={dist['n_current']:,})", "x": x,
         "y": dist["current"], "marker": {"color": CUR}, "opacity": 0.75},
    ]  # fmt: skip
    title = f"{dist['column']} (window from {str(dist['window'])[:16].replace('T', ' ')})"
    layout = _layout(title, barmode="overlay" if dist["kind"] == "numeric" else "group")
    layout["yaxis"] = {"title": {"text": "share of rows"}, "tickformat": ".0%"}
    if dist["kind"] == "numeric":
        layout["bargap"] = 0.02
    return {"data": bars, "layout": layout}


def _band(series: Mapping[str, Any], name: str, color: str, dash: str) -> list[dict[str, Any]]:
    if not series["x"]:
        return []
    fill = color + "22"
    return [
        {"type": "scatter", "x": series["x"], "y": series["upper"], "mode": "lines",
         "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "x": series["x"], "y": series["lower"], "mode": "lines",
         "line": {"width": 0}, "fill": "tonexty", "fillcolor": fill, "name": f"{name} band",
         "hoverinfo": "skip"},
        {"type": "scatter", "x": series["x"], "y": series["value"], "mode": "lines+markers",
         "name": name, "line": {"color": color, "dash": dash},
         "marker": {"color": ["#c62828" if a else color for a in series["alert"]], "size": 8},
         "customdata": series["n"],
         "hovertemplate": name + " %{y:.3f} (n=%{customdata})<extra></extra>"},
    ]  # fmt: skip


def _performance(perf: Mapping[str, Any]) -> dict[str, Any]:
    data = _band(perf["realized"], "realized", REALIZED, "solid")
    data += _band(perf["estimated"], "estimated", ESTIMATED, "dash")
    return {"data": data, "layout": _layout(f"{perf['metric']}: realized vs estimated")}


def _fairness(audit: Mapping[str, Any], attribute: str) -> dict[str, Any]:
    groups = [g for g in audit["groups"] if g["value"] is not None]
    error = {
        "type": "data",
        "symmetric": False,
        "array": [(g["upper"] - g["value"]) if g["upper"] is not None else 0 for g in groups],
        "arrayminus": [(g["value"] - g["lower"]) if g["lower"] is not None else 0 for g in groups],
    }
    trace = {
        "type": "bar", "x": [g["group"] for g in groups], "y": [g["value"] for g in groups],
        "error_y": error, "marker": {"color": CUR}, "name": audit["metric"],
    }  # fmt: skip
    return {"data": [trace], "layout": _layout(f"{audit['metric']} by {attribute}")}


def _importance(imp: Mapping[str, Any]) -> dict[str, Any]:
    order = sorted(range(len(imp["features"])), key=lambda i: imp["reference"][i])
    names = [imp["features"][i] for i in order]
    data = [
        {"type": "bar", "orientation": "h", "name": "reference", "y": names,
         "x": [imp["reference"][i] for i in order], "marker": {"color": REF}},
    ]  # fmt: skip
    if imp.get("current"):
        current = [imp["current"][i] for i in order]
        data.append({"type": "bar", "orientation": "h", "name": "latest window", "y": names,
                     "x": current, "marker": {"color": CUR}})  # fmt: skip
    height = max(300, 80 + 28 * len(names))
    layout = _layout("mean |SHAP value|", barmode="group", height=height)
    layout["yaxis"] = {"automargin": True}
    return {"data": data, "layout": layout}


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(json_safe(value), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _num(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "-"
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return "-"


def _pct(value: Any) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{100 * value:.2f}%" if math.isfinite(value) else "-"


def _when(value: Any) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)
