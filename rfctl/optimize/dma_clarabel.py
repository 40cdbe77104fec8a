"""The DMA digital SDR (P2) in Clarabel's native cone form, built once per solve.

cvxpy canonicalises P2 on every call, which costs far more than the conic solve at the
DMA's sizes (N = 4 RF chains). This module writes the same problem directly as

    minimise qᵀx  subject to  A x + s = b,  s ∈ ℝ₊^{2D + M + 1} × PSD(2N)^{M + 1},

so that one solve is a few NumPy products plus the Clarabel call. The cvxpy model in
:mod:`rfctl.optimize.dma_digital` stays the readable reference; a test checks that the
two agree.

**Variables.** Each Hermitian N × N matrix X = X_r + j X_i of P2 (𝓑_1 … 𝓑_M and the
shared sensing covariance R_s) is stored by its N² real parameters: X_r[i, j] for
i ≤ j and X_i[i, j] for i < j. Its positive semidefiniteness is that of the real
embedding [[X_r, −X_i], [X_i, X_r]] (2N × 2N), written to Clarabel's
``PSDTriangleConeT`` (upper triangle, column-major, off-diagonal entries × √2).

**Linear functionals.** For Hermitian A, tr(A X) = Σ_i Re A_ii X_r,ii
+ 2 Σ_{i<j} (Re A_ij X_r,ij + Im A_ij X_i,ij), which gives every row of P2: the
beampattern gains tr(A_d R), each user's SINR constraint
tr(𝒴_m R) − (1 + 1/Γ_m) tr(𝒴_m 𝓑_m) + 1 ≤ 0 (noise units) and the power tr(A_P R).

**Scaling (congruence).** In the interference-limited regime (Γ of 20–30 dB) the
sensing covariance must almost vanish along the users' channels: tr(𝒴_m R_s) ≲ 1
while ‖𝒴_m‖ ‖R_s‖ ~ 10⁴–10⁵, so in the original coordinates the SINR rows are a
difference of large numbers and a conic solver's 1e-8 accuracy becomes a 1e-3 error
in SINR/Γ. The problem is therefore solved in the coordinates X = T Y Tᴴ with
T = W^{-1/2}, W = A_P/P_max + Σ_m 𝒴_m/Γ_m + Σ_d A_d/β_max (Hermitian positive
definite): every constraint functional is then of order one in Y. The congruence keeps
Y ⪰ 0 ⇔ X ⪰ 0 and is undone before the result is returned. Each linear row is also
divided by its largest coefficient.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from rfctl.outcome import SolverStatus, from_clarabel, solved

__all__ = ["HermitianLayout", "row_duals", "solve_sdp_clarabel"]


class HermitianLayout:
    """Index maps between a Hermitian N × N matrix, its N² real parameters and the
    Clarabel triangle vector of its 2N × 2N real embedding.

    Parameters
    ----------
    n : int
        N.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.iu = np.triu_indices(n)  # X_r parameters (i ≤ j)
        self.iu1 = np.triu_indices(n, 1)  # X_i parameters (i < j)
        self.size = n * n
        n_r = self.iu[0].size
        # embedding E x: svec(M) of M = [[X_r, −X_i], [X_i, X_r]] (2n × 2n)
        m = 2 * n
        svec_len = m * (m + 1) // 2
        E = np.zeros((svec_len, self.size))
        pos_r = {(int(i), int(j)): k for k, (i, j) in enumerate(zip(*self.iu, strict=True))}
        pos_i = {(int(i), int(j)): n_r + k
                 for k, (i, j) in enumerate(zip(*self.iu1, strict=True))}
        row = 0
        for j in range(m):  # column-major upper triangle
            for i in range(j + 1):
                scale = 1.0 if i == j else math.sqrt(2.0)
                bi, bj = i // n, j // n
                a, c = i % n, j % n
                if bi == bj:  # X_r block (symmetric)
                    key = (min(a, c), max(a, c))
                    E[row, pos_r[key]] = scale
                elif a != c:  # i in the top block row (bi = 0, bj = 1): −X_i[a, c]
                    # −X_i[a, c] = X_i[c, a]: sign by which of (a, c) is the upper index
                    sign = -1.0 if a < c else 1.0
                    E[row, pos_i[(min(a, c), max(a, c))]] = sign * scale
                row += 1
        self.embed = E

    def coef(self, A: NDArray) -> NDArray[np.float64]:
        """Coefficients c with tr(A X) = cᵀ x for Hermitian A (N × N), shape (N²,)."""
        A = np.asarray(A, complex)
        d = np.where(self.iu[0] == self.iu[1], 1.0, 2.0)
        return np.concatenate([d * A.real[self.iu], 2.0 * A.imag[self.iu1]])

    def matrix(self, x: NDArray) -> NDArray[np.complex128]:
        """The Hermitian matrix of parameters x (N²,)."""
        n, n_r = self.n, self.iu[0].size
        X = np.zeros((n, n), complex)
        X[self.iu] = x[:n_r]
        X = X + np.triu(X, 1).T
        Xi = np.zeros((n, n))
        Xi[self.iu1] = x[n_r:]
        return X + 1j * (Xi - Xi.T)


