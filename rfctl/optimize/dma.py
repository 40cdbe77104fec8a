"""DMA ISAC design: alternate digital SDR (P2) and analog Neumann-SCA tuning (P3 → P4).

The analog step tunes the element susceptances b = Im Y_s (Re Y_s = R0 fixed: the
Lorentzian constraint). Around the current b̄, the seed's expansion (eq. 41) gives
Φ(b̄ + z) ≈ Φ̄ − jΦ̄ diag(z) Φ̄, valid while ‖diag(z) Φ̄‖ ≪ 1, so z is kept in the trust
region |z_l| ≤ δ (eq. 28e) with δ ‖Φ̄‖₂ ≤ ``neumann_bound``. The default is 1, the radius
of convergence of the Neumann series; exact acceptance guards each step. Every quantity becomes
affine in z: the beampattern rows u_d, each user's per-stream signal g_m, and the power.
The convex subproblem (P4, cvxpy) linearises the convex quadratics on the ≥ side (the
beampattern objective and lower bounds, each user's own signal) and keeps those on the
≤ side (β_max, the interference) exact in the linear model. Power is linear in z.

A step is accepted only if the **exact** objective improves and the exact constraints
hold at b̄ + z; otherwise δ is halved. The digital step never lowers the objective,
because the previous B is feasible for the relaxation, so the alternation is monotone.

**Feasibility phase.** With random tunings the users' effective channels are nearly
collinear, and the SDR is infeasible for SINR targets ≥ 0 dB. The design therefore
starts from the tuning with the least pairwise user correlation among ``n_starts``
random draws (Im Y_s ~ N(0, 10²) S). If even that SDR is infeasible, it raises
``InfeasibleError`` with the cause.

**Defaults** (from quantities the model computes, at the starting tuning):

- β_d = 0.2 × the weakest best single-direction gain at P_max;
- β_max = the strongest best single-direction gain;
- Γ_m = the interference-free SINR at P_max, minus ``gamma_below_db`` (default 20 dB);
- N_s = N sensing streams, so that the rank-one recovery is exact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from rfctl.admittance import DmaModel
from rfctl.errors import ConfigError, InfeasibleError
from rfctl.optimize.dma_digital import DigitalProblem, solve_digital

__all__ = ["DmaDesign", "DmaTask", "analog_step", "design_dma", "tuning_state"]

log = logging.getLogger(__name__)


@dataclass
class DmaTask:
    """A DMA design problem (see the module docstring for the defaults).

    Attributes
    ----------
    model : DmaModel
    users : ndarray, shape (M, 3)
        User positions, m.
    theta, phi : ndarray, shape (D,)
        Sensing directions, rad.
    sigma2 : float
        Noise power, W.
    p_max : float
        P_max, W.
    gamma, beta : ndarray or None
        SINR targets (linear) and lower beampattern bounds (None: defaults).
    beta_max : float or None
    n_sensing : int or None
    gamma_below_db : float
    """

    model: DmaModel
    users: NDArray[np.float64]
    theta: NDArray[np.float64]
    phi: NDArray[np.float64]
    sigma2: float
    p_max: float
    gamma: NDArray[np.float64] | None = None
    beta: NDArray[np.float64] | None = None
    beta_max: float | None = None
    n_sensing: int | None = None
    gamma_below_db: float = 20.0

    def __post_init__(self) -> None:
        m = self.model
        self.Y_RS = m.user_coupling(self.users)  # (M, L): fixed by the geometry (LOS)
        self.A = m.steering(self.theta, self.phi).reshape(m.L, -1)  # (L, D)
        if self.n_sensing is None:
            self.n_sensing = m.N

    # ---------------------------------------------------------------- exact metrics
    def problem(self, b: NDArray, *, loads: NDArray | None = None) -> DigitalProblem:
        """The digital problem P2 at tuning b (computing default targets if unset).

        ``loads`` gives complete complex Y_s instead (e.g. a quantized, lossy tuning).
        """
        m = self.model
        ys = loads if loads is not None else m.spec.r0_siemens + 1j * np.asarray(b, float)
        Phi = m.phi(ys)
        V = (self.A.T @ Phi @ m.Y_st).conj().T  # v_dᴴ = a_dᵀ Φ Y_st
        H = self.Y_RS @ Phi @ m.Y_st
        Yp = m.Y_tt - m.Y_st.T @ Phi @ m.Y_st
        AP = (Yp + Yp.conj().T) / 4
        if self.beta is None or self.beta_max is None or self.gamma is None:
            best = np.array([self.p_max * np.real(V[:, d].conj() @ np.linalg.solve(AP, V[:, d]))
                             for d in range(V.shape[1])])
            sif = np.array([self.p_max * np.real(H[k].conj() @ np.linalg.solve(AP, H[k]))
                            / self.sigma2 for k in range(H.shape[0])])
            if self.beta is None:
                self.beta = np.full(V.shape[1], 0.2 * best.min())
            if self.beta_max is None:
                self.beta_max = float(best.max())
            if self.gamma is None:
                self.gamma = sif * 10 ** (-self.gamma_below_db / 10)
        return DigitalProblem(V, H, AP, self.sigma2, self.gamma, self.beta, self.beta_max,
                              self.p_max, int(self.n_sensing))

    def exact(self, b: NDArray, B: NDArray, *, loads: NDArray | None = None) -> dict:
        """Objective and constraint values of (b, B), exactly (or of complete ``loads``)."""
        p = self.problem(b, loads=loads)
        bp = p.beampattern(B)
        return {"objective": float(np.mean(bp)), "beampattern": bp, "sinr": p.sinr(B),
                "power": p.power(B)}

    def feasible(self, ex: dict, tol: float = 1e-6) -> bool:
        return bool(np.all(ex["sinr"] >= self.gamma * (1 - tol))
                    and np.all(ex["beampattern"] >= self.beta * (1 - tol))
                    and np.all(ex["beampattern"] <= self.beta_max * (1 + tol))
                    and ex["power"] <= self.p_max * (1 + tol))


# --------------------------------------------------------------------------- analog
def _linear_model(task: DmaTask, b: NDArray, B: NDArray):
    """ū, J (beampattern), ḡ, K (users), P̄_t and its gradient, at b̄ (all affine in z)."""
    m = task.model
    ys = m.spec.r0_siemens + 1j * b
    Phi = m.phi(ys)
    W = Phi @ m.Y_st @ B  # (L, S)
    aPhi = task.A.T @ Phi  # (D, L): a_dᵀ Φ̄
    u = aPhi @ m.Y_st @ B  # (D, S)
    J = -1j * aPhi[:, :, None] * W[None, :, :]  # (D, L, S): ∂u_d/∂z_l
    rPhi = task.Y_RS @ Phi  # (M, L)
    g = rPhi @ m.Y_st @ B  # (M, S): h_m b_s
    K = -1j * rPhi[:, :, None] * W[None, :, :]  # (M, L, S)
    BB = B @ B.conj().T
    Yp = m.Y_tt - m.Y_st.T @ Phi @ m.Y_st
    pt = 0.5 * float(np.real(np.trace(Yp @ BB)))
    PY = Phi @ m.Y_st
    c = np.einsum("ln,nk,lk->l", PY, BB, PY)  # [Φ̄ Y_st B Bᴴ Y_stᵀ Φ̄]_ll
    dpt = -0.5 * np.imag(c)  # P_t(z) ≈ P̄_t + dptᵀ z
    return u, J, g, K, pt, dpt, Phi


def _p4_data(task: DmaTask, u, J, g, K, pt, dpt, delta: float):
    """Conic data of P4 over x = z ∈ ℝ^L (for Clarabel): minimise −(linearised mean gain)."""
    import clarabel

    L = J.shape[1]
    s = np.sqrt(task.sigma2)
    rows, b, cones = [], [], []
    # trust region: −δ ≤ z ≤ δ; power (linear); linearised beampattern lower bounds
    rows += [np.eye(L), -np.eye(L)]
    b += [np.full(L, delta), np.full(L, delta)]
    lin_rows = [dpt[None, :]]
    lin_b = [np.array([task.p_max - pt])]
    c = np.zeros(L)
    for d in range(u.shape[0]):
        grad = 2 * np.real(J[d] @ u[d].conj())  # ∂/∂z of ‖ū‖² + 2 Re(ūᴴ J z)
        c += grad / u.shape[0]
        lin_rows.append(-grad[None, :])
        lin_b.append(np.array([np.sum(np.abs(u[d]) ** 2) - task.beta[d]]))
    rows += lin_rows
    b += lin_b
    cones.append(clarabel.NonnegativeConeT(2 * L + 1 + u.shape[0]))
    # β_max: ‖u_d + J_dᵀ z‖ ≤ √β_max as a second-order cone
    for d in range(u.shape[0]):
        Jr = np.vstack([J[d].real.T, J[d].imag.T])  # (2S, L)
        rows.append(np.vstack([np.zeros((1, L)), -Jr]))
        b.append(np.concatenate([[np.sqrt(task.beta_max)], u[d].real, u[d].imag]))
        cones.append(clarabel.SecondOrderConeT(1 + Jr.shape[0]))
    # SINR: ‖w_m(z)‖² + 1 ≤ own_m(z)/Γ_m as ‖[2 w; 2; t − 1]‖ ≤ t + 1 with t = own/Γ
    for mm in range(g.shape[0]):
        gm, Km = g[mm] / s, K[mm] / s
        others = [i for i in range(g.shape[1]) if i != mm]
        own0 = np.abs(gm[mm]) ** 2
        own_g = 2 * np.real(np.conj(gm[mm]) * Km[:, mm])  # (L,)
        t0, tg = own0 / task.gamma[mm], own_g / task.gamma[mm]
        W0 = np.concatenate([gm[others].real, gm[others].imag])
        WJ = np.vstack([Km[:, others].real.T, Km[:, others].imag.T])
        rows.append(np.vstack([-tg[None, :], -2 * WJ, np.zeros((1, L)), -tg[None, :]]))
        b.append(np.concatenate([[t0 + 1], 2 * W0, [2.0], [t0 - 1]]))
        cones.append(clarabel.SecondOrderConeT(3 + WJ.shape[0]))
    return -c, np.vstack(rows), np.concatenate(b), cones


def _solve_p4_clarabel(task, u, J, g, K, pt, dpt, delta):
    import clarabel
    import scipy.sparse as sp

    q, A, b, cones = _p4_data(task, u, J, g, K, pt, dpt, delta)
    L = q.size
    st = clarabel.DefaultSettings()
    st.verbose = False
    sol = clarabel.DefaultSolver(sp.csc_matrix((L, L)), q, sp.csc_matrix(A), b, cones,
                                 st).solve()
    if "Solved" not in str(sol.status):
        return None, float("nan")
    z = np.asarray(sol.x)
    return z, float(-q @ z)


def _solve_p4_cvxpy(task, u, J, g, K, pt, dpt, delta):
    """P4 written plainly in cvxpy (the reference for the Clarabel path)."""
    import cvxpy as cp

    L = J.shape[1]
    s = np.sqrt(task.sigma2)
    z = cp.Variable(L)
    cons = [cp.abs(z) <= delta]
    obj_terms = []
    for d in range(u.shape[0]):
        lin = np.sum(np.abs(u[d]) ** 2) + 2 * cp.real(u[d].conj() @ (J[d].T @ z))
        obj_terms.append(lin)
        cons.append(lin >= task.beta[d])
        cons.append(cp.sum_squares(cp.abs(u[d] + J[d].T @ z)) <= task.beta_max)
    for mm in range(g.shape[0]):
        gm, Km = g[mm] / s, K[mm] / s  # noise units
        own = np.abs(gm[mm]) ** 2 + 2 * cp.real(np.conj(gm[mm]) * (Km[:, mm] @ z))
        others = [i for i in range(g.shape[1]) if i != mm]
        interf = cp.sum_squares(cp.abs(gm[others] + Km[:, others].T @ z))
        cons.append(task.gamma[mm] * (interf + 1.0) <= own)
    cons.append(pt + dpt @ z <= task.p_max)
    prob = cp.Problem(cp.Maximize(sum(obj_terms) / len(obj_terms)), cons)
    try:
        prob.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        return None, float("nan")
    if prob.status not in ("optimal", "optimal_inaccurate") or z.value is None:
        return None, float("nan")
    const = float(np.mean([np.sum(np.abs(u[d]) ** 2) for d in range(u.shape[0])]))
    return np.asarray(z.value), float(prob.value) - const


def analog_step(task: DmaTask, b: NDArray, B: NDArray, *, delta: float,
                neumann_bound: float = 1.0, max_shrink: int = 12,
                solver: str = "clarabel") -> tuple[NDArray, dict]:
    """One SCA step on the tunings with exact acceptance (see module docstring).

    Parameters
    ----------
    solver : "clarabel" or "cvxpy"
        P4 by Clarabel directly (fast) or written in cvxpy (the reference).

    Returns
    -------
    b_new : ndarray, shape (L,)
        b + z if a step was accepted, else b.
    info : dict
        ``accepted``, ``delta`` (the trust radius used), ``objective``.
    """
    u, J, g, K, pt, dpt, Phi = _linear_model(task, b, B)
    cur = task.exact(b, B)
    delta = min(delta, neumann_bound / np.linalg.norm(Phi, 2))
    solve = _solve_p4_clarabel if solver == "clarabel" else _solve_p4_cvxpy
    for _ in range(max_shrink):
        z, _pred = solve(task, u, J, g, K, pt, dpt, delta)
        if z is not None:
            bn = b + z
            ex = task.exact(bn, B)
            if ex["objective"] > cur["objective"] and task.feasible(ex):
                return bn, {"accepted": True, "delta": delta, "objective": ex["objective"]}
        delta /= 2
    return b, {"accepted": False, "delta": delta, "objective": cur["objective"]}


# --------------------------------------------------------------------------- alternation
@dataclass
class DmaDesign:
    """An alternating DMA design.

    Attributes
    ----------
    b : ndarray, shape (L,)
        Im Y_s per element, S.
    B : ndarray, shape (N, M + N_s)
    objective : float
        Mean beampattern gain (exact).
    trace : list of float
        Exact objective after every digital and every accepted analog step.
    sinr, beampattern : ndarray
    power : float
    stop_reason : str
    iterations : int
    digital_s, analog_s : float
        Time spent in each step.
    start_correlation : float
        Largest pairwise user correlation at the starting tuning.
    b0 : ndarray, shape (L,) or None
        The starting tuning.
    B0 : ndarray or None
        The digital beamformer of the first digital step (at b0).
    residuals : list of dict
        For every trace entry, the exact constraint margins: ``sinr`` = min SINR/Γ − 1,
        ``beta`` = min P_d/β_d − 1, ``beta_max`` = 1 − max P_d/β_max and
        ``power`` = 1 − P_t/P_max. All are ≥ 0 (to tolerance) for a feasible design.
    """

    b: NDArray[np.float64]
    B: NDArray[np.complex128]
    objective: float
    trace: list[float] = field(default_factory=list)
    sinr: NDArray[np.float64] | None = None
    beampattern: NDArray[np.float64] | None = None
    power: float = 0.0
    stop_reason: str = ""
    iterations: int = 0
    digital_s: float = 0.0
    analog_s: float = 0.0
    start_correlation: float = 1.0
    b0: NDArray[np.float64] | None = None
    B0: NDArray[np.complex128] | None = None
    residuals: list[dict] = field(default_factory=list)


def _margins(task: DmaTask, ex: dict) -> dict:
    return {"sinr": float(np.min(ex["sinr"] / task.gamma) - 1),
            "beta": float(np.min(ex["beampattern"] / task.beta) - 1),
            "beta_max": float(1 - np.max(ex["beampattern"]) / task.beta_max),
            "power": float(1 - ex["power"] / task.p_max)}


def tuning_state(task: DmaTask, design: DmaDesign):
    """The design's element tunings (and B) as an ArrayState for the HAL."""
    from rfctl.state import ArrayState, DmaTuning

    m = task.model
    return ArrayState(dma=DmaTuning(b=design.b, r0=m.spec.r0_siemens,
                                    y_self=np.diag(m.Y_ss).copy()), dma_b=design.B)


