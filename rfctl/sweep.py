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
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rfctl.errors import ConfigError, RfctlError

__all__ = ["ProgressBar", "SweepResult", "grid_points", "sweep"]

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
        return [r.get(name) for r in self.records]

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.records, indent=1, default=_jsonable),
                              encoding="utf-8")

    def to_csv(self, path: str | Path) -> None:
        cols: list[str] = []
        for r in self.records:
            for k in r:
                if k not in cols:
                    cols.append(k)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for r in self.records:
                w.writerow({k: _jsonable(v) if not isinstance(v, str | int | float) else v
                            for k, v in r.items()})


def _jsonable(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
    except ImportError:  # pragma: no cover
        pass
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

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        n = round(frac * self.width)
        el = time.perf_counter() - self._t0
        eta = el / done * (total - done) if done else float("nan")
        self.stream.write(f"\r{self.label} [{'#' * n}{'.' * (self.width - n)}] "
                          f"{done}/{total} {el:6.1f}s eta {eta:6.1f}s")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def sweep(
    fn: Callable[..., Any],
    grid: Mapping[str, Sequence[Any]],
    seeds: Iterable[int] = (0,),
    *,
    workers: int | None = None,
    scheduler: Any = None,
    progress: Callable[[int, int], None] | None = None,
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

    Returns
    -------
    SweepResult
        Records in grid order (not completion order).
    """
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
        try:
            from dask.distributed import Client
            from dask.distributed import as_completed as dask_completed
        except ImportError:
            raise RfctlError("a Dask scheduler needs the 'dist' extra: "
                             "pip install 'rfctl[dist]'") from None
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futs = [client.submit(_call, fn, pt, pure=False) for pt in points]
            index = {f.key: i for i, f in enumerate(futs)}
            for fut in dask_completed(futs):
                results[index[fut.key]] = fut.result()
                _tick()
        finally:
            if client is not scheduler:
                client.close()
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
                    results[futs[fut]] = fut.result()
                    _tick()
    recs = [r for r in results if r is not None]
    n_err = sum("error" in r for r in recs)
    if n_err:
        log.warning("sweep: %d of %d points raised (see the records' 'error' field)",
                    n_err, total)
    return SweepResult(records=recs)
