"""The DBRAA sub-6 GHz per-selection power minimisation (seed eq. 56), fast and reference.

For a fixed selection of N_s candidate antennas with channels H (N_s × K) and sensing
steering vectors B (N_s × T):

    min ‖F‖_F²   s.t.  SINR_k(F) ≥ Γ_k  (second-order cone, seed eq. 36)
                       ‖Fᴴ b_t‖² ≥ Υ_t  (non-convex; successive convex approximation, eq. 39)

**SCA.** ‖Fᴴ b_t‖² ≥ 2 Re(ḡ_tᴴ Fᴴ b_t) − ‖ḡ_t‖² with ḡ_t = F̄ᴴ b_t. Every subproblem
is therefore a restriction of the true problem, so each iterate is feasible and the
power never increases. The SCA starts from the SINR-only optimum (uplink–downlink
duality fixed point), scaled up until every sensing gain holds: a feasible point. It
stops when the power falls by less than ``tol`` (relative) in one iteration, or after
``max_iter`` iterations.

**Lower bound.** The SINR-only minimum power (duality fixed point) is a valid lower bound
for the problem with sensing constraints, which can only raise it; so is σ² Σ λ after any
number of iterations from λ = 0 (:class:`DualIterate`). FS-JBAS prunes on it, and carries
a bound's iterate on to the SCA start (:func:`duality_iterate`: bit for bit the start
from λ = 0).

**Solvers.** :func:`solve_subproblem_clarabel` builds the conic data and calls Clarabel
directly (the fast path). :func:`solve_subproblem_cvxpy` writes the same subproblem
plainly in cvxpy, rebuilt on every call: the readable reference. Tests check that the
two agree.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import clarabel
import numpy as np
import scipy.sparse as sp
from numpy.linalg import _umath_linalg
from numpy.typing import NDArray

from rfctl.errors import ConfigError
from rfctl.metrics import beam_gain, sinr
from rfctl.outcome import (
    Outcome,
    SolverStatus,
    StopReason,
    from_clarabel,
    from_cvxpy,
    log_fallback,
    solved,
)

__all__ = [
    "ClarabelSca",
    "DualIterate",
    "SelectionSolution",
    "duality_iterate",
    "sca_power_min",
    "sinr_only_min_power",
    "solve_subproblem_clarabel",
    "solve_subproblem_cvxpy",
]

log = logging.getLogger(__name__)
_solve = _umath_linalg.solve
"""The gufunc np.linalg.solve calls for stacked right-hand sides (no argument checks)."""


# --------------------------------------------------------------------------- SINR-only
@dataclass
class DualIterate:
    """Iterates of the uplink–downlink duality fixed point for a batch of selections.

    Attributes
    ----------
    H : ndarray, shape (B, N, K) complex
        Channels of the B selections.
    lam : ndarray, shape (B, K)
        Dual variables λ after ``steps`` iterations (from λ = 0).
    ok : ndarray, shape (B,) bool
        Not diverged (False: the SINR targets are unreachable on that selection).
    active : ndarray, shape (B,) bool
        Still iterating: neither converged (relative change < ``tol``) nor diverged. An
        inactive row is frozen, exactly as a loop over that selection alone would stop.
    steps : int
        Iterations run on the batch.
    """

    H: NDArray[np.complex128]
    lam: NDArray[np.float64]
    ok: NDArray[np.bool_]
    active: NDArray[np.bool_]
    steps: int

    def bound(self, sigma2: float) -> NDArray[np.float64]:
        """σ² Σ λ per selection (inf where diverged): a lower bound on the power, W."""
        return np.where(self.ok, sigma2 * self.lam.sum(1), np.inf)

    def row(self, b: int) -> DualIterate:
        """Selection ``b`` alone, as a batch of one."""
        return DualIterate(self.H[b:b + 1], self.lam[b:b + 1], self.ok[b:b + 1],
                           self.active[b:b + 1], self.steps)

    @staticmethod
    def stack(rows: list[DualIterate]) -> DualIterate:
        """Batches of one with the same ``steps``, stacked into one batch."""
        steps = {r.steps for r in rows}
        if len(steps) != 1:
            raise ConfigError(f"cannot stack duality iterates at different iteration counts "
                              f"{sorted(steps)}", field="rows", reason="different steps")
        return DualIterate(np.concatenate([r.H for r in rows]),
                           np.concatenate([r.lam for r in rows]),
                           np.concatenate([r.ok for r in rows]),
                           np.concatenate([r.active for r in rows]), steps.pop())


def duality_iterate(
    H: NDArray[np.complex128] | None, gamma: NDArray[np.float64], steps: int, *,
    tol: float = 1e-10, start: DualIterate | None = None,
) -> DualIterate:
    """Run the duality fixed-point iteration to ``steps`` iterations in all.

    λ_k ← 1 / ((1 + 1/Γ_k) h_kᴴ (I + Σ_i λ_i h_i h_iᴴ)⁻¹ h_k) for every selection of the
    batch at once (one stacked N × N solve per iteration). Each row follows exactly the
    arithmetic of a loop over that selection alone, so continuing ``start`` (the iterate
    after ``start.steps`` iterations) gives, bit for bit, what ``steps`` iterations from
    λ = 0 give: a pruning bound's iterate can be carried on to a starting point.

    Parameters
    ----------
    H : ndarray, shape (B, N, K) complex
        Channels (None or ignored when ``start`` is given: its own are used).
    gamma : ndarray, shape (K,)
        SINR targets Γ_k, linear.
    steps : int
        Total iterations (those of ``start`` included).
    tol : float
        Relative change of λ below which a row stops (converged).
    start : DualIterate, optional
        Iterate to continue (not modified).

    Returns
    -------
    DualIterate
    """
    if start is None:
        if H is None:
            raise ConfigError("duality_iterate needs the channels H or an iterate to "
                              "continue", field="H", reason="missing")
        B, N, K = H.shape
        start = DualIterate(H, np.zeros((B, K)), np.ones(B, bool), np.ones(B, bool), 0)
    Hb = start.H
    lam, ok, active = start.lam, start.ok.copy(), start.active.copy()
    n = steps - start.steps
    if n <= 0 or not active.any():
        return DualIterate(Hb, lam, ok, active, max(steps, start.steps))
    N = Hb.shape[1]
    g = (1.0 + 1.0 / np.asarray(gamma, float))[None, :]
    eye = np.eye(N)
    Hc = Hb.conj()
    # (the loop is dispatch-bound at N = K = 4: one errstate, array methods, and the
    # gufunc behind np.linalg.solve called directly; M = I + Σ λ h hᴴ is never singular)
    with np.errstate(divide="ignore", over="ignore"):
        for _ in range(n):
            M = eye + np.einsum("bnk,bk,bmk->bnm", Hb, lam, Hc)
            X = _solve(M, Hb, signature="DD->D")  # (B, N, K): M^{-1} h_k
            q = np.einsum("bnk,bnk->bk", Hc, X).real
            new = 1.0 / (g * q)
            tot = new.sum(1)
            ok &= np.isfinite(tot) & (tot <= 1e15)  # not diverged
            if not ok.all():
                new[~ok] = lam[~ok]
            rel = (np.abs(new - lam) / np.maximum(new, 1e-300)).max(axis=1)
            lam = np.where(active[:, None], new, lam)
            active &= ok & (rel >= tol)
            if not active.any():
                break
    # (a batch that stopped early, every row inactive, is frozen: it stands for ``steps``)
    return DualIterate(Hb, lam, ok, active, steps)


def _beams(it: DualIterate, gamma: NDArray[np.float64], sigma2: float
           ) -> NDArray[np.complex128]:
    """SINR-meeting beams (B, N, K) for the directions of the iterate (NaN where none)."""
    Hb, lam, ok = it.H, it.lam, it.ok
    B, N, K = Hb.shape
    # downlink powers for these directions: SINR equalities, a K × K linear system
    M = np.eye(N) + np.einsum("bnk,bk,bmk->bnm", Hb, lam, Hb.conj())
    Wd = np.linalg.solve(M, Hb)
    Wd /= np.linalg.norm(Wd, axis=1, keepdims=True)
    G = np.abs(np.einsum("bnk,bni->bki", Hb.conj(), Wd)) ** 2  # |h_kᴴ w_i|²
    gam = np.asarray(gamma, float)
    D = -G.copy()
    idx = np.arange(K)
    D[:, idx, idx] = G[:, idx, idx] / gam[None, :]
    with np.errstate(all="ignore"):
        pw = np.linalg.solve(D, np.full((B, K, 1), sigma2))[..., 0]
    good = ok & np.all(pw > 0, axis=1) & np.isfinite(pw).all(1)
    W = Wd * np.sqrt(np.where(good[:, None], pw, 0.0))[:, None, :]
    W[~good] = np.nan
    return W


def sinr_only_min_power(
    H: NDArray[np.complex128], gamma: NDArray[np.float64], sigma2: float, *,
    max_iter: int = 500, tol: float = 1e-10, beams: bool = True,
    start: DualIterate | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.complex128] | None]:
    """Minimum power meeting the SINR targets alone, for a batch of selections.

    Uplink–downlink duality (Wiesel, Eldar & Shamai 2006): the dual variables solve
    λ_k = 1 / ((1 + 1/Γ_k) h_kᴴ (I + Σ_i λ_i h_i h_iᴴ)⁻¹ h_k), the optimal power is
    σ² Σ λ_k, and the optimal beams point along (I + Σ λ_i h_i h_iᴴ)⁻¹ h_k.

    The right-hand side is a standard interference function (monotone), so iterates
    started at λ = 0 increase towards the fixed point. **σ² Σ λ after any number of
    iterations is therefore a valid lower bound** on the optimal power: ``max_iter``
    trades tightness for speed.

    Parameters
    ----------
    H : ndarray, shape (B, N, K) or (N, K) complex
        Channels of B selections (N selected antennas, K users).
    gamma : ndarray, shape (K,)
        SINR targets Γ_k, linear.
    sigma2 : float
        Noise power σ², W.
    max_iter, tol : int, float
        Iteration cap and relative change at which to stop.
    beams : bool
        Also return beamformers that meet every SINR target with equality (for the
        directions of the last iterate; feasible whenever the targets are reachable).
    start : DualIterate, optional
        An iterate of these selections (batched as ``H``) to continue from instead of
        λ = 0; the answer is bit-identical to running from λ = 0 (see
        :func:`duality_iterate`).

    Returns
    -------
    bound : ndarray, shape (B,) (or scalar)
        σ² Σ λ (inf where the targets are provably unreachable).
    W : ndarray, shape (B, N, K) (or (N, K)), or None
        SINR-feasible beamformers (NaN where none were found).
    """
    single = H.ndim == 2
    it = duality_iterate(H[None] if single else H, gamma, max_iter, tol=tol, start=start)
    bound = it.bound(sigma2)
    W = None
    if beams:
        W = _beams(it, gamma, sigma2)
        W = W[0] if single else W
    if single:
        return bound[0], W
    return bound, W


# --------------------------------------------------------------------------- subproblem
def _lin_rows(V: NDArray[np.complex128], K: int) -> tuple[NDArray, NDArray]:
    """Rows of Re and Im of v_jᴴ f_i over x = [vec F_re; vec F_im] (column-major).

    Parameters
    ----------
    V : ndarray, shape (N, J)
        Vectors v_j as columns.

    Returns
    -------
    re, im : ndarray, shape (J, K, 2 N K)
        ``re[j, i] @ x = Re(v_jᴴ f_i)`` and ``im[j, i] @ x = Im(v_jᴴ f_i)``.
    """
    N, J = V.shape
    eye = np.eye(K)
    # block i of the F_re (or F_im) half holds v for column i: kron(e_i, v)
    blk_re = np.einsum("ia,nj->jian", eye, V.real).reshape(J, K, K * N)
    blk_im = np.einsum("ia,nj->jian", eye, V.imag).reshape(J, K, K * N)
    re = np.concatenate([blk_re, blk_im], axis=2)   # Re(vᴴf) = v_re·f_re + v_im·f_im
    im = np.concatenate([-blk_im, blk_re], axis=2)  # Im(vᴴf) = v_re·f_im − v_im·f_re
    return re, im


def _socp_data(H, Bt, gamma, upsilon, sigma2, Fbar):
    """Conic data (A, b, cones) of one SCA subproblem, vectorised."""
    N, K = H.shape
    T = Bt.shape[1]
    n = 2 * N * K
    blocks, bs, cones = [], [], []
    if T:
        gbar = Fbar.conj().T @ Bt  # (K, T): ḡ_{t,i} = f̄_iᴴ b_t
        bre, bim = _lin_rows(Bt, K)  # (T, K, n)
        L = np.einsum("it,tin->tn", gbar.real, bre) - np.einsum("it,tin->tn", gbar.imag, bim)
        blocks.append(-L)
        bs.append(-(upsilon + np.sum(np.abs(gbar) ** 2, axis=0)) / 2)
        cones.append(clarabel.NonnegativeConeT(T))
    hre, him = _lin_rows(H, K)  # (K, K, n): [k, i] ↦ Re/Im(h_kᴴ f_i)
    a = np.sqrt(1.0 + 1.0 / np.asarray(gamma, float))
    soc = np.zeros((K, 2 * K + 2, n))
    soc[:, 0] = -a[:, None] * hre[np.arange(K), np.arange(K)]
    soc[:, 1:2 * K + 1:2] = -hre
    soc[:, 2:2 * K + 2:2] = -him
    blocks.append(soc.reshape(-1, n))
    bsoc = np.zeros((K, 2 * K + 2))
    bsoc[:, -1] = np.sqrt(sigma2)
    bs.append(bsoc.ravel())
    cones += [clarabel.SecondOrderConeT(2 * K + 2)] * K
    return np.vstack(blocks), np.concatenate(bs), cones


def solve_subproblem_clarabel(
    H: NDArray[np.complex128], Bt: NDArray[np.complex128], gamma: NDArray[np.float64],
    upsilon: NDArray[np.float64], sigma2: float, Fbar: NDArray[np.complex128],
) -> tuple[NDArray[np.complex128] | None, str]:
    """One SCA subproblem (seed eq. 40) solved by Clarabel directly.

    Parameters
    ----------
    H : ndarray, shape (N, K)
    Bt : ndarray, shape (N, T)
        Sensing steering vectors restricted to the selection.
    gamma, upsilon : ndarray, shapes (K,), (T,)
    sigma2 : float
    Fbar : ndarray, shape (N, K)
        Linearisation point.

    Returns
    -------
    F : ndarray, shape (N, K), or None
        The solver's point when ``status`` is OPTIMAL or OPTIMAL_INACCURATE (the
        caller decides whether to take an inaccurate one: :func:`sca_power_min`
        checks it first), else None.
    status : SolverStatus
    """
    N, K = H.shape
    n = 2 * N * K
    A, b, cones = _socp_data(H, Bt, gamma, upsilon, sigma2, Fbar)
    P = sp.diags(np.full(n, 2.0), format="csc")
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solver = clarabel.DefaultSolver(P, np.zeros(n), sp.csc_matrix(A), b, cones, settings)
    sol = solver.solve()
    status = from_clarabel(sol.status)
    if not solved(status, accept_inaccurate=True):  # the caller judges an inaccurate one
        return None, status
    x = np.asarray(sol.x)
    F = (x[: N * K] + 1j * x[N * K:]).reshape(K, N).T
    return F, status


@functools.lru_cache(maxsize=16)
def _twice_identity(n: int) -> sp.csc_matrix:
    """2 I_n in CSC form (the objective ‖x‖² of every SCA subproblem; Clarabel copies it)."""
    return sp.diags(np.full(n, 2.0), format="csc")


class ClarabelSca:
    """The SCA subproblems of one selection on one persistent Clarabel solver.

    Between SCA iterations only the sensing rows of A and b change. The sparsity
    pattern is fixed at the first solve (sensing rows are stored dense), so later
    iterations update the data in place instead of building a new solver.

    An updated solve that does not end optimal (with ``retry_inaccurate=False``: optimal
    or inaccurate) is redone on a fresh solver, logged as a fallback. The result is
    returned as by :func:`solve_subproblem_clarabel`.
    """

    def __init__(self, H, Bt, gamma, upsilon, sigma2, *, retry_inaccurate: bool = True
                 ) -> None:
        self.args = (H, Bt, gamma, upsilon, sigma2)
        self.retry_inaccurate = retry_inaccurate
        self.N, self.K = H.shape
        self.T = Bt.shape[1]
        self.solver = None
        self._mask: NDArray | None = None
        self._idx: tuple[NDArray, NDArray, NDArray] = (np.zeros(0, int),) * 3

    def _values(self, A: NDArray) -> NDArray:
        """The entries of A on the fixed pattern, in CSC (column-major) order."""
        if self._mask is None:
            mask = A != 0
            mask[: self.T] = True  # sensing rows change: keep them dense
            self._mask = mask
            # the CSC structure of the fixed pattern, once (column-major order)
            col, row = np.nonzero(mask.T)
            self._idx = (row, col, np.concatenate([[0], np.cumsum(mask.sum(axis=0))]))
        row, col, _ = self._idx
        return A[row, col]

    def _csc(self, values: NDArray, shape: tuple[int, int]) -> sp.csc_matrix:
        row, _, indptr = self._idx
        return sp.csc_matrix((values, row, indptr), shape=shape)

    rebuilds = 0
    """Class-wide count of updated solves that failed and were redone from scratch."""

    def _new_solver(self, Acsc, b, cones):
        n = 2 * self.N * self.K
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        return clarabel.DefaultSolver(_twice_identity(n), np.zeros(n), Acsc, b, cones,
                                      settings)

    def __call__(self, H, Bt, gamma, upsilon, sigma2, Fbar):
        A, b, cones = _socp_data(H, Bt, gamma, upsilon, sigma2, Fbar)
        values = self._values(A)
        if self.solver is None:
            self.solver = self._new_solver(self._csc(values, A.shape), b, cones)
            sol = self.solver.solve()
        else:
            # the pattern is fixed: the new values alone (no CSC matrix to build)
            self.solver.update(A=values, b=b)
            sol = self.solver.solve()
            status = from_clarabel(sol.status)
            if not solved(status, accept_inaccurate=not self.retry_inaccurate):
                # an updated solver can fail where a fresh one succeeds: redo from scratch
                log_fallback("sub-6G SCA subproblem", "the updated Clarabel solver", status,
                             "a fresh Clarabel solver")
                ClarabelSca.rebuilds += 1
                self.solver = self._new_solver(self._csc(values, A.shape), b, cones)
                sol = self.solver.solve()
        status = from_clarabel(sol.status)
        if not solved(status, accept_inaccurate=True):  # the caller judges an inaccurate one
            return None, status
        x = np.asarray(sol.x)
        NK = self.N * self.K
        return (x[:NK] + 1j * x[NK:]).reshape(self.K, self.N).T, status


def solve_subproblem_cvxpy(
    H: NDArray[np.complex128], Bt: NDArray[np.complex128], gamma: NDArray[np.float64],
    upsilon: NDArray[np.float64], sigma2: float, Fbar: NDArray[np.complex128],
) -> tuple[NDArray[np.complex128] | None, str]:
    """The same SCA subproblem written plainly in cvxpy (rebuilt on every call): the
    readable reference path. Same parameters and returns as the Clarabel version."""
    import cvxpy as cp

    N, K = H.shape
    F = cp.Variable((N, K), complex=True)
    cons = []
    for k in range(K):
        hk = H[:, k]
        row = hk.conj() @ F  # h_kᴴ f_i for every i
        cons.append(cp.norm(cp.hstack([row, np.sqrt(sigma2)])) <=
                    np.sqrt(1 + 1 / gamma[k]) * cp.real(hk.conj() @ F[:, k]))
    for t in range(Bt.shape[1]):
        gbar = Fbar.conj().T @ Bt[:, t]  # ḡ_t, shape (K,)
        lin = cp.real(cp.sum(cp.multiply(gbar, Bt[:, t].conj() @ F)))
        cons.append(2 * lin - np.sum(np.abs(gbar) ** 2) >= upsilon[t])
    prob = cp.Problem(cp.Minimize(cp.sum_squares(cp.real(F)) + cp.sum_squares(cp.imag(F))),
                      cons)
    try:
        prob.solve(solver=cp.CLARABEL)
    except cp.SolverError as exc:
        log.warning("sub-6G SCA subproblem (cvxpy reference): %s", exc)
        return None, SolverStatus.NUMERICAL_ERROR
    status = from_cvxpy(prob.status)
    # an inaccurate point is returned with its status, as by the fast path: the caller
    # (sca_power_min) checks it before taking it
    if not solved(status, accept_inaccurate=True) or F.value is None:
        return None, status
    return np.asarray(F.value), status


# --------------------------------------------------------------------------- SCA
INACCURATE_TOL = 1e-8
"""Relative shortfall on an SINR target or sensing gain up to which an inaccurately
solved SCA step is still taken (a design is judged at 1e-6; the final scaling of
:mod:`rfctl.optimize.sub6g` removes shortfalls up to 1e-6 in power)."""


def _meets_targets(H, Bt, gamma, upsilon, sigma2, F) -> bool:
    """SINR_k(F) ≥ Γ_k and ‖Fᴴ b_t‖² ≥ Υ_t, each to INACCURATE_TOL (relative)."""
    ok = np.all(sinr(H, F, sigma2) >= np.asarray(gamma) * (1 - INACCURATE_TOL))
    if Bt.shape[1]:
        ok = ok and np.all(beam_gain(Bt, F) >= np.asarray(upsilon) * (1 - INACCURATE_TOL))
    return bool(ok)


@dataclass
class SelectionSolution:
    """Result of the per-selection power minimisation.

    Attributes
    ----------
    F : ndarray, shape (N, K) or None
        Beamformer on the selected antennas (None if infeasible).
    power : float
        ‖F‖², W (inf if infeasible).
    lower_bound : float
        SINR-only minimum power, W.
    trace : list of float
        Power after each SCA iteration.
    outcome : Outcome
        ``iterations`` = SCA subproblems solved; ``stop_reason`` CONVERGED (the power
        fell by ≤ ``tol``, or the one convex solve of a problem without sensing),
        ITERATION_CAP, INFEASIBLE (the SINR targets are unreachable) or SOLVER_FAILED (the
        last subproblem's ``status`` was not optimal; the last feasible iterate is kept).
    """

    F: NDArray[np.complex128] | None
    power: float
    lower_bound: float
    trace: list[float] = field(default_factory=list)
    outcome: Outcome = field(
        default_factory=lambda: Outcome(StopReason.ITERATION_CAP, 0))


Subsolver = Callable[..., tuple[NDArray[np.complex128] | None, SolverStatus]]


def sca_power_min(
    H: NDArray[np.complex128], Bt: NDArray[np.complex128], gamma: NDArray[np.float64],
    upsilon: NDArray[np.float64], sigma2: float, *,
    solver: str | Subsolver = "clarabel", F0: NDArray[np.complex128] | None = None,
    tol: float = 1e-7, max_iter: int = 100, start_iter: int = 60,
    accept_inaccurate: bool = False, dual: DualIterate | None = None,
) -> SelectionSolution:
    """Minimise power on one selection: SINR cones + SCA on the sensing gains.

    Parameters
    ----------
    H : ndarray, shape (N, K)
    Bt : ndarray, shape (N, T)
    gamma, upsilon : ndarray, shapes (K,), (T,)
    sigma2 : float
    solver : "clarabel", "cvxpy" or callable
        Subproblem solver: Clarabel on one persistent solver (fast), the cvxpy
        reference rebuilt per call, or any function with the signature of
        :func:`solve_subproblem_clarabel`.
    F0 : ndarray, shape (N, K), optional
        A feasible starting point. By default the SINR-meeting beams from
        ``start_iter`` duality iterations, scaled up until every sensing gain holds.
    tol : float
        Relative power decrease below which SCA stops.
    max_iter : int
        SCA iterations at most.
    start_iter : int
        Duality iterations for the starting point (one, for the bound only, when ``F0``
        is given).
    accept_inaccurate : bool
        Take an inaccurately solved subproblem (Clarabel ``AlmostSolved``, cvxpy
        ``optimal_inaccurate``) as a step without checking it (ABAS, whose relaxed
        selections only guide the rounding). Off (designs): the persistent solver is
        first rebuilt, and a point that is still inaccurate is taken only if it meets
        every SINR target and sensing gain to :data:`INACCURATE_TOL` (judged by
        rfctl.metrics; the linearised sensing constraint is an inner approximation, so
        the true gains are what counts), else the SCA stops with SOLVER_FAILED and keeps
        its last feasible iterate.
    dual : DualIterate, optional
        A duality iterate of this selection (a batch of one, e.g. a pruning bound's) to
        continue to ``start_iter`` iterations instead of starting from λ = 0: the same
        start, bit for bit, for fewer iterations. Unused when ``F0`` is given.
    """
    # with a given start only the (still valid, looser) bound is needed: one iteration;
    # a duality iterate is carried on only if it has not gone past start_iter
    carry = dual if F0 is None and dual is not None and dual.steps <= start_iter else None
    lb, W = sinr_only_min_power(H, gamma, sigma2, max_iter=start_iter if F0 is None else 1,
                                beams=F0 is None, start=carry)
    lb = float(lb)
    if F0 is None:
        if not np.isfinite(lb) or W is None or np.isnan(W).any():
            return SelectionSolution(None, np.inf, lb, outcome=Outcome(
                StopReason.INFEASIBLE, 0, SolverStatus.INFEASIBLE))
        F0 = np.asarray(W)
    T = Bt.shape[1]
    if T:
        G = np.sum(np.abs(F0.conj().T @ Bt) ** 2, axis=0)
        if np.any(G < 1e-12 * max(1.0, float(np.max(upsilon)))):
            # the beams null a target: add a small component towards it
            F0 = F0 + 1e-3 * np.sqrt(np.vdot(F0, F0).real / T) * (
                Bt @ np.ones((T, H.shape[1]))) / np.sqrt(Bt.shape[0] * H.shape[1])
            G = np.sum(np.abs(F0.conj().T @ Bt) ** 2, axis=0)
        F0 = F0 * max(1.0, float(np.max(np.sqrt(upsilon / G))))
    F = F0
    power = float(np.vdot(F, F).real)
    trace = [power]
    if T == 0 and F0 is not None:
        # no sensing: the SINR-only problem is convex; one subproblem solves it
        max_iter = 1
    if solver == "clarabel":
        sub: Subsolver = ClarabelSca(H, Bt, gamma, upsilon, sigma2,
                                     retry_inaccurate=not accept_inaccurate)
    elif solver == "cvxpy":
        sub = solve_subproblem_cvxpy
    else:
        sub = solver  # type: ignore[assignment]
    reason = StopReason.ITERATION_CAP
    status = SolverStatus.OPTIMAL
    for _ in range(max_iter):
        Fn, status = sub(H, Bt, gamma, upsilon, sigma2, F)
        if Fn is not None and status is SolverStatus.OPTIMAL_INACCURATE \
                and not accept_inaccurate:
            ok = _meets_targets(H, Bt, gamma, upsilon, sigma2, Fn)
            log.info("sub-6G SCA step solved inaccurately; %s", "it meets every target "
                     "to INACCURATE_TOL: taken" if ok else "it misses a target: refused")
            Fn = Fn if ok else None
        if Fn is None:
            reason = StopReason.SOLVER_FAILED
            break
        pn = float(np.vdot(Fn, Fn).real)
        if pn > power:  # the decrease test fired (by solver noise at the optimum):
            reason = StopReason.CONVERGED  # keep the feasible iterate
            break
        F, improvement = Fn, power - pn
        power = pn
        trace.append(power)
        if improvement <= tol * power:
            reason = StopReason.CONVERGED
            break
    else:
        if max_iter == 1 and T == 0:  # one convex solve is the exact answer
            reason = StopReason.CONVERGED
    return SelectionSolution(F, power, lb, trace,
                             Outcome(reason, len(trace) - 1, status))