def _max_correlation(task: DmaTask, b: NDArray) -> float:
    m = task.model
    H = task.Y_RS @ m.phi(m.spec.r0_siemens + 1j * b) @ m.Y_st
    Hn = H / np.linalg.norm(H, axis=1, keepdims=True)
    C = np.abs(Hn @ Hn.conj().T)
    np.fill_diagonal(C, 0)
    return float(C.max())


def design_dma(task: DmaTask, *, rng: np.random.Generator, n_starts: int = 200,
               max_iter: int = 20, tol: float = 1e-4, analog_steps: int = 8,
               delta0: float = 50.0) -> DmaDesign:
    """Alternating optimisation (digital SDR ↔ analog SCA) from a decorrelating start.

    Stops when an outer iteration improves the exact objective by less than ``tol``
    (relative), or after ``max_iter`` iterations.

    Raises
    ------
    InfeasibleError
        The digital SDR is infeasible even at the decorrelating start (with the cause).
    """
    if task.model.L <= 0:
        raise ConfigError("empty DMA", field="dma", reason="no elements")
    starts = rng.normal(0.0, 10.0, (n_starts, task.model.L))
    corr = [_max_correlation(task, b) for b in starts]
    b = starts[int(np.argmin(corr))]
    b0 = b.copy()
    start_corr = float(min(corr))
    t0 = time.perf_counter()
    dig = solve_digital(task.problem(b))
    t_dig = time.perf_counter() - t0
    B = dig.B
    B0 = B.copy()
    ex0 = task.exact(b, B)
    trace = [ex0["objective"]]
    residuals = [_margins(task, ex0)]
    t_ana = 0.0
    delta = delta0
    reason = "max_iter"
    it = 0
    while it < max_iter:
        it += 1
        t1 = time.perf_counter()
        for _ in range(analog_steps):
            b, info = analog_step(task, b, B, delta=delta)
            if info["accepted"]:
                trace.append(info["objective"])
                residuals.append(_margins(task, task.exact(b, B)))
                delta = min(info["delta"] * 2, delta0)
            else:
                delta = max(info["delta"], 1e-6)
                break
        t_ana += time.perf_counter() - t1
        t1 = time.perf_counter()
        try:
            dig = solve_digital(task.problem(b))
            if dig.objective >= trace[-1] and task.feasible(task.exact(b, dig.B)):
                B = dig.B
        except InfeasibleError:
            log.warning("digital step infeasible at the new tuning; keeping the previous B")
        t_dig += time.perf_counter() - t1
        exi = task.exact(b, B)
        trace.append(exi["objective"])
        residuals.append(_margins(task, exi))
        prev = trace[-(analog_steps + 2)] if len(trace) > analog_steps + 1 else trace[0]
        if trace[-1] - prev <= tol * abs(prev):
            reason = "converged"
            break
    ex = task.exact(b, B)
    return DmaDesign(b=b, B=B, objective=ex["objective"], trace=trace, sinr=ex["sinr"],
                     beampattern=ex["beampattern"], power=ex["power"], stop_reason=reason,
                     iterations=it, digital_s=t_dig, analog_s=t_ana,
                     start_correlation=start_corr, b0=b0, B0=B0, residuals=residuals)
