"""DBRAA mmWave design: F_m step fast vs reference, switch search vs brute force,
the seed's ordering of structures, sensing met by the returned hybrid beamformer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import rfctl.optimize.mmwave as mm
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
    refine_baseband,
    switch_and_phase,
    task_from_scenario,
)
from rfctl.optimize.mmwave_fm import (
    FmProblem,
    Subspace,
    _Structured,
    fm_step_cvxpy,
    fm_step_fast,
    nonneg_qp,
)
from rfctl.outcome import StopReason


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


def test_fast_fm_step_detects_infeasible_subproblems_like_cvxpy(rng) -> None:
    """Linearised sensing targets out of reach within P: the fast step says so (from the
    least-norm power) and cvxpy finds no solution; just within reach: both solve it."""
    for _ in range(3):
        p = fm_case(rng)
        st_fast = fm_step_fast(p)[1]
        assert st_fast["feasible"] and fm_step_cvxpy(p) is not None
        p.upsilon = p.upsilon * 1e4
        _, info = fm_step_fast(p)
        assert not info["feasible"] and fm_step_cvxpy(p) is None


def direct_eval(p: FmProblem, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F(λ) = (Q + λI)⁻¹(B₀ + Σ_t μ_t a_t ḡ_tᴴ) by a dense N × N solve, μ from the same
    QP built from the dense inverse: the readable reference of the secular evaluation."""
    N = p.H.shape[0]
    Hw = p.H * (np.sqrt(p.w) * np.abs(p.u))[None, :]
    B0 = p.H * (p.w * np.conj(p.u))[None, :] + p.c * p.Z
    Kinv = np.linalg.inv(Hw @ Hw.conj().T + lam * np.eye(N))
    GG = p.gbar.conj() @ p.gbar.T  # [s, t] = ḡ_sᴴ ḡ_t
    Amat = np.real((p.A.conj().T @ Kinv @ p.A) * GG.T)
    r = np.real(np.sum((p.A.conj().T @ Kinv @ B0) * p.gbar, axis=1))
    cvec = (p.upsilon + np.sum(np.abs(p.gbar) ** 2, axis=1)) / 2
    mu = nonneg_qp((Amat + Amat.T) / 2, cvec - r)
    F = Kinv @ (B0 + p.A @ (mu[:, None] * p.gbar.conj()))
    return F, mu, Amat


@pytest.mark.parametrize("N", [64, 7])
def test_secular_evaluation_equals_the_direct_solve(rng, N: int) -> None:
    """The eigenbasis (secular) evaluation of the F_m step — the QP data as d(λ)-weighted
    sums, the part orthogonal to span[H, A] as B_⊥/λ — equals the dense solve to 1e-12,
    with the subspace (N = 64) and without (N = 7 ≤ K + T: the whole space); and the
    analytic d‖F‖²/dλ equals a finite difference on the same active set."""
    for c in (0.5, 5.0, 1e-6):
        p = fm_case(rng, c=c)
        if N != 64:
            keep = rng.permutation(64)[:N]
            p = FmProblem(p.H[keep], p.u, p.w, p.Z[keep], c, p.P, p.A[keep],
                          (p.Z[keep].conj().T @ p.A[keep]).T, np.full(p.A.shape[1], 0.05))
        basis = Subspace.of(p.H, p.A)
        assert (basis.V is None) == (N == 7)
        st = _Structured(p, basis)
        for lam in (0.05, 0.7, 4.0):
            Z, mu, pw = st.solve(lam)
            F = st.lift(Z)
            Fd, mud, Amat = direct_eval(p, lam)
            _, Amat_s, _ = st.qp_data(lam)
            assert np.max(np.abs(Amat_s - Amat)) <= 1e-12 * np.max(np.abs(Amat))
            assert np.max(np.abs(mu - mud)) <= 1e-12 * max(1.0, np.max(mud))
            assert np.linalg.norm(F - Fd) <= 1e-12 * np.linalg.norm(Fd)
            assert pw == pytest.approx(np.vdot(Fd, Fd).real, rel=1e-12)
            if N == 64:
                assert mu.any()  # the sensing term takes part
            dpw = st.dpower(Z, mu)
            h = 1e-6 * lam
            act = mu > 0
            pp = st.solve(lam + h, act)
            pm = st.solve(lam - h, act)
            assert np.array_equal(pp[1] > 0, act) and np.array_equal(pm[1] > 0, act)
            assert dpw < 0
            assert dpw == pytest.approx((pp[2] - pm[2]) / (2 * h), rel=1e-6)