def row_duals(mu: NDArray, n_dirs: int, n_users: int, *, pattern: bool = True,
              sinr: bool = True) -> dict[str, NDArray]:
    """Split the multipliers of P2's linear rows by constraint, in the one row order
    both backends build: per direction the β_max row then the β_d row (if ``pattern``),
    one SINR row per user (if ``sinr``), then the power row.

    Parameters
    ----------
    mu : ndarray, shape (R,)
        Multipliers μ ≥ 0 of the rows, in that order (R ≥ 2D + M + 1 as enabled).
    n_dirs, n_users : int
        D and M.
    pattern, sinr : bool
        Whether the beampattern and SINR rows are present.

    Returns
    -------
    dict of str to ndarray
        ``beta_max`` and ``beta`` (shape (D,) each, if ``pattern``), ``sinr`` (shape
        (M,), if ``sinr``; rows in noise units) and ``power`` (shape (1,)).
    """
    mu = np.asarray(mu, float)
    duals: dict[str, NDArray] = {}
    k = 0
    if pattern:
        duals["beta_max"], duals["beta"] = mu[k:k + 2 * n_dirs:2], mu[k + 1:k + 2 * n_dirs:2]
        k += 2 * n_dirs
    if sinr:
        duals["sinr"] = mu[k:k + n_users]
        k += n_users
    duals["power"] = mu[k:k + 1]
    return duals


@lru_cache(maxsize=8)
def _structure(n: int, nmat: int):
    """The layout and the block-diagonal PSD embedding, built once per (N, M + 1)."""
    import scipy.sparse as sp

    lay = HermitianLayout(n)
    return lay, sp.block_diag([sp.csc_matrix(lay.embed)] * nmat, format="csc")


