# ruff: noqa: E501, RUF001 - an HTML template: its lines are markup, not Python
"""The Jinja2 template of the HTML report (kept in Python so every install carries it).

All CSS is inline, plotly.js is embedded whole, and nothing refers to the network: the
file opens offline. Text from the data is autoescaped; the figures arrive as JSON that
cannot close the script element.
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="livemodel">
<title>{{ d.model }}@{{ d.version }} · livemodel report</title>
<style>
:root { --fg:#1d2433; --muted:#5d6678; --line:#e3e6ec; --bg:#f6f7f9; --card:#fff;
        --bad:#c62828; --warn:#b26a00; --ok:#2e7d32; --accent:#3552c8; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#1d2433; color:#fff; padding:18px 28px; }
header h1 { margin:0; font-size:22px; font-weight:600; }
header .sub { color:#c5cbe0; margin-top:4px; }
.chip { display:inline-block; background:#3a4560; color:#fff; border-radius:10px;
        padding:1px 9px; margin-left:6px; font-size:12px; }
nav { background:#fff; border-bottom:1px solid var(--line); padding:8px 28px;
      position:sticky; top:0; z-index:5; }
nav a { color:var(--accent); margin-right:16px; text-decoration:none; font-size:13px; }
main { padding:18px 28px 40px; max-width:1400px; margin:0 auto; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px;
          padding:16px 20px; margin:0 0 18px; }
section h2 { margin:0 0 10px; font-size:17px; }
.note { color:var(--muted); font-style:italic; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:22px; font-weight:600; margin-top:2px; }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(420px,1fr)); gap:12px; }
.chart { width:100%; min-height:300px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; background:#fafbfc; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.bad { color:var(--bad); font-weight:600; } .ok { color:var(--ok); } .warn { color:var(--warn); }
.critical { color:var(--bad); font-weight:600; } .warning { color:var(--warn); }
dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; }
dt { color:var(--muted); } dd { margin:0; word-break:break-all; }
code { font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12px; }
.two { display:grid; grid-template-columns:1fr 1fr; gap:18px; align-items:start; }
details summary { cursor:pointer; color:var(--accent); margin:8px 0; }
@media (max-width: 900px) { .two { grid-template-columns:1fr; } }
</style>
</head>
<body>
<header>
  <h1>{{ d.model }}<span style="color:#9fb0ff">@{{ d.version }}</span>
    {% for alias, v in d.aliases.items() %}<span class="chip">{{ alias }} → v{{ v }}</span>{% endfor %}
  </h1>
  <div class="sub">{{ d.task or "no task" }} · {{ d.period.since|when }} to {{ d.period.until|when }}
    · windows of {{ d.period.window or "-" }} · generated {{ d.generated_at|when }}</div>
</header>
<nav>
  <a href="#drift">Drift</a><a href="#distributions">Distributions</a><a href="#quality">Data quality</a>
  <a href="#performance">Performance</a><a href="#concept-drift">Concept drift</a><a href="#segments">Segments</a><a href="#fairness">Fairness</a>
  <a href="#importance">Feature importance</a><a href="#rollouts">Rollouts</a><a href="#alerts">Alerts</a>
  <a href="#lineage">Lineage</a>
</nav>
<main>
<div class="cards" id="summary" style="margin-bottom:18px">
  <div class="card"><div class="k">windows</div><div class="v">{{ d.summary.windows }}</div></div>
  <div class="card"><div class="k">rows monitored</div><div class="v">{{ "{:,}".format(d.summary.rows) }}</div></div>
  <div class="card"><div class="k">drifted now</div>
    <div class="v {{ 'bad' if d.summary.drifted_latest else 'ok' }}">{{ d.summary.drifted_latest|length }}</div></div>
  <div class="card"><div class="k">drifted in period</div><div class="v">{{ d.summary.features_drifted_ever|length }}</div></div>
  <div class="card"><div class="k">alerting numbers</div>
    <div class="v {{ 'warn' if d.summary.alerting_numbers else 'ok' }}">{{ d.summary.alerting_numbers }}</div></div>
</div>

<section id="drift"><h2>Drift per feature over time</h2>
{% if "drift" in figs %}<div class="chart" id="fig-drift" data-figure="drift"></div>
<p class="note">Colour: Jensen-Shannon distance to the reference; ● marks a drift verdict.</p>
{% else %}<p class="note">No drift results in this period.</p>{% endif %}
</section>

<section id="distributions"><h2>Reference vs current distributions (drifted features)</h2>
{% if d.distributions %}<div class="grid">
{% for dist in d.distributions %}<div class="chart" id="fig-dist-{{ loop.index0 }}" data-figure="dist-{{ loop.index0 }}"></div>{% endfor %}
</div>{% else %}<p class="note">No feature drifted in this period.</p>{% endif %}
</section>

<section id="quality"><h2>Data quality</h2>
{% set flagged = d.quality|selectattr("alert_windows")|list %}{% set calm = d.quality|rejectattr("alert_windows")|list %}
{% macro qrows(items) %}<table><thead><tr><th>column</th><th>rate</th><th>latest</th><th>worst</th>
<th>threshold</th><th>windows alerting</th></tr></thead><tbody>
{% for q in items %}<tr><td>{{ q.column }}</td><td>{{ q.metric }}</td>
<td class="num {{ 'bad' if q.alert else '' }}">{{ q.latest|pct }}</td><td class="num">{{ q.worst|pct }}</td>
<td class="num">{{ q.threshold|pct }}</td>
<td class="num {{ 'bad' if q.alert_windows else '' }}">{{ q.alert_windows }} / {{ q.windows }}</td></tr>{% endfor %}
</tbody></table>{% endmacro %}
{% if not d.quality %}<p class="note">No data-quality results in this period.</p>
{% else %}{% if flagged %}{{ qrows(flagged) }}{% else %}<p class="ok">No data-quality rate alerted in this period.</p>{% endif %}
{% if calm %}<details><summary>{{ calm|length }} rates that never alerted</summary>{{ qrows(calm) }}</details>{% endif %}{% endif %}
</section>

<section id="performance"><h2>Realized vs estimated performance</h2>
{% if d.performance %}<div class="grid">
{% for p in d.performance %}<div class="chart" id="fig-perf-{{ loop.index0 }}" data-figure="perf-{{ loop.index0 }}"></div>{% endfor %}
</div><p class="note">Bands: the expected range (reference value ± sampling error); realized uses the labels that arrived.</p>
{% else %}<p class="note">No performance results in this period.</p>{% endif %}
</section>

<section id="concept-drift"><h2>Concept drift (labelled error stream)</h2>{% set cd = d.get("concept_drift") or {} %}
{% if cd.get("orders") %}<table><thead><tr><th>order</th><th>labelled rows</th><th>error</th><th>detector</th><th>mean error</th><th>detections</th><th>last row</th></tr></thead><tbody>
{% for o in cd.orders %}{% for det in o.detectors %}<tr><td>{{ o.order }}</td><td class="num">{{ "{:,}".format(o.rows) }}</td><td>{{ o.error }}</td>
<td>{{ det.detector }}</td><td class="num">{{ det.mean_error|num }}</td><td class="num {{ 'bad' if det.detections else 'ok' }}">{{ det.detections }}</td>
<td>{{ (o.last_row or {}).get("time")|when }}</td></tr>{% endfor %}{% endfor %}</tbody></table>
{% if cd.detections %}<table><thead><tr><th>detector</th><th>order</th><th>change began (prediction time)</th><th>at prediction</th><th>row</th><th>detected at row</th><th>label arrived</th><th>mean error before → after</th></tr></thead><tbody>
{% for x in cd.detections[:50] %}<tr><td>{{ x.detector }}</td><td>{{ x.order }}</td><td>{{ x.start.time|when }}</td><td><code>{{ x.start.prediction_id }}</code></td>
<td class="num">{{ x.start.index }}</td><td class="num">{{ x.detected.index }}</td><td>{{ x.detected.label_time|when }}</td>
<td class="num bad">{{ x.error_before|num }} → {{ x.error_after|num }}</td></tr>{% endfor %}</tbody></table>
{% else %}<p class="ok">No concept drift detected in the labelled error stream.</p>{% endif %}
<p class="note">Streaming detectors replayed over every labelled prediction of this version, in the order labels arrived and in prediction-time order; a change's start is the least-squares change point since the detector's previous detection.</p>
{% else %}<p class="note">No concept-drift results for this version (they need labels; <code>livemodel monitor run</code> computes them).</p>{% endif %}
</section>

<section id="segments"><h2>Segments{% if d.segments.window %} (window from {{ d.segments.window|when }}){% endif %}</h2>
{% if d.segments.rows %}<table><thead><tr><th>segment</th><th>rows</th><th>drifted features</th>
{% for m in d.segments.metrics %}<th>{{ m }} realized</th><th>{{ m }} estimated</th>{% endfor %}</tr></thead><tbody>
{% for s in d.segments.rows %}<tr><td>{{ s.segment }}</td><td class="num">{{ "{:,}".format(s.rows) }}</td>
<td class="{{ 'warn' if s.drifted else '' }}">{{ s.drifted|join(", ") or "-" }}</td>
{% for m in d.segments.metrics %}{% for kind in ("realized", "estimated") %}{% set v = s.metrics[m][kind] %}
<td class="num {{ 'bad' if v and v.alert else '' }}">{{ v.value|num if v else "-" }}</td>{% endfor %}{% endfor %}</tr>{% endfor %}
</tbody></table>{% else %}<p class="note">No segment results (run <code>livemodel monitor run --segment COLUMN</code>).</p>{% endif %}
</section>

<section id="fairness"><h2>Fairness</h2>
{% if not d.fairness %}<p class="note">No protected attribute configured (<code>--protected COLUMN</code> or <code>[report] protected</code>).</p>
{% elif d.fairness.note %}<p class="note">{{ d.fairness.attribute }}: {{ d.fairness.note }}</p>
{% else %}{% set a = d.fairness.audit %}
<p>{{ a.metric }} by <b>{{ d.fairness.attribute }}</b> on {{ "{:,}".format(d.fairness.rows) }} labelled predictions
 ({{ (a.confidence * 100)|round|int }}% bootstrap intervals, {{ a.n_boot }} resamples).
 Difference: <b>{{ a.difference.value|num }}</b> [{{ a.difference.lower|num }}, {{ a.difference.upper|num }}] ·
 ratio: <b>{{ a.ratio.value|num }}</b> [{{ a.ratio.lower|num }}, {{ a.ratio.upper|num }}]
 {% if a.worst_group %}· worst group: <b class="warn">{{ a.worst_group }}</b>{% endif %}</p>
<div class="two"><table><thead><tr><th>group</th><th>rows</th><th>{{ a.metric }}</th><th>interval</th><th></th></tr></thead><tbody>
{% for g in a.groups %}<tr><td>{{ g.group }}</td><td class="num">{{ "{:,}".format(g.n) }}</td>
<td class="num">{{ g.value|num }}</td><td class="num">[{{ g.lower|num }}, {{ g.upper|num }}]</td>
<td class="note">{{ g.reason or "" }}</td></tr>{% endfor %}</tbody></table>
<div class="chart" id="fig-fairness" data-figure="fairness"></div></div>{% endif %}
</section>

<section id="importance"><h2>Global feature importance</h2>
{% if d.importance.method %}<div class="chart" id="fig-importance" data-figure="importance"></div>
<p class="note">Mean |SHAP value| by {{ d.importance.method }}, on {{ d.importance.n_reference }} reference rows
{% if d.importance.current %}and {{ d.importance.n_current }} rows of the latest window{% endif %}.</p>
{% else %}<p class="note">{{ d.importance.note }}</p>{% endif %}
</section>

<section id="rollouts"><h2>Rollout history</h2>
{% if d.rollouts.latest %}{% set r = d.rollouts.latest %}<p>Latest rollout <code>{{ r.id }}</code>:
<b>{{ r.status }}</b>, v{{ r.candidate }} against v{{ r.champion }}{% if r.reason %} — {{ r.reason }}{% endif %}
(updated {{ r.updated_at|when }})</p>{% endif %}
{% if d.rollouts.events %}<table><thead><tr><th>time</th><th>event</th><th>versions</th><th>reason</th><th>guards</th></tr></thead><tbody>
{% for e in d.rollouts.events %}<tr><td>{{ e.at|when }}</td>
<td class="{{ 'bad' if 'rollback' in e.action else '' }}">{{ e.action }}{% if e.alias %} ({{ e.alias }}){% endif %}</td>
<td>{% if e.from_version is not none or e.to_version is not none %}v{{ e.from_version if e.from_version is not none else "-" }} → v{{ e.to_version if e.to_version is not none else "-" }}{% endif %}</td>
<td>{{ e.reason or "" }}</td>
<td>{% for g in e.readings %}{{ g.guard }}: <span class="{{ 'bad' if g.verdict == 'rollback' else '' }}">{{ g.verdict }}</span>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="note">No rollout or alias events.</p>{% endif %}
</section>

<section id="alerts"><h2>Alerts in this period</h2>
{% if d.alerts %}<table><thead><tr><th>time</th><th>severity</th><th>rule</th><th>state</th><th>attempts</th><th>message</th></tr></thead><tbody>
{% for a in d.alerts %}<tr><td>{{ a.at|when }}</td><td class="{{ a.severity }}">{{ a.severity }}</td><td>{{ a.rule }}</td>
<td class="{{ 'bad' if a.state == 'failed' else '' }}">{{ a.state }}</td><td class="num">{{ a.attempts }}</td><td>{{ a.message }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="note">No alerts recorded (<code>livemodel alerts check {{ d.model }}</code>).</p>{% endif %}
</section>

<section id="lineage"><h2>Lineage</h2>{% set l = d.lineage %}
<div class="two"><div><dl>
<dt>version</dt><dd>{{ l.ref }} · registered {{ l.created_at|when }} by {{ l.actor }}</dd>
{% if l.description %}<dt>description</dt><dd>{{ l.description }}</dd>{% endif %}
<dt>estimator</dt><dd><code>{{ l.estimator.class }}</code></dd>
<dt>artifact sha256</dt><dd><code>{{ l.artifact_sha256 }}</code></dd>
{% if l.data %}<dt>data fingerprint</dt><dd><code>{{ l.data.fingerprint }}</code></dd>
<dt>training data</dt><dd>{{ "{:,}".format(l.data.rows) }} rows × {{ l.data.columns }} columns{% if l.data.source %} from {{ l.data.source }}{% endif %}</dd>{% endif %}
<dt>git</dt><dd>{% if l.code %}<code>{{ l.code.commit }}</code> on {{ l.code.branch }}{% if l.code.dirty %} <span class="warn">(dirty)</span>{% endif %}{% else %}not in a git repository{% endif %}</dd>
{% if l.environment %}<dt>environment</dt><dd>Python {{ l.environment.python }} · {{ l.environment.platform }}<br>
{% for p, v in l.environment.packages.items() %}<code>{{ p }} {{ v }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</dd>{% endif %}
<dt>seed</dt><dd>{{ l.seed if l.seed is not none else "-" }}</dd>
{% if l.metrics and l.metrics.holdout %}<dt>holdout</dt><dd>{% for m, v in l.metrics.holdout.items() %}{{ m }} {{ v.value|num }}{% if not loop.last %} · {% endif %}{% endfor %}</dd>{% endif %}
</dl></div>
<div><table><thead><tr><th>feature</th><th>type</th><th>nullable</th></tr></thead><tbody>
{% for c in l.signature %}<tr><td>{{ c.name }}</td><td>{{ c.type }}</td><td>{{ "yes" if c.nullable else "no" }}</td></tr>{% endfor %}
{% if l.task %}<tr><td><b>{{ l.task.target }}</b> (target)</td><td>{{ l.task.kind }}</td><td></td></tr>{% endif %}
</tbody></table></div></div>
</section>
</main>
<script>{{ plotly_js }}</script>
<script>
(function () {
  var figures = {{ figures_json }};
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"]};
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var f = figures[el.getAttribute("data-figure")];
    if (f) { Plotly.newPlot(el, f.data, f.layout, config); }
  });
})();
</script>
</body>
</html>
"""
