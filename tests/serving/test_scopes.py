"""docs/security.md is the truth: its tables are read here and walked over real HTTP.

Every endpoint row is sent with no token, a made-up token, a token of each scope and a
revoked token, on the default server and on one with ``require_predict_token = true``;
writes carry a body that fails validation *after* the auth check, so a granted request
answers 4xx-not-401/403 (or 200 for reads) and nothing changes. The table must list
exactly the operations of ``/openapi.json``, and the command table every CLI command.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import typer

from livemodel.cli.app import app
from livemodel.store.labels import LabelLog
from livemodel.store.tokens import hash_token

from .conftest import Models, Server, cli, copy_home, make_token, records, start_server

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"
SCOPES = ("predict", "feedback", "admin")
EXAMPLES = {"name": "flights", "alias": "production", "prediction_id": "no-such-id", "version": "1"}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    scope: str  # none | predict† | feedback‡ | admin

    def needs(self, *, locked: bool) -> str | None:
        """The scope this server wants for the row (None: open)."""
        if self.scope == "none" or (self.scope == "predict†" and not locked):
            return None
        return self.scope.rstrip("†‡")

    def url(self) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: EXAMPLES[m.group(1)], self.path)


def table(heading: str) -> list[list[str]]:
    """The cells of the first table under ``## heading`` in docs/security.md."""
    text = SECURITY.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    return [c for c in cells[1:] if not set(c[0]) <= {"-", " "}]  # header and rule dropped


ENDPOINTS = [Row(c[0], c[1], c[2]) for c in table("Endpoints")]


def test_the_table_reads_as_expected() -> None:
    assert len(ENDPOINTS) >= 20
    assert {r.scope for r in ENDPOINTS} == {"none", "predict†", "feedback‡", "admin"}
    assert all(r.method in {"GET", "POST", "PUT", "DELETE"} for r in ENDPOINTS)


def test_the_table_lists_every_operation(server: Server) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    # Operations whose body depends on the model are listed per served model; each names
    # its route.
    routes = {
        (m.upper(), op["x-livemodel-route"]): op
        for ops in document["paths"].values()
        for m, op in ops.items()
    }
    assert {(r.method, r.path) for r in ENDPOINTS} == set(routes)
    for row in ENDPOINTS:  # and the document agrees on which need a token
        operation = routes[(row.method, row.path)]
        assert ("security" in operation) == (row.needs(locked=False) is not None), row


def test_the_command_table_lists_every_command() -> None:
    found: set[str] = set()

    def walk(command: object, prefix: str) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, f"{prefix} {name}")
        else:
            found.add(prefix)

    walk(typer.main.get_command(app), "livemodel")
    assert {c[0] for c in table("Commands")} == found


def revoked_token(running: Server) -> str:
    """An admin token revoked before the server saw it (so no cache can hold it)."""
    secret = make_token(running.home, "admin")
    cli(running.home, running.faults, "token", "revoke", str(token_id(running.home, secret)))
    return secret


def walk_table(running: Server, *, locked: bool, revoked: str) -> list[str]:
    """Every row with every kind of credential; the mismatches, as readable lines."""
    tokens = {scope: make_token(running.home, scope) for scope in SCOPES}
    problems: list[str] = []
    with httpx.Client(base_url=running.url, timeout=60) as client:
        for row in ENDPOINTS:
            needed = row.needs(locked=locked)
            credentials: dict[str, tuple[str | None, set[int] | None]] = {
                "no token": (None, {401} if needed else None),
                "made-up token": ("lm_" + "x" * 43, {401} if needed else None),
                "revoked token": (revoked, {401} if needed else None),
            }
            for scope, secret in tokens.items():
                granted = needed is None or scope in (needed, "admin")
                credentials[f"{scope} token"] = (secret, None if granted else {403})
            for what, (secret, expected) in credentials.items():
                headers = {"authorization": f"Bearer {secret}"} if secret else {}
                body = {} if row.method in {"POST", "PUT"} else None
                answer = client.request(row.method, row.url(), json=body, headers=headers)
                status = answer.status_code
                if expected is not None and status not in expected:
                    problems.append(f"{row.method} {row.path} {what}: {status}, not {expected}")
                if expected is None and (status in {401, 403} or status >= 500):
                    problems.append(f"{row.method} {row.path} {what}: {status} ({answer.text})")
    return problems