def test_root_search_needs_few_evaluations(rng) -> None:
    """From the multipliers of a neighbouring subproblem (as inside the ADMM: ν moves by
    a few per cent), the model steps on ‖F(λ)‖² with its exact derivative meet the power
    to 1e-9 in 3 evaluations (the earlier secant search needed 5 on these problems)."""
    for _ in range(10):
        p = fm_case(rng, c=0.5)
        _, info = fm_step_fast(p)
        p.Z = p.Z * 1.01 + 0.002
        p.gbar = p.gbar * 1.005
        F, info2 = fm_step_fast(p, nu_hint=info["nu"], mu_hint=info["mu"])
        assert info2["nu"] > 0 and abs(np.vdot(F, F).real / p.P - 1) <= 1e-9
        assert info2["nu"] != pytest.approx(info["nu"], rel=1e-3)
        assert info2["evals"] <= 3


def test_baseband_least_squares_equals_lstsq(rng) -> None:
    """Eq. 88 through SᵀS (N_RF × N_RF) equals the N × N_RF least-norm least squares,
    also with an unused chain and with two chains on the same antennas."""
    for trial in range(30):
        N, nrf = 40, 4
        S = rng.random((N, nrf)) < rng.uniform(0.1, 0.9, nrf)[None, :]
        if trial % 3 == 1:
            S[:, 2] = False
        if trial % 3 == 2:
            S[:, 1] = S[:, 0]
        ph = rng.uniform(0, 2 * np.pi, N)
        Fk = rng.standard_normal((N, 3)) + 1j * rng.standard_normal((N, 3))
        ref = np.linalg.lstsq(np.exp(1j * ph)[:, None] * S, Fk, rcond=None)[0]
        assert np.linalg.norm(mm.baseband_ls(ph, S, Fk) - ref) <= 1e-12 * np.linalg.norm(ref)


def test_wmmse_rate_is_wmmse_and_the_metrics_sum_rate(rng) -> None:
    """WMMSE–SCA takes an iterate's sum-rate and the next iteration's u, w from one HᴴF:
    bit for bit what _wmmse and rfctl.metrics give (so the stopping test is unchanged)."""
    for n in (4, 13, 196):
        H = rng.standard_normal((n, 4)) + 1j * rng.standard_normal((n, 4))
        F = rng.standard_normal((n, 4)) + 1j * rng.standard_normal((n, 4))
        u, w, rate = mm._wmmse_rate(H, F, 0.7)
        u2, w2 = mm._wmmse(H, F, 0.7)
        assert np.array_equal(u, u2) and np.array_equal(w, w2)
        assert rate == sum_rate(sinr(H, F, 0.7))


def test_nonneg_qp_kkt(rng) -> None:
    for n in (1, 4, 9):
        M = rng.standard_normal((n, n))
        A = M @ M.T + 1e-3 * np.eye(n)
        b = rng.standard_normal(n)
        for guess in (None, np.zeros(n, bool), rng.random(n) < 0.5, np.ones(n, bool)):
            mu = nonneg_qp(A, b, guess=guess)  # any guess: the same KKT point
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


GRID = [0.5, 0.6, 0.7]
FIG7_TARGETS = [{"theta": t, "phi": p} for p in GRID for t in GRID]
TOL = 1e-6  # relative, on every returned design's constraints


def paper_task(seed: int, power: float = 7.0, upsilon: float = 11.0) -> MmwaveTask:
    """Fig. 7 setting: 14 × 14, K = N_RF = 4, nine targets on 0.5…0.7, Υ = 11, P = 7."""
    sc = parse_config({
        "kind": "scenario", "name": "fig7", "seed": seed,
        "dbraa": {"rows": 14, "cols": 14, "f_m": 30e9, "f_s": 5e9, "h_s": 6, "v_s": 6,
                  "n_sub6": 1, "n_rf": 4},
        "mmwave": {"users": 4, "paths": 3, "gain_threshold": upsilon, "power": power,
                   "noise_power": 1.0, "targets": FIG7_TARGETS},
    })
    return task_from_scenario(sc)


def check_design(task: MmwaveTask, r) -> None:
    """The returned F meets Υ and P to TOL, judged by rfctl.metrics; flag consistent."""
    F = r.F
    if r.phases is not None:
        F = hybrid_precoder(r.phases, r.switch, r.F_bb)
        assert np.allclose(F, r.F, atol=1e-12)
    if r.F_rf is not None:
        assert np.allclose(r.F_rf @ r.F_bb, r.F, atol=1e-12)
    g = beam_gain(task.A, F)
    pw = np.vdot(F, F).real
    ok = bool(np.all(g >= task.upsilon * (1 - TOL)) and pw <= task.power * (1 + TOL))
    if r.feasible:  # the flag (tolerance 1e-9) never claims more than TOL allows
        assert ok, (r.structure, r.outcome)
    res = r.outcome.residuals
    assert res["gain_margin_rel"] == pytest.approx(np.min(g / task.upsilon) - 1, abs=1e-12)
    assert res["power_margin_rel"] == pytest.approx(pw / task.power - 1, abs=1e-12)
    assert r.sum_rate == pytest.approx(sum_rate(sinr(task.H, F, task.sigma2)))


