"""The F_m step of ADMM-RHB (DBRAA seed eq. 77): fast structured solver and cvxpy reference.

    min_F  Σ_k w_k (|u_k h_kᴴ f_k − 1|² + Σ_{i≠k} |u_k h_kᴴ f_i|²) + c ‖F − Z‖²
    s.t.   ‖F‖² ≤ P,   2 Re(ḡ_tᴴ Fᴴ a_t) − ‖ḡ_t‖² ≥ Υ_t   (SCA of ‖Fᴴ a_t‖² ≥ Υ_t)

with c = 1/(2ρ) and Z = F_RF F_BB − ρD (c = 0 for the fully digital design). Written as
tr(Fᴴ(Q + cI)F) − 2 Re tr(B₀ᴴ F) with Q = Σ_k w_k|u_k|² h_k h_kᴴ (rank K) and
B₀ = C + cZ, C[:, k] = w_k conj(u_k) h_k.

**Fast path.** For multipliers ν (power) and μ_t (sensing),
F = (Q + (c + ν) I)⁻¹ (B₀ + Σ_t μ_t a_t ḡ_tᴴ). F lies in span[H, A, B₀] (at most
2K + T dimensions), so one thin QR and one small eigendecomposition per subproblem turn
every evaluation into (2K + T)-dimensional algebra. For fixed ν, μ solves a
T-dimensional non-negative QP (active-set method; μ_t > 0 only on binding targets).
ν is found by safeguarded secant steps on ‖F(ν)‖⁻¹ (nearly linear in ν) inside a
bisection bracket, because ‖F‖² is non-increasing in ν (the derivative of a concave
dual function). The cost is O(N (2K + T)²) per subproblem and O((2K + T)² T) per evaluation.

**Reference path.** :func:`fm_step_cvxpy` writes the same problem plainly in cvxpy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import qr as _qr
from scipy.linalg.lapack import dgesv as _dgesv

from rfctl.outcome import SolverStatus, from_cvxpy, solved

__all__ = ["FmProblem", "fm_step_cvxpy", "fm_step_fast", "nonneg_qp"]

log = logging.getLogger(__name__)


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


def _solve_sym(M: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """M⁻¹v by LAPACK dgesv (what np.linalg.solve calls), least squares if M is singular."""
    _, _, x, info = _dgesv(M, v)
    if info != 0:
        return np.linalg.lstsq(M, v, rcond=None)[0]
    return x


def nonneg_qp(A: NDArray[np.float64], b: NDArray[np.float64], tol: float = 1e-12,
              max_iter: int = 100, guess: NDArray[np.bool_] | None = None
              ) -> NDArray[np.float64]:
    """min ½ μᵀAμ − bᵀμ s.t. μ ≥ 0 for symmetric PSD A (Lawson–Hanson active set).

    ``guess`` is a set of indices expected to be positive (e.g. from a neighbouring
    problem). If solving on it gives a point that meets every optimality condition, that
    point is returned at once; if that point is positive but not optimal, the
    active-set iterations continue from it; otherwise they start from scratch.
    """
    n = b.size
    if n == 0:
        return np.zeros(0)
    # (array methods and LAPACK's gesv directly: the same arithmetic as np.max /
    # np.linalg.solve without their dispatch layers, which dominate at T ≤ 10)
    scale = max(1.0, float(np.abs(b).max()))
    mu = np.zeros(n)
    free = np.zeros(n, bool)
    if guess is not None:
        if not guess.any():
            if float(b.max()) <= tol * scale:  # μ = 0 is optimal
                return np.zeros(n)
        else:
            idx = np.flatnonzero(guess)
            zi = _solve_sym(A[idx][:, idx], b[idx])
            if float(zi.min()) > 0:
                z = np.zeros(n)
                z[idx] = zi
                g = b - A @ z
                g[idx] = -np.inf
                if float(g.max()) <= tol * scale:
                    return z
                # a valid Lawson–Hanson state (μ > 0 and optimal on its free set):
                # continue from it instead of from scratch
                mu, free = z, guess.copy()
    for _ in range(max_iter):
        g = b - A @ mu  # negative gradient
        g[free] = -np.inf
        j = int(np.argmax(g))
        if g[j] <= tol * scale:
            break
        free[j] = True
        for _ in range(max_iter):
            z = np.zeros(n)
            idx = np.flatnonzero(free)
            zi = _solve_sym(A[idx][:, idx], b[idx])
            z[idx] = zi
            if float(zi.min()) > 0:
                mu = z
                break
            neg = idx[z[idx] <= 0]
            alpha = np.min(mu[neg] / np.maximum(mu[neg] - z[neg], 1e-300))
            mu = mu + alpha * (z - mu)
            free &= mu > tol * scale
            mu[~free] = 0.0
    return mu


class _Structured:
    """λ-independent products, so that one evaluation is r×r / T×T algebra.

    F(λ) = (Q + λI)⁻¹ (B₀ + A M) lies in W = span[Hw, A, B₀] (r ≤ 2K + T columns), and
    Q = Hw Hwᴴ maps W into itself. With [Hw, A, B₀] = W R (thin QR) and the eigenvectors
    U, eigenvalues e of R_H R_Hᴴ (= Wᴴ Q W), F(λ) = W U diag(1/(e + λ)) Uᴴ (R_B + R_A M)
    with no cancellation, so small λ loses no precision (Woodbury's form divides by λ).
    """

    def __init__(self, p: FmProblem, Hw: NDArray, B0: NDArray) -> None:
        self.p = p
        K, T = Hw.shape[1], p.A.shape[1]
        M = np.hstack([Hw, p.A, B0])
        if M.shape[0] <= M.shape[1]:
            # the span is the whole space (as in the reduced problems of the final
            # F_BB step and of the fully digital design): W = I, no factorisation
            W, R = None, M
        else:
            W, R = _qr(M, mode="economic", check_finite=False)
        Rh, Ra, Rb = R[:, :K], R[:, K:K + T], R[:, K + T:]
        self.e, U = np.linalg.eigh(Rh @ Rh.conj().T)
        self.e = np.maximum(self.e, 0.0)
        self.WU = U if W is None else W @ U     # N×r, orthonormal columns
        self.UA = U.conj().T @ Ra               # r×T
        self.UB = U.conj().T @ Rb               # r×K
        self.UAh = self.UA.conj().T
        self.GGt = (p.gbar.conj() @ p.gbar.T).T  # [s, t] = ḡ_tᴴ ḡ_s
        self.cvec = (p.upsilon + np.sum(np.abs(p.gbar) ** 2, axis=1)) / 2

    def solve(self, lam: float, guess: NDArray | None = None
              ) -> tuple[NDArray, NDArray, float]:
        """Coordinates Z of F(λ) = WU Z, the multipliers μ and ‖F(λ)‖²."""
        p = self.p
        d = 1.0 / (self.e + lam)
        if self.UA.shape[1]:
            AKd = self.UAh * d[None, :]
            Amat = ((AKd @ self.UA) * self.GGt).real             # Re(a_tᴴK a_s ḡ_sᴴḡ_t)
            Amat = (Amat + Amat.T) / 2
            r = ((AKd @ self.UB) * p.gbar).sum(axis=1).real       # Re(a_tᴴ K B₀ ḡ_t)
            mu = nonneg_qp(Amat, self.cvec - r, guess=guess)
            Z = d[:, None] * (self.UB + self.UA @ (mu[:, None] * p.gbar.conj()))
        else:
            mu = np.zeros(0)
            Z = d[:, None] * self.UB
        return Z, mu, float((Z.real ** 2 + Z.imag ** 2).sum())

    def lift(self, Z: NDArray) -> NDArray:
        return self.WU @ Z

    def least_norm_power(self) -> float:
        """min ‖F‖² subject to the linearised sensing constraints alone (the λ → ∞
        limit: F = A M with the multipliers of the same QP at B₀ = 0). The subproblem is
        feasible iff this is ≤ P."""
        if not self.UA.shape[1]:
            return 0.0
        Amat = np.real((self.UAh @ self.UA) * self.GGt)
        mu = nonneg_qp((Amat + Amat.T) / 2, self.cvec)
        Z = self.UA @ (mu[:, None] * self.p.gbar.conj())
        return float(np.sum(Z.real ** 2 + Z.imag ** 2))


def fm_step_fast(p: FmProblem, *, rel_tol: float = 1e-9, nu_hint: float | None = None,
                 mu_hint: NDArray | None = None) -> tuple[NDArray, dict]:
    """Solve the F_m subproblem by its structure (see module docstring).

    Parameters
    ----------
    p : FmProblem
        Needs c > 0 (the fully digital design uses a tiny proximal term, see
        :mod:`rfctl.optimize.mmwave`).
    rel_tol : float
        Relative tolerance on the power: the returned F has P(1 − rel_tol) ≤ ‖F‖² ≤ P
        when the power constraint binds (a point within rel_tol above P is scaled onto
        it).
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
    active: NDArray | None = mu_hint > 0 if mu_hint is not None else None
    # ν ≥ 0 with ‖F(ν)‖² = P, or ν = 0 if ‖F(0)‖² ≤ P. φ(ν) = ‖F(ν)‖⁻¹ is increasing and
    # nearly linear in λ = c + ν (exactly ∝ λ when λ dominates Q, as in trust-region
    # secular equations). The first step uses that model, later ones secant steps on
    # φ, all inside the bracket [lo, hi] (bisection when a step leaves it). The search
    # starts at the hint, so ν = 0 is evaluated only if the root may lie there.
    target = 1 / np.sqrt(p.P)
    lo, hi, best, zero_done = 0.0, np.inf, None, False
    prev: tuple[float, float] | None = None
    x = float(nu_hint) if nu_hint else 0.0
    evals = 0
    while True:
        F, mu, pw = st.solve(p.c + x, active)
        active = mu > 0
        evals += 1
        if x == 0.0:
            zero_done = True
            if pw <= p.P * (1 + rel_tol):
                return st.lift(F), {"nu": 0.0, "mu": mu, "power": pw, "feasible": True,
                           "evals": evals}
        if abs(pw - p.P) <= rel_tol * p.P:
            if pw > p.P:  # within rel_tol: scale onto the budget
                F = F * np.sqrt(p.P / pw)
                pw = float(np.sum(np.abs(F) ** 2))
            best, hi = (F, mu, pw), x
            break
        if pw < p.P:
            hi, best = x, (F, mu, pw)
        else:
            lo = x
        if np.isfinite(hi) and (evals >= 200 or hi - lo <= 1e-13 * (p.c + hi)):
            break
        if not np.isfinite(hi) and evals == 6 and st.least_norm_power() > p.P * (1 + rel_tol):
            x = np.inf  # no ν meets the power: the linearised targets are out of reach
        if not np.isfinite(hi) and (x > 1e12 * max(1.0, p.c) or evals >= 200):
            return st.lift(F), {"nu": x, "mu": mu, "power": pw, "feasible": False,
                                "evals": evals}
        f = 1 / np.sqrt(pw) - target
        if prev is None or prev[1] == f:
            xn = (p.c + x) * np.sqrt(pw / p.P) - p.c  # φ ∝ λ model
        else:
            xn = x - f * (x - prev[0]) / (f - prev[1])
        prev = (x, f)
        if not np.isfinite(xn):
            xn = 0.5 * (lo + hi) if np.isfinite(hi) else 4 * max(x, p.c)
        if xn <= lo:
            xn = 0.0 if (lo == 0.0 and not zero_done) else (
                0.5 * (lo + hi) if np.isfinite(hi) else 2 * max(x, p.c))
        elif np.isfinite(hi) and xn >= hi:
            xn = 0.5 * (lo + hi)
        elif not np.isfinite(hi):
            xn = min(xn, 16 * max(x, p.c))
        x = xn
    F, mu, pw = best
    return st.lift(F), {"nu": hi, "mu": mu, "power": pw, "feasible": True, "evals": evals}


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
    status = from_cvxpy(prob.status)
    # the reference accepts an inaccurate solve (cvxpy warns "Solution may be
    # inaccurate"; logged here too): its callers compare it with the fast path at their
    # own tolerance (tests), or use it in its place inside the ADMM (the benchmark),
    # where None would mean "infeasible", which it is not
    if status is SolverStatus.OPTIMAL_INACCURATE:
        log.info("F_m subproblem (cvxpy reference): solved inaccurately")
    if not solved(status, accept_inaccurate=True) or F.value is None:
        return None
    return np.asarray(F.value)
