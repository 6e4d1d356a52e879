"""Bearer tokens: made by the CLI, stored hashed, scoped; predict locked when configured.

The locked server runs two workers (see test_workers): auth holds in each.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from livemodel.store.tokens import hash_token

from .conftest import (
    Models,
    Server,
    assert_json_error,
    cli,
    make_token,
    records,
)


@pytest.fixture(scope="module")
def tokens(locked: Server) -> dict[str, str]:
    """One token per scope, made by ``livemodel token create`` (secret on the last line)."""
    made = {"feedback": make_token(locked.home, "feedback")}
    for scope in ("predict", "admin"):
        done = cli(locked.home, locked.faults, "token", "create", f"{scope}-svc", "--scope", scope)
        secret = done.stdout.strip().splitlines()[-1]
        assert secret.startswith("lm_") and len(secret) > 40
        made[scope] = secret
    return made


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def test_tokens_are_stored_only_as_hashes(locked: Server, tokens: dict[str, str]) -> None:
    stored = b"".join(p.read_bytes() for p in locked.home.glob("livemodel.db*"))
    for secret in tokens.values():
        assert secret.encode() not in stored
        assert secret[3:].encode() not in stored  # nor without its prefix
    with sqlite3.connect(locked.home / "livemodel.db") as db:
        hashes = {row[0] for row in db.execute("SELECT sha256 FROM tokens")}
    db.close()
    assert {hash_token(s) for s in tokens.values()} <= hashes
    listed = cli(locked.home, locked.faults, "token", "list", "--json").stdout
    for secret in tokens.values():
        assert secret not in listed
    assert {t["name"] for t in json.loads(listed)} >= {"predict-svc", "admin-svc"}
    assert all("sha256" not in t for t in json.loads(listed))


def test_predict_needs_a_token_when_required(
    locked: Server, tokens: dict[str, str], models: Models
) -> None:
    client = locked.client()
    body = records(models.data.iloc[:2])
    response = client.post("/v1/models/flights/predict", json=body)
    assert_json_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    for header in ("Basic abc", "Bearer", "lm_abc", f"Token {tokens['predict']}"):
        response = client.post(
            "/v1/models/flights/predict", json=body, headers={"authorization": header}
        )
        assert_json_error(response, 401)
    for wrong in ("lm_not-a-token", "x" * 10_000, tokens["predict"] + "x"):
        assert_json_error(
            client.post("/v1/models/flights/predict", json=body, headers=bearer(wrong)), 401
        )
    ok = client.post("/v1/models/flights/predict", json=body, headers=bearer(tokens["predict"]))
    assert ok.status_code == 200, ok.text
    lower = {"authorization": f"bearer {tokens['predict']}"}
    assert client.post("/v1/models/flights/predict", json=body, headers=lower).status_code == 200
    # The admin scope grants every other scope.
    admin = client.post("/v1/models/flights/predict", json=body, headers=bearer(tokens["admin"]))
    assert admin.status_code == 200, admin.text
    # Feedback needs the feedback scope.
    pid = ok.json()["predictions"][0]["id"]
    labels = {"labels": [{"id": pid, "label": 1}]}
    assert_json_error(client.post("/v1/models/flights/feedback", json=labels), 401)
    assert_json_error(
        client.post("/v1/models/flights/feedback", json=labels, headers=bearer(tokens["predict"])),
        403,
    )
    done = client.post(
        "/v1/models/flights/feedback", json=labels, headers=bearer(tokens["feedback"])
    )
    assert done.json() == {"accepted": 1, "unknown_ids": []}
    # So does the Open Inference Protocol; health and metrics stay open for probes.
    infer = {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [0] * 10}]}
    assert_json_error(client.post("/v2/models/flights/infer", json=infer), 401)
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"):
        assert client.get(path).status_code == 200


def test_admin_endpoints_need_the_admin_scope(locked: Server, tokens: dict[str, str]) -> None:
    client = locked.client()
    put = "/v1/models/flights/aliases/production"
    body = {"version": 1, "reason": "security test"}
    assert_json_error(client.put(put, json=body), 401)
    for scope in ("predict", "feedback"):
        error = assert_json_error(client.put(put, json=body, headers=bearer(tokens[scope])), 403)
        assert "admin" in error["message"]
        assert_json_error(client.get("/v1/review", headers=bearer(tokens[scope])), 403)
    response = client.put(put, json=body, headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    assert client.get("/v1/review", headers=bearer(tokens["admin"])).status_code == 200


def test_a_revoked_token_is_refused(locked: Server) -> None:
    secret = make_token(locked.home, "admin")
    with sqlite3.connect(locked.home / "livemodel.db") as db:
        (token_id,) = db.execute(
            "SELECT id FROM tokens WHERE sha256 = ?", (hash_token(secret),)
        ).fetchone()
    db.close()
    cli(locked.home, locked.faults, "token", "revoke", str(token_id))
    # Never used before, so no server cache can still hold it.
    client = locked.client()
    error = assert_json_error(client.get("/v1/review", headers=bearer(secret)), 401)
    assert "revoked" in error["message"]


def test_unknown_scopes_are_refused_by_the_cli(locked: Server) -> None:
    done = cli(locked.home, locked.faults, "token", "create", "x", "--scope", "root", check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "scope" in done.stderr
