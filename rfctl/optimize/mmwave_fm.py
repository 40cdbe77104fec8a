"""The F_m step of ADMM-RHB (DBRAA seed eq. 77): fast structured solver and cvxpy reference.

    min_F  Σ_k w_k (|u_k h_kᴴ f_k − 1|² + Σ_{i≠k} |u_k h_kᴴ f_i|²) + c ‖F − Z‖²
    s.t.   ‖F‖² ≤ P,   2 Re(ḡ_tᴴ Fᴴ a_t) − ‖ḡ_t‖² ≥ Υ_t   (SCA of ‖Fᴴ a_t‖² ≥ Υ_t)

with c = 1/(2ρ) and Z = F_RF F_BB − ρD (c = 0 for the fully digital design). Written as
tr(Fᴴ(Q + cI)F) − 2 Re tr(B₀ᴴ F) with Q = Σ_k w_k|u_k|² h_k h_kᴴ (rank K) and
B₀ = C + cZ, C[:, k] = w_k conj(u_k) h_k.

**Fast path.** For multipliers ν (power) and μ_t (sensing),
F = (Q + (c + ν) I)⁻¹ (B₀ + Σ_t μ_t a_t ḡ_tᴴ). The inverse is applied by the Woodbury
identity (K × K solves). For fixed ν, μ solves a T-dimensional non-negative QP
(active-set method; μ_t > 0 only on binding targets). ν is found by bisection, because
‖F‖² is non-increasing in ν (the derivative of a concave dual function). The cost is
O(N K (K + T)) per evaluation.

**Reference path.** :func:`fm_step_cvxpy` writes the same problem plainly in cvxpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

__all__ = ["FmProblem", "fm_step_cvxpy", "fm_step_fast", "nonneg_qp"]


@dataclass
class FmProblem:
    """Data of one F_m subproblem.

    Attributes
    ----------
    H : ndarray, shape (N, K)
        User channels.
    u, w : ndarray, shape (K,)
        WMMSE receivers (complex) and weights (real, > 0).
    Z : ndarray, shape (N, K)
        Proximal centre F_RF F_BB − ρD (ignored when c = 0).
    c : float
        Proximal weight 1/(2ρ) (0: fully digital).
    P : float
        Power budget, W.
    A : ndarray, shape (N, T)
        Sensing steering vectors.
    gbar : ndarray, shape (T, K)
        ḡ_t = F̄ᴴ a_t at the linearisation point F̄.
    upsilon : ndarray, shape (T,)
        Sensing thresholds Υ_t.
    """

    H: NDArray[np.complex128]
    u: NDArray[np.complex128]
    w: NDArray[np.float64]
    Z: NDArray[np.complex128]
    c: float
    P: float
    A: NDArray[np.complex128]
    gbar: NDArray[np.complex128]
    upsilon: NDArray[np.float64]

    def objective(self, F: NDArray[np.complex128]) -> float:
        """The (exact) objective of eq. 77 at F, without constants."""
        HF = self.H.conj().T @ F  # [k, i] = h_kᴴ f_i
        uk = self.u[:, None] * HF
        e = np.sum(np.abs(uk) ** 2, axis=1) - 2 * np.real(np.diag(uk)) + 1.0
        val = float(np.sum(self.w * e))
        if self.c:
            val += self.c * float(np.sum(np.abs(F - self.Z) ** 2))
        return val


def nonneg_qp(A: NDArray[np.float64], b: NDArray[np.float64], tol: float = 1e-12,
              max_iter: int = 100, guess: NDArray[np.bool_] | None = None
              ) -> NDArray[np.float64]:
    """min ½ μᵀAμ − bᵀμ s.t. μ ≥ 0 for symmetric PSD A (Lawson–Hanson active set).

    ``guess`` is a set of indices expected to be positive (e.g. from a neighbouring
    problem). If solving on it gives a point that meets every optimality condition, that
    point is returned at once; otherwise the method starts from scratch.
    """
    n = b.size
    scale = max(1.0, float(np.max(np.abs(b)))) if n else 1.0
    if guess is not None and guess.any():
        idx = np.flatnonzero(guess)
        z = np.zeros(n)
        try:
            z[idx] = np.linalg.solve(A[np.ix_(idx, idx)], b[idx])
        except np.linalg.LinAlgError:
            z[idx] = np.linalg.lstsq(A[np.ix_(idx, idx)], b[idx], rcond=None)[0]
        if np.all(z[idx] > 0) and np.all((b - A @ z)[~guess] <= tol * scale):
            return z
    mu = np.zeros(n)
    free = np.zeros(n, bool)
    for _ in range(max_iter):
        g = b - A @ mu  # negative gradient
        cand = np.where(free, -np.inf, g)
        if n == 0 or np.max(cand) <= tol * scale:
            break
        free[int(np.argmax(cand))] = True
        for _ in range(max_iter):
            z = np.zeros(n)
            idx = np.flatnonzero(free)
            z[idx] = np.linalg.lstsq(A[np.ix_(idx, idx)], b[idx], rcond=None)[0]
            if np.all(z[idx] > 0):
                mu = z
                break
            neg = idx[z[idx] <= 0]
            alpha = np.min(mu[neg] / np.maximum(mu[neg] - z[neg], 1e-300))
            mu = mu + alpha * (z - mu)
            free &= mu > tol * scale
            mu[~free] = 0.0
    return mu


class _Structured:
    """λ-independent products, so that one evaluation is K×K / T×T algebra."""

    def __init__(self, p: FmProblem, Hw: NDArray, B0: NDArray) -> None:
        self.p, self.Hw, self.B0 = p, Hw, B0
        A = p.A
        self.K = Hw.shape[1]
        self.HwHw = Hw.conj().T @ Hw            # K×K
        self.HwA = Hw.conj().T @ A              # K×T
        self.HwB = Hw.conj().T @ B0             # K×K
        self.AA = A.conj().T @ A                # T×T
        self.AB = A.conj().T @ B0               # T×K
        self.GG = p.gbar.conj() @ p.gbar.T      # [t, s] = ḡ_tᴴ ḡ_s
        self.cvec = (p.upsilon + np.sum(np.abs(p.gbar) ** 2, axis=1)) / 2

    def solve(self, lam: float, guess: NDArray | None = None) -> tuple[NDArray, NDArray]:
        p = self.p
        core = np.linalg.inv(lam * np.eye(self.K) + self.HwHw)
        T = p.A.shape[1]
        if T:
            AHw = self.HwA.conj().T
            AKA = (self.AA - AHw @ core @ self.HwA) / lam      # a_tᴴ K a_s
            AKB = (self.AB - AHw @ core @ self.HwB) / lam      # a_tᴴ K B₀
            Amat = np.real(AKA * self.GG.T)
            Amat = (Amat + Amat.T) / 2
            r = np.real(np.sum(AKB * p.gbar, axis=1))            # Re(a_tᴴ K B₀ ḡ_t)
            mu = nonneg_qp(Amat, self.cvec - r, guess=guess)
            M = mu[:, None] * p.gbar.conj()                      # T×K
            Y = self.B0 + p.A @ M
            HwY = self.HwB + self.HwA @ M
        else:
            mu = np.zeros(0)
            Y, HwY = self.B0, self.HwB
        F = (Y - self.Hw @ (core @ HwY)) / lam                   # Woodbury
        return F, mu


def _solve_given_lambda(p: FmProblem, lam: float, Hw: NDArray, B0: NDArray,
                        guess: NDArray[np.bool_] | None = None) -> tuple[NDArray, NDArray]:
    """F(λ) with the sensing multipliers optimal for this λ; returns (F, μ)."""
    return _Structured(p, Hw, B0).solve(lam, guess)


def fm_step_fast(p: FmProblem, *, rel_tol: float = 1e-12, nu_hint: float | None = None,
                 mu_hint: NDArray | None = None) -> tuple[NDArray, dict]:
    """Solve the F_m subproblem by its structure (see module docstring).

    Parameters
    ----------
    p : FmProblem
        Needs c > 0 (the fully digital design uses a tiny proximal term, see
        :mod:`rfctl.optimize.mmwave`).
    rel_tol : float
        Relative tolerance on the power multiplier ν.
    nu_hint, mu_hint : optional
        ν and μ of a previous, similar subproblem (warm starts for the bracket and the
        active set; they change the path, never the answer).

    Returns
    -------
    F : ndarray, shape (N, K)
    info : dict
        ``nu`` (power multiplier), ``mu`` (sensing multipliers), ``power``, ``evals``
        and ``feasible`` (False if the linearised sensing constraints cannot be met
        within P).
    """
    if p.c <= 0:
        raise ValueError("fm_step_fast needs a proximal weight c > 0")
    wu = np.sqrt(p.w) * np.abs(p.u)
    Hw = p.H * wu[None, :]
    C = p.H * (p.w * np.conj(p.u))[None, :]
    B0 = C + p.c * p.Z
    st = _Structured(p, Hw, B0)
    evals = 0
    active: list[NDArray | None] = [mu_hint > 0 if mu_hint is not None else None]

    def power_excess(nu: float) -> float:
        nonlocal evals
        evals += 1
        F, mu = st.solve(p.c + nu, active[0])
        active[0] = mu > 0
        return float(np.vdot(F, F).real) - p.P

    if power_excess(0.0) <= p.P * rel_tol:
        F, mu = st.solve(p.c, active[0])
        return F, {"nu": 0.0, "mu": mu, "power": float(np.vdot(F, F).real),
                   "feasible": True, "evals": evals}
    # bracket the root of power(ν) − P (non-increasing in ν)
    lo = 0.0
    hi = nu_hint * 2 if nu_hint else max(p.c, 1e-6)
    while power_excess(hi) > 0:
        lo, hi = hi, hi * 4
        if hi > 1e12 * max(1.0, p.c):
            F, mu = st.solve(p.c + hi)
            return F, {"nu": hi, "mu": mu, "power": float(np.vdot(F, F).real),
                       "feasible": False, "evals": evals}
    if nu_hint and lo == 0.0 and hi > nu_hint / 2 and power_excess(nu_hint / 2) > 0:
        lo = nu_hint / 2
    nu = brentq(power_excess, lo, hi, xtol=1e-300, rtol=max(rel_tol, 4e-16), maxiter=200)
    F, mu = st.solve(p.c + nu, active[0])
    return F, {"nu": nu, "mu": mu, "power": float(np.vdot(F, F).real), "feasible": True,
               "evals": evals}


def fm_step_cvxpy(p: FmProblem) -> NDArray[np.complex128] | None:
    """The same F_m subproblem written plainly in cvxpy (the reference path)."""
    import cvxpy as cp

    N, K = p.H.shape
    F = cp.Variable((N, K), complex=True)
    HF = p.H.conj().T @ F  # [k, i] = h_kᴴ f_i
    terms = []
    for k in range(K):
        ek = cp.sum_squares(cp.abs(p.u[k] * HF[k, :])) - 2 * cp.real(p.u[k] * HF[k, k])
        terms.append(p.w[k] * ek)
    obj = cp.sum(cp.hstack(terms))
    if p.c:
        obj = obj + p.c * cp.sum_squares(cp.abs(F - p.Z))
    cons = [cp.sum_squares(cp.abs(F)) <= p.P]
    for t in range(p.A.shape[1]):
        lin = cp.real(cp.sum(cp.multiply(p.gbar[t], p.A[:, t].conj() @ F)))
        cons.append(2 * lin - np.sum(np.abs(p.gbar[t]) ** 2) >= p.upsilon[t])
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate") or F.value is None:
        return None
    return np.asarray(F.value)
