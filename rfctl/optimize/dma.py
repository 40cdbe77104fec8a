"""DMA ISAC design: alternate the digital SDR (P2) and an analog step on the tunings (P3).

The analog step tunes the element susceptances b = Im Y_s (Re Y_s = R0 fixed: the
Lorentzian constraint). Three analog steps are implemented; all are judged on the exact
model (a candidate is kept only if the SDR at it is feasible at 1e-6 and the exact
objective rises), so the alternation is monotone and every iterate is feasible.

- ``method="newton"`` (default). A trust-region Newton step on F(b) (defined below)
  with F's exact curvature: ∇²F comes from the sensitivity of the SDR's KKT system
  (:func:`rfctl.optimize.dma_sensitivity.value_hessian`: the Lagrangian's Hessian with
  the SDR's multipliers, plus how the optimal B and the active constraints follow b;
  checked against finite differences of the SDR's own gradient to 0.2–4 %, where the
  Lagrangian's b-block alone, B and μ frozen, is 60–120× off). Eigenvalues of −∇²F
  below ``curvature_floor`` × the largest are raised to it (F is not concave). F is
  only piecewise smooth: where the SDR's solution changes structure (power moving
  between streams, a β_max row leaving), F has a crest within a fraction of a siemens
  that no quadratic model sees, so the model also keeps the cutting planes
  F(b_i) + ∇F(b_i)ᵀ(b − b_i) of the last ``bundle_size`` candidates that lie above F at
  b̄ (a proximal-bundle model: argmax min(planes) − ½ zᵀ H z, one Clarabel QP); after a
  rejected step the box shrinks to where the 1-D quadratic through F(b̄), ∇Fᵀz and
  F(b̄ + z) peaks (clipped to [0.1, 0.5] of the step); if the planes (not the box)
  held a rejected step back, they are dropped (on a non-concave F they can wall off
  the ascent). The box may grow to
  ``trust_factor`` × δ_N (32): the model is not the seed's eq. 41, and some optima
  detune elements (|b| → ∞, F → its limit like 1/b), which a box held at δ_N walks
  towards for tens of iterations. χ keeps its Neumann-box definition (below).
  Measured on ``dma-4x8`` realisations 0–7 (the CLI's draws, tuned on): 70, 16, 19,
  68, 63, 7, 14, 21 iterations vs 183, 37, 48, 139, 179, 11, 34, 28 for ``"reduced"``;
  judged on realisations 20–27 (BENCHMARKS.md).
- ``method="reduced"``. Let F(b) be the SDR optimum at tuning b (exact for
  P1 when N_s ≥ rank of the residual covariance, the default N_s = N). Its gradient
  comes from the SDR's own multipliers by the envelope theorem
  (:func:`reduced_gradient`, checked against finite differences), and a damped BFGS
  model of its curvature is built from successive gradients. Each iteration maximises
  that quadratic model over the box |z_l| ≤ δ (∩ the realisable set), solves the SDR at
  b̄ + z, and adapts δ to ρ = (exact gain)/(predicted gain): ×2 when ρ ≥ 0.75 and the
  step reached the box, ×¼ of the step when ρ < 0.25 or the candidate is rejected.
  When an interior step (the model's own optimum) gains more than predicted (ρ > 1.25)
  the BFGS matrix is scaled by ``curvature_relax`` (0.5): damped BFGS keeps a stiff
  curvature, and the slow draws otherwise creep with ρ ≈ 1.3–1.6 (measured on
  ``dma-4x8`` realisations 0–7: 1233 → 659 iterations in all, 7/8 → 8/8 converged;
  judged on realisations 20–27, not tuned on: 1061 → 931, 7/8 converged either way,
  same stopping rule, see ``design_dma``).
  δ never exceeds the Neumann radius δ_N = ``neumann_bound``/‖Φ̄‖₂, the region where the
  seed's expansion (eq. 41) Φ(b̄ + z) ≈ Φ̄ − jΦ̄ diag(z) Φ̄ (on which the gradient is
  built) converges.
- ``method="p4"``: the seed's step. Every quantity becomes affine in z through eq. 41
  (the beampattern rows u_d, each user's per-stream signal g_m, the power), with B
  fixed; the convex subproblem P4 (Clarabel directly; cvxpy as the tested reference)
  linearises the convex quadratics on the ≥ side (the objective and lower bounds, each
  user's own signal) and keeps those on the ≤ side (β_max, the interference) exact in
  the linear model. The same trust-region rule applies. Measured on the reference
  geometry it reaches the same designs more slowly: with B fixed, steps creep along the
  SINR boundary (0.1–0.3 % gain per iteration after ~50 iterations).

**Feasibility phase.** With random tunings the users' effective channels are nearly
collinear, and the SDR is often infeasible for SINR targets of 10–20 dB. The design
therefore starts from the tuning with the least pairwise user correlation among
``n_starts`` random draws (Im Y_s ~ N(0, 10²) S, or uniform in the realisable box of a
board), trying the ``n_tries`` least correlated in turn; if every one is infeasible it
raises ``InfeasibleError`` with the cause.

**SDR accuracy.** Each SDR is solved with its bounds tightened by a small relative
margin (:func:`rfctl.optimize.dma_digital.solve_digital`) and its B re-checked at 1e-6
with the model's metrics, so reported designs meet every constraint exactly, not only
to the solver's tolerance.

**Defaults** (from quantities the model computes, at the starting tuning):

- β_d = 0.2 × the weakest best single-direction gain at P_max;
- β_max = the strongest best single-direction gain;
- Γ_m = the interference-free SINR at P_max, minus ``gamma_below_db`` (default 30 dB:
  7–21 dB on the reference geometry with the received-power channel scale);
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
from rfctl.optimize.dma_digital import DigitalProblem, feasible_b, meets_bounds, solve_digital
from rfctl.optimize.dma_sensitivity import value_hessian
from rfctl.outcome import Outcome, SolverStatus, StopReason, from_clarabel, from_cvxpy, solved

__all__ = [
    "DmaDesign",
    "DmaTask",
    "analog_step",
    "describe_violations",
    "design_dma",
    "objective_hessian",
    "reduced_gradient",
    "resonance_arc",
    "susceptance_bounds",
    "tuning_state",
]

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
    channel_scale : {"received_power", "normalised"}
        Scale of the users' channels (see :mod:`rfctl.admittance`): with
        ``received_power``, |h_m b|² is the received power in W, so σ² and Γ are
        physical (σ² = k_B T B F, e.g. 1e-12 W for 100 MHz and F = 4 dB).
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
    gamma_below_db: float = 30.0
    channel_scale: str = "received_power"

    def __post_init__(self) -> None:
        m = self.model
        self.users = np.asarray(self.users, float).reshape(-1, 3)
        self.theta = np.atleast_1d(np.asarray(self.theta, float))
        self.phi = np.atleast_1d(np.asarray(self.phi, float))
        # (M, L): fixed by the geometry (LOS)
        self.Y_RS = m.user_coupling(self.users, scale=self.channel_scale)
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
        """Objective and constraint values of (b, B) with the exact model.

        Parameters
        ----------
        b : ndarray, shape (L,), or None
            Im Y_s per element, S (ignored when ``loads`` is given).
        B : ndarray, shape (N, M + N_s)
            Digital beamformer (unit-power symbols).
        loads : ndarray, shape (L,) complex, optional
            Complete element loads Y_s, S (e.g. a quantized, lossy tuning).

        Returns
        -------
        dict
            ``objective`` (mean P_d), ``beampattern`` (P_d, shape (D,)), ``sinr``
            (linear, shape (M,)) and ``power`` (P_t, W).
        """
        p = self.problem(b, loads=loads)
        bp = p.beampattern(B)
        return {"objective": float(np.mean(bp)), "beampattern": bp, "sinr": p.sinr(B),
                "power": p.power(B)}

    def record(self):
        """The task as a :class:`rfctl.state.DmaTaskRecord` (targets resolved).

        Raises
        ------
        ConfigError
            Γ, β or β_max is still unset (call :meth:`problem` or design first).
        """
        from rfctl.state import DmaTaskRecord

        if self.gamma is None or self.beta is None or self.beta_max is None:
            raise ConfigError("the task's targets are not set yet", field="gamma",
                              reason="call problem() (or design) first")
        m = self.model
        return DmaTaskRecord(spec=m.spec.model_dump(mode="json"), origin=m.origin.copy(),
                             users=self.users.copy(), theta=self.theta.copy(),
                             phi=self.phi.copy(), gamma=np.asarray(self.gamma, float),
                             beta=np.asarray(self.beta, float),
                             beta_max=float(self.beta_max), p_max=float(self.p_max),
                             sigma2=float(self.sigma2), channel_scale=self.channel_scale,
                             n_sensing=int(self.n_sensing))

    @classmethod
    def from_record(cls, rec) -> DmaTask:
        """The task a :class:`rfctl.state.DmaTaskRecord` describes (model rebuilt).

        Raises
        ------
        pydantic.ValidationError
            The record's DMA spec is not a valid :class:`rfctl.config.DmaSpec`.
        """
        from rfctl.config import DmaSpec

        model = DmaModel.from_spec(DmaSpec.model_validate(rec.spec), origin=rec.origin)
        return cls(model, rec.users, rec.theta, rec.phi, rec.sigma2, rec.p_max,
                   gamma=np.asarray(rec.gamma, float), beta=np.asarray(rec.beta, float),
                   beta_max=rec.beta_max, n_sensing=rec.n_sensing or None,
                   channel_scale=rec.channel_scale)

    def report(self, ex: dict, tol: float = 1e-6) -> dict:
        """Every constraint of P1 for exact values ``ex`` (from :meth:`exact`), in SI.

        Returns
        -------
        dict
            ``objective`` (mean P_d), ``min_sinr_ratio`` (min SINR/Γ), ``sinr`` and
            ``gamma`` (linear), ``beampattern`` (P_d), ``beta``, ``beta_max``,
            ``power`` and ``p_max`` (W), ``feasible`` (every constraint within the
            relative ``tol``) and ``violations``: one dict per failed constraint with
            ``constraint`` (e.g. ``"SINR user 2 >= Gamma"``), ``value``, ``bound`` and
            ``relative`` (value/bound − 1, signed so that < 0 is on the wrong side for
            ≥ bounds and > 0 for ≤ bounds).
        """
        sinr, bp, pw = np.asarray(ex["sinr"]), np.asarray(ex["beampattern"]), ex["power"]
        viol = []
        for m in np.flatnonzero(sinr < self.gamma * (1 - tol)):
            viol.append({"constraint": f"SINR user {m} >= Gamma", "value": float(sinr[m]),
                         "bound": float(self.gamma[m]),
                         "relative": float(sinr[m] / self.gamma[m] - 1)})
        for d in np.flatnonzero(bp < self.beta * (1 - tol)):
            viol.append({"constraint": f"P_d direction {d} >= beta", "value": float(bp[d]),
                         "bound": float(self.beta[d]),
                         "relative": float(bp[d] / self.beta[d] - 1)})
        for d in np.flatnonzero(bp > self.beta_max * (1 + tol)):
            viol.append({"constraint": f"P_d direction {d} <= beta_max",
                         "value": float(bp[d]), "bound": float(self.beta_max),
                         "relative": float(bp[d] / self.beta_max - 1)})
        if pw > self.p_max * (1 + tol):
            viol.append({"constraint": "P_t <= P_max", "value": float(pw),
                         "bound": float(self.p_max), "relative": float(pw / self.p_max - 1)})
        return {"objective": float(np.mean(bp)),
                "min_sinr_ratio": float(np.min(sinr / self.gamma)), "sinr": sinr,
                "gamma": np.asarray(self.gamma, float), "beampattern": bp,
                "beta": np.asarray(self.beta, float), "beta_max": float(self.beta_max),
                "power": float(pw), "p_max": float(self.p_max), "feasible": not viol,
                "violations": viol}

    def feasible(self, ex: dict, tol: float = 1e-6) -> bool:
        """Every constraint of P1 holds for exact values ``ex`` (from :meth:`exact`).

        Parameters
        ----------
        ex : dict
            ``sinr`` (M,), ``beampattern`` (D,) and ``power`` (W).
        tol : float
            Relative tolerance on every bound.

        Returns
        -------
        bool
        """
        return meets_bounds(self, ex["sinr"], ex["beampattern"], ex["power"], tol)


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


def reduced_gradient(task: DmaTask, b: NDArray, B: NDArray, multipliers: dict,
                     margin: float = 0.0) -> NDArray[np.float64]:
    """Gradient of the digital optimum F(b) = max_B P2 with respect to the tunings, per S.

    By the envelope theorem, ∇F = ∇_b f − Σ_i μ_i ∇_b g_i at the SDR's optimum (here
    the recovered B: 𝓑_m = b_m b_mᴴ, R = B Bᴴ, an optimal point when the recovery is
    exact) with its multipliers μ (``DigitalResult.multipliers``). With P = Φ̄ Y_st,
    α_d = Φ̄ᵀ a_d and r_m = Φ̄ᵀ y_RS,m: ∂ tr(A_d R)/∂b_l = 2 Re(−j α_dl (P R v_d)_l);
    the SINR row tr(𝒴_m (R − (1 + 1/Γ_m) 𝓑_m)) has 2 Re(−j r_ml (P X h_mᴴ)_l)/σ²;
    the power tr(A_P R) has −½ Im(P_l R P_lᵀ).

    Parameters
    ----------
    multipliers : dict
        ``beta_max``, ``beta``, ``sinr``, ``power`` (see
        :func:`rfctl.optimize.dma_clarabel.solve_sdp_clarabel`).
    margin : float
        The margin the SDR's bounds were tightened by (Γ used = Γ(1 + margin)).

    Returns
    -------
    ndarray, shape (L,)
    """
    m = task.model
    Phi = m.phi(m.spec.r0_siemens + 1j * np.asarray(b, float))
    P = Phi @ m.Y_st  # (L, N)
    R = B @ B.conj().T
    alpha = task.A.T @ Phi  # (D, L)
    V = (alpha @ m.Y_st).conj().T  # (N, D): v_d
    D = V.shape[1]
    grads = np.stack([2 * np.real(-1j * alpha[d] * (P @ (R @ V[:, d]))) for d in range(D)])
    mu = multipliers
    g = grads.mean(axis=0) - (mu["beta_max"] - mu["beta"]) @ grads
    if "sinr" in mu:
        rPhi = task.Y_RS @ Phi  # (M, L)
        H = rPhi @ m.Y_st
        gam = task.gamma * (1 + margin)
        for k in range(H.shape[0]):
            X = R - (1 + 1 / gam[k]) * np.outer(B[:, k], B[:, k].conj())
            dg = 2 * np.real(-1j * rPhi[k] * (P @ (X @ H[k].conj()))) / task.sigma2
            g -= mu["sinr"][k] * dg
    c = np.einsum("ln,nk,lk->l", P, R, P)
    g -= float(mu["power"][0]) * (-0.5 * np.imag(c))
    return g


def objective_hessian(task: DmaTask, b: NDArray, B: NDArray) -> NDArray[np.float64]:
    """Exact Hessian of the mean beampattern gain f(b) = (1/D) Σ_d ‖a_dᵀ Φ(b) Y_st B‖²
    with respect to the tunings b (B fixed), shape (L, L), per S².

    With α_d = Φ̄ᵀ a_d, W = Φ̄ Y_st B and u_d = α_dᵀ Y_st B: ∂u_ds/∂b_l = −j α_dl W_ls and
    ∂²u_ds/∂b_l∂b_k = −Φ̄_lk (α_dk W_ls + α_dl W_ks), so
    ∇²f = (2/D) Σ_d [Re(J̄_d J_dᵀ) − Re(Φ̄ ∘ (c_d α_dᵀ + α_d c_dᵀ))] with
    c_d = W ū_d (c_dl = Σ_s W_ls conj(u_ds)).
    """
    m = task.model
    Phi = m.phi(m.spec.r0_siemens + 1j * np.asarray(b, float))
    W = Phi @ m.Y_st @ B
    alpha = task.A.T @ Phi  # (D, L)
    u = alpha @ m.Y_st @ B  # (D, S)
    D = alpha.shape[0]
    Hs = np.zeros((m.L, m.L))
    for d in range(D):
        Jd = -1j * alpha[d][:, None] * W  # (L, S)
        c = W @ u[d].conj()  # (L,)
        Hs += np.real(Jd.conj() @ Jd.T) - np.real(
            Phi * (np.outer(c, alpha[d]) + np.outer(alpha[d], c)))
    return 2 * Hs / D


def _p4_data(task: DmaTask, u, J, g, K, pt, dpt, box: tuple[NDArray, NDArray],
             radius: float = np.inf):
    """Conic data of P4 over x = z ∈ ℝ^L (for Clarabel): minimise −(linearised mean gain).

    ``box`` = (lo, hi): the Neumann box intersected with the realisable set; ``radius``:
    the ℓ2 trust region ‖z‖₂ ≤ Δ."""
    import clarabel

    L = J.shape[1]
    s = np.sqrt(task.sigma2)
    rows, b, cones = [], [], []
    # box lo ≤ z ≤ hi; power (linear); linearised beampattern lower bounds
    rows += [np.eye(L), -np.eye(L)]
    b += [np.asarray(box[1], float), -np.asarray(box[0], float)]
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
    if np.isfinite(radius):
        rows.append(np.vstack([np.zeros((1, L)), -np.eye(L)]))
        b.append(np.concatenate([[radius], np.zeros(L)]))
        cones.append(clarabel.SecondOrderConeT(1 + L))
    return -c, np.vstack(rows), np.concatenate(b), cones


def _accept_p4(status: SolverStatus) -> bool:
    """A P4 / box-QP solve gives a usable candidate step: optimal or optimal-inaccurate.

    Inaccurate solves are accepted because the step is never taken on the model's word:
    the candidate's SDR is solved and every constraint checked with the exact model, and
    the step is rejected (trust region cut) if it does not improve the exact objective.
    """
    ok = solved(status, accept_inaccurate=True)
    if not ok:
        log.debug("analog step: solver ended %s; no step", status.value)
    return ok


def _solve_p4_clarabel(task, u, J, g, K, pt, dpt, box, radius=np.inf, curvature=None):
    """P4 by Clarabel directly; ``curvature`` P ⪰ 0 (L × L) adds −½ zᵀ P z to the
    maximised model. Returns (z, the model's predicted gain)."""
    import clarabel
    import scipy.sparse as sp

    q, A, b, cones = _p4_data(task, u, J, g, K, pt, dpt, box, radius)
    L = q.size
    P = sp.csc_matrix((L, L)) if curvature is None else sp.csc_matrix(np.triu(curvature))
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.max_threads = 1  # see rfctl.optimize.dma_clarabel.solve_sdp_clarabel
    sol = clarabel.DefaultSolver(P, q, sp.csc_matrix(A), b, cones, st).solve()
    # AlmostSolved is accepted: the step is only a candidate, re-solved (SDR) and checked
    # with the exact model before it is taken; the cvxpy reference accepts the same
    if not _accept_p4(from_clarabel(sol.status)):
        return None, float("nan")
    z = np.asarray(sol.x)
    quad = 0.0 if curvature is None else 0.5 * float(z @ curvature @ z)
    return z, float(-q @ z) - quad


def _solve_p4_cvxpy(task, u, J, g, K, pt, dpt, box, radius=np.inf, curvature=None):
    """P4 written plainly in cvxpy (the reference for the Clarabel path)."""
    import cvxpy as cp

    L = J.shape[1]
    s = np.sqrt(task.sigma2)
    z = cp.Variable(L)
    cons = [z >= box[0], z <= box[1]]
    if np.isfinite(radius):
        cons.append(cp.norm(z, 2) <= radius)
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
    obj = sum(obj_terms) / len(obj_terms)
    if curvature is not None:
        obj = obj - 0.5 * cp.quad_form(z, cp.psd_wrap(curvature))
    prob = cp.Problem(cp.Maximize(obj), cons)
    try:
        prob.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        log.debug("P4 (cvxpy): Clarabel raised; no step")
        return None, float("nan")
    if not _accept_p4(from_cvxpy(prob.status)) or z.value is None:
        return None, float("nan")
    const = float(np.mean([np.sum(np.abs(u[d]) ** 2) for d in range(u.shape[0])]))
    return np.asarray(z.value), float(prob.value) - const


def spectral_norm(X: NDArray) -> float:
    """‖X‖₂ as √λ_max(XᴴX) (a Hermitian eigenproblem: ~100× faster than the SVD that
    ``numpy.linalg.norm(X, 2)`` runs, at L = 128)."""
    return float(np.sqrt(max(np.linalg.eigvalsh(X.conj().T @ X)[-1], 0.0)))


def _p4_bounds(b: NDArray, delta: float, b_bounds: tuple[NDArray, NDArray] | None
               ) -> tuple[NDArray, NDArray]:
    """Box on z: the trust region |z_l| ≤ δ intersected with the realisable set."""
    lo, hi = np.full(b.size, -delta), np.full(b.size, delta)
    if b_bounds is not None:
        lo = np.maximum(lo, np.minimum(b_bounds[0] - b, 0.0))
        hi = np.minimum(hi, np.maximum(b_bounds[1] - b, 0.0))
    return lo, hi


def analog_step(task: DmaTask, b: NDArray, B: NDArray, *, delta: float,
                radius: float = np.inf, b_bounds: tuple[NDArray, NDArray] | None = None,
                solver: str = "clarabel", second_order: bool = True
                ) -> tuple[NDArray | None, float, NDArray]:
    """Solve P4 once around (b̄, B): |z_l| ≤ ``delta``, ‖z‖₂ ≤ ``radius``, b̄ + z realisable.

    Parameters
    ----------
    b : ndarray, shape (L,)
        Current Im Y_s, S.
    B : ndarray, shape (N, M + N_s)
    delta : float
        Box half-width, S (the Neumann bound δ_N = 1/‖Φ̄‖₂ in :func:`design_dma`).
    radius : float
        ℓ2 trust radius Δ, S.
    b_bounds : (lo, hi) of ndarray, shape (L,) each, optional
        Realisable Im Y_s per element, S (see :func:`susceptance_bounds`).
    solver : {"clarabel", "cvxpy"}
        P4 by Clarabel directly (fast) or written in cvxpy (the reference).
    second_order : bool
        Add the objective's negative curvature: the model is
        f̄ + ∇fᵀz + ½ zᵀ [∇²f]₋ z, with [∇²f]₋ the negative semidefinite part of the exact
        Hessian (:func:`objective_hessian`). Dropping the positive part keeps the model
        below the objective's own quadratic expansion, and P4 stays convex.

    Returns
    -------
    z : ndarray, shape (L,), or None
        The step (None if P4 failed).
    predicted : float
        Increase of the linearised objective at z.
    Phi : ndarray, shape (L, L)
        Φ̄ at b̄.
    """
    u, J, g, K, pt, dpt, Phi = _linear_model(task, b, B)
    lo, hi = _p4_bounds(b, delta, b_bounds)
    solve = _solve_p4_clarabel if solver == "clarabel" else _solve_p4_cvxpy
    curv = None
    if second_order:
        w, U = np.linalg.eigh(objective_hessian(task, b, B))
        curv = (U * np.maximum(-w, 0.0)) @ U.T  # −[∇²f]₋ ⪰ 0
        curv = (curv + curv.T) / 2
    z, pred = solve(task, u, J, g, K, pt, dpt, (lo, hi), radius, curv)
    return z, pred, Phi


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
        Transmit power P_t, W.
    outcome : rfctl.outcome.Outcome
        How the alternation ended: ``stop_reason`` (:class:`rfctl.outcome.StopReason`),
        ``iterations`` (analog model solves), ``status`` (the SDR solve that gave the
        returned B) and ``residuals``, the final exact constraint margins (the last entry
        of ``margin_trace``). ``stop_reason`` and ``iterations`` are also properties of
        the design.
    digital_s, analog_s : float
        Time spent in each step.
    start_correlation : float
        Largest pairwise user correlation at the starting tuning.
    b0 : ndarray, shape (L,) or None
        The starting tuning.
    B0 : ndarray or None
        The digital beamformer of the first digital step (at b0).
    margin_trace : list of dict of str to float
        For every trace entry, the exact relative constraint margins (dimensionless):
        ``sinr_margin_rel`` = min SINR/Γ − 1, ``beta_margin_rel`` = min P_d/β_d − 1,
        ``beta_max_margin_rel`` = 1 − max P_d/β_max and ``power_margin_rel`` =
        1 − P_t/P_max. All are ≥ 0 (to tolerance) for a feasible design.
    stationarity : float
        First-order criticality at the last iterate: for ``method="reduced"``
        χ = max ∇Fᵀz / F over the Neumann box |z_l| ≤ δ_N (∩ the realisable set), the
        relative gain the gradient promises there (0 at a stationary point); for
        ``"p4"``, P4's predicted relative gain within the trust radius then in force.
    accepted : int
        Accepted steps (``iterations`` counts P4 solves).
    deltas : list of float
        Trust radius of every iteration, S.
    elapsed_s : float
        Wall time of the whole design, s.
    """

    b: NDArray[np.float64]
    B: NDArray[np.complex128]
    objective: float
    trace: list[float] = field(default_factory=list)
    sinr: NDArray[np.float64] | None = None
    beampattern: NDArray[np.float64] | None = None
    power: float = 0.0
    outcome: Outcome = field(default_factory=lambda: Outcome(StopReason.ITERATION_CAP, 0))
    digital_s: float = 0.0
    analog_s: float = 0.0
    start_correlation: float = 1.0
    b0: NDArray[np.float64] | None = None
    B0: NDArray[np.complex128] | None = None
    margin_trace: list[dict[str, float]] = field(default_factory=list)
    stationarity: float = float("nan")
    accepted: int = 0
    deltas: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    method: str = "newton"

    @property
    def stop_reason(self) -> StopReason:
        """Why the alternation stopped (``outcome.stop_reason``)."""
        return self.outcome.stop_reason

    @property
    def iterations(self) -> int:
        """Analog model solves run (``outcome.iterations``)."""
        return self.outcome.iterations


def _margins(task: DmaTask, ex: dict) -> dict[str, float]:
    """Relative constraint margins (dimensionless, ≥ 0 when met) of exact metrics ``ex``."""
    return {"sinr_margin_rel": float(np.min(ex["sinr"] / task.gamma) - 1),
            "beta_margin_rel": float(np.min(ex["beampattern"] / task.beta) - 1),
            "beta_max_margin_rel": float(1 - np.max(ex["beampattern"]) / task.beta_max),
            "power_margin_rel": float(1 - ex["power"] / task.p_max)}


def _record_step(task: DmaTask, ex: dict, trace: list[float],
                 margins: list[dict[str, float]]) -> tuple[float, float]:
    """Append an accepted iterate's objective and margins; return its relative change of
    the objective and largest change of a margin."""
    trace.append(ex["objective"])
    margins.append(_margins(task, ex))
    d_obj = abs(trace[-1] - trace[-2]) / max(abs(trace[-2]), 1e-300)
    d_con = max(abs(margins[-1][k] - margins[-2][k]) for k in margins[-1])
    return d_obj, d_con


def _shrink(radius: float, cap: float) -> tuple[float, StopReason | None]:
    """A rejected step's trust radius, with ``no-progress`` once it collapsed (< 1e-9 cap)."""
    return radius, (StopReason.NO_PROGRESS if radius < 1e-9 * cap else None)


def tuning_state(task: DmaTask, design: DmaDesign):
    """The design's element tunings, B and task as an ArrayState for the HAL.

    Returns
    -------
    rfctl.state.ArrayState
        ``dma`` (tunings b, S, with R0 and the self admittances), ``dma_b`` (B, shape
        (N, M + N_s)) and ``dma_task`` (:meth:`DmaTask.record`).

    Raises
    ------
    ConfigError
        The task's targets are unset (see :meth:`DmaTask.record`).
    """
    from rfctl.state import ArrayState, DmaTuning

    m = task.model
    return ArrayState(dma=DmaTuning(b=design.b, r0=m.spec.r0_siemens,
                                    y_self=np.diag(m.Y_ss).copy()), dma_b=design.B,
                      dma_task=task.record())


def _max_correlation(task: DmaTask, b: NDArray) -> float:
    """Largest pairwise correlation of the users' channels at tuning b."""
    return _max_correlation_loads(task, task.model.spec.r0_siemens + 1j * b)



def _candidate(task: DmaTask, b: NDArray, backend: str):
    """The digital SDR at candidate tunings ``b`` (rad/S, shape (L,)): (its design or
    None when infeasible, whether B is feasible there, the objective or −inf)."""
    p = task.problem(b)
    try:
        dn = solve_digital(p, backend=backend)
        ok = feasible_b(p, dn.B)
    except InfeasibleError:
        return None, False, -np.inf
    return dn, ok, (dn.objective if ok else -np.inf)

def _box_qp(g: NDArray, Hk: NDArray, lo: NDArray, hi: NDArray) -> NDArray | None:
    """argmax gᵀz − ½ zᵀ H z over lo ≤ z ≤ hi (H ≻ 0), by Clarabel."""
    import clarabel
    import scipy.sparse as sp

    L = g.size
    A = sp.vstack([sp.eye(L), -sp.eye(L)], format="csc")
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.max_threads = 1  # see rfctl.optimize.dma_clarabel.solve_sdp_clarabel
    sol = clarabel.DefaultSolver(sp.csc_matrix(np.triu(Hk)), -g, A,
                                 np.concatenate([hi, -lo]),
                                 [clarabel.NonnegativeConeT(2 * L)], st).solve()
    if not _accept_p4(from_clarabel(sol.status)):  # the step is clipped and checked exactly
        return None
    return np.clip(np.asarray(sol.x), lo, hi)


def _bundle_qp(g: NDArray, Hk: NDArray, lo: NDArray, hi: NDArray,
               cuts: list[tuple[NDArray, float]]) -> tuple[NDArray | None, float]:
    """argmax_z min(gᵀz, min_i g_iᵀz + e_i) − ½ zᵀ H z over lo ≤ z ≤ hi (H ≻ 0), by
    Clarabel (epigraph variable t ≤ each plane).

    Returns
    -------
    z : ndarray, shape (L,), or None
    gain : float
        The model's value at z (0 at z = 0).
    """
    import clarabel
    import scipy.sparse as sp

    L = g.size
    G = np.vstack([g] + [c[0] for c in cuts])  # (1 + n_cuts, L)
    e = np.concatenate([[0.0], [c[1] for c in cuts]])
    nc = G.shape[0]
    P = sp.block_diag([sp.csc_matrix(np.triu(Hk)), sp.csc_matrix((1, 1))], format="csc")
    q = np.zeros(L + 1)
    q[-1] = -1.0
    A = sp.vstack([sp.hstack([-sp.csc_matrix(G), sp.csc_matrix(np.ones((nc, 1)))]),
                   sp.hstack([sp.eye(L), sp.csc_matrix((L, 1))]),
                   sp.hstack([-sp.eye(L), sp.csc_matrix((L, 1))])], format="csc")
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.max_threads = 1  # see rfctl.optimize.dma_clarabel.solve_sdp_clarabel
    sol = clarabel.DefaultSolver(P, q, A, np.concatenate([e, hi, -lo]),
                                 [clarabel.NonnegativeConeT(nc + 2 * L)], st).solve()
    if not _accept_p4(from_clarabel(sol.status)):  # clipped and judged exactly anyway
        return None, float("nan")
    z = np.clip(np.asarray(sol.x)[:L], lo, hi)
    return z, float(np.min(G @ z + e)) - 0.5 * float(z @ Hk @ z)


def _newton_model(task: DmaTask, b: NDArray, dig, floor: float) -> NDArray:
    """Positive definite model matrix from −∇²F (:func:`value_hessian`): eigenvalues
    below ``floor`` × the largest magnitude are raised to it (F is not concave)."""
    w, U = np.linalg.eigh(-value_hessian(task, b, dig.B, dig.multipliers, dig.margin))
    lam = max(float(np.max(np.abs(w))), 1e-300)
    Hk = (U * np.maximum(w, floor * lam)) @ U.T
    return (Hk + Hk.T) / 2


_CREEP_STEPS = 10  # "newton": no-progress when this many accepted steps gained < 1e-2 tol


def _newton_loop(task, b, dig, *, max_iter, tol_obj, neumann_bound, delta0, b_bounds,
                 digital_backend, rho_grow, rho_shrink, state, trust_factor, bundle_size,
                 curvature_floor):
    """Newton-bundle trust region on F(b) (``method="newton"``, see :func:`design_dma`).
    Updates ``state``."""
    r0 = task.model.spec.r0_siemens
    B = dig.B
    g = reduced_gradient(task, b, B, dig.multipliers, dig.margin)
    Hk = _newton_model(task, b, dig, curvature_floor)
    bundle: list[tuple[NDArray, float, NDArray]] = []  # (b_i, F(b_i), ∇F(b_i))
    radius = None
    reason: StopReason | None = None
    it = 0
    while reason is None and it < max_iter:
        it += 1
        f = state["trace"][-1]
        t1 = time.perf_counter()
        d_max = neumann_bound / spectral_norm(task.model.phi(r0 + 1j * b))
        cap = trust_factor * d_max
        radius = delta0 * d_max if radius is None else min(radius, cap)
        # first-order criticality over the Neumann box (∩ the realisable set), as "reduced"
        lo_n, hi_n = _p4_bounds(b, d_max, b_bounds)
        chi = float(np.sum(np.maximum(g * hi_n, g * lo_n))) / max(abs(f), 1e-300)
        state["stationarity"] = chi
        if chi <= tol_obj:
            reason = StopReason.CONVERGED
            break
        lo, hi = _p4_bounds(b, radius, b_bounds)
        # cutting planes of earlier candidates that lie above F here (e_i ≥ 0): where the
        # SDR's solution changes structure (a crest of F) they hold the step back
        cuts = [(gi, ei) for bi, fi, gi in bundle
                if (ei := fi + float(gi @ (b - bi)) - f) >= 0]
        if cuts:
            z, pred = _bundle_qp(g, Hk, lo, hi, cuts)
        else:
            z = _box_qp(g, Hk, lo, hi)
            pred = float(g @ z - 0.5 * z @ Hk @ z) if z is not None else float("nan")
        state["t_ana"] += time.perf_counter() - t1
        state["deltas"].append(radius)
        if z is None:
            radius, reason = _shrink(radius / 4, d_max)
            continue
        step = float(np.max(np.abs(z)))
        interior = step < 0.99 * radius
        bn = b + z
        t1 = time.perf_counter()
        dn, ok, fn = _candidate(task, bn, digital_backend)
        state["t_dig"] += time.perf_counter() - t1
        rho = (fn - f) / pred if pred > 0 else -np.inf
        log.debug("it %d: radius %.3g (cap %.3g) step %.3g pred %.3g rho %.3g chi %.2e cuts %d",
                  it, radius, cap, step, pred, rho, chi, len(cuts))
        gn = reduced_gradient(task, bn, dn.B, dn.multipliers, dn.margin) if ok else None
        if gn is not None and bundle_size:
            bundle.append((bn, fn, gn))
            del bundle[:-bundle_size]
        if fn <= f:
            if ok and dn.margin > 1e-4 and pred <= dn.margin * abs(f):
                reason = StopReason.NO_PROGRESS  # as in the "reduced" loop
                break
            if cuts and step < 0.1 * radius:
                # the planes, not the box, held the step back and it still failed: on a
                # non-concave F they can wall off the ascent (χ stays large); restart
                # from the Newton model
                bundle.clear()
                continue
            frac = 0.25
            if ok:  # the 1-D quadratic through F(b̄), gᵀz and F(b̄ + z) peaks at frac
                lin = float(g @ z)
                curv = fn - f - lin
                if curv < 0 < lin:
                    frac = float(np.clip(-lin / (2 * curv), 0.1, 0.5))
            radius, reason = _shrink(frac * step, d_max)
            continue
        if rho >= rho_grow and not interior:
            radius = min(2 * radius, cap)
        elif rho < rho_shrink:
            radius = 0.25 * step
        b, B, g = bn, dn.B, gn
        Hk = _newton_model(task, b, dn, curvature_floor)
        state["accepted"] += 1
        state["status"] = dn.status
        tr = state["trace"]
        _record_step(task, task.exact(b, B), tr, state["margins"])
        if len(tr) > _CREEP_STEPS and \
                tr[-1] - tr[-1 - _CREEP_STEPS] <= 1e-2 * tol_obj * abs(tr[-1]):
            # the last _CREEP_STEPS accepted steps gained < 1e-2 tol_obj in all while χ > tol_obj:
            # a crest of F where the gradient does not vanish (not "converged")
            reason = StopReason.NO_PROGRESS
    state.update(b=b, B=B, iterations=it, reason=reason or StopReason.ITERATION_CAP)


def _bfgs(Hk: NDArray, s: NDArray, y: NDArray) -> NDArray:
    """Damped (Powell) BFGS update of a positive definite Hessian model of −F."""
    Hs = Hk @ s
    sHs = float(s @ Hs)
    sy = float(s @ y)
    if sHs <= 0:
        return Hk
    r = y
    if sy < 0.2 * sHs:
        th = 0.8 * sHs / (sHs - sy)
        r = th * y + (1 - th) * Hs
    sr = float(s @ r)
    if sr <= 1e-300:
        return Hk
    Hn = Hk - np.outer(Hs, Hs) / sHs + np.outer(r, r) / sr
    return (Hn + Hn.T) / 2


def _reduced_loop(task, b, dig, *, max_iter, tol_obj, tol_con, neumann_bound, delta0,
                  b_bounds, digital_backend, rho_grow, rho_shrink, state, curvature_relax):
    """Quasi-Newton trust region on F(b) (see :func:`design_dma`). Updates ``state``."""
    r0 = task.model.spec.r0_siemens
    B = dig.B
    g = reduced_gradient(task, b, B, dig.multipliers, dig.margin)
    Hk = None
    radius = None
    reason: StopReason | None = None
    it = 0
    while reason is None and it < max_iter:
        it += 1
        f = state["trace"][-1]
        t1 = time.perf_counter()
        d_max = neumann_bound / spectral_norm(task.model.phi(r0 + 1j * b))
        radius = delta0 * d_max if radius is None else min(radius, d_max)
        if Hk is None:
            Hk = np.eye(b.size) * max(float(np.max(np.abs(g))), 1e-300) / radius
        lo, hi = _p4_bounds(b, radius, b_bounds)
        z = _box_qp(g, Hk, lo, hi)
        state["t_ana"] += time.perf_counter() - t1
        state["deltas"].append(radius)
        if z is None:
            radius, reason = _shrink(radius / 4, d_max)
            continue
        pred = float(g @ z - 0.5 * z @ Hk @ z)
        step = float(np.max(np.abs(z)))
        interior = step < 0.99 * radius
        # first-order criticality: the linear model's best gain over the whole Neumann
        # box (∩ the realisable set), relative to F
        lo_n, hi_n = _p4_bounds(b, d_max, b_bounds)
        chi = float(np.sum(np.maximum(g * hi_n, g * lo_n))) / max(abs(f), 1e-300)
        state["stationarity"] = chi
        if chi <= tol_obj or (pred <= 1e-2 * tol_obj * abs(f)
                              and (interior or radius >= d_max)):
            reason = StopReason.CONVERGED  # the model sees no ascent left
            break
        bn = b + z
        t1 = time.perf_counter()
        dn, ok, fn = _candidate(task, bn, digital_backend)
        state["t_dig"] += time.perf_counter() - t1
        rho = (fn - f) / pred if pred > 0 else -np.inf
        gn = reduced_gradient(task, bn, dn.B, dn.multipliers, dn.margin) if ok else None
        if gn is not None:
            Hk = _bfgs(Hk, z, -(gn - g))
            if ok and rho > 1.25 and interior:
                # the model's own optimum gained more than it predicted: its curvature
                # held the step back, so relax it (BFGS alone keeps it stiff)
                Hk = curvature_relax * Hk
        log.debug("it %d: radius %.3g (max %.3g) step %.3g pred %.3g rho %.3g chi %.2e", it,
                  radius, d_max, step, pred, rho, chi)

        if fn <= f:
            if ok and dn.margin > 1e-4 and pred <= dn.margin * abs(f):
                # the SDR needed a wider safety margin here than at b̄, and the model's
                # whole promised gain is smaller than what that margin costs: no step
                # can be judged better at the SDR's accuracy
                reason = StopReason.NO_PROGRESS
                break
            radius, reason = _shrink(0.25 * step, d_max)
            continue
        if rho >= rho_grow and not interior:
            radius = min(2 * radius, d_max)
        elif rho < rho_shrink:
            radius = 0.25 * step
        b, B, g = bn, dn.B, gn
        state["accepted"] += 1
        state["status"] = dn.status
        d_obj, d_con = _record_step(task, task.exact(b, B), state["trace"], state["margins"])
        if d_obj <= tol_obj and d_con <= tol_con and (interior or radius >= d_max):
            # a small change is not enough: the new point must also be first-order
            # critical (χ at b, over its own Neumann box), else the alternation would
            # stop while creeping (realisation 27 of dma-4x8 stopped with χ = 5e-2)
            d_n = neumann_bound / spectral_norm(task.model.phi(r0 + 1j * b))
            lo_n, hi_n = _p4_bounds(b, d_n, b_bounds)
            chi = float(np.sum(np.maximum(g * hi_n, g * lo_n))) / max(
                abs(state["trace"][-1]), 1e-300)
            state["stationarity"] = chi
            if chi <= tol_obj:
                reason = StopReason.CONVERGED
    state.update(b=b, B=B, iterations=it, reason=reason or StopReason.ITERATION_CAP)


def describe_violations(report: dict) -> str:
    """One line naming every failed constraint and by how much.

    Parameters
    ----------
    report : dict
        :meth:`DmaTask.report` (its ``violations``).

    Returns
    -------
    str
        ``"all constraints met"``, or e.g. ``"SINR user 2 >= Gamma: 0.13 of the bound;
        P_t <= P_max: 1.43 W vs 1 W (+43.00 %)"`` (linear ratios; dB is for the edge).
    """
    if not report["violations"]:
        return "all constraints met"
    parts = []
    for v in report["violations"]:
        if v["constraint"].startswith("SINR"):
            parts.append(f"{v['constraint']}: {v['value'] / v['bound']:.3g} of the bound")
        else:
            unit = " W" if v["constraint"].startswith("P_t") else ""
            parts.append(f"{v['constraint']}: {v['value']:.4g}{unit} vs {v['bound']:.4g}"
                         f"{unit} ({100 * v['relative']:+.2f} %)")
    return "; ".join(parts)


def resonance_arc(f0_min_ratio: float = 0.9, f0_max_ratio: float = 1.1,
                  q_factor: float = 10.0) -> tuple[float, float]:
    """The ψ' arc a resonator covers when its resonance f₀ is tuned over
    [f0_min_ratio, f0_max_ratio] × f, at quality factor Q = ω/Γ.

    From q = Γω/(ω₀² − ω² + jΓω) = 1/(t + j) with t = Q((f₀/f)² − 1) and ψ' = 2 arctan t
    (ψ' = 0 at resonance, q = −j). The default, f₀ within ±10 % of f at Q = 10, gives
    ψ' ∈ [−0.69π, 0.71π]: the arc is centred on resonance, where real elements operate,
    and its gap is around the unreachable q = 0.

    Returns
    -------
    (float, float)
        ψ'_min, ψ'_max, rad (ψ = ψ' − π/2 in the q = (−j + e^{jψ})/2 convention).
    """
    if not 0 < f0_min_ratio < f0_max_ratio or q_factor <= 0:
        raise ConfigError("resonance arc needs 0 < f0_min_ratio < f0_max_ratio and Q > 0",
                          field="f0_min_ratio", reason="bad tuning range")
    t = q_factor * (np.array([f0_min_ratio, f0_max_ratio]) ** 2 - 1)
    pp = 2 * np.arctan(t)
    return float(pp[0]), float(pp[1])


def susceptance_bounds(task: DmaTask, psi_range: tuple[float, float]
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The Im Y_s interval per element that keeps its Lorentzian state on an arc.

    The arc is given in ψ' = ψ + π/2 (wrapped to (−π, π)), the position on the circle
    measured from resonance: q = 1/(t + j) has ψ' = 2 arctan t with
    t = −(b + Im y_ss,ll)/(R0 + Re y_ss,ll), so resonance (q = −j) is ψ' = 0 and the
    unreachable q = 0 is ψ' = ±π. ψ' is monotone in b, so an arc is a box on b.

    Parameters
    ----------
    psi_range : (float, float)
        ψ'_min < ψ'_max in (−π, π), rad.

    Returns
    -------
    lo, hi : ndarray, shape (L,) each
        Im Y_s bounds, S.
    """
    p0, p1 = float(psi_range[0]), float(psi_range[1])
    if not -np.pi < p0 < p1 < np.pi:
        raise ConfigError(f"Lorentzian arc ({p0:.3f}, {p1:.3f}) rad is not an increasing "
                          "interval inside (−π, π)", field="psi_range", reason="bad arc")
    m = task.model
    y = np.diag(m.Y_ss)
    G = m.spec.r0_siemens + y.real
    b_at = lambda pp: -np.tan(pp / 2) * G - y.imag  # noqa: E731 - b decreases with ψ'
    return b_at(p1), b_at(p0)


def _max_correlation_loads(task: DmaTask, ys: NDArray) -> float:
    m = task.model
    H = task.Y_RS @ m.phi(ys) @ m.Y_st
    Hn = H / np.linalg.norm(H, axis=1, keepdims=True)
    C = np.abs(Hn @ Hn.conj().T)
    np.fill_diagonal(C, 0)
    return float(C.max())


def _starts(task: DmaTask, rng: np.random.Generator, n: int,
            b_bounds: tuple[NDArray, NDArray] | None) -> NDArray:
    L = task.model.L
    if b_bounds is None:
        return rng.normal(0.0, 10.0, (n, L))
    lo, hi = b_bounds
    return lo + (hi - lo) * rng.uniform(size=(n, L))


def _step_is_feasible(task: DmaTask, p: DigitalProblem, B: NDArray) -> tuple[bool, float]:
    bp = p.beampattern(B)
    ex = {"objective": float(np.mean(bp)), "beampattern": bp, "sinr": p.sinr(B),
          "power": p.power(B)}
    return task.feasible(ex), ex["objective"]


def design_dma(task: DmaTask, *, rng: np.random.Generator, n_starts: int = 100,
               n_tries: int = 5,
               max_iter: int = 400, tol_obj: float = 1e-4, tol_con: float = 1e-4,
               neumann_bound: float = 1.0, delta0: float = 0.25,
               b_bounds: tuple[NDArray, NDArray] | None = None,
               digital_backend: str = "clarabel", analog_solver: str = "clarabel",
               trust_norm: str = "inf", second_order: bool = False,
               rho_grow: float = 0.75, rho_shrink: float = 0.25,
               method: str = "newton", curvature_relax: float = 0.5,
               trust_factor: float = 32.0, bundle_size: int = 5,
               curvature_floor: float = 1e-6) -> DmaDesign:
    """Alternating optimisation (digital SDR ↔ analog step) from a decorrelating start.

    See the module docstring for the two analog steps (``method``). Each iteration is
    one analog model solve and one SDR at the candidate.

    **Stopping** (``stop_reason``):

    - ``converged`` (``"newton"``): the first-order criticality
      χ = max_{z in the Neumann box} ∇Fᵀz / F ≤ ``tol_obj`` at the current iterate (the
      only way it converges; ``tol_con`` is unused);
    - ``converged`` (``"reduced"``, ``"p4"``): an accepted step changed the objective by
      ≤ ``tol_obj``
      (relative) and every constraint margin (SINR/Γ, P_d/β_d, P_d/β_max, P_t/P_max)
      by ≤ ``tol_con``, with the step not cut by the trust region (interior: the
      model's own optimum) or the region at δ_N; or the model predicts a relative gain
      ≤ 1e-2 ``tol_obj`` (``"reduced"``) / ≤ ``tol_obj`` (``"p4"``) over the whole
      Neumann region; or (``"reduced"``) the first-order criticality
      χ = max_{z in the Neumann box} ∇Fᵀz / F ≤ ``tol_obj``. (``"reduced"``: the
      small-change test also requires χ ≤ ``tol_obj`` at the new point, so
      ``converged`` implies χ ≤ ``tol_obj``.) ``stationarity`` reports χ
      at the last iterate (``"newton"``, ``"reduced"``; P4's predicted relative gain for
      ``"p4"``);
    - ``no-progress``: the trust region collapsed (δ < 1e-9 δ_N) without an accepted step,
      or (``"newton"``, ``"reduced"``) a candidate's SDR needed a wider safety margin
      than the current point's and the model's predicted gain is below what that
      margin costs, or (``"newton"``) the last 10 accepted steps gained less than
      1e-2 ``tol_obj`` (relative) in all while χ > ``tol_obj`` (a crest of F, where
      the gradient does not vanish);
    - ``iteration-cap``: ``max_iter`` reached.

    (:class:`rfctl.outcome.StopReason` values.)

    Parameters
    ----------
    task : DmaTask
    rng : numpy.random.Generator
        Draws the starting tunings.
    n_starts : int
        Random starting tunings; the one with the least pairwise user correlation whose
        SDR is feasible is used (the ``n_tries`` least correlated are tried in turn).
    max_iter : int
        Iteration cap, 400. ``"newton"`` on ``rfctl optimize dma --scenario dma-4x8``
        realisations 0–7: 7–70 iterations; 20–27: 9–146 (27 stops ``no-progress`` at
        132). ``"reduced"``: 11–183, and 15–313 with 27 at the cap (χ = 5.7e-4).
    tol_obj, tol_con : float
        Stopping tolerances (see above).
    neumann_bound : float
        Cap on δ ‖Φ̄‖₂.
    delta0 : float
        Initial trust radius as a fraction of δ_N.
    b_bounds : (lo, hi), optional
        Realisable Im Y_s per element, S (:func:`susceptance_bounds` of a board's arc);
        the starts are drawn inside and every step stays inside.
    digital_backend, analog_solver : str
        ``"clarabel"`` (native cone forms) or ``"cvxpy"`` (the reference models).
    trust_norm : {"inf", "2"}
        ``"p4"`` only: box or ℓ2 trust region (ℓ2 radius ≤ δ_N √L inside the box δ_N).
    second_order : bool
        ``"p4"`` only: add the objective's negative curvature (see :func:`analog_step`).
    rho_grow, rho_shrink : float
        Trust-region thresholds on ρ.
    method : {"newton", "reduced", "p4"}
        The analog step (module docstring).
    curvature_relax : float
        ``"reduced"`` only: factor on the BFGS matrix after an interior step with
        ρ > 1.25 (1.0: plain damped BFGS, the rule before issue 12's follow-up).
    trust_factor : float
        ``"newton"`` only: the box's cap as a multiple of δ_N.
    bundle_size : int
        ``"newton"`` only: cutting planes kept (0: the plain Newton model).
    curvature_floor : float
        ``"newton"`` only: relative floor on the eigenvalues of −∇²F.

    Raises
    ------
    InfeasibleError
        The digital SDR is infeasible at every one of the ``n_tries`` starts (with the
        cause).
    """
    if task.model.L <= 0:
        raise ConfigError("empty DMA", field="dma", reason="no elements")
    t_start = time.perf_counter()
    r0 = task.model.spec.r0_siemens
    starts = _starts(task, rng, n_starts, b_bounds)
    corr = [_max_correlation_loads(task, r0 + 1j * x) for x in starts]
    t0 = time.perf_counter()
    for k, i in enumerate(np.argsort(corr)[:n_tries]):
        b = starts[i].copy()
        try:
            dig = solve_digital(task.problem(b), backend=digital_backend)
            break
        except InfeasibleError:
            if k == min(n_tries, len(corr)) - 1:
                raise
    b0 = b.copy()
    t_dig = time.perf_counter() - t0
    B = dig.B
    B0 = B.copy()
    ex = task.exact(b, B)
    trace = [ex["objective"]]
    margins = [_margins(task, ex)]
    deltas: list[float] = []
    t_ana = 0.0
    status = dig.status
    if method in ("newton", "reduced"):
        st = {"trace": trace, "margins": margins, "deltas": deltas, "t_ana": 0.0,
              "t_dig": t_dig, "accepted": 0, "stationarity": float("nan"), "status": status}
        common = {"max_iter": max_iter, "tol_obj": tol_obj, "neumann_bound": neumann_bound,
                  "delta0": delta0, "b_bounds": b_bounds, "digital_backend": digital_backend,
                  "rho_grow": rho_grow, "rho_shrink": rho_shrink, "state": st}
        if method == "newton":
            _newton_loop(task, b, dig, trust_factor=trust_factor, bundle_size=bundle_size,
                         curvature_floor=curvature_floor, **common)
        else:
            _reduced_loop(task, b, dig, tol_con=tol_con, curvature_relax=curvature_relax,
                          **common)
        b, B = st["b"], st["B"]
        ex = task.exact(b, B)
        return DmaDesign(b=b, B=B, objective=ex["objective"], trace=trace, sinr=ex["sinr"],
                         beampattern=ex["beampattern"], power=ex["power"],
                         outcome=Outcome(st["reason"], st["iterations"], st["status"],
                                         dict(margins[-1])),
                         digital_s=st["t_dig"], analog_s=st["t_ana"],
                         start_correlation=float(min(corr)), b0=b0, B0=B0,
                         margin_trace=margins, stationarity=st["stationarity"],
                         accepted=st["accepted"], deltas=deltas,
                         elapsed_s=time.perf_counter() - t_start, method=method)
    if method != "p4":
        raise ConfigError(f"unknown DMA method {method!r}", field="method",
                          reason="expected 'newton', 'reduced' or 'p4'")
    L = task.model.L
    radius = None
    reason: StopReason | None = None
    stationarity = float("nan")
    it = 0
    n_accepted = 0
    while reason is None and it < max_iter:
        it += 1
        f = trace[-1]
        t1 = time.perf_counter()
        d_max = neumann_bound / spectral_norm(task.model.phi(r0 + 1j * b))
        r_max = d_max * (np.sqrt(L) if trust_norm == "2" else 1.0)
        radius = delta0 * r_max if radius is None else min(radius, r_max)
        if trust_norm == "2":
            z, pred, _ = analog_step(task, b, B, delta=d_max, radius=radius,
                                     b_bounds=b_bounds, solver=analog_solver,
                                     second_order=second_order)
        else:
            z, pred, _ = analog_step(task, b, B, delta=radius, b_bounds=b_bounds,
                                     solver=analog_solver, second_order=second_order)
        t_ana += time.perf_counter() - t1
        deltas.append(radius)
        if z is None:
            radius, reason = _shrink(radius / 4, r_max)
            continue
        step = float(np.linalg.norm(z, 2 if trust_norm == "2" else np.inf))
        stationarity = pred / max(abs(f), 1e-300)
        if stationarity <= tol_obj:
            if radius >= r_max * (1 - 1e-12) or step < 0.99 * radius:
                reason = StopReason.CONVERGED  # no ascent left in the model's whole region
                break
            radius = r_max
            continue
        bn = b + z
        t1 = time.perf_counter()
        p = task.problem(bn)
        ok_B, f_B = _step_is_feasible(task, p, B)
        Bn, fn = (B, f_B) if ok_B else (None, -np.inf)
        st_n = status  # B kept: the status of the SDR that gave it
        try:
            dn = solve_digital(p, backend=digital_backend)
            ok_d, f_d = _step_is_feasible(task, p, dn.B)
            if ok_d and f_d > fn:
                Bn, fn, st_n = dn.B, f_d, dn.status
        except InfeasibleError:
            pass
        t_dig += time.perf_counter() - t1
        rho = (fn - f) / pred if Bn is not None else -np.inf
        log.debug("it %d: radius %.3g (max %.3g) step %.3g pred %.3g rho %.3g", it, radius,
                  r_max, step, pred, rho)
        if Bn is None or fn <= f:
            radius, reason = _shrink(0.25 * step, r_max)
            continue
        interior = step < 0.99 * radius
        if rho >= rho_grow and not interior:
            radius = min(2 * radius, r_max)
        elif rho < rho_shrink:
            radius = 0.25 * step
        b, B, status = bn, Bn, st_n
        n_accepted += 1
        d_obj, d_con = _record_step(task, task.exact(b, B), trace, margins)
        if d_obj <= tol_obj and d_con <= tol_con and (interior or step >= 0.99 * r_max):
            reason = StopReason.CONVERGED
    ex = task.exact(b, B)
    outcome = Outcome(reason or StopReason.ITERATION_CAP, it, status, dict(margins[-1]))
    return DmaDesign(b=b, B=B, objective=ex["objective"], trace=trace, sinr=ex["sinr"],
                     beampattern=ex["beampattern"], power=ex["power"], outcome=outcome,
                     digital_s=t_dig, analog_s=t_ana,
                     start_correlation=float(min(corr)), b0=b0, B0=B0, margin_trace=margins,
                     stationarity=stationarity, accepted=n_accepted, deltas=deltas,
                     elapsed_s=time.perf_counter() - t_start, method=method)


def resolve_default_targets(task: DmaTask, rng: np.random.Generator,
                            n_starts: int = 100) -> DmaTask:
    """Fix the task's unset targets (Γ, β, β_max) where an unbounded design would.

    :meth:`DmaTask.problem` computes unset targets at the first tuning it sees, which for
    :func:`design_dma` is its least-correlated start; with ``b_bounds`` (a board's arc)
    that start differs, so the task would differ. This evaluates the defaults at the
    least-correlated of ``n_starts`` unbounded starts drawn from ``rng`` — the same start
    :func:`design_dma` without bounds tries first when given a generator in the same
    state — so a board design and a continuous design solve the same task.

    Parameters
    ----------
    task : DmaTask
        Modified in place (only targets that are None are set).
    rng : numpy.random.Generator
        Pass a copy of the generator the continuous design would use.
    n_starts : int

    Returns
    -------
    DmaTask
        ``task``.
    """
    if task.gamma is not None and task.beta is not None and task.beta_max is not None:
        return task
    r0 = task.model.spec.r0_siemens
    starts = _starts(task, rng, n_starts, None)
    corr = [_max_correlation_loads(task, r0 + 1j * x) for x in starts]
    task.problem(starts[int(np.argmin(corr))])
    return task


def task_from_scenario(scenario, realisation: int = 0) -> tuple[DmaTask, np.random.Generator]:
    """The DMA task of a scenario's realisation, with its targets resolved.

    Users are drawn uniformly in ``dma_task.user_region_m`` from
    ``default_rng([scenario.seed, realisation])``; the same generator then fixes the
    default targets (:func:`resolve_default_targets`, on a copy) and is returned for the
    design's starts, so ``design_dma(task, rng=rng)`` reproduces ``rfctl optimize dma``.

    Parameters
    ----------
    scenario : rfctl.config.Scenario
        Needs ``dma`` and ``dma_task``.
    realisation : int

    Returns
    -------
    task : DmaTask
    rng : numpy.random.Generator

    Raises
    ------
    ConfigError
        The scenario has no ``dma`` / ``dma_task`` table.
    """
    import copy

    if scenario.dma is None or scenario.dma_task is None:
        raise ConfigError(f"{scenario.name}: needs [dma] and [dma_task] tables",
                          field="dma_task", reason="missing")
    t = scenario.dma_task
    rng = np.random.default_rng([scenario.seed, realisation])
    model = DmaModel.from_spec(scenario.dma, origin=(0.0, 0.0, 10.0))
    x0, x1, y0, y1, z = t.user_region_m
    users = np.column_stack([rng.uniform(x0, x1, t.users), rng.uniform(y0, y1, t.users),
                             np.full(t.users, z)])
    d = np.asarray(t.directions, float).reshape(-1, 2)
    task = DmaTask(model, users, d[:, 0], d[:, 1], t.noise_power, t.max_power,
                   n_sensing=max(t.sensing_streams, 1))
    resolve_default_targets(task, copy.deepcopy(rng))
    return task, rng
