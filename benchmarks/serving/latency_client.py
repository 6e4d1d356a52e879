"""Closed-loop HTTP/1.1 load with per-request timing: run as its own process, prints JSON.

``wrk`` counts requests soundly, but after a run it "corrects" its latency histogram for
coordinated omission by adding synthetic samples whenever a request took more than twice the
mean interval, which inflates the tail when the server is saturated. This client times every
request itself (``perf_counter_ns`` from writing the request to reading the last body byte) over
``concurrency`` keep-alive connections and reports exact percentiles of those samples. It speaks
just enough HTTP/1.1 (Content-Length and chunked bodies) and uses uvloop when present, so its own
per-request cost stays in the tens of microseconds.

    python latency_client.py --url http://127.0.0.1:8000/p --body-file body.json \\
        --concurrency 32 --warmup 2 --duration 10 --max-requests 500000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit


class _Run:
    def __init__(self, deadline_warm: float, deadline_end: float, max_requests: int) -> None:
        self.deadline_warm = deadline_warm
        self.deadline_end = deadline_end
        self.max_requests = max_requests
        self.latencies_ns: list[int] = []
        self.statuses: Counter[int] = Counter()
        self.exceptions: Counter[str] = Counter()
        self.sent = 0
        self.sample_body = b""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = -1
    chunked = False
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif length >= 0:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        close = True
    return status, body, close


async def _connection(host: str, port: int, request: bytes, run: _Run) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < run.deadline_end and run.sent < run.max_requests:
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            run.sent += 1
            start = time.perf_counter_ns()
            writer.write(request)
            status, body, close = await _read_response(reader)
            elapsed = time.perf_counter_ns() - start
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            if time.monotonic() >= run.deadline_warm:
                run.exceptions[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        if time.monotonic() >= run.deadline_warm:
            run.latencies_ns.append(elapsed)
            run.statuses[status] += 1
            if not run.sample_body or status != 200:
                run.sample_body = body[:300]
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def _percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not sorted_ns:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_ns)))
    return sorted_ns[min(rank, len(sorted_ns)) - 1] / 1e6


async def _main(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = Path(args.body_file).read_bytes()
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    now = time.monotonic()
    run = _Run(now + args.warmup, now + args.warmup + args.duration, args.max_requests)
    await asyncio.gather(*(_connection(host, port, request, run) for _ in range(args.concurrency)))
    elapsed = time.monotonic() - run.deadline_warm
    latencies = sorted(run.latencies_ns)
    ok = run.statuses.get(200, 0)
    return {
        "requests": len(latencies),
        "ok": ok,
        "errors": len(latencies) - ok + sum(run.exceptions.values()),
        "statuses": {str(k): v for k, v in run.statuses.items()},
        "exceptions": dict(run.exceptions),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(latencies, 50),
        "p90_ms": _percentile(latencies, 90),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "sample_body": run.sample_body.decode("utf-8", "replace"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=500_000)
    args = parser.parse_args()
    try:
        import uvloop

        result = uvloop.run(_main(args))
    except ImportError:
        result = asyncio.run(_main(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