def five(task: MmwaveTask) -> dict:
    fd = fully_digital(task)
    return {"FD": fd, "FCHB": fully_connected(task, fd=fd), "RHB": admm_hybrid(task, "RHB"),
            "DHB": admm_hybrid(task, "DHB"), "PCHB": admm_hybrid(task, "PCHB")}


def test_every_design_meets_its_constraints_at_the_paper_size() -> None:
    """FD, RHB, DHB, PCHB feasible to 1e-6 on a draw never used for tuning; FCHB feasible
    or flagged with its margins."""
    task = paper_task(2000)
    d = five(task)
    for name, r in d.items():
        check_design(task, r)
        if name != "FCHB":
            assert r.feasible, (name, r.outcome)
    # the paper's claims that hold in every draw (the averaged ones are in the slow test)
    assert d["RHB"].sum_rate >= 0.9 * d["FD"].sum_rate
    assert d["RHB"].sum_rate > d["PCHB"].sum_rate
    assert d["FD"].sum_rate >= d["RHB"].sum_rate


@pytest.mark.slow
def test_paper_ordering_on_fresh_draws() -> None:
    """Issue 11 targets on 20 draws (seeds 2000–2019; tuning used 1000–1009)."""
    rows = []
    for seed in range(2000, 2020):
        task = paper_task(seed)
        d = five(task)
        for name, r in d.items():
            check_design(task, r)
            assert r.feasible or name == "FCHB", (seed, name, r.outcome)
        rows.append([d[s].sum_rate for s in ("FD", "RHB", "DHB", "PCHB")])
    fd, rhb, dhb, pchb = np.array(rows).T
    assert rhb.mean() >= 0.90 * fd.mean(), (rhb.mean(), fd.mean())
    assert rhb.mean() > dhb.mean() and np.mean(rhb > dhb) >= 0.7, (rhb, dhb)
    assert np.all(rhb > pchb)


def test_dhb_puts_every_antenna_on_exactly_one_chain() -> None:
    task = paper_task(2001)
    r = admm_hybrid(task, "DHB")
    assert np.all(r.switch.sum(axis=1) == 1)
    assert pattern_set("DHB", 196, 4).sum(axis=1).tolist() == [1, 1, 1, 1]
    p = admm_hybrid(task, "PCHB")
    assert np.all(p.switch.sum(axis=1) == 1)
    assert np.array_equal(p.switch.argmax(axis=1), (np.arange(196) * 4) // 196)


def test_fully_digital_stops_by_its_tolerance() -> None:
    task = paper_task(2002)
    fd = fully_digital(task)
    assert fd.outcome.stop_reason is StopReason.CONVERGED and fd.outcome.iterations < 2000
    t = fd.trace
    assert abs(t[-1] - t[-2]) <= 1e-6 * t[-1]
    assert np.all(np.diff(t) >= -1e-9 * t[-1])  # WMMSE-SCA never lowers the sum-rate
    capped = fully_digital(task, max_iter=5)
    assert capped.outcome.stop_reason is StopReason.ITERATION_CAP
    assert capped.outcome.iterations == 5 and not capped.outcome.converged


def test_baseband_step_equals_a_cvxpy_step_in_f_bb(rng) -> None:
    """One SCA step of refine_baseband (in Uᴴ coordinates) equals the same step written in
    cvxpy directly in F_BB with F_RF fixed."""
    import cvxpy as cp

    task = paper_task(2003)
    r = admm_hybrid(task, "RHB", final="scale", max_iter=20)
    Frf, Fbb = r.F_rf, r.F_bb
    Fbb_fast, info = refine_baseband(task, Frf, Fbb, max_iter=1)
    F0 = Frf @ Fbb
    u, w = mm._wmmse(task.H, F0, task.sigma2)
    gbar = (F0.conj().T @ task.A).T
    X = cp.Variable(Fbb.shape, complex=True)
    F = Frf @ X
    HF = task.H.conj().T @ F
    obj = 0
    for k in range(task.H.shape[1]):
        obj += w[k] * (cp.sum_squares(cp.abs(u[k] * HF[k, :])) - 2 * cp.real(u[k] * HF[k, k]))
    obj += 1e-6 * cp.sum_squares(cp.abs(F - F0))
    g = np.sum(np.abs(gbar) ** 2, axis=1)
    target = task.upsilon  # the full targets: the first step needed no back-off here
    cons = [cp.sum_squares(cp.abs(F)) <= task.power]
    for t in range(task.A.shape[1]):
        lin = cp.real(cp.sum(cp.multiply(gbar[t], task.A[:, t].conj() @ F)))
        cons.append(2 * lin - g[t] >= target[t])
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver=cp.CLARABEL)
    F_ref = Frf @ X.value
    F_fast = Frf @ Fbb_fast
    p = FmProblem(task.H, u, w, F0, 1e-6, task.power, task.A, gbar, target)
    # same optimum value to 1e-5 of the objective's scale Σ w (Clarabel stops ~1.5e-6 of
    # Σ w above the optimum here: the weights reach ~800 at these SINRs); the fast step
    # is never worse and meets the subproblem's constraints
    scale = float(np.sum(w))
    assert abs(p.objective(F_fast) - p.objective(F_ref)) <= 1e-5 * scale
    assert p.objective(F_fast) <= p.objective(F_ref) + 1e-9 * scale
    assert np.vdot(F_fast, F_fast).real <= task.power * (1 + 1e-9)
    lin = 2 * np.real(np.sum(gbar * (task.A.conj().T @ F_fast), axis=1)) - g
    assert np.all(lin >= target * (1 - 1e-9))
    assert info.outcome.iterations == 1 and not info.restored


