"""DMA digital step (SDR P2): the bound property, rank-one recovery, infeasibility causes."""

from __future__ import annotations

import numpy as np
import pytest

from rfctl.admittance import DmaModel
from rfctl.config import load_config
from rfctl.errors import InfeasibleError
from rfctl.optimize.dma_digital import DigitalProblem, solve_digital


def problem(rng, *, n_sensing: int = 4, gamma_below_db: float = 30.0, beta_frac: float = 0.1,
            beta_max_frac: float = 1.0, scale: str = "received_power") -> DigitalProblem:
    """The reference DMA with random loads; defaults from quantities the model computes:
    Γ_m is the interference-free SINR at P_max minus ``gamma_below_db``, β_d a fraction of
    the weakest best single-direction gain, β_max a fraction of the strongest."""
    m = DmaModel.from_spec(load_config("dma-4x8").dma, origin=(0, 0, 10))
    users = np.column_stack([rng.uniform(-20, 20, 3), rng.uniform(20, 60, 3), np.full(3, 1.5)])
    ys = 1.0 + 1j * rng.normal(0, 10, m.L)
    H = m.user_channels(users, ys, scale=scale)
    V = (m.steering(np.full(3, 0.5236), np.array([0.0, 1.0472, 2.0944])).T
         @ m.phi(ys) @ m.Y_st).conj().T
    Yp = m.port_admittance(ys)
    AP = (Yp + Yp.conj().T) / 4
    pmax, s2 = 1.0, 1e-12
    best = np.array([pmax * np.real(V[:, d].conj() @ np.linalg.solve(AP, V[:, d]))
                     for d in range(3)])
    sinr_if = np.array([pmax * np.real(H[k].conj() @ np.linalg.solve(AP, H[k])) / s2
                        for k in range(3)])
    return DigitalProblem(V, H, AP, s2, sinr_if * 10 ** (-gamma_below_db / 10),
                          np.full(3, beta_frac * best.min()), beta_max_frac * best.max(), pmax,
                          n_sensing)


def feasible(p: DigitalProblem, B: np.ndarray, tol: float = 1e-6) -> bool:
    bp = p.beampattern(B)
    return (np.all(p.sinr(B) >= p.gamma * (1 - tol)) and np.all(bp >= p.beta * (1 - tol))
            and np.all(bp <= p.beta_max * (1 + tol)) and p.power(B) <= p.p_max * (1 + tol))


def test_recovered_design_is_feasible_and_exact(rng) -> None:
    for _ in range(3):
        p = problem(rng)
        r = solve_digital(p)
        assert feasible(p, r.B)  # judged by the model's metrics, not the solver
        assert r.rank_loss == 0.0
        assert r.objective == pytest.approx(r.sdp_objective, rel=1e-6)


def test_sdp_optimum_bounds_any_feasible_rank_one_design(rng) -> None:
    """Independent rank-one designs: random B scaled to P_max; the SDP optimum must be at
    least the objective of every one of them that is feasible."""
    # the noise-limited regime of the normalised channel, where random B can be feasible
    p = problem(rng, gamma_below_db=40.0, beta_frac=0.01, scale="normalised")
    r = solve_digital(p)
    best_random, n_feasible = -np.inf, 0
    for _ in range(3000):
        B = rng.standard_normal((4, 7)) + 1j * rng.standard_normal((4, 7))
        B *= np.sqrt(p.p_max / p.power(B))
        if feasible(p, B, tol=0.0):
            n_feasible += 1
            best_random = max(best_random, float(np.mean(p.beampattern(B))))
    assert n_feasible > 10
    assert r.sdp_objective >= best_random


def test_fewer_sensing_streams_report_the_loss(rng) -> None:
    p = problem(rng, n_sensing=1)
    r = solve_digital(p)
    assert r.B.shape == (4, 4)
    assert r.rank_loss >= 0
    assert np.mean(r.beampattern) == pytest.approx(r.sdp_objective - r.rank_loss, rel=1e-5)
    assert np.all(r.sinr >= p.gamma * (1 - 1e-6))  # comm streams are untouched


