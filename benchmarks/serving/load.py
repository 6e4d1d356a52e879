"""Load generation from separate processes: ``wrk`` for throughput, our client for latency.

``wrk`` (C, epoll) sustains far more requests per second than any Python client on one core, and
its request and error counts are exact: it gives the throughput. Its latency percentiles are not
used: after a run it adds synthetic samples for coordinated omission, which inflates the tail of
a saturated closed loop. Latency percentiles come from ``latency_client.py``, which times every
request. Every response's status is checked by both: anything but 200 is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from serving.procs import pinned, run_boosted

LATENCY_CLIENT = Path(__file__).with_name("latency_client.py")

# Counts statuses per thread (response() runs per response) and prints one JSON line at the end.
_WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "ok": %%d, "bad": %%d, "connect": %%d, ' ..
    '"read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, o, b, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Throughput:
    rps: float
    requests: int
    errors: int
    detail: str


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    rps: float
    requests: int
    errors: int
    detail: str


def ensure_wrk() -> str | None:
    """Path of ``wrk``; installs Debian's package when missing and running as root."""
    found = shutil.which("wrk")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    return shutil.which("wrk")


def probe(url: str, body: bytes) -> str:
    """POST once; return the body, or raise ``RuntimeError`` unless 200 with probabilities."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text: str = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise RuntimeError(f"predict answered {exc.code}: {detail}") from exc
    except OSError as exc:
        raise RuntimeError(f"predict failed: {exc}") from exc
    if not any(ch.isdigit() for ch in text) or "." not in text:
        raise RuntimeError(f"predict answered 200 without probabilities: {text[:300]}")
    return text


def run_wrk(
    wrk: str,
    url: str,
    body: bytes,
    *,
    concurrency: int,
    seconds: float,
    cpus: str | None,
    nice: int = 0,
) -> Throughput:
    """A closed loop of ``concurrency`` connections on one wrk thread for ``seconds``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA % body.decode())
    cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
    cmd += ["-s", script.name, url]
    try:
        result = run_boosted(pinned(cmd, cpus, nice), nice, timeout=seconds + 60)
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {(result.stderr or result.stdout)[-300:]}")
    data = json.loads(line.removeprefix("WRKJSON "))
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    errors = data["bad"] + socket_errors
    seconds_run = data["duration_us"] / 1e6
    detail = f"non-200 {data['bad']}, socket errors {socket_errors}"
    return Throughput(data["requests"] / seconds_run, data["requests"], errors, detail)


def run_latency(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    cpus: str | None,
    nice: int = 0,
    max_requests: int = 500_000,
) -> Latency:
    """Per-request timing from ``latency_client.py`` in its own process."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as handle:
        handle.write(body)
    cmd = [sys.executable, str(LATENCY_CLIENT), "--url", url, "--body-file", handle.name]
    cmd += ["--concurrency", str(concurrency), "--warmup", str(warmup)]
    cmd += ["--duration", str(seconds), "--max-requests", str(max_requests)]
    try:
        result = run_boosted(pinned(cmd, cpus, nice), nice, timeout=warmup + seconds + 60)
    finally:
        Path(handle.name).unlink(missing_ok=True)
    if result.returncode != 0:
        raise RuntimeError(f"latency client failed: {result.stderr.strip()[-300:]}")
    data = json.loads(result.stdout)
    detail = f"statuses {data['statuses']}, exceptions {data['exceptions']}"
    if data["errors"]:
        detail += f", sample {data['sample_body'][:120]!r}"
    return Latency(
        data["p50_ms"], data["p99_ms"], data["rps"], data["requests"], data["errors"], detail
    )