def test_every_endpoint_with_every_credential(server: Server) -> None:
    assert walk_table(server, locked=False, revoked=revoked_token(server)) == []


def test_every_endpoint_with_every_credential_when_predict_is_locked(locked: Server) -> None:
    assert walk_table(locked, locked=True, revoked=revoked_token(locked)) == []


# -- who sent a label --------------------------------------------------------------------
def label_senders(home: Path, model: str) -> dict[str, list[tuple[object, str, object]]]:
    with LabelLog(home / "logs") as labels:
        rows = labels.history(model).to_pylist()
    out: dict[str, list[tuple[object, str, object]]] = {}
    for row in rows:
        out.setdefault(row["prediction_id"], []).append(
            (row["label"], row["label_source"], row["label_by"])
        )
    return out


def predict_ids(client: httpx.Client, models: Models, model: str, start: int, n: int) -> list[str]:
    answer = client.post(
        f"/v1/models/{model}/predict", json=records(models.data.iloc[start : start + n])
    )
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()["predictions"]]


def token_id(home: Path, secret: str) -> int:
    with sqlite3.connect(home / "livemodel.db") as db:
        (found,) = db.execute(
            "SELECT id FROM tokens WHERE sha256 = ?", (hash_token(secret),)
        ).fetchone()
    db.close()
    return int(found)


def test_labels_and_verdicts_record_their_sender(
    server: Server, models: Models, admin_token: str
) -> None:
    done = cli(server.home, server.faults, "token", "create", "crm", "--scope", "feedback")
    crm = done.stdout.strip().splitlines()[-1]
    client = server.client()
    ids = predict_ids(client, models, "reviewed", 3900, 3)
    sent = client.post(
        "/v1/models/reviewed/feedback",
        # a client's "source" is its own to choose; the sender is recorded by the server
        json={"labels": [{"id": ids[0], "label": 1, "source": "admin"}]},
        headers={"authorization": f"Bearer {crm}"},
    )
    assert sent.json() == {"accepted": 1, "unknown_ids": []}
    verdict = client.post(
        f"/v1/review/reviewed/{ids[1]}",
        json={"label": 0},
        headers={"authorization": f"Bearer {admin_token}"},
    )
    assert verdict.status_code == 200, verdict.text
    refused = client.post(
        "/v1/models/reviewed/feedback", json={"labels": [{"id": ids[2], "label": 1}]}
    )
    assert refused.status_code == 401
    senders = label_senders(server.home, "reviewed")
    assert senders[ids[0]] == [(1, "admin", f"token:{token_id(server.home, crm)}:crm")]
    admin_id = token_id(server.home, admin_token)
    assert senders[ids[1]] == [(0, "review", f"token:{admin_id}:tests-admin")]
    assert ids[2] not in senders


OPEN_CONFIG = """
[serving]
open_feedback = true
"""


@pytest.fixture(scope="module")
def open_server(
    template_home: Path, faults_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    home = copy_home(template_home, tmp_path_factory.mktemp("open") / "home")
    (home / "open.toml").write_text(OPEN_CONFIG)
    running = start_server(home, faults_dir, config=home / "open.toml")
    yield running
    running.stop()


def test_open_feedback_takes_labels_without_a_token(open_server: Server, models: Models) -> None:
    client = open_server.client()
    ids = predict_ids(client, models, "flights", 3000, 3)
    feedback = "/v1/models/flights/feedback"
    anonymous = client.post(feedback, json={"labels": [{"id": ids[0], "label": 1}]})
    assert anonymous.json() == {"accepted": 1, "unknown_ids": []}
    # A token that is presented must be valid, and is recorded.
    made_up = client.post(
        feedback,
        json={"labels": [{"id": ids[1], "label": 1}]},
        headers={"authorization": "Bearer lm_made-up"},
    )
    assert made_up.status_code == 401
    secret = make_token(open_server.home, "predict")  # any valid token names its sender
    named = client.post(
        feedback,
        json={"labels": [{"id": ids[2], "label": 0}]},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert named.json() == {"accepted": 1, "unknown_ids": []}
    senders = label_senders(open_server.home, "flights")
    assert senders[ids[0]] == [(1, "feedback", "anonymous")]
    assert ids[1] not in senders
    assert senders[ids[2]] == [(0, "feedback", f"token:{token_id(open_server.home, secret)}:tests")]
    # Feedback open does not open the admin routes.
    assert client.get("/v1/review").status_code == 401
