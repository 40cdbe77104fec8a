"""DMA digital beamforming: the semidefinite relaxation P2 of the DMA seed (eqs. 6–14).

With the element loads fixed, every quantity is quadratic in B = [B_c B_s] (N × (M + N_s)):

- beampattern P(θ_d, φ_d) = Σ_m b_mᴴ A_d b_m with A_d = v_d v_dᴴ, where
  v_dᴴ = a(θ_d, φ_d)ᵀ Φ Y_st (seed eq. 3);
- SINR of user m (eq. 1): |h_m b_m|² / (Σ_{i≠m} |h_m b_i|² + σ²), with 𝒴_m = h_mᴴ h_m;
- transmit power (eq. 5): ½ Re tr(Y_p B Bᴴ) = tr(A_P B Bᴴ), with A_P = ¼ (Y_p + Y_pᴴ).

P2 replaces b_m b_mᴴ by PSD matrices 𝓑_m for the M communication streams. Only the sum
R_s of the sensing streams matters, so they share one PSD matrix. The problem
maximises the mean beampattern gain (1/D) Σ_d tr(A_d R) subject to
β_d ≤ tr(A_d R) ≤ β_max, the SINR constraints and tr(A_P R) ≤ P_max, where
R = Σ_m 𝓑_m + R_s. The seed's line "(7.)" is an extraction artefact and is left out.
Channels are expressed in noise units (h/σ, noise 1) before the conic solver sees them.

**Rank-one recovery.** The communication streams take
b_m = (h̄ᴴ 𝓑_m h̄)^{-1/2} 𝓑_m h̄ with h̄ = h_mᴴ. This keeps each user's signal power
exactly and can only lower the interference, since b_m b_mᴴ ⪯ 𝓑_m. The rest of the
total covariance, R − Σ b_m b_mᴴ ⪰ 0, is factored into the sensing streams, so the total
covariance, and with it the beampattern and the power, is kept whenever
N_s ≥ rank(R − Σ b_m b_mᴴ). Otherwise the strongest N_s eigen-directions are kept and the
loss is reported. The recovered B is always checked with the model's own metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from rfctl.errors import ConfigError, InfeasibleError
from rfctl.outcome import SolverStatus, from_cvxpy, log_fallback, solved

__all__ = ["DigitalProblem", "DigitalResult", "feasible_b", "infeasibility", "meets_bounds",
           "solve_digital", "tightened"]

log = logging.getLogger(__name__)


@dataclass
class DigitalProblem:
    """Data of P1/P2 for fixed element loads.

    Attributes
    ----------
    V : ndarray, shape (N, D)
        v_d (columns): P(θ_d, φ_d) = Σ_m |v_dᴴ b_m|².
    H : ndarray, shape (M, N)
        Users' effective channels h_m (rows), in the same units as B.
    A_P : ndarray, shape (N, N)
        Hermitian power matrix: P_t = tr(A_P B Bᴴ).
    sigma2 : float
        Noise power (same units as |h b|²).
    gamma : ndarray, shape (M,)
        SINR targets Γ_m, linear.
    beta : ndarray, shape (D,)
        Lower beampattern bounds β_d.
    beta_max : float
    p_max : float
    n_sensing : int
        Sensing streams N_s.
    """

    V: NDArray[np.complex128]
    H: NDArray[np.complex128]
    A_P: NDArray[np.complex128]
    sigma2: float
    gamma: NDArray[np.float64]
    beta: NDArray[np.float64]
    beta_max: float
    p_max: float
    n_sensing: int

    # ---------------------------------------------------------------- metrics of a B
    def beampattern(self, B: NDArray) -> NDArray[np.float64]:
        """P_d = Σ_m |v_dᴴ b_m|² for B (N × (M + N_s)): shape (D,), in the units of β."""
        return np.sum(np.abs(self.V.conj().T @ B) ** 2, axis=1)

    def sinr(self, B: NDArray) -> NDArray[np.float64]:
        """SINR of every user for B (N × (M + N_s)), linear, shape (M,); the interference
        comes from every other column of B, sensing streams included (seed eq. 1)."""
        M = self.H.shape[0]
        G = np.abs(self.H @ B) ** 2  # (M, M + N_s)
        sig = G[np.arange(M), np.arange(M)]
        return sig / (G.sum(1) - sig + self.sigma2)

    def power(self, B: NDArray) -> float:
        """Transmit power P_t = tr(A_P B Bᴴ) for B (N × (M + N_s)), W."""
        return float(np.real(np.trace(self.A_P @ B @ B.conj().T)))


@dataclass
class DigitalResult:
    """Outcome of :func:`solve_digital`.

    Attributes
    ----------
    B : ndarray, shape (N, M + N_s)
        Recovered beamformer (communication columns first).
    sdp_objective : float
        Optimum of the relaxation (an upper bound on P1's objective for these loads).
    objective : float
        Mean beampattern gain of the recovered B.
    sinr, beampattern : ndarray
    power : float
    rank_loss : float
        Beampattern objective lost because N_s < rank of the residual covariance
        (0 when the recovery is exact).
    status : rfctl.outcome.SolverStatus
        Status of the SDR solve (``optimal-inaccurate`` is accepted: B is re-checked
        with the model's metrics); the bounds' tightening is ``margin``.
    multipliers : dict or None
        Multipliers of P2's rows (Clarabel backend; see
        :func:`rfctl.optimize.dma_clarabel.solve_sdp_clarabel`; the cvxpy backend
        returns the same from its constraints' dual values).
    margin : float
        The relative margin the bounds were tightened by (:func:`tightened`).
    """

    B: NDArray[np.complex128]
    sdp_objective: float
    objective: float
    sinr: NDArray[np.float64]
    beampattern: NDArray[np.float64]
    power: float
    rank_loss: float
    status: SolverStatus
    multipliers: dict | None = None
    margin: float = 0.0


def _solve_sdp(p: DigitalProblem, *, sinr: bool = True, pattern: bool = True,
               objective: bool = True):
    import cvxpy as cp

    N = p.V.shape[0]
    M = p.H.shape[0]
    s = np.sqrt(p.sigma2)
    Hn = p.H / s  # noise units: noise power 1
    Bm = [cp.Variable((N, N), hermitian=True) for _ in range(M)]
    Rs = cp.Variable((N, N), hermitian=True)
    R = sum(Bm) + Rs if M else Rs
    cons = [X >> 0 for X in [*Bm, Rs]]
    gains = [cp.real(cp.quad_form(p.V[:, d], R)) for d in range(p.V.shape[1])] \
        if p.V.shape[1] else []
    if pattern:
        for d, g in enumerate(gains):
            cons += [g >= p.beta[d], g <= p.beta_max]
    if sinr:
        for m in range(M):
            h = Hn[m].conj()  # h_mᴴ as a column: |h_m b|² = bᴴ (h_mᴴ h_m) b
            tot = cp.real(cp.quad_form(h, R))
            own = cp.real(cp.quad_form(h, Bm[m]))
            cons.append(tot - own - own / p.gamma[m] + 1.0 <= 0)
    cons.append(cp.real(cp.trace(p.A_P @ R)) <= p.p_max)
    obj = cp.Maximize(sum(gains) / max(len(gains), 1)) if objective and gains \
        else cp.Minimize(0)
    prob = cp.Problem(obj, cons)
    try:
        prob.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        log_fallback("DMA digital SDR (cvxpy)", "Clarabel", SolverStatus.NUMERICAL_ERROR,
                     "SCS")
        prob.solve(solver=cp.SCS, eps=1e-8, max_iters=100_000)
    return prob, Bm, Rs


def _ok(status: SolverStatus) -> bool:
    """Solved, accurately or not. Inaccurate is acceptable at every site here: a
    recovered B is re-checked with the model's exact metrics (:func:`feasible_b`), the
    feasibility sub-problems of :func:`_cause` only name a cause in an error message,
    and :func:`infeasibility` only grades infeasible tunings against each other."""
    return solved(status, accept_inaccurate=True)


def _solve(p: DigitalProblem, backend: str, **flags: bool
           ) -> tuple[SolverStatus, float, list[NDArray], NDArray | None, dict | None]:
    """(status, value, 𝓑_m, R_s, multipliers or None) of P2 by the chosen backend."""
    if backend == "clarabel":
        from rfctl.optimize.dma_clarabel import solve_sdp_clarabel

        return solve_sdp_clarabel(p.V, p.H / np.sqrt(p.sigma2), p.A_P, p.gamma, p.beta,
                                  p.beta_max, p.p_max, **flags)
    if backend != "cvxpy":
        raise ConfigError(f"unknown SDR backend {backend!r}", field="backend",
                          reason="expected 'clarabel' or 'cvxpy'")
    prob, Bm, Rs = _solve_sdp(p, **flags)
    status = from_cvxpy(prob.status)
    ok = _ok(status)
    duals = None
    if ok:  # multipliers in the order _solve_sdp adds the rows (after the PSD cones)
        from rfctl.optimize.dma_clarabel import row_duals

        rows = prob.constraints[len(Bm) + 1:]
        if flags.get("pattern", True):  # (β_d, β_max) pairs to row_duals' (β_max, β_d)
            D2 = 2 * p.V.shape[1]
            rows = [rows[i ^ 1] for i in range(D2)] + rows[D2:]
        lam = [float(np.real(np.sum(c.dual_value))) for c in rows]
        duals = row_duals(np.array(lam), p.V.shape[1], p.H.shape[0],
                          pattern=flags.get("pattern", True), sinr=flags.get("sinr", True))
    return (status, float(prob.value) if ok else float("nan"),
            [np.asarray(X.value) for X in Bm] if ok else [],
            np.asarray(Rs.value) if ok else None, duals)


def _cause(p: DigitalProblem, backend: str = "clarabel") -> str:
    """Which constraint set makes the SDP infeasible."""
    if not _ok(_solve(p, backend, pattern=False, objective=False)[0]):
        return "the SINR targets (with the power budget)"
    if not _ok(_solve(p, backend, sinr=False, objective=False)[0]):
        return "the beampattern bounds (with the power budget)"
    return "the SINR targets and beampattern bounds together"


def infeasibility(p: DigitalProblem) -> float:
    """Total violation of P2's lower bounds at best (phase one, native Clarabel): the
    least Σ_d (β_d − P_d)⁺/β_d + Σ_m (SINR-row excess in noise units) over covariances
    that meet β_max and the power. 0 when P2 is feasible; graded otherwise (used to
    compare infeasible tunings)."""
    from rfctl.optimize.dma_clarabel import solve_sdp_clarabel

    status, value, *_ = solve_sdp_clarabel(p.V, p.H / np.sqrt(p.sigma2), p.A_P, p.gamma,
                                           p.beta, p.beta_max, p.p_max, slack=True)
    return value if _ok(status) else float("inf")


def meets_bounds(bounds: object, sinr: NDArray, beampattern: NDArray, power: float,
                 tol: float = 1e-6) -> bool:
    """Every constraint of P1 for given metric values: SINR ≥ Γ, β ≤ P_d ≤ β_max and
    P_t ≤ P_max, each within the relative ``tol``.

    Parameters
    ----------
    bounds : DigitalProblem or rfctl.optimize.dma.DmaTask
        Anything with ``gamma`` (M,), ``beta`` (D,), ``beta_max`` and ``p_max`` (W).
    sinr : ndarray, shape (M,)
        Linear SINRs.
    beampattern : ndarray, shape (D,)
        P_d, in the units of β.
    power : float
        P_t, W.
    tol : float
        Relative tolerance.

    Returns
    -------
    bool
    """
    return bool(np.all(sinr >= bounds.gamma * (1 - tol))
                and np.all(beampattern >= bounds.beta * (1 - tol))
                and np.all(beampattern <= bounds.beta_max * (1 + tol))
                and power <= bounds.p_max * (1 + tol))


def feasible_b(p: DigitalProblem, B: NDArray, tol: float = 1e-6) -> bool:
    """Every constraint of P1 holds for B (N × (M + N_s)) with the model's exact metrics,
    within the relative ``tol`` (:func:`meets_bounds`)."""
    return meets_bounds(p, p.sinr(B), p.beampattern(B), p.power(B), tol)


def tightened(p: DigitalProblem, margin: float) -> DigitalProblem:
    """P with every bound moved inwards by the relative ``margin``: Γ(1 + m), β(1 + m),
    β_max(1 − m), P_max(1 − m)."""
    return replace(p, gamma=p.gamma * (1 + margin), beta=p.beta * (1 + margin),
                   beta_max=p.beta_max * (1 - margin), p_max=p.p_max * (1 - margin))


def solve_digital(p: DigitalProblem, *, backend: str = "clarabel",
                  margin: float = 1e-4) -> DigitalResult:
    """Solve P2 and recover a rank-one B that meets P1's constraints exactly.

    An interior-point solution is accurate to ~1e-8 in the solver's scaled units, which
    is ~1e-5 in SINR/Γ when the SINR targets are interference-limited. The SDR is
    therefore solved with every bound tightened by the relative ``margin`` (default
    1e-4, :func:`tightened`) and the recovered B is checked against the original bounds
    with the model's metrics at 1e-6; if that check fails the margin grows ×10 (up to
    1e-2), and if the tightened problem is infeasible the untightened one is solved.
    ``margin`` then says so (0).

    Parameters
    ----------
    backend : {"clarabel", "cvxpy"}
        ``clarabel``: the native cone form of :mod:`rfctl.optimize.dma_clarabel`
        (fast); ``cvxpy``: the readable reference model of this module.
    margin : float
        Initial relative safety margin on every bound.

    Raises
    ------
    InfeasibleError
        Naming the constraint set that makes the relaxation infeasible.
    """
    res = None
    m = margin
    while True:
        try:
            res = _solve_recover(tightened(p, m) if m > 0 else p, backend)
        except InfeasibleError:
            if m == 0:
                raise
            m = 0.0  # tightened infeasible: the original bounds themselves
            continue
        if m == 0 or feasible_b(p, res.B) or m >= 1e-2:
            break
        m *= 10
    res.margin = m
    return res


def _solve_recover(p: DigitalProblem, backend: str) -> DigitalResult:
    status, value, Rm, Rs, duals = _solve(p, backend)
    if not _ok(status):
        cause = _cause(p, backend)
        if status is SolverStatus.INFEASIBLE:
            raise InfeasibleError(f"the digital beamforming SDP is infeasible: {cause} "
                                  "cannot be met with these element loads", bound=cause)
        raise InfeasibleError(f"the digital beamforming SDP ended {status} (infeasibility "
                              f"not proven; the feasibility sub-problems point to {cause})",
                              bound=cause)
    M = p.H.shape[0]
    N = p.V.shape[0]
    Rtot = sum(Rm) + Rs if M else Rs
    cols = []
    for m in range(M):
        hb = p.H[m].conj()
        q = float(np.real(hb.conj() @ Rm[m] @ hb))
        cols.append(Rm[m] @ hb / np.sqrt(max(q, 1e-300)))
        # (h̄ᴴ 𝓑 h̄)^{-1/2} 𝓑 h̄: |h_m b_m|² = h̄ᴴ 𝓑_m h̄ exactly
    Bc = np.stack(cols, axis=1) if cols else np.zeros((N, 0), complex)
    resid = Rtot - Bc @ Bc.conj().T
    resid = (resid + resid.conj().T) / 2
    w, U = np.linalg.eigh(resid)
    w = np.clip(w, 0, None)
    order = np.argsort(-w)
    keep = order[: p.n_sensing]
    Bs = U[:, keep] * np.sqrt(w[keep])[None, :]
    lost = order[p.n_sensing:]
    rank_loss = float(np.sum([np.sum(np.abs(p.V.conj().T @ U[:, j]) ** 2) * w[j]
                              for j in lost]) / max(p.V.shape[1], 1)) if lost.size else 0.0
    B = np.concatenate([Bc, Bs], axis=1)
    bp = p.beampattern(B)
    return DigitalResult(B=B, sdp_objective=value, objective=float(np.mean(bp)),
                         sinr=p.sinr(B), beampattern=bp, power=p.power(B),
                         rank_loss=rank_loss, status=status, multipliers=duals)
