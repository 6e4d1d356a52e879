"""The dashboard at ``/ui``: its JSON over HTTP, and its pages in a real headless Chromium.

One server is set up as in production: two models served, traffic from two months (the
later one drifted), labels for two thirds of it, monitoring results (``livemodel monitor
run`` for one model, the same ``Monitor`` in this process for the other), a rollout
started with ``livemodel rollout start`` and ticked once by the rollout controller, and two
alerts recorded. The browser test saves ``docs/img/dashboard.png``
and ``docs/img/model.png`` when ``LIVEMODEL_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from livemodel.alerts.rules import Alert
from livemodel.alerts.store import AlertStore
from livemodel.config import Settings
from livemodel.demo.flights import FEATURES, TARGET, load_flights
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.runner import Monitor
from livemodel.rollout.controller import SETTLE
from livemodel.store.logreader import LogReader
from livemodel.wiring import rollout_controller

from .conftest import Models, Server, cli, make_token, records, registry_at, start_server

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<script>window.__pwned = 1</script>"
CONFIG = """
[serving]
poll_seconds = 0.5

[serving.models.flights]
review_threshold = 0.7
"""


@pytest.fixture(scope="module")
def home(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ui") / "home"
    registry = registry_at(home)
    train = models.data.iloc[:3000]
    registry.register(
        "flights", models.linear_v1, train, target=TARGET, alias="production",
        description="logistic regression on January",
    )  # fmt: skip
    registry.register("flights", models.linear_v2, train, target=TARGET, description=HOSTILE)
    registry.register("forest", models.forest, train, target=TARGET, alias="production")
    registry.set_alias("flights", "staging", 1, reason=f"tried {HOSTILE}")
    registry.metadata.db.close()
    (home / "livemodel.toml").write_text(CONFIG)
    return home


def send(client: httpx.Client, model: str, frame: pd.DataFrame, label_share: float) -> None:
    """Predict every row; send the true label of the first ``label_share`` of them."""
    response = client.post(f"/v1/models/{model}/predict", json={"records": records(frame)})
    assert response.status_code == 200, response.text
    ids = [row["id"] for row in response.json()["predictions"]]
    keep = int(len(ids) * label_share)
    labels = [
        {"id": i, "label": int(y)} for i, y in zip(ids[:keep], frame[TARGET][:keep], strict=True)
    ]
    if labels:
        answer = client.post(f"/v1/models/{model}/feedback", json={"labels": labels})
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def served(home: Path, faults_dir: Path, models: Models) -> Iterator[Server]:
    server = start_server(home, faults_dir, config=home / "livemodel.toml")
    try:
        feedback = make_token(home, "feedback")  # labels need a token with this scope
        client = server.client(headers={"authorization": f"Bearer {feedback}"})
        june = load_flights((6,)).iloc[:1000][[*FEATURES, TARGET]].reset_index(drop=True)
        chunks = [models.data.iloc[3000:3500], models.data.iloc[3500:4000], june[:500], june[500:]]
        for chunk in chunks:
            for model in ("flights", "forest"):
                send(client, model, chunk, 2 / 3)
        time.sleep(1.0)  # the log writer's group commit
        cli(home, faults_dir, "monitor", "run", "flights", "--window", "500rows", "--since", "1h")
        settings = Settings.at(home, actor="tests")
        registry = registry_at(home)
        monitor = Monitor(registry, LogReader(settings.log_dir), ResultStore(registry.metadata.db))
        now = datetime.now(UTC)
        monitor.run("forest", since=now - timedelta(hours=1), until=now, window="500rows")
        cli(home, faults_dir, "rollout", "start", "flights", "--candidate", "2",
            "--plan", "shadow,canary:10,50,100")  # fmt: skip
        send(client, "flights", models.data.iloc[3000:3300], 0.0)
        # the controller reads records once they are SETTLE (2 s) old: its clock runs ahead
        ahead = SETTLE + timedelta(seconds=1)
        rollout_controller(settings, clock=lambda: datetime.now(UTC) + ahead).tick()
        store = AlertStore(registry.metadata.db)
        for rule, severity, model, subject, message in (
            ("performance", "critical", "flights", "roc_auc", "estimated roc_auc 0.79 < 0.85"),
            ("drift", "warning", "forest", "dep_delay", f"dep_delay drifted ({HOSTILE})"),
        ):
            alert = Alert(
                rule=rule, severity=severity, model=model, subject=subject, message=message,
                at=now, cooldown=timedelta(days=1),
            )  # fmt: skip
            store.record(alert, "sent")
        store.db.close()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(served: Server) -> httpx.Client:
    return served.client()


# -- the JSON and the HTML, over HTTP ---------------------------------------------------------
def test_overview_json_has_models_health_rollouts_alerts_review_and_audit(
    client: httpx.Client,
) -> None:
    data = client.get("/ui/api/overview").json()
    by_name = {m["name"]: m for m in data["models"]}
    assert set(by_name) == {"flights", "forest"}
    flights = by_name["flights"]
    assert flights["served"] == 1
    assert "candidate v2" in flights["aliases"] and "production v1" in flights["aliases"]
    assert int(flights["counters"]["predictions"].replace(",", "")) >= 2300
    assert flights["status"] in ("ok", "warn", "alert")
    assert "drifted" in flights["drift"] or "no drift" in flights["drift"]
    assert "dep_delay" in flights["drift"]  # June's delays are not January's
    chart = flights["chart"]["performance"]
    assert chart["metric"] == "roc_auc" and len(chart["t"]) >= 4
    assert all(v is not None for v in chart["estimated"])
    assert len(flights["chart"]["drift"]["drifted"]) == len(chart["t"])
    assert data["alerts"]["available"] and len(data["alerts"]["rows"]) == 2
    assert data["alerts"]["rows"][0][0]["t"] == "critical"  # the most severe first
    (rollout,) = data["rollouts"]
    assert rollout["model"] == "flights" and "shadow" in rollout["step"]
    assert "errors" in {row[0] for row in rollout["rows"]}
    assert data["review"]["pending"] > 0
    actions = [row[2] for row in data["audit"]]
    assert "rollout.started" in actions and "alias.set" in actions


def test_model_json_has_series_for_drift_performance_and_quality(client: httpx.Client) -> None:
    data = client.get("/ui/api/models/flights").json()
    assert data["window"] == "500rows"
    drift = data["drift"]
    assert set(drift["features"]) == set(FEATURES)
    assert len(drift["t"]) >= 4 and all(len(row) == len(drift["t"]) for row in drift["z"])
    dep = drift["z"][drift["features"].index("dep_delay")]
    assert dep[0] == 0.0 and dep[-1] == 1.0  # January is the reference; June drifted
    performance = {s["metric"]: s for s in data["performance"]}
    roc = performance["roc_auc"]
    for kind in ("realized", "estimated"):
        for value, low, high in zip(
            roc[kind], roc[f"{kind}_lower"], roc[f"{kind}_upper"], strict=True
        ):
            assert low <= value <= high
    assert data["performance"][0]["metric"] == "roc_auc"
    assert [row[0] for row in data["versions"]] == ["v2", "v1"]


def test_pages_escape_user_data_and_send_a_strict_policy(client: httpx.Client) -> None:
    page = client.get("/ui/models/flights")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert HOSTILE not in page.text and "&lt;script&gt;window.__pwned" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self' 'nonce-" in policy
    overview = client.get("/ui")
    assert overview.status_code == 200 and HOSTILE not in overview.text
    missing = client.get("/ui/models/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert missing.status_code == 404 and "<script>alert(1)" not in missing.text
    assert client.get("/ui/api/models/nope").status_code == 404
    assert client.get("/ui/api/models/nope").json()["error"]["type"] == "NotFoundError"


def test_review_items_need_the_admin_scope(served: Server, client: httpx.Client) -> None:
    assert client.get("/ui/api/review").status_code == 401
    predict = make_token(served.home, "predict")
    auth = {"authorization": f"Bearer {predict}"}
    assert client.get("/ui/api/review", headers=auth).status_code == 403
    admin = make_token(served.home, "admin")
    items = client.get("/ui/api/review", headers={"authorization": f"Bearer {admin}"}).json()
    assert items["items"] and items["items"][0]["model"] == "flights"
    assert set(items["items"][0]["features"]) == set(FEATURES)


def test_plotly_is_served_by_the_server(client: httpx.Client) -> None:
    response = client.get("/ui/static/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert len(response.content) > 1_000_000 and b"plotly" in response.content[:2000].lower()


def test_the_counters_follow_new_predictions(client: httpx.Client, models: Models) -> None:
    def predictions() -> int:
        data = client.get("/ui/api/overview").json()
        forest = next(m for m in data["models"] if m["name"] == "forest")
        return int(forest["counters"]["predictions"].replace(",", ""))

    before = predictions()
    send(client, "forest", models.data.iloc[:7], 0.0)
    assert predictions() == before + 7


# -- in a real browser ------------------------------------------------------------------------
def _browser() -> Any:
    """Playwright's sync API, or a skip (a failure with LIVEMODEL_REQUIRE_BROWSER=1)."""
    required = os.environ.get("LIVEMODEL_REQUIRE_BROWSER") == "1"
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM}"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed"
    if missing is not None:
        if required:
            pytest.fail(f"LIVEMODEL_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return sync_playwright


CHARTS_WITH_DATA = """
(selector) => Array.from(document.querySelectorAll(selector)).map((el) =>
  (el.data || []).some((t) => (t.y || t.z || []).flat().some((v) => v !== null && v !== undefined)))
"""


def wait_until(page: Any, predicate: str, arg: Any = None, seconds: float = 20.0) -> None:
    """Poll ``predicate`` with ``page.evaluate`` (``wait_for_function`` evaluates strings,
    which the pages' Content-Security-Policy forbids)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(predicate, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        page.wait_for_timeout(200)


@pytest.mark.slow  # about 20 s: two pages, and waits for the dashboard to refresh
def test_dashboard_and_model_page_in_chromium(
    served: Server, client: httpx.Client, models: Models
) -> None:
    sync_playwright = _browser()
    outside: list[str] = []
    problems: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(served.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.route("**/*", only_local)
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            check_dashboard(page, served, client, models)
            check_model_page(page, served)
        finally:
            browser.close()
    assert outside == []
    assert problems == []


def check_dashboard(page: Any, served: Server, client: httpx.Client, models: Models) -> None:
    page.goto(f"{served.url}/ui")
    wait_until(page, "() => document.querySelectorAll('.js-plotly-plot').length >= 3")
    assert page.evaluate(CHARTS_WITH_DATA, "article .js-plotly-plot") == [True, True]
    assert page.evaluate("window.__pwned") is None
    card = 'article[data-model="forest"] .js-predictions'
    before = page.inner_text(card)
    page.evaluate("window.__sameDocument = true")
    send(client, "forest", models.data.iloc[:5], 0.0)
    wait_until(page, "([sel, old]) => document.querySelector(sel).textContent !== old",
               [card, before])  # fmt: skip
    assert int(page.inner_text(card).replace(",", "")) >= int(before.replace(",", "")) + 5
    assert page.evaluate("window.__sameDocument") is True  # updated, not reloaded
    for rows in (models.data.iloc[100:140], models.data.iloc[200:220]):  # live traffic
        send(client, "flights", rows, 0.0)
        send(client, "forest", rows.iloc[:10], 0.0)
        page.wait_for_timeout(2_500)
    # the traffic chart fills from the second refresh on
    wait_until(page, "() => document.getElementById('traffic-chart').data.length > 0")
    assert all(page.evaluate(CHARTS_WITH_DATA, ".js-plotly-plot"))
    page.fill("#review-token", make_token(served.home, "admin"))
    page.click("#review-form button")
    page.wait_for_selector("#review-table:not([hidden]) tbody tr")
    page.fill("#review-token", "")  # keep the secret out of the screenshot
    screenshot(page, "dashboard.png")


def screenshot(page: Any, name: str) -> None:
    """A full-page PNG; kept in docs/img only with LIVEMODEL_UPDATE_SCREENSHOTS=1."""
    keep = os.environ.get("LIVEMODEL_UPDATE_SCREENSHOTS") == "1"
    path = DOCS_IMG / name if keep else Path(tempfile.mkdtemp(prefix="lm-ui-")) / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_model_page(page: Any, served: Server) -> None:
    page.goto(f"{served.url}/ui/models/flights")
    wait_until(page, "() => document.querySelectorAll('.js-plotly-plot').length >= 5")
    assert page.evaluate(CHARTS_WITH_DATA, ".js-plotly-plot") == [True] * 5
    assert page.evaluate("window.__pwned") is None
    assert HOSTILE in page.inner_text("main")  # shown as text, not run
    screenshot(page, "model.png")
