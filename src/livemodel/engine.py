"""Where large batch work runs: in this process (``local``) or on a Ray cluster (``ray``).

Batch work in livemodel is always written as a pure function applied to independent
partitions (a group of log segments, a slice of an input file) whose results merge on
the driver. :func:`map_partitions` runs such a function either in a loop here or as Ray
Data tasks, so both engines compute the same numbers by construction and the local
engine is the reference the Ray one is tested against.

Ray is an optional extra (``pip install 'livemodel[ray]'``); it is imported only when
the ``ray`` engine is asked for, and its absence is a :class:`ConfigError` saying how to
install it. :func:`ray_session` joins the cluster at ``address`` (or
``LIVEMODEL_RAY_ADDRESS``; ``auto`` finds a running one) and otherwise starts a local one
with the cores of this machine, which it shuts down afterwards.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

from livemodel.errors import ConfigError, InvalidInputError

__all__ = [
    "ENGINES",
    "check_engine",
    "iter_partitions",
    "map_partitions",
    "ray_module",
    "ray_session",
]

ENGINES = ("local", "ray")
INSTALL_HINT = "pip install 'livemodel[ray]'"
LOOPBACK = ("localhost", "127.0.0.1", "::1")  # the hosts Ray replaces (is_localhost)
T = TypeVar("T")
R = TypeVar("R")


def check_engine(engine: object) -> str:
    """``engine`` if it names an engine, else an :class:`InvalidInputError`."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    return engine


def ray_module() -> ModuleType:
    """The ``ray`` package, or a :class:`ConfigError` naming the extra to install."""
    try:
        import ray
        import ray.data  # Ray Data is what the engine uses
    except ImportError as exc:
        raise ConfigError(
            f"the ray engine needs Ray with Ray Data, which is not installed ({exc}): "
            f"{INSTALL_HINT}, or use --engine local"
        ) from exc
    return ray


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_mb: int = 512,
) -> Iterator[ModuleType]:
    """A connected ``ray`` module: the running session, a cluster, or a local one."""
    ray = ray_module()
    address = address or os.environ.get("LIVEMODEL_RAY_ADDRESS") or None
    if address is not None:
        _check_reachable(address, ray)
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "ignore_reinit_error": True,
        "logging_level": logging.WARNING,
    }
    if address is None:
        # "local": a new cluster even when another one runs on this machine (without an
        # address Ray would join the latest one started by `ray start`).
        options["num_cpus"] = num_cpus or os.cpu_count() or 1
        options["object_store_memory"] = object_store_mb * 1024 * 1024
    try:
        ray.init(address=address or "local", **options)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        raise ConfigError(f"cannot start or join {where}: {exc}") from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # e.g. "progress bars disabled"
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, ray: ModuleType) -> None:
    """A clear error at once for a cluster address nothing answers at (``ray.init`` would
    retry for minutes); ``auto`` is left to Ray.

    For a loopback HOST:PORT Ray dials this machine's network address instead, which a
    cluster bound to the loopback only (``ray start --node-ip-address 127.0.0.1``) does
    not answer at: that is checked too."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    host = host.strip("[]")
    try:
        grpc = _speaks_grpc(host, int(port))
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc
    if not grpc:  # e.g. Redis on 6379, the dashboard on 8265: Ray would retry for minutes
        raise ConfigError(
            f"what answers at {address!r} is not a Ray cluster (no gRPC server): give the "
            "head node's GCS address (`ray start --head --port`, 6379 by default) or "
            "ray://HOST:PORT of its Ray Client server"
        )
    if address.startswith("ray://") or host not in LOOPBACK:
        return
    dialled = str(ray.util.get_node_ip_address())
    if dialled in LOOPBACK:
        return
    try:
        socket.create_connection((dialled, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot join the Ray cluster at {address!r}: Ray dials it at this machine's "
            f"address {dialled}, where nothing answers ({exc}); a cluster bound to {host} "
            "only cannot be joined"
        ) from exc


# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with a
# SETTINGS frame of its own (RFC 9113, 3.4), anything else with other bytes or nothing.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether an HTTP/2 (gRPC) server answers at ``host:port``, as Ray's GCS and Ray
    Client servers do; an :class:`OSError` if nothing accepts the connection."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        try:
            conn.sendall(_HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except OSError:  # silent (timed out) or reset: not a gRPC server
            return False
    return len(head) == 9 and head[3] == 4  # frame type 4: SETTINGS


def map_partitions(
    fn: Callable[[T], R],
    partitions: Sequence[T],
    *,
    engine: str = "local",
    address: str | None = None,
) -> list[R]:
    """``[fn(p) for p in partitions]``, here or as one Ray Data task per partition.

    ``fn`` and the partitions must pickle (a module-level function and plain data);
    results come back in the order of ``partitions``.
    """
    done = dict(iter_partitions(fn, partitions, engine=engine, address=address))
    return [done[i] for i in range(len(partitions))]


def iter_partitions(
    fn: Callable[[T], R],
    partitions: Sequence[T],
    *,
    engine: str = "local",
    address: str | None = None,
) -> Iterator[tuple[int, R]]:
    """``(index, fn(partition))`` as each finishes: in order here, about in order on Ray.

    A consumer that folds results as they come holds one result at a time, not all."""
    if check_engine(engine) == "local":
        for i, p in enumerate(partitions):
            yield i, fn(p)
        return
    if not partitions:
        return
    with ray_session(address) as ray:
        # Ray Data keeps part of the cluster for each operator by default, which on a
        # small cluster leaves one map task running at a time.
        ray.data.DataContext.get_current().op_resource_reservation_enabled = False
        items = [{"i": i, "p": pickle.dumps(p)} for i, p in enumerate(partitions)]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))

        def run(row: dict[str, Any]) -> dict[str, Any]:
            return {"i": row["i"], "r": pickle.dumps(fn(pickle.loads(row["p"])))}

        for row in dataset.map(run).iter_rows():
            yield int(row["i"]), pickle.loads(row["r"])