def solve_sdp_clarabel(V: NDArray, Hn: NDArray, A_P: NDArray, gamma: NDArray,
                       beta: NDArray, beta_max: float, p_max: float, *, sinr: bool = True,
                       pattern: bool = True, objective: bool = True, slack: bool = False,
                       max_threads: int = 1
                       ) -> tuple[SolverStatus, float, list[NDArray], NDArray,
                                  dict[str, NDArray]]:
    """Solve P2 natively in Clarabel.

    Parameters
    ----------
    V : ndarray, shape (N, D)
        Beampattern vectors v_d.
    Hn : ndarray, shape (M, N)
        Users' channels in noise units (h_m / σ).
    A_P : ndarray, shape (N, N)
        Hermitian power matrix, W per unit covariance.
    gamma, beta : ndarray, shapes (M,) and (D,)
    beta_max, p_max : float
    sinr, pattern, objective : bool
        Drop the SINR rows, the beampattern rows, or the objective (feasibility tests).
    slack : bool
        Phase one: give every lower-bound row (β_d, relative to β_d; SINR, in noise
        units) a slack s ≥ 0 and minimise Σ s instead of the objective. Always feasible
        (R = 0 meets β_max and the power); ``value`` is then Σ s, the total violation
        (0 when P2 is feasible).
    max_threads : int
        Clarabel's thread count (0: its default, all cores). One by default: at these
        sizes its parallel factorisation only spin-waits on a shared machine (measured
        N = 8: 125 ms per solve with the default vs 70 ms with one thread).

    Returns
    -------
    status : rfctl.outcome.SolverStatus
        Clarabel's status in the library's vocabulary (``optimal``,
        ``optimal-inaccurate``, ``infeasible``, ``numerical-error``, …).
    value : float
        Mean beampattern gain at the optimum (NaN unless solved).
    B_m : list of ndarray, shape (N, N) each
        The users' covariances 𝓑_m.
    R_s : ndarray, shape (N, N)
        The sensing covariance.
    duals : dict of str to ndarray
        Multipliers μ ≥ 0 of the rows, for the maximisation of the mean gain:
        ``beta_max`` and ``beta`` (per direction), ``sinr`` (per user, rows in noise
        units) and ``power`` (one entry).
    """
    import clarabel
    import scipy.sparse as sp

    N, D = V.shape
    M = Hn.shape[0]
    nmat = M + 1
    lay, E = _structure(N, nmat)
    nv = lay.size
    nx = nv * nmat
    # congruence X = T Y Tᴴ (module docstring): data → Tᴴ (·) T
    W = A_P / p_max + sum((np.outer(Hn[m].conj(), Hn[m]) / float(gamma[m])
                           for m in range(M)), np.zeros((N, N), complex))
    if D:
        W = W + (V @ V.conj().T) / beta_max
    W = (W + W.conj().T) / 2
    w, U = np.linalg.eigh(W)
    T = (U / np.sqrt(np.maximum(w, w.max() * 1e-14))) @ U.conj().T
    V = T.conj().T @ V
    Hn = Hn @ T
    A_P = T.conj().T @ A_P @ T
    tau = 1.0

    def on_all(c: NDArray) -> NDArray:
        return np.tile(c, nmat)

    cd = [lay.coef(np.outer(V[:, d], V[:, d].conj())) for d in range(D)]
    rows: list[NDArray] = []
    rhs: list[float] = []
    if pattern:
        for d in range(D):
            rows += [on_all(cd[d]), -on_all(cd[d])]
            rhs += [beta_max, -float(beta[d])]
    if sinr:
        for m in range(M):
            h = Hn[m].conj()
            c = lay.coef(np.outer(h, h.conj()))
            r = on_all(c)
            r[m * nv:(m + 1) * nv] -= (1.0 + 1.0 / float(gamma[m])) * c
            rows.append(r)
            rhs.append(-1.0)
    rows.append(on_all(lay.coef(A_P)))
    rhs.append(p_max)
    G = np.vstack(rows) * tau
    h_lin = np.asarray(rhs, float)
    scale = np.maximum(np.max(np.abs(G), axis=1), 1e-300)
    G /= scale[:, None]
    h_lin /= scale
    q = np.zeros(nx)
    kappa = 1.0
    if objective and D:
        q = -on_all(sum(cd) / D) * tau
        kappa = max(float(np.max(np.abs(q))), 1e-300)
        q /= kappa
    nl = G.shape[0]
    if slack:  # columns for the lower-bound rows, then s ≥ 0 rows
        lower = ([2 * d + 1 for d in range(D)] if pattern else []) + (
            [(2 * D if pattern else 0) + m for m in range(M)] if sinr else [])
        weight = np.array(([float(x) for x in beta] if pattern else []) + [1.0] * (
            M if sinr else []))
        S = np.zeros((nl, len(lower)))
        S[lower, np.arange(len(lower))] = -weight / scale[lower]
        G = np.vstack([np.hstack([G, S]),
                       np.hstack([np.zeros((len(lower), nx)), -np.eye(len(lower))])])
        h_lin = np.concatenate([h_lin, np.zeros(len(lower))])
        q = np.concatenate([np.zeros(nx), np.ones(len(lower))])
        E = sp.hstack([E, sp.csc_matrix((E.shape[0], len(lower)))], format="csc")
    ntot = G.shape[1]
    A = sp.vstack([sp.csc_matrix(G), -E], format="csc")
    b = np.concatenate([h_lin, np.zeros(E.shape[0])])
    cones = [clarabel.NonnegativeConeT(G.shape[0])] + [
        clarabel.PSDTriangleConeT(2 * N) for _ in range(nmat)]
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.max_threads = max_threads
    sol = clarabel.DefaultSolver(sp.csc_matrix((ntot, ntot)), q, A, b, cones, st).solve()
    status = from_clarabel(sol.status)
    # AlmostSolved accepted: every B recovered from this solve is re-checked with the
    # model's exact metrics, and the multipliers only steer the analog step (whose
    # candidates are checked exactly too)
    ok = solved(status, accept_inaccurate=True)
    x = np.asarray(sol.x) * tau
    mats = [T @ lay.matrix(x[k * nv:(k + 1) * nv]) @ T.conj().T for k in range(nmat)]
    value = float("nan")
    if slack:
        value = float(np.sum(np.asarray(sol.x)[nx:])) if ok else value
    elif ok and D:
        value = float(np.mean([np.real(cd[d] @ sum(x[k * nv:(k + 1) * nv]
                                                   for k in range(nmat))) for d in range(D)]))
    # multipliers of the original rows (maximisation of the mean gain): μ = κ z / scale
    mu = kappa * np.asarray(sol.z)[:nl] / scale
    duals = row_duals(mu, D, M, pattern=pattern, sinr=sinr)
    return status, value, mats[:M], mats[M], duals
