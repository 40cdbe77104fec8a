"""Performance metrics of the DBRAA seed, vectorised over users and targets.

- SINR (eqs. 10 and 17), sum-rate (eq. 16), sensing beam gain (eqs. 12 and 22),
  transmit power (the Frobenius norms of eqs. 23d–23e).
- **Beam gains are squared norms** G_t = ‖Fᴴ a_t‖² (a power gain). The seed writes the
  norm in eqs. 12 and 22 but linearises its square in eqs. 38 and 76; the squared form is
  what the algorithms work on, so rfctl uses it everywhere and reads the thresholds Υ in
  that scale.

All functions take the *effective* precoder F (N × K): diag(p) F_s for the sub-6G band,
F_RF F_BB = diag(f_P) S F_BB for mmWave. Helpers build those.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "beam_gain",
    "hybrid_precoder",
    "sinr",
    "sub6_precoder",
    "sum_rate",
    "transmit_power",
]


def sinr(H: ArrayLike, F: ArrayLike, noise_power: float) -> NDArray[np.float64]:
    """Per-user SINR with linear precoding, seed eqs. 10 / 17.

    S_k = |h_kᴴ f_k|² / (Σ_{i≠k} |h_kᴴ f_i|² + σ²).

    Parameters
    ----------
    H : array_like, shape (N, K) complex
        User channels as columns.
    F : array_like, shape (N, K) complex
        Effective precoder; column k carries user k's stream.
    noise_power : float
        σ², W.

    Returns
    -------
    ndarray, shape (K,), linear
    """
    H = np.asarray(H)
    F = np.asarray(F)
    G = np.abs(H.conj().T @ F) ** 2  # (K, K): [k, i] = |h_k^H f_i|^2
    sig = np.diag(G).copy()
    interf = G.sum(axis=1) - sig
    return sig / (interf + noise_power)


def sum_rate(sinr_values: ArrayLike) -> float:
    """Sum-rate Σ_k log2(1 + S_k), bit/s/Hz (seed eq. 16)."""
    return float(np.sum(np.log2(1.0 + np.asarray(sinr_values, dtype=float))))


def beam_gain(A: ArrayLike, F: ArrayLike) -> NDArray[np.float64]:
    """Sensing beam gain G_t = ‖Fᴴ a_t‖² for every direction (squared form of eqs. 12/22).

    Parameters
    ----------
    A : array_like, shape (N, T) complex (or (N,))
        Steering vectors as columns.
    F : array_like, shape (N, K) complex
        Effective precoder.

    Returns
    -------
    ndarray, shape (T,) (or scalar for 1-D ``A``), linear power gain
    """
    A = np.asarray(A)
    F = np.asarray(F)
    return np.sum(np.abs(F.conj().T @ A) ** 2, axis=0)


def transmit_power(F: ArrayLike) -> float:
    """Transmit power ‖F‖_F², W (unit-power symbols)."""
    F = np.asarray(F)
    return float(np.vdot(F, F).real)


def sub6_precoder(selection: ArrayLike, F_s: ArrayLike) -> NDArray[np.complex128]:
    """Effective sub-6G precoder diag(p) F_s.

    Parameters
    ----------
    selection : array_like, shape (N_row−1, N_col−1) bool, or (N_p,)
        Selection map P (flattened row-major to p).
    F_s : array_like, shape (N_p, K_s) complex
        Digital beamformer over all candidates.

    Returns
    -------
    ndarray, shape (N_p, K_s)
    """
    p = np.asarray(selection, dtype=float).ravel()
    return p[:, None] * np.asarray(F_s)


def hybrid_precoder(
    phases: ArrayLike, switch: ArrayLike, F_bb: ArrayLike
) -> NDArray[np.complex128]:
    """Effective mmWave precoder F_RF F_BB with F_RF = diag(e^{jφ}) S (seed eq. 18).

    Parameters
    ----------
    phases : array_like, shape (N_m,)
        Phase-shifter angles, rad.
    switch : array_like, shape (N_m, N_RF) bool
        Switch matrix S.
    F_bb : array_like, shape (N_RF, K_m) complex
        Digital beamformer.

    Returns
    -------
    ndarray, shape (N_m, K_m)
    """
    fp = np.exp(1j * np.asarray(phases, dtype=float))
    F_rf = fp[:, None] * np.asarray(switch, dtype=float)
    return F_rf @ np.asarray(F_bb)