def test_infeasible_analog_part_is_flagged() -> None:
    """A one-column analog beamformer cannot give nine targets Υ = 11 and serve four users;
    the final step says so instead of returning a silently infeasible design."""
    task = paper_task(2004, upsilon=60.0)
    Frf = np.exp(1j * np.zeros((196, 4)))  # four identical columns: rank 1
    Fbb = np.ones((4, 4), complex)
    Fbb_new, info = refine_baseband(task, Frf, Fbb)
    assert info.outcome.stop_reason is StopReason.INFEASIBLE
    res = mm._evaluate(task, "RHB", Frf @ Fbb_new, info.outcome, phases=None, switch=None,
                       F_rf=Frf, F_bb=Fbb_new)
    assert not res.feasible and res.outcome.residuals["gain_margin_rel"] < 0


def test_rhb_on_the_seed_setting() -> None:
    task = task_from_scenario(load_config("dbraa-14x14"))
    r = admm_hybrid(task, "RHB")
    assert r.switch.shape == (196, 4) and r.phases.shape == (196,)
    res = r.outcome.residuals
    assert r.feasible and res["gain_margin_rel"] >= -TOL and res["power_margin_rel"] <= TOL
    # the ADMM stopped by its ε test (not the cap); the final step by its tolerance
    assert r.outcome.stop_reason is StopReason.CONVERGED and r.outcome.iterations < 300
    assert r.baseband is not None and r.baseband.converged
    assert r.update == "cold" and r.sum_rate > 15
    assert set(res) == {"gain_margin_rel", "power_margin_rel", "hybrid_residual_rel",
                        "rate_to_fd_ratio"}
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
    assert np.vdot(db.mmwave.F, db.mmwave.F).real <= db.mmwave_power * (1 + TOL)
    assert db.mmwave.feasible
    out = db.outcome  # both designs in one outcome
    assert out.converged == (db.sub6.outcome.converged and db.mmwave.outcome.converged)
    assert out.iterations == db.sub6.outcome.iterations + db.mmwave.outcome.iterations
    assert out.residuals["mmwave_gain_margin_rel"] == db.mmwave.outcome.residuals[
        "gain_margin_rel"]
    assert out.residuals["sub6_sinr_margin_rel"] == db.sub6.outcome.residuals[
        "sinr_margin_rel"]
    assert np.all(beam_gain(db.mmwave_task.A, db.mmwave.F) >= db.mmwave_task.upsilon * (1 - TOL))
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
        assert r["max_phase_error"] <= np.pi / 2 ** r["bits"] + 1e-9