def test_infeasibility_names_its_cause(rng) -> None:
    p = problem(rng, gamma_below_db=-30.0)  # 30 dB above the interference-free SINR
    with pytest.raises(InfeasibleError, match="SINR targets") as ei:
        solve_digital(p)
    assert "SINR" in ei.value.bound
    p = problem(rng, beta_frac=50.0, beta_max_frac=100.0)  # far above the best gain
    with pytest.raises(InfeasibleError, match="beampattern bounds"):
        solve_digital(p)


@pytest.mark.parametrize(("gamma_below_db", "scale"), [(30.0, "received_power"),
                                                       (35.0, "received_power"),
                                                       (20.0, "normalised")])
def test_native_clarabel_sdr_equals_the_cvxpy_reference(rng, gamma_below_db, scale) -> None:
    """The native cone form (rfctl.optimize.dma_clarabel) and the cvxpy model solve the
    same P2 (same margin): optima agree to 1e-5 relative (measured 1e-8–6e-6; the cvxpy
    path is the less accurate one), and the fast path's B is feasible at 1e-6."""
    for _ in range(2):
        p = problem(rng, gamma_below_db=gamma_below_db, scale=scale)
        fast = solve_digital(p, backend="clarabel", margin=1e-3)
        ref = solve_digital(p, backend="cvxpy", margin=1e-3)
        assert fast.sdp_objective == pytest.approx(ref.sdp_objective, rel=1e-5)
        assert fast.objective == pytest.approx(ref.objective, rel=1e-5)
        assert feasible(p, fast.B)


def test_hermitian_layout_round_trip(rng) -> None:
    from rfctl.optimize.dma_clarabel import HermitianLayout

    lay = HermitianLayout(4)
    X = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    X = X + X.conj().T
    A = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    A = A + A.conj().T
    x = np.concatenate([X.real[lay.iu], X.imag[lay.iu1]])
    assert np.allclose(lay.matrix(x), X)
    assert lay.coef(A) @ x == pytest.approx(np.real(np.trace(A @ X)), rel=1e-12)
    # the embedding's triangle vector holds the real 2N × 2N matrix (√2 off the diagonal)
    Mr = np.block([[X.real, -X.imag], [X.imag, X.real]])
    iu = np.triu_indices(8)
    order = np.lexsort((iu[0], iu[1]))  # column-major upper triangle
    sv = Mr[iu[0][order], iu[1][order]] * np.where(iu[0][order] == iu[1][order], 1,
                                                    np.sqrt(2))
    assert np.allclose(lay.embed @ x, sv)


def test_multipliers_agree_between_backends(rng) -> None:
    """The SDR multipliers (used for the reduced gradient) are the same from the native
    cone form and from cvxpy's dual values."""
    from rfctl.optimize.dma_digital import _solve, tightened

    p = tightened(problem(rng), 1e-3)
    a, b = _solve(p, "clarabel")[4], _solve(p, "cvxpy")[4]
    for k in ("beta", "beta_max", "sinr", "power"):
        scale = max(np.max(np.abs(a[k])), np.max(np.abs(b[k])), 1e-12)
        assert np.allclose(a[k], b[k], atol=1e-3 * scale + 1e-6), k  # inactive: ~1e-7


def test_status_is_the_outcome_vocabulary_and_fallback_is_logged(rng, monkeypatch,
                                                                   caplog) -> None:
    """The SDR's status is a SolverStatus (not a string); when Clarabel raises inside
    cvxpy, the fall-back to SCS is logged at WARNING and its B still meets every bound."""
    import logging

    import cvxpy as cp

    from rfctl.outcome import SolverStatus, solved

    p = problem(rng)
    r = solve_digital(p)
    assert isinstance(r.status, SolverStatus) and solved(r.status, accept_inaccurate=True)
    assert r.margin > 0  # the tightening is its own field, not folded into the status
    real = cp.Problem.solve

    def no_clarabel(self, *a, **kw):
        if kw.get("solver") == cp.CLARABEL:
            raise cp.SolverError("clarabel refused (test)")
        return real(self, *a, **kw)

    monkeypatch.setattr(cp.Problem, "solve", no_clarabel)
    with caplog.at_level(logging.WARNING, logger="rfctl.outcome"):
        r2 = solve_digital(p, backend="cvxpy")
    assert isinstance(r2.status, SolverStatus)
    assert feasible(p, r2.B)  # SCS's B, judged by the model's metrics
    assert any("falling back to SCS" in rec.getMessage() for rec in caplog.records)
