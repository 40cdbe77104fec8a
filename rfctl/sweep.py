"""Map a function over a parameter grid × seeds: locally or on a Dask cluster.

>>> def job(n_users, seed):            # doctest: +SKIP
...     return {"power": solve(n_users, seed)}
>>> res = sweep(job, {"n_users": [2, 4]}, seeds=range(10))   # doctest: +SKIP
>>> res.to_csv("fig11.csv")                                   # doctest: +SKIP

The function is called as ``fn(**params, seed=seed)`` and returns a mapping of result
fields (or a scalar, stored as ``value``). Each record is ``params | {"seed": s} | result``
(a failed point records ``error`` instead, and the sweep goes on). Points run in a local
process pool by default (``workers`` processes; 1 runs in-process, for debugging), or on
a Dask distributed cluster when ``scheduler`` is an address such as
``tcp://10.0.0.5:8786`` or a ``dask.distributed.Client``. Progress is reported through
an optional ``progress(done, total)`` callback; :class:`ProgressBar` draws one on a text
stream of the caller's choosing (the CLI and the sims use stderr).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rfctl.config import write_text_output
from rfctl.errors import ConfigError, RfctlError

__all__ = ["ProgressBar", "SweepAbortedError", "SweepResult", "grid_points", "sweep"]

DEFAULT_CONNECT_TIMEOUT_S = 10.0
"""Default bound on connecting to a Dask scheduler, s."""
DEFAULT_NO_WORKER_TIMEOUT_S = 60.0
"""Default bound on waiting with no Dask worker alive (or no scheduler reply), s."""
MAX_POINTS = 1_000_000
"""Most points of one sweep (grid × seeds), checked before any is built."""

log = logging.getLogger(__name__)


def grid_points(grid: Mapping[str, Sequence[Any]], seeds: Iterable[int]) -> list[dict[str, Any]]:
    """Every combination of the grid's values with every seed, in a stable order.

    Returns
    -------
    list of dict
        Parameter dicts including ``seed``; grid keys vary slowest-first as given.
    """
    keys = list(grid)
    if "seed" in keys:
        raise ConfigError("'seed' is reserved for the seeds argument", field="grid.seed",
                          reason="reserved name")
    seeds = list(seeds)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0:
            raise ConfigError(f"seeds: {s!r} is not a non-negative integer", field="seeds",
                              reason="not a seed")
    total = len(seeds)
    for k in keys:
        total *= len(grid[k])
    if total > MAX_POINTS:
        raise ConfigError(f"grid × seeds has {total} points, more than {MAX_POINTS}",
                          field="grid", reason="too many points")
    pts = []
    for combo in itertools.product(*(list(grid[k]) for k in keys)):
        for s in seeds:
            pts.append({**dict(zip(keys, combo, strict=True)), "seed": int(s)})
    return pts


def _call(fn: Callable[..., Any], point: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        out = fn(**point)
    except Exception as exc:  # recorded, the sweep continues
        return {**point, "error": f"{type(exc).__name__}: {exc}",
                "elapsed_s": time.perf_counter() - t0}
    if not isinstance(out, Mapping):
        out = {"value": out}
    return {**point, **out, "elapsed_s": time.perf_counter() - t0}


@dataclass
class SweepResult:
    """Records of a sweep, one per (grid point, seed), in grid order.

    Attributes
    ----------
    records : list of dict
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Records whose call raised."""
        return [r for r in self.records if "error" in r]

    def column(self, name: str) -> list[Any]:
        """Field ``name`` of every record, in order (None where a record lacks it)."""
        return [r.get(name) for r in self.records]

    def to_json(self, path: str | Path) -> None:
        """Write the records as a JSON list (raises :class:`OutputError` on failure)."""
        write_text_output(path, json.dumps(self.records, indent=1, default=_jsonable),
                          what="sweep results")

    def to_csv(self, path: str | Path) -> None:
        """Write the records as CSV (raises :class:`OutputError` on failure)."""
        cols: list[str] = []
        for r in self.records:
            for k in r:
                if k not in cols:
                    cols.append(k)
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for r in self.records:
            w.writerow({k: _jsonable(v) if not isinstance(v, str | int | float) else v
                        for k, v in r.items()})
        write_text_output(path, buf.getvalue(), what="sweep results")


class SweepAbortedError(RfctlError):
    """A distributed sweep could not finish (no workers, scheduler lost).

    Attributes
    ----------
    result : SweepResult
        The records of the points that did finish (grid order).
    address : str
        The scheduler address.
    """

    def __init__(self, message: str, *, result: SweepResult, address: str) -> None:
        super().__init__(message)
        self.result = result
        self.address = address


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


class ProgressBar:
    """A text progress bar for :func:`sweep` on an explicit stream.

    Parameters
    ----------
    stream : TextIO
        Where to draw (the caller chooses; the library never writes to stdout itself).
    width : int
        Bar width in characters.
    """

    def __init__(self, stream: TextIO, width: int = 30, label: str = "sweep") -> None:
        self.stream = stream
        self.width = width
        self.label = label
        self._t0 = time.perf_counter()
        isatty = getattr(stream, "isatty", None)
        self._tty = bool(isatty()) if isatty is not None else False
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        """Draw ``done`` of ``total``: redrawn in place on a terminal; elsewhere (a log
        file, a pipe) one line per tenth of the run, so logs stay short."""
        if not self._tty:
            step = total // 10 if total >= 10 else 1
            if done != total and (done % step or done == self._last):
                return
            self._last = done
        frac = done / total if total else 1.0
        n = round(frac * self.width)
        el = time.perf_counter() - self._t0
        eta = el / done * (total - done) if done else float("nan")
        line = (f"{self.label} [{'#' * n}{'.' * (self.width - n)}] "
                f"{done}/{total} {el:6.1f}s eta {eta:6.1f}s")
        if self._tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _describe(exc: BaseException | None) -> str:
    """``Type: message`` of an exception and of its causes, on one line."""
    parts = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(parts) < 4:
        seen.add(id(exc))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        parts.append(f"{type(exc).__name__}: {first}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts) if parts else "failed (no exception reported)"


def _probe_tcp(address: str, timeout_s: float) -> None:
    """Check that a ``tcp://host:port`` address answers like a Dask scheduler.

    A Dask server sends its handshake as soon as it accepts a connection; a silent
    server (or none) is refused here, within ``timeout_s``, without starting a Dask
    client that could be left hanging. A refused connection is retried until the
    deadline (the scheduler may still be starting).
    """
    import socket

    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port_text = hostport.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"scheduler: {address!r} has no port (expected tcp://host:port)",
                          field="scheduler", reason="bad address") from None
    if not host or not 0 < port < 65536:
        raise ConfigError(f"scheduler: {address!r} is not a host:port address",
                          field="scheduler", reason="bad address")
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            why = last.strerror if last is not None and last.strerror else str(last)
            raise RfctlError(f"Dask scheduler {address}: cannot connect within "
                             f"{timeout_s:g} s ({why})")
        try:
            with socket.create_connection((host, port), timeout=left) as sock:
                sock.settimeout(max(deadline - time.monotonic(), 0.05))
                try:
                    first = sock.recv(8)
                except TimeoutError:
                    raise RfctlError(
                        f"Dask scheduler {address}: connected, but no Dask handshake within "
                        f"{timeout_s:g} s (is it a Dask scheduler?)") from None
                if not first:
                    raise RfctlError(f"Dask scheduler {address}: the server closed the "
                                     "connection without a Dask handshake (not a Dask "
                                     "scheduler?)")
                return
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            last = exc
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
        except TimeoutError as exc:
            last = exc
        except OSError as exc:  # unknown host, unreachable network
            raise RfctlError(f"Dask scheduler {address}: cannot connect: "
                             f"{exc.strerror or exc}") from None


def _connect(address: str, timeout_s: float) -> Any:
    """A Dask client for ``address``, or an :class:`RfctlError` within ``timeout_s``."""
    from dask.distributed import Client

    if address.startswith("tcp://") or "://" not in address:
        _probe_tcp(address, timeout_s)

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["client"] = Client(address, timeout=timeout_s, set_as_default=False)
        except BaseException as exc:  # reported below, whatever it is
            box["error"] = exc

    # Connecting runs in a daemon thread with a hard deadline: a server that accepts the
    # connection but never speaks the Dask protocol must not hang the caller.
    th = threading.Thread(target=run, name="rfctl-dask-connect", daemon=True)
    th.start()
    th.join(timeout_s + 1.0)
    if th.is_alive():
        raise RfctlError(f"Dask scheduler {address}: no answer within {timeout_s:g} s "
                         "(is it a Dask scheduler?)")
    exc = box.get("error")
    if exc is None:
        return box["client"]
    if isinstance(exc, MemoryError | EOFError | ValueError | TypeError) or \
            "deserializ" in str(exc).lower():
        why = "the server does not speak the Dask protocol (not a Dask scheduler?)"
    elif isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
        why = f"no connection within {timeout_s:g} s ({str(exc)[:200]})"
    else:
        why = f"{type(exc).__name__}: {exc}"
    raise RfctlError(f"Dask scheduler {address}: cannot connect: {why}") from None


def _dask_sweep(
    fn: Callable[..., Any],
    points: list[dict[str, Any]],
    scheduler: Any,
    results: list[dict[str, Any] | None],
    tick: Callable[[], None],
    connect_timeout_s: float,
    no_worker_timeout_s: float,
) -> None:
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise RfctlError("a Dask scheduler needs the 'dist' extra: "
                         "pip install 'rfctl[dist]'") from None
    if isinstance(scheduler, Client):
        client, address = scheduler, str(scheduler.scheduler.address)
    else:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ConfigError(f"scheduler: expected an address such as tcp://host:8786 or a "
                              f"Client, got {scheduler!r}", field="scheduler",
                              reason="bad address")
        address = scheduler
        client = _connect(address, connect_timeout_s)
    poll_s = min(1.0, no_worker_timeout_s / 4)
    try:
        try:
            futs = [client.submit(_call, fn, pt, pure=False) for pt in points]
        except Exception as exc:
            raise RfctlError(f"Dask scheduler {address}: cannot submit the job "
                             f"({type(exc).__name__}: {exc})") from None
        index = {f.key: i for i, f in enumerate(futs)}
        pending = set(futs)
        queue = dask_completed(futs, loop=client.loop)
        idle_since: float | None = None
        last_check = time.monotonic()
        cancelled = 0

        def _aborted(why: str, *, cancel: bool = True) -> SweepAbortedError:
            recs = [r for r in results if r is not None]
            if cancel and pending:
                # free the cluster, but never wait on it longer than the connect bound
                def run() -> None:
                    try:
                        client.cancel(list(pending))
                    except Exception as exc:  # the scheduler may be gone already
                        log.debug("sweep: cancel failed: %s", exc)

                th = threading.Thread(target=run, name="rfctl-dask-cancel", daemon=True)
                th.start()
                th.join(connect_timeout_s)
            return SweepAbortedError(
                f"{why}; {len(points) - len(recs)} of {len(points)} points unfinished "
                f"(the {len(recs)} finished are in .result)",
                result=SweepResult(records=recs), address=address)

        while pending:
            done = queue.next_batch(block=False)
            if not done:
                time.sleep(0.05)
            for fut in done:
                i = index[fut.key]
                if fut.status in ("pending", "lost"):
                    # finished on a worker that died before the result was fetched: the
                    # scheduler recomputes it; wait for it again
                    queue.add(fut)
                    continue
                if fut.status == "cancelled":  # the scheduler dropped it (connection lost)
                    cancelled += 1
                    continue
                pending.discard(fut)
                if fut.status == "finished":
                    try:
                        results[i] = fut.result()
                    except Exception as exc:  # result could not be fetched/deserialised
                        results[i] = {**points[i], "error": f"{type(exc).__name__}: {exc}"}
                else:  # erred on the worker (import failure, KilledWorker) or cancelled
                    try:
                        msg = _describe(fut.exception(timeout=connect_timeout_s))
                    except Exception as exc2:
                        msg = f"{fut.status}: {type(exc2).__name__}: {exc2}"
                    results[i] = {**points[i], "error": msg}
                tick()
            if cancelled:
                raise _aborted(f"Dask scheduler {address}: the scheduler cancelled {cancelled} "
                               "task(s) (connection lost or scheduler restarted)",
                               cancel=False)
            if done:
                idle_since = None
            if not pending or done or time.monotonic() - last_check < poll_s:
                continue
            last_check = time.monotonic()
            try:
                n_workers = len(client.nthreads(callback_timeout=connect_timeout_s))
                why = "no workers"
            except Exception as exc:
                n_workers, why = 0, f"scheduler not answering ({type(exc).__name__})"
            if n_workers:
                idle_since = None
                continue
            now = time.monotonic()
            if idle_since is None:
                idle_since = now
                log.warning("sweep: %s at %s; waiting up to %g s", why, address,
                            no_worker_timeout_s)
            elif now - idle_since > no_worker_timeout_s:
                raise _aborted(f"Dask scheduler {address}: {why} for "
                               f"{no_worker_timeout_s:g} s", cancel=why == "no workers")
    finally:
        if client is not scheduler:
            try:
                client.close(timeout=connect_timeout_s)
            except Exception as exc:  # closing a client of a dead cluster
                log.debug("sweep: closing the Dask client failed: %s", exc)


def sweep(
    fn: Callable[..., Any],
    grid: Mapping[str, Sequence[Any]],
    seeds: Iterable[int] = (0,),
    *,
    workers: int | None = None,
    scheduler: Any = None,
    progress: Callable[[int, int], None] | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    no_worker_timeout_s: float = DEFAULT_NO_WORKER_TIMEOUT_S,
) -> SweepResult:
    """Run ``fn`` over ``grid`` × ``seeds``.

    Parameters
    ----------
    fn : callable
        Picklable (module-level) function ``fn(**params, seed=...)``.
    grid : mapping of str to sequence
        Parameter values.
    seeds : iterable of int
        Seeds; each grid point runs once per seed.
    workers : int, optional
        Local processes (default: ``os.cpu_count()``); 1 runs in this process.
    scheduler : str or dask.distributed.Client, optional
        Run on a Dask cluster instead (needs ``pip install rfctl[dist]``).
    progress : callable, optional
        Called as ``progress(done, total)`` after each point.
    connect_timeout_s : float
        Bound on connecting to the Dask scheduler, s (default 10).
    no_worker_timeout_s : float
        Bound on waiting while the cluster has no worker (or the scheduler does not
        answer), s (default 60); then :class:`SweepAbortedError`. A warning is logged
        when the wait starts.

    Returns
    -------
    SweepResult
        Records in grid order (not completion order). A point whose call raised — or,
        on Dask, whose task failed (job not importable on the worker, worker killed too
        often) — records ``error`` instead, as in the local pool.

    Raises
    ------
    RfctlError
        Dask scheduler unreachable or not a Dask scheduler (naming the address),
        within ``connect_timeout_s`` (+ 1 s hard margin).
    SweepAbortedError
        No Dask worker for ``no_worker_timeout_s``; carries the finished records.
    ConfigError
        Bad grid, seeds or timeouts.
    """
    for name, val, hi in (("connect_timeout_s", connect_timeout_s, 3600.0),
                          ("no_worker_timeout_s", no_worker_timeout_s, 86400.0)):
        if isinstance(val, bool) or not isinstance(val, int | float) or not 0 < val <= hi:
            raise ConfigError(f"{name}: must be a number in (0, {hi:g}] s, got {val!r}",
                              field=name, reason="out of range")
    points = grid_points(grid, seeds)
    total = len(points)
    results: list[dict[str, Any] | None] = [None] * total
    done = 0

    def _tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    if scheduler is not None:
        _dask_sweep(fn, points, scheduler, results, _tick, float(connect_timeout_s),
                    float(no_worker_timeout_s))
    else:
        n = workers or os.cpu_count() or 1
        if n == 1:
            for i, pt in enumerate(points):
                results[i] = _call(fn, pt)
                _tick()
        else:
            with ProcessPoolExecutor(max_workers=n) as ex:
                futs = {ex.submit(_call, fn, pt): i for i, pt in enumerate(points)}
                for fut in as_completed(futs):
                    i = futs[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:  # pickling, a crashed worker process
                        results[i] = {**points[i], "error": f"{type(exc).__name__}: {exc}"}
                    _tick()
    recs = [r for r in results if r is not None]
    n_err = sum("error" in r for r in recs)
    if n_err:
        log.warning("sweep: %d of %d points raised (see the records' 'error' field)",
                    n_err, total)
    return SweepResult(records=recs)
