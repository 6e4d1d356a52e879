"""Concept-drift detectors: livemodel's against River's at their defaults.

Streams are River's offline synthetic generators with one concept change
(``river.datasets.synth.ConceptDriftStream``): SEA (variant 0 -> 3, the class boundary
moves) and Agrawal (classification function 0 -> 4), abrupt (width 1) and gradual (width
1,000), the change centred at row ``--position`` of ``--length``. The monitored model is
fixed, as a served model is: a River Hoeffding tree trained on ``--train`` rows of the
pre-drift concept (another seed), then frozen; the detectors read its 0/1 error stream,
as livemodel's monitor does.

Per detector and scenario over ``--seeds`` seeds (``--kswin-seeds`` for the slow KSWIN):
the median detection delay (rows from the change's centre to the first detection at or
after its onset, ``position - width``), the share of runs with no detection after the
onset (missed), false alarms (detections before the onset) per 10,000 pre-change rows,
and the cost of one update. livemodel's detectors read the stream as livemodel's monitor
feeds it: the 0/1 errors divided by 0.5; River's read the raw 0/1 errors.

livemodel's detectors are thin wrappers over River's algorithms with other defaults (see
``livemodel.stats.detectors``): ``PageHinkley`` without forgetting, ``delta=0.1``,
``threshold=75``; ``KSWIN`` with ``alpha=1e-6``, a 300-row window; ``ADWIN`` as River's.

Run: ``.venv/bin/python benchmarks/concept_drift.py [--seeds 30] [--write docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from river import drift, tree
from river.datasets import synth

from livemodel.stats.detectors import ADWIN, KSWIN, PageHinkley

BEGIN = "<!-- concept-drift benchmark: begin -->"
END = "<!-- concept-drift benchmark: end -->"


def detectors() -> dict[str, Callable[[], Any]]:
    """Name -> a fresh detector with an ``update(x)`` and a ``drift_detected``."""
    return {
        "livemodel PageHinkley": PageHinkley,
        "livemodel ADWIN": ADWIN,
        "livemodel KSWIN": KSWIN,
        "River PageHinkley": drift.PageHinkley,
        "River ADWIN": drift.ADWIN,
        "River KSWIN": functools.partial(drift.KSWIN, seed=0),
        "River DDM": drift.binary.DDM,
        "River EDDM": drift.binary.EDDM,
        "River HDDM_A": drift.binary.HDDMA,
        "River HDDM_W": drift.binary.HDDMW,
        "River FHDDM": drift.binary.FHDDM,
    }


SCENARIOS: dict[str, tuple[Callable[[int], Any], Callable[[int], Any], int]] = {
    "SEA 0->3 abrupt": (lambda s: synth.SEA(variant=0, seed=s),
                        lambda s: synth.SEA(variant=3, seed=s), 1),
    "SEA 0->3 gradual": (lambda s: synth.SEA(variant=0, seed=s),
                         lambda s: synth.SEA(variant=3, seed=s), 1000),
    "Agrawal 0->4 abrupt": (lambda s: synth.Agrawal(classification_function=0, seed=s),
                            lambda s: synth.Agrawal(classification_function=4, seed=s), 1),
    "Agrawal 0->4 gradual": (lambda s: synth.Agrawal(classification_function=0, seed=s),
                             lambda s: synth.Agrawal(classification_function=4, seed=s), 1000),
}  # fmt: skip


def error_stream(scenario: str, seed: int, length: int, position: int, train: int) -> np.ndarray:
    """The 0/1 errors of a model frozen after ``train`` rows of the pre-drift concept."""
    before, after, width = SCENARIOS[scenario]
    model = tree.HoeffdingTreeClassifier()
    for x, y in before(10_000 + seed).take(train):
        model.learn_one(x, y)
    if width <= 1:  # River's sigmoid overflows at width 1: the abrupt change is a cut
        stream: Any = itertools.chain(
            before(seed).take(position), after(seed + 20_000).take(length - position)
        )
    else:
        stream = synth.ConceptDriftStream(
            stream=before(seed), drift_stream=after(seed), position=position, width=width,
            seed=seed,
        ).take(length)  # fmt: skip
    return np.array([float(model.predict_one(x) != y) for x, y in stream])


def score(errors: np.ndarray, make: Callable[[], Any], position: int, width: int) -> dict[str, Any]:
    """Feed ``errors``; a detection before the onset (``position - width``: River's sigmoid
    already mixes in the new concept before its centre) is a false alarm."""
    detector = make()
    found = []
    start = time.perf_counter()
    for i, x in enumerate(errors.tolist()):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    seconds = time.perf_counter() - start
    onset = position - (width if width > 1 else 0)
    after = [i for i in found if i >= onset]
    return {
        "false": sum(i < onset for i in found),
        "delay": after[0] - position if after else None,
        "us": 1e6 * seconds / max(len(errors), 1),
        "onset": onset,
    }


def run(
    seeds: int, length: int, position: int, train: int, kswin_seeds: int
) -> list[dict[str, Any]]:
    rows = []
    makers = detectors()
    for scenario, (_, _, width) in SCENARIOS.items():
        per: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}
        errors_before, errors_after = [], []
        for seed in range(seeds):
            errors = error_stream(scenario, seed, length, position, train)
            errors_before.append(float(errors[: position - width].mean()))
            errors_after.append(float(errors[position + width :].mean()))
            # livemodel feeds its detectors the 0/1 errors divided by 0.5, the largest
            # standard deviation of a 0/1 variable (livemodel.monitor.concept.error_scale).
            scaled = errors / 0.5
            for name, make in makers.items():
                if "KSWIN" in name and seed >= kswin_seeds:
                    continue  # about 2.5 ms per update: fewer runs
                mine = name.startswith("livemodel")
                per[name].append(score(scaled if mine else errors, make, position, width))
        for name, results in per.items():
            if not results:
                continue
            delays = [r["delay"] for r in results if r["delay"] is not None]
            pre_rows = sum(r["onset"] for r in results)
            rows.append({
                "scenario": scenario,
                "error": f"{statistics.median(errors_before):.3f} -> "
                         f"{statistics.median(errors_after):.3f}",
                "detector": name,
                "median_delay": statistics.median(delays) if delays else None,
                "runs": len(results),
                "missed": 1 - len(delays) / len(results),
                "false_per_10k": 10_000 * sum(r["false"] for r in results) / max(pre_rows, 1),
                "runs_with_false": sum(r["false"] > 0 for r in results) / len(results),
                "us": statistics.median(r["us"] for r in results),
            })  # fmt: skip
        print(f"{scenario}: done", flush=True)
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
            f"at the end {load}")  # fmt: skip


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        BEGIN,
        "## Concept drift: livemodel's detectors against River's",
        "",
        f"`benchmarks/concept_drift.py --seeds {args.seeds}`, {now}; {machine()}.",
        f"Streams of {args.length:,} rows, the change centred at row {args.position:,} "
        "(abrupt: the new concept's stream from that row on; gradual: River's "
        "`ConceptDriftStream`, width 1,000); the monitored model is a "
        f"Hoeffding tree trained on {args.train:,} rows of the old concept, then frozen; "
        "detectors read its 0/1 error stream. Delay: rows from the change's centre to the "
        "first detection after its onset (median over the runs that detected); the onset of a "
        "gradual change is one width before its centre. livemodel's detectors read the 0/1 "
        "errors divided by 0.5, as its monitor does; River's read the raw 0/1 errors. Missed: "
        "share of runs with no detection after the onset. False alarms: detections before "
        "the onset, per 10,000 pre-change rows, and the share of runs with any.",
        "",
        "| scenario | error before -> after | detector | runs | median delay | missed | false "
        "alarms / 10k rows | runs with a false alarm | µs / update |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delay = "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}"
        out.append(
            f"| {r['scenario']} | {r['error']} | {r['detector']} | {r['runs']} | {delay} | "
            f"{100 * r['missed']:.0f}% | {r['false_per_10k']:.2f} | "
            f"{100 * r['runs_with_false']:.0f}% | {r['us']:.1f} |"
        )
    out.append(END)
    return "\n".join(out)


def write(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + text + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--length", type=int, default=10_000)
    parser.add_argument("--position", type=int, default=5_000)
    parser.add_argument("--train", type=int, default=2_000)
    parser.add_argument("--kswin-seeds", type=int, default=5, help="KSWIN is slow: fewer runs")
    parser.add_argument("--write", type=Path, default=None, help="docs/benchmarks.md")
    args = parser.parse_args()
    rows = run(args.seeds, args.length, args.position, args.train, args.kswin_seeds)
    text = table(rows, args)
    print(text)
    if args.write is not None:
        write(args.write, text)


if __name__ == "__main__":
    main()
