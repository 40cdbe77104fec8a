"""Second-order sensitivity of the DMA digital optimum F(b) to the element tunings.

F(b) = max_B f(b, B) subject to P1's constraints c_i(b, B) ≤ 0 (the SDR's value where
its rank-one recovery is exact, which :mod:`rfctl.optimize.dma_digital` checks). At a
solution with multipliers μ (the SDR's own, ``DigitalResult.multipliers``) and active
set 𝒜, the Lagrangian ℒ = f − Σ μ_i c_i gives ∇F = ∇_b ℒ (the envelope theorem) and,
differentiating the KKT conditions ∇_x ℒ = 0, c_𝒜 = 0 along b,

    ∇²F = ℒ_bb − J K⁺ Jᵀ,   J = [ℒ_bx  C_bᵀ],   K = [[ℒ_xx, C_xᵀ], [C_x, 0]],

with x the real parameters of B (per stream [Re B_s; Im B_s]), C the active rows'
Jacobians and K⁺ a least-squares inverse (K is singular along B's invariances: each
stream's phase and rotations among the sensing streams; J is orthogonal to them).
ℒ_bb alone is the curvature with B and μ frozen; the J K⁺ Jᵀ term is how the optimal
B and the active constraints follow b, which a model with B fixed (or a quasi-Newton
model built from gradients of a piecewise-smooth F) does not see.

Every quantity of P1 is a sum of terms φ(c, ω) = Σ_s ω_s |u B_s|² with u = cᵀ Φ Y_st
(c = a_d for the beampattern, c = y_RS,m for user m's channel) plus the power
tr(A_P B Bᴴ). With Φ = (Y_s + Y_ss)^{-1} (symmetric), P = Φ Y_st, α = Φ c, ∂Φ/∂b_l =
−jΦ e_l e_lᵀ Φ, X = Σ_s ω_s B_s B_sᴴ and w = P X uᴴ:

    ∂φ/∂b_l   = 2 Re(−j α_l w_l)
    ∂²φ/∂b∂b  = 2 Re[(α α̅ᵀ) ∘ (P X Pᴴ) − Φ ∘ (α wᵀ + w αᵀ)]
    P_t: ∂/∂b_l = −½ Im (P R Pᵀ)_ll,  ∂²/∂b∂b = ½ Re[Φ ∘ (S + Sᵀ)], S = P R Pᵀ.

A test checks every block and ∇²F against finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["LagrangianBlocks", "lagrangian_blocks", "value_hessian"]


@dataclass
class LagrangianBlocks:
    """Derivatives of P1's Lagrangian and active constraints at (b, B, μ).

    Attributes
    ----------
    grad_b : ndarray, shape (L,)
        ∇_b ℒ = ∇F, per S.
    L_bb : ndarray, shape (L, L)
    L_bx : ndarray, shape (L, n_x)
    L_xx : ndarray, shape (n_x, n_x)
        n_x = 2 N S real parameters of B (per stream [Re B_s; Im B_s]).
    C_b : ndarray, shape (n_a, L)
    C_x : ndarray, shape (n_a, n_x)
        Jacobians of the n_a active constraint rows.
    active : list of str
        Their names (``"beta_max d"``, ``"beta d"``, ``"sinr m"``, ``"power"``).
    """

    grad_b: NDArray[np.float64]
    L_bb: NDArray[np.float64]
    L_bx: NDArray[np.float64]
    L_xx: NDArray[np.float64]
    C_b: NDArray[np.float64]
    C_x: NDArray[np.float64]
    active: list[str]


def _embed(Q: NDArray) -> NDArray[np.float64]:
    """Real 2N × 2N matrix M with xᵀ M x = Bᴴ Q B for x = [Re B; Im B] (Q Hermitian)."""
    return np.block([[Q.real, -Q.imag], [Q.imag, Q.real]])


def _term(Phi: NDArray, P: NDArray, c: NDArray, omega: NDArray, B: NDArray):
    """(grad_b, hess_bb, grad_x, hess_xx, mixed_bx) of φ = Σ_s ω_s |cᵀ Φ Y_st B_s|²."""
    L, N = P.shape
    S = B.shape[1]
    u = c @ P  # (N,)
    alpha = Phi @ c  # (L,)
    X = (B * omega[None, :]) @ B.conj().T
    w = P @ (X @ u.conj())  # (L,)
    kappa = -1j * alpha
    g_b = 2 * np.real(kappa * w)
    PXP = P @ X @ P.conj().T
    h_bb = 2 * np.real(np.outer(alpha, alpha.conj()) * PXP
                       - Phi * (np.outer(alpha, w) + np.outer(w, alpha)))
    Q = np.outer(u.conj(), u)
    QB = Q @ B  # (N, S)
    g_x = np.concatenate([np.concatenate([2 * omega[s] * QB[:, s].real,
                                          2 * omega[s] * QB[:, s].imag]) for s in range(S)])
    Em = _embed(Q)
    h_xx = np.zeros((2 * N * S, 2 * N * S))
    for s in range(S):
        h_xx[2 * N * s:2 * N * (s + 1), 2 * N * s:2 * N * (s + 1)] = 2 * omega[s] * Em
    # ∂_l φ = Σ_s ω_s B_sᴴ G_l B_s, G_l = κ_l uᴴ P_l + h.c.; ∇_x: 2 [Re, Im](G_l B_s)
    PB = P @ B  # (L, S)
    uB = u @ B  # (S,)
    h_bx = np.zeros((L, 2 * N * S))
    for s in range(S):
        GB = (kappa * PB[:, s])[:, None] * u.conj()[None, :] \
            + (kappa.conj() * uB[s])[:, None] * P.conj()
        h_bx[:, 2 * N * s:2 * N * s + N] = 2 * omega[s] * GB.real
        h_bx[:, 2 * N * s + N:2 * N * (s + 1)] = 2 * omega[s] * GB.imag
    return g_b, h_bb, g_x, h_xx, h_bx


def _power(Phi: NDArray, P: NDArray, A_P: NDArray, B: NDArray):
    """(grad_b, hess_bb, grad_x, hess_xx, mixed_bx) of P_t = tr(A_P B Bᴴ)."""
    L, N = P.shape
    S = B.shape[1]
    R = B @ B.conj().T
    Sm = P @ R @ P.T
    g_b = -0.5 * np.imag(np.diag(Sm))
    h_bb = 0.5 * np.real(Phi * (Sm + Sm.T))
    AB = A_P @ B
    g_x = np.concatenate([np.concatenate([2 * AB[:, s].real, 2 * AB[:, s].imag])
                          for s in range(S)])
    Em = _embed(A_P)
    h_xx = np.zeros((2 * N * S, 2 * N * S))
    for s in range(S):
        h_xx[2 * N * s:2 * N * (s + 1), 2 * N * s:2 * N * (s + 1)] = 2 * Em
    # ∂_l P_t = −½ Σ_s B_sᴴ G_l B_s, G_l = (p_l p_lᵀ − p̄_l p_lᴴ)/(2j); ∇_x: −[Re, Im](G_l B_s)
    PB = P @ B
    PcB = P.conj() @ B
    h_bx = np.zeros((L, 2 * N * S))
    for s in range(S):
        GB = (P * PB[:, s][:, None] - P.conj() * PcB[:, s][:, None]) / 2j
        h_bx[:, 2 * N * s:2 * N * s + N] = -GB.real
        h_bx[:, 2 * N * s + N:2 * N * (s + 1)] = -GB.imag
    return g_b, h_bb, g_x, h_xx, h_bx


def _slacks(task, Phi: NDArray, P: NDArray, A_P: NDArray, B: NDArray) -> dict[str, float]:
    """Relative slack of every constraint row of P1 at B (≥ 0 when met)."""
    pd = np.sum(np.abs((task.A.T @ P) @ B) ** 2, axis=1)  # (D,)
    G = np.abs((task.Y_RS @ P) @ B) ** 2  # (M, S)
    M = G.shape[0]
    own = G[np.arange(M), np.arange(M)]
    sinr = own / (G.sum(1) - own + task.sigma2)
    out = {f"beta_max {d}": float(1 - pd[d] / task.beta_max) for d in range(pd.size)}
    out.update({f"beta {d}": float(pd[d] / task.beta[d] - 1) for d in range(pd.size)})
    out.update({f"sinr {k}": float(sinr[k] / task.gamma[k] - 1) for k in range(M)})
    out["power"] = float(1 - np.real(np.trace(A_P @ B @ B.conj().T)) / task.p_max)
    return out


def lagrangian_blocks(task, b: NDArray, B: NDArray, multipliers: dict,
                      margin: float = 0.0, active_tol: float = 1e-5,
                      slack_tol: float = 1e-2, column_tol: float = 1e-5) -> LagrangianBlocks:
    """Derivatives of P1's Lagrangian at (b, B) with the SDR's multipliers.

    Parameters
    ----------
    task : rfctl.optimize.dma.DmaTask
    b : ndarray, shape (L,)
        Im Y_s, S.
    B : ndarray, shape (N, S)
        The recovered beamformer of the SDR at b.
    multipliers : dict
        ``beta_max``, ``beta``, ``sinr`` (rows in noise units), ``power``.
    margin : float
        The SDR's bound tightening (Γ used = Γ(1 + margin)).
    active_tol, slack_tol : float
        A row is active when μ_i ‖∇_x c_i‖ > ``active_tol`` ‖∇_x f‖ and its relative
        slack (e.g. 1 − P_t/P_max) is ≤ 2 ``margin`` + ``slack_tol`` (the SDR meets its
        tightened bounds, at ``margin``).
    column_tol : float
        Sensing columns of B with power ≤ ``column_tol`` × the largest column's are
        left out (R_s's null directions: B_s = 0 is on the cone's boundary).

    Returns
    -------
    LagrangianBlocks
    """
    m = task.model
    Phi = m.phi(m.spec.r0_siemens + 1j * np.asarray(b, float))
    P = Phi @ m.Y_st
    D = task.A.shape[1]
    M = task.Y_RS.shape[0]
    # sensing columns at the solver's noise level are R_s's zero eigen-directions: they
    # sit on the boundary of the PSD cone, not in the smooth parametrisation
    pw = np.sum(np.abs(B) ** 2, axis=0)
    keep = np.arange(B.shape[1]) < M
    keep |= pw > column_tol * pw.max()
    B = B[:, keep]
    S = B.shape[1]
    mu = multipliers
    ones = np.ones(S)
    parts = []  # (lagrangian weight, blocks, constraint name or None, constraint sign)
    for d in range(D):
        blk = _term(Phi, P, task.A[:, d], ones, B)
        wd = 1.0 / D - float(mu["beta_max"][d]) + float(mu["beta"][d])
        parts.append((wd, blk, None, 0.0))
        parts.append((0.0, blk, f"beta_max {d}", float(mu["beta_max"][d])))
        parts.append((0.0, blk, f"beta {d}", float(mu["beta"][d])))
    gam = np.asarray(task.gamma, float) * (1 + margin)
    for k in range(M):
        om = ones.copy()
        om[k] = -1.0 / gam[k]
        blk = tuple(x / task.sigma2 for x in _term(Phi, P, task.Y_RS[k], om, B))
        mk = float(mu["sinr"][k]) if "sinr" in mu else 0.0
        parts.append((-mk, blk, f"sinr {k}", mk))
    Yp = m.Y_tt - m.Y_st.T @ Phi @ m.Y_st
    A_P = (Yp + Yp.conj().T) / 4
    blk = _power(Phi, P, A_P, B)
    mp = float(mu["power"][0])
    parts.append((-mp, blk, "power", mp))
    L = b.size
    nx = 2 * B.shape[0] * S
    g_b = np.zeros(L)
    L_bb = np.zeros((L, L))
    L_bx = np.zeros((L, nx))
    L_xx = np.zeros((nx, nx))
    g_f = np.zeros(nx)
    for wgt, blk, name, _ in parts:
        if wgt != 0.0:
            g_b += wgt * blk[0]
            L_bb += wgt * blk[1]
            L_xx += wgt * blk[3]
            L_bx += wgt * blk[4]
        if name is None:
            g_f += blk[2] / D
    fx = max(float(np.linalg.norm(g_f)), 1e-300)
    slack = _slacks(task, Phi, P, A_P, B)
    rows_b, rows_x, names = [], [], []
    for _, blk, name, mult in parts:
        if name is None or mult * np.linalg.norm(blk[2]) <= active_tol * fx \
                or slack[name] > 2 * margin + slack_tol:
            continue  # inactive, or weakly active (μ ≈ 0): one side of the kink
        sign = -1.0 if name.startswith("beta ") else 1.0  # −φ_d + β_d ≤ 0
        rows_b.append(sign * blk[0])
        rows_x.append(sign * blk[2])
        names.append(name)
    C_b = np.array(rows_b).reshape(-1, L)
    C_x = np.array(rows_x).reshape(-1, nx)
    return LagrangianBlocks(g_b, L_bb, L_bx, L_xx, C_b, C_x, names)


def value_hessian(task, b: NDArray, B: NDArray, multipliers: dict, margin: float = 0.0,
                  rcond: float = 1e-7) -> NDArray[np.float64]:
    """∇²F at b (module docstring): the curvature of the digital optimum, per S².

    Parameters
    ----------
    task, b, B, multipliers, margin
        As :func:`lagrangian_blocks`.
    rcond : float
        Relative cut-off of the least-squares inverse of the KKT matrix K.

    Returns
    -------
    ndarray, shape (L, L)
        Symmetric.
    """
    lb = lagrangian_blocks(task, b, B, multipliers, margin)
    na = lb.C_x.shape[0]
    K = np.block([[lb.L_xx, lb.C_x.T], [lb.C_x, np.zeros((na, na))]])
    J = np.hstack([lb.L_bx, lb.C_b.T])
    # scale the constraint rows to the size of ℒ_xx so that rcond means the same for both
    s = np.ones(K.shape[0])
    if na:
        cn = np.linalg.norm(lb.C_x, axis=1)
        s[-na:] = max(np.linalg.norm(lb.L_xx, 2), 1e-300) / np.maximum(cn, 1e-300)
    Ks = K * s[:, None] * s[None, :]
    Js = J * s[None, :]
    Y = np.linalg.lstsq(Ks, Js.T, rcond=rcond)[0]
    H = lb.L_bb - Js @ Y
    return (H + H.T) / 2
