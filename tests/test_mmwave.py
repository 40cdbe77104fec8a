"""DBRAA mmWave design: F_m step fast vs reference, switch search vs brute force,
the seed's ordering of structures, sensing met by the returned hybrid beamformer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rfctl.config import load_config, parse_config
from rfctl.errors import ConfigError, InfeasibleError
from rfctl.geometry import upa_steering
from rfctl.metrics import beam_gain, hybrid_precoder, sinr, sum_rate
from rfctl.optimize.mmwave import (
    MmwaveTask,
    admm_hybrid,
    fully_connected,
    fully_digital,
    pattern_set,
    switch_and_phase,
    task_from_scenario,
)
from rfctl.optimize.mmwave_fm import FmProblem, fm_step_cvxpy, fm_step_fast, nonneg_qp


def fm_case(rng, N=64, K=3, T=4, c=0.5, P=5.0):
    H = (rng.standard_normal((N, K)) + 1j * rng.standard_normal((N, K))) / np.sqrt(2)
    A = upa_steering(8, 8, rng.uniform(-1, 1, T), rng.uniform(-1, 1, T))
    u = (rng.standard_normal(K) + 1j * rng.standard_normal(K)) * 0.1
    w = rng.uniform(1, 4, K)
    Fbar = (rng.standard_normal((N, K)) + 1j * rng.standard_normal((N, K))) * 0.15
    Z = (rng.standard_normal((N, K)) + 1j * rng.standard_normal((N, K))) * 0.1
    return FmProblem(H, u, w, Z, c, P, A, (Fbar.conj().T @ A).T, np.full(T, 6.0))


@pytest.mark.parametrize("c", [0.5, 5.0, 1e-6])
def test_fast_fm_step_equals_cvxpy_reference(rng, c: float) -> None:
    for _ in range(2):
        p = fm_case(rng, c=c)
        F, _ = fm_step_fast(p)
        Fr = fm_step_cvxpy(p)
        # agreement to 1e-6 of the objective's natural scale (Σ w: every e_k ≤ 1); where
        # the optimum is ~0 the relative difference of two tiny numbers means nothing
        scale = float(np.sum(p.w))
        assert abs(p.objective(F) - p.objective(Fr)) <= 1e-6 * max(scale, abs(p.objective(Fr)))
        assert p.objective(F) <= p.objective(Fr) + 1e-9 * scale  # never worse than reference
        # the fast solution is feasible for the subproblem
        assert np.vdot(F, F).real <= p.P * (1 + 1e-9)
        lin = 2 * np.real(np.sum(p.gbar * (p.A.conj().T @ F), axis=1)) - \
            np.sum(np.abs(p.gbar) ** 2, axis=1)
        assert np.all(lin >= p.upsilon - 1e-6)


def test_nonneg_qp_kkt(rng) -> None:
    for n in (1, 4, 9):
        M = rng.standard_normal((n, n))
        A = M @ M.T + 1e-3 * np.eye(n)
        b = rng.standard_normal(n)
        mu = nonneg_qp(A, b)
        g = A @ mu - b
        assert np.all(mu >= 0) and np.all(g >= -1e-9) and abs(mu @ g) < 1e-9


@pytest.mark.parametrize("structure", ["RHB", "DHB", "PCHB"])
def test_switch_search_equals_brute_force(rng, structure: str) -> None:
    """Per antenna: exhaustive over patterns and a fine grid of phases (brute force)."""
    N, nrf, K = 6, 3, 2
    Fk = rng.standard_normal((N, K)) + 1j * rng.standard_normal((N, K))
    Fbb = rng.standard_normal((nrf, K)) + 1j * rng.standard_normal((nrf, K))
    pats = pattern_set(structure, N, nrf)
    phases, S = switch_and_phase(Fk, Fbb, pats)
    for m in range(N):
        allowed = pats if pats.ndim == 2 else pats[m]
        got = np.sum(np.abs(Fk[m] - np.exp(1j * phases[m]) * (S[m].astype(float) @ Fbb)) ** 2)
        grid = np.exp(1j * np.linspace(0, 2 * np.pi, 3601))
        best = min(np.min(np.sum(np.abs(Fk[m][None, :] - grid[:, None] *
                                        (s.astype(float) @ Fbb)[None, :]) ** 2, axis=1))
                   for s in allowed)
        assert got <= best + 1e-9
        assert any(np.array_equal(S[m], s) for s in allowed)
    if structure == "RHB":
        assert pats.shape == (2 ** nrf, nrf)
        assert {tuple(r) for r in pats} == set(itertools.product([False, True], repeat=nrf))


def small(seed: int, size: int = 10, K: int = 3, nrf: int = 3) -> MmwaveTask:
    sc = parse_config({
        "kind": "scenario", "name": "small", "seed": seed,
        "dbraa": {"rows": size, "cols": size, "f_m": 30e9, "f_s": 5e9, "h_s": 6, "v_s": 6,
                  "n_sub6": 1, "n_rf": nrf},
        "mmwave": {"users": K, "paths": 3, "gain_threshold": 11.0, "power": 7.0,
                   "targets": [{"theta": 0.5, "phi": 0.5}, {"theta": 0.7, "phi": 0.5},
                               {"theta": 0.5, "phi": 0.7}, {"theta": 0.7, "phi": 0.7}]},
    })
    return task_from_scenario(sc)


def test_seed_ordering_on_average_and_rhb_meets_sensing() -> None:
    rates = []
    for seed in range(8):
        task = small(seed)
        fd = fully_digital(task)
        rhb = admm_hybrid(task, "RHB")
        rates.append([fd.sum_rate, fully_connected(task, fd=fd).sum_rate, rhb.sum_rate,
                      admm_hybrid(task, "DHB").sum_rate, admm_hybrid(task, "PCHB").sum_rate])
        # judged by rfctl.metrics on the returned hybrid beamformer, power within P_m
        F = hybrid_precoder(rhb.phases, rhb.switch, rhb.F_bb)
        assert np.allclose(F, rhb.F)
        assert np.vdot(F, F).real <= task.power * (1 + 1e-9)
        assert np.all(beam_gain(task.A, F) >= task.upsilon * (1 - 0.05))  # 5 % tolerance
        assert rhb.sum_rate == pytest.approx(sum_rate(sinr(task.H, F, task.sigma2)))
    m = np.mean(rates, axis=0)
    assert m[0] >= m[1] >= m[2] >= m[3] >= m[4], m


def test_rhb_on_the_seed_setting() -> None:
    task = task_from_scenario(load_config("dbraa-14x14"))
    r = admm_hybrid(task, "RHB")
    assert r.switch.shape == (196, 4) and r.phases.shape == (196,)
    assert r.residuals["gain"] >= -0.05 and r.residuals["power"] <= 1e-9
    assert r.stop_reason.startswith("converged") and r.sum_rate > 15
    st = r.state()
    assert st.switch.shape == (196, 4) and st.f_bb.shape == (4, 4)


def test_bad_inputs() -> None:
    task = small(0)
    H = task.H.copy()
    H[2, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        MmwaveTask(H, task.A, task.upsilon, 7.0, 1.0, 3)
    with pytest.raises(ConfigError, match="N_RF"):
        MmwaveTask(task.H, task.A, task.upsilon, 7.0, 1.0, 2)
    with pytest.raises(InfeasibleError, match="Parseval") as ei:
        MmwaveTask(task.H, task.A, np.full(4, 7.0 * 100 + 1), 7.0, 1.0, 3)
    assert ei.value.value == 700.0


def test_dual_band_splits_the_power_and_builds_one_state(tmp_path) -> None:
    from rfctl.hal import quantize
    from rfctl.optimize.dual_band import design_dual_band
    from rfctl.state import ArrayState

    sc = load_config("dbraa-14x14")
    db = design_dual_band(sc)
    assert db.mmwave_power == pytest.approx(sc.total_power - db.sub6.power)
    assert np.vdot(db.mmwave.F, db.mmwave.F).real <= db.mmwave_power * (1 + 1e-9)
    st = db.state
    assert st.selection.sum() == 4 and st.phases.shape == (196,)
    st.save(tmp_path / "db.json")
    back = ArrayState.load(tmp_path / "db.json")
    assert back.equals(st)
    img = quantize(back, load_config("sim-dbraa-14x14"))  # the HAL takes the whole design
    assert set(img.banks) == {"phase", "rf_switch", "pin", "feed"}
    # no power left for mmWave: a clear error naming the bound
    poor = parse_config({**sc.model_dump(), "total_power": db.sub6.power * 0.5})
    with pytest.raises(InfeasibleError, match="nothing is left") as ei:
        design_dual_band(poor)
    assert ei.value.bound == "total power P_t"


def test_phase_bits_study_loss_shrinks_with_bits() -> None:
    from rfctl.studies import phase_bits_study

    task = small(3)
    rows = phase_bits_study(admm_hybrid(task, "RHB"), task, bits=[1, 2, 4, 8])
    assert rows[0]["bits"] is None and rows[0]["rate_loss"] == 0
    losses = [r["rate_loss"] for r in rows[1:]]
    assert losses[0] > losses[-1] and abs(losses[-1]) < 0.05 * rows[0]["sum_rate"]
    # the phase error of b bits is at most half a step, π / 2^b
    for r in rows[1:]:
        assert r["max_phase_error_deg"] <= 180 / 2 ** r["bits"] + 1e-9


def test_mmwave_figure_scripts_run_quick(tmp_path) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "figures" / "mmwave_figures.py"
    proc = subprocess.run([sys.executable, str(script), "all", "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("fig7", "fig8", "fig9"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    d = json.loads((tmp_path / "fig8.json").read_text())
    assert set(d["sum_rate"]) == {"FD", "FCHB", "RHB", "DHB", "PCHB"}
