"""The sweep runner: grid × seeds, local pool, Dask, records, CSV/JSON."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rfctl.errors import ConfigError, OutputError
from rfctl.sweep import ProgressBar, grid_points, sweep


def job(a: int, b: str, seed: int) -> dict:
    if a < 0:
        raise ValueError("negative a")
    return {"value": a * 10 + np.random.default_rng(seed).integers(0, 10), "tag": b}


def test_grid_points_order() -> None:
    pts = grid_points({"a": [1, 2], "b": ["x"]}, seeds=[0, 1])
    assert pts == [{"a": 1, "b": "x", "seed": 0}, {"a": 1, "b": "x", "seed": 1},
                   {"a": 2, "b": "x", "seed": 0}, {"a": 2, "b": "x", "seed": 1}]
    with pytest.raises(ConfigError, match="reserved"):
        grid_points({"seed": [1]}, [0])


@pytest.mark.parametrize("workers", [1, 2])
def test_local_sweep_same_records_in_grid_order(workers: int, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    res = sweep(job, {"a": [1, 2, -1], "b": ["x"]}, seeds=range(3), workers=workers,
                progress=lambda d, t: calls.append((d, t)))
    assert [r["a"] for r in res.records] == [1, 1, 1, 2, 2, 2, -1, -1, -1]
    expect = [a * 10 + np.random.default_rng(s).integers(0, 10)
              for a in (1, 2) for s in range(3)]
    assert [r["value"] for r in res.records[:6]] == expect
    assert len(res.errors) == 3 and "negative a" in res.errors[0]["error"]
    assert calls[-1] == (9, 9)
    res.to_csv(tmp_path / "r.csv")
    res.to_json(tmp_path / "r.json")
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("a,b,seed,value")
    assert len(json.loads((tmp_path / "r.json").read_text())) == 9


def test_dask_sweep_matches_local() -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = sweep(job, {"a": [3, 4], "b": ["y"]}, seeds=[5, 6], scheduler=client)
    local = sweep(job, {"a": [3, 4], "b": ["y"]}, seeds=[5, 6], workers=1)
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in res.records]
    assert strip == [{k: v for k, v in r.items() if k != "elapsed_s"} for r in local.records]


def test_progress_bar_draws_on_given_stream() -> None:
    s = io.StringIO()
    bar = ProgressBar(s, width=10)
    bar(5, 10)
    bar(10, 10)
    assert "[#####.....] 5/10" in s.getvalue() and s.getvalue().endswith("\n")


def dying_job(a: int, seed: int) -> dict:
    if a == 1:
        os._exit(3)  # the worker process dies
    return {"value": a}


def test_local_pool_records_a_crashed_worker_per_point() -> None:
    res = sweep(dying_job, {"a": [0, 1]}, seeds=[0], workers=2)
    assert len(res.records) == 2
    assert any("BrokenProcessPool" in r.get("error", "") for r in res.records)


def test_bad_seeds_grids_and_outputs_are_rfctl_errors(tmp_path: Path) -> None:
    for seeds in ([-1], [1.5], [True], ["3"]):
        with pytest.raises(ConfigError, match="seeds"):
            grid_points({"a": [1]}, seeds)
    with pytest.raises(ConfigError, match="more than"):
        grid_points({"a": range(10**4), "b": range(10**4)}, [0])
    res = sweep(job, {"a": [1], "b": ["x"]}, seeds=[0], workers=1)
    with pytest.raises(OutputError, match="is a directory"):
        res.to_csv(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        res.to_json(tmp_path / "missing" / "r.json")


def test_progress_bar_off_a_terminal_writes_a_line_per_tenth() -> None:
    """In a log or a pipe the bar is not redrawn with carriage returns at every point:
    1538 points give 11 lines (every 153rd point and the last), no '\\r'."""
    s = io.StringIO()
    bar = ProgressBar(s, width=10, label="calibrate")
    for k in range(1, 1539):
        bar(k, 1538)
    lines = s.getvalue().splitlines()
    assert "\r" not in s.getvalue()
    assert len(lines) == 11 and lines[-1].startswith("calibrate [##########] 1538/1538")


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    s = Tty()
    bar = ProgressBar(s, width=10)
    for k in range(1, 4):
        bar(k, 3)
    assert s.getvalue().count("\r") == 3 and s.getvalue().endswith("\n")
