"""Load generator run as its own process by the serving tests (not a test module).

Sends predict requests from several threads until ``--seconds`` pass or ``--max-requests``
are sent, and appends one JSON line per outcome to ``--out`` as soon as it is known (flushed
each time, so a line survives whatever happens to the server):

- ``{"ok": true, "thread": int, "ids": [...], "versions": [...]}`` for each 200 answer;
- ``{"ok": false, "status": int | null, "error": str}`` for anything else.

It stops early when ``--stop-file`` exists. After ``--stop-after-errors`` consecutive
transport errors in a thread (the server is gone) that thread stops.

    python loadgen.py URL MODEL RECORDS.json OUT.jsonl --seconds 4 --threads 4
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import httpx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("model")
    parser.add_argument("records", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--max-rows", type=int, default=3)
    parser.add_argument("--stop-after-errors", type=int, default=3)
    parser.add_argument("--stop-file", type=Path, default=None)
    args = parser.parse_args()

    pool: list[dict[str, Any]] = json.loads(args.records.read_text())
    lock = threading.Lock()
    budget = [args.max_requests]
    deadline = time.monotonic() + args.seconds

    def take() -> bool:
        if args.stop_file is not None and args.stop_file.exists():
            return False
        with lock:
            budget[0] -= 1
            return budget[0] >= 0

    def write(sink: TextIO, line: dict[str, Any]) -> None:
        with lock:
            sink.write(json.dumps(line) + "\n")
            sink.flush()

    def worker(seed: int, sink: TextIO) -> None:
        rng = random.Random(seed)
        errors = 0
        with httpx.Client(base_url=args.url, timeout=20) as client:
            while time.monotonic() < deadline and take():
                batch = rng.sample(pool, rng.randint(1, args.max_rows))
                try:
                    response = client.post(f"/v1/models/{args.model}/predict", json=batch)
                except httpx.TransportError as exc:
                    write(sink, {"ok": False, "status": None, "error": type(exc).__name__})
                    errors += 1
                    if errors >= args.stop_after_errors:
                        return
                    time.sleep(0.05)
                    continue
                errors = 0
                if response.status_code == 200:
                    rows = response.json()["predictions"]
                    write(
                        sink,
                        {
                            "ok": True,
                            "thread": seed,
                            "ids": [r["id"] for r in rows],
                            "versions": [r["version"] for r in rows],
                        },
                    )
                else:
                    write(
                        sink,
                        {"ok": False, "status": response.status_code, "error": response.text[:200]},
                    )

    with args.out.open("a", encoding="utf-8") as sink:
        threads = [
            threading.Thread(target=worker, args=(i, sink), daemon=True)
            for i in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 60)


if __name__ == "__main__":
    main()
