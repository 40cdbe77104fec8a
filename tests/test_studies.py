"""rfctl.studies: results in SI (no dB, degrees or ms in a key), and the bit studies
checked directly."""

from __future__ import annotations

import numpy as np
import pytest

from rfctl.admittance import DmaModel
from rfctl.config import load_config, parse_config
from rfctl.optimize.dma import DmaDesign, DmaTask
from rfctl.optimize.dma_digital import solve_digital
from rfctl.optimize.mmwave import MmwaveTask, admm_hybrid, task_from_scenario
from rfctl.studies import lorentzian_bits_study, phase_bits_study

EDGE_SUFFIXES = ("_db", "_dbm", "_dbw", "_deg", "_ms")


def edge_keys(obj: object, path: str = "") -> list[str]:
    """Every dict key, at any depth (lists and dicts walked), that ends with a display
    unit's suffix."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if str(k).lower().endswith(EDGE_SUFFIXES):
                found.append(f"{path}/{k}")
            found += edge_keys(v, f"{path}/{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found += edge_keys(v, f"{path}[{i}]")
    return found


def test_edge_keys_finds_nested_display_units() -> None:
    """The checker itself: it must see a dB key nested inside a row's sub-report."""
    assert edge_keys([{"a": 1, "kept": {"violations": [{"gain_db": 1.0}]}}]) == [
        "[0]/kept/violations[0]/gain_db"]
    assert edge_keys({"program_ms": 1, "power_w": 2}) == ["/program_ms"]


def small_mmwave(seed: int) -> MmwaveTask:
    sc = parse_config({
        "kind": "scenario", "name": "small", "seed": seed,
        "dbraa": {"rows": 8, "cols": 8, "f_m": 30e9, "f_s": 5e9, "h_s": 6, "v_s": 6,
                  "n_sub6": 1, "n_rf": 3},
        "mmwave": {"users": 3, "paths": 3, "gain_threshold": 11.0, "power": 7.0,
                   "targets": [{"theta": 0.5, "phi": 0.5}, {"theta": 0.7, "phi": 0.7}]},
    })
    return task_from_scenario(sc)


def test_phase_bits_study_is_si_and_bounded_by_half_a_step() -> None:
    task = small_mmwave(3)
    rows = phase_bits_study(admm_hybrid(task, "RHB"), task, bits=[1, 2, 4])
    assert edge_keys(rows) == []
    assert [r["bits"] for r in rows] == [None, 1, 2, 4]
    cont = rows[0]
    assert cont["gain_loss_ratio"] == 1.0 and cont["max_phase_error"] == 0.0
    for r in rows[1:]:
        # b-bit phase error is at most half a step, π / 2^b rad (not degrees)
        assert 0 < r["max_phase_error"] <= np.pi / 2 ** r["bits"] + 1e-9
        # linear ratios: the worst target's loss bounds the weakest gain's drop
        assert r["gain_loss_ratio"] > 0 and r["min_gain"] > 0
        assert r["min_gain"] >= cont["min_gain"] / r["gain_loss_ratio"] * (1 - 1e-12)


@pytest.fixture
def dma_design(rng) -> tuple[DmaDesign, DmaTask]:
    """One SDR at random tunings: a valid (not alternated) DMA design, quickly."""
    m = DmaModel.from_spec(load_config("dma-4x8").dma, origin=(0, 0, 10))
    users = np.column_stack([rng.uniform(-20, 20, 3), rng.uniform(20, 60, 3),
                             np.full(3, 1.5)])
    task = DmaTask(m, users, np.full(3, 0.5236), np.array([0.0, 1.0472, 2.0944]), 1e-12,
                   1.0)
    b = rng.normal(0, 10, m.L)
    dig = solve_digital(task.problem(b))
    return DmaDesign(b=b, B=dig.B, objective=dig.objective), task


def test_lorentzian_bits_study_is_si_and_one_row_per_width(dma_design) -> None:
    design, task = dma_design
    rows = lorentzian_bits_study(design, task, bits=(1, 3), boards=["sim-dma-4x8"])
    assert edge_keys(rows) == []
    assert [r["bits"] for r in rows] == [None, 1, 3, None]
    assert [r["board"] for r in rows] == [None, None, None, "sim-dma-4x8"]
    cont = rows[0]
    assert cont["feasible"] and cont["max_q_error"] == 0.0 and cont["why"] == (
        "all constraints met")
    for r in rows[1:]:
        assert r["max_q_error"] > 0  # a finite table cannot hit continuous tunings
        assert r["feasible"] == (not r["violations"])
        assert (r["why"] == "all constraints met") == r["feasible"]
        assert "dB" not in r["why"]


def test_phase_bits_study_flags_infeasible_rows() -> None:
    task = small_mmwave(3)
    res = admm_hybrid(task, "RHB")
    rows = phase_bits_study(res, task, bits=[1, 2, 8])
    ups = np.broadcast_to(np.asarray(task.upsilon, float), (task.A.shape[1],))
    for r in rows:
        assert r["sensing_margin"] == pytest.approx(r["min_gain"] / ups.max(), rel=1e-9) \
            or r["sensing_margin"] <= r["min_gain"] / ups.min() * (1 + 1e-12)
        assert r["power_margin"] == pytest.approx(r["power"] / task.power, rel=1e-12)
        ok = r["sensing_margin"] >= 1 - 1e-6 and r["power_margin"] <= 1 + 1e-6
        assert r["feasible"] == ok
        assert (r["fails"] == "") == ok
        if r["sensing_margin"] < 1 - 1e-6:
            assert "sensing gain target" in r["fails"] and "Υ" in r["fails"]
    assert rows[0]["feasible"] == res.feasible
    # 1-bit phases lose sensing gain below Υ: flagged, not silent
    assert not rows[1]["feasible"] and "sensing gain" in rows[1]["fails"]