def test_mmwave_figures_reproduce_the_paper_orderings(tmp_path, figure_script) -> None:
    """The figure scripts' data at the paper's 14 × 14 (Fig. 7's draw, and Fig. 9 on one
    realisation): the orderings the paper claims and rfctl reproduces (BENCHMARKS.md):
    FD best, RHB above DHB and PCHB, RHB ≥ 0.9 × FD; every design meets Υ."""
    import json

    figs = figure_script("mmwave_figures")
    figs.fig7(tmp_path, 14, 21, plot=False)
    d = json.loads((tmp_path / "fig7.json").read_text())
    rate = d["sum_rate"]
    assert set(rate) == {"FD", "FCHB", "RHB", "DHB", "PCHB"}
    assert all(rate["FD"] >= r - 1e-9 for r in rate.values()), rate
    assert rate["RHB"] > rate["DHB"] and rate["RHB"] > rate["PCHB"], rate
    assert rate["RHB"] >= 0.9 * rate["FD"], rate
    for s, ok in d["feasible"].items():  # the flag agrees with the gains in the data
        assert ok == (d["min_target_gain_db"][s] >= d["upsilon_db"] - 1e-6), s
    assert all(d["feasible"][s] for s in ("FD", "RHB", "DHB", "PCHB"))
    assert all(0 < cv < 1 for cv in d["sensing_region_cv"].values())
    ups = [5.0, 20.0]
    figs.fig_sweep("fig9", {"size": [14], "users": [4], "n_rf": [4], "power": [7.0],
                            "upsilon": ups}, "upsilon", ups, "Υ", range(1), tmp_path, 1,
                   plot=False)
    d = json.loads((tmp_path / "fig9.json").read_text())
    assert d["x"] == ups and len(d["records"]) == 2
    rate = d["sum_rate"]
    for i in range(len(ups)):
        assert rate["FD"][i] >= rate["RHB"][i] > rate["DHB"][i], (i, rate)
        assert rate["RHB"][i] > rate["PCHB"][i], (i, rate)
    assert all(r[f"{s}_feasible"] for r in d["records"] for s in ("FD", "RHB", "DHB", "PCHB"))
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_mmwave_figure_scripts_draw_their_pngs(figure_cli) -> None:
    """Smoke test of the command line and the plots (the data is judged above)."""
    import json

    out = figure_cli("mmwave_figures", ["fig7", "fig8", "fig9"])
    d = json.loads((out / "fig8.json").read_text())
    assert set(d["sum_rate"]) == {"FD", "FCHB", "RHB", "DHB", "PCHB"}


def test_track_follows_a_slowly_moving_channel() -> None:
    """Warm-started updates on a Gauss–Markov channel (ρ = 0.99 per step, the innovation
    an independent draw of the same channel model): every update is feasible and keeps
    most of a cold start's sum-rate (the 100-step judgement is in the benchmark)."""
    from rfctl.optimize.mmwave import track

    base = paper_task(2100)
    prev = admm_hybrid(base)
    H = base.H
    ratios = []
    for step in range(1, 6):
        H = 0.99 * H + np.sqrt(1 - 0.99 ** 2) * paper_task(2100 + step).H
        task = MmwaveTask(H, base.A, base.upsilon, base.power, base.sigma2, base.n_rf)
        r = track(prev, task)
        check_design(task, r)
        assert r.feasible and r.structure == "RHB"
        assert r.F_digital is not None
        assert r.update in ("tracked-baseband", "tracked-admm")
        ratios.append(r.sum_rate / admm_hybrid(task).sum_rate)
        prev = r
    assert min(ratios) >= 0.93, ratios
    # the two paths: always the full ADMM update, or the baseband-only update
    full = track(prev, task, refresh_margin=None)
    assert full.update == "tracked-admm" and full.feasible
    assert full.outcome.iterations == 12 or full.outcome.converged
    cheap = track(prev, task, refresh_margin=1.0)
    assert cheap.update == "tracked-baseband" and cheap.feasible
    # no ADMM iteration: the outcome is the final F_BB step's
    assert cheap.outcome.stop_reason is cheap.baseband.stop_reason
    assert cheap.outcome.iterations == cheap.baseband.iterations
    pres = prev.outcome.residuals
    assert cheap.outcome.residuals["rate_to_fd_ref_ratio"] == pres.get(
        "rate_to_fd_ref_ratio", pres["rate_to_fd_ratio"])
    with pytest.raises(ConfigError, match="hybrid"):
        track(fully_digital(base, max_iter=3), base)


def test_cli_says_whether_the_design_is_feasible(tmp_path) -> None:
    import io

    from rfctl.cli import main

    out = io.StringIO()
    assert main(["optimize", "mmwave", "--scenario", "dbraa-14x14", "--out",
                 str(tmp_path / "m.json")], out=out) == 0
    assert "feasible: constraints met" in out.getvalue()
    from rfctl.cli.optimize import _feasibility

    line = _feasibility(False, {"gain": -0.02, "power": 0.0})
    assert "INFEASIBLE" in line and "gain -2.00e-02" in line
