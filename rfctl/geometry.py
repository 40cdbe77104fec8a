"""Array geometry and steering vectors of the DBRAA seed (eqs. 2–4 and 8).

Conventions (used everywhere in rfctl):

- Surrogate angles: θ = cos ψ sin ϖ (azimuth) and φ = sin ψ (elevation), where ψ is the
  physical elevation and ϖ the physical azimuth (seed eq. 2). Both lie in [−1, 1].
- Element order is **row-major** (z row index outer, x column index inner). This is the
  order the Kronecker products of eqs. 3 and 7 produce, so the selection vector p of the
  seed is ``P.ravel()`` (C order) here, and phase-shifter k sits at row ``k // cols``,
  column ``k % cols``.
- Steering vectors are **not normalised**: every entry has unit modulus, as in the seed,
  so ‖a‖² equals the number of elements. Beam gains are squared norms (power gains) and
  the thresholds Υ of the seed are read in that scale.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "gamma_vector",
    "sub6_candidate_positions",
    "sub6_steering",
    "ula_steering",
    "upa_steering",
]


def ula_steering(n: int, theta: ArrayLike, ratio: float = 1.0) -> NDArray[np.complex128]:
    """Uniform linear array response, ``exp(jπ (i) ratio θ)`` for i = 0..n−1.

    With ``ratio = 1`` this is the mmWave α(N, θ) of eq. 8 (half-wavelength spacing);
    with ``ratio = λ_m/λ_s`` it is the sub-6G γ(N, θ) of eq. 4.

    Parameters
    ----------
    n : int
        Number of elements.
    theta : array_like, shape (T,) or scalar
        Surrogate angle(s), dimensionless in [−1, 1].
    ratio : float
        Element spacing in half-wavelengths of the carrier (1 for λ/2 spacing).

    Returns
    -------
    ndarray, shape (n, T) complex (or (n,) for scalar ``theta``)
    """
    th = np.asarray(theta, dtype=float)
    idx = np.arange(n, dtype=float)
    out = np.exp(1j * np.pi * ratio * np.multiply.outer(idx, th))
    return out


def gamma_vector(n: int, theta: ArrayLike, wavelength_ratio: float) -> NDArray[np.complex128]:
    """γ(N, θ) of seed eq. 4: the sub-6G response along one axis of the candidate grid.

    Parameters
    ----------
    n : int
        Candidates along the axis (N_row − 1 or N_col − 1).
    theta : array_like, shape (T,) or scalar
        Surrogate angle.
    wavelength_ratio : float
        λ_m / λ_s (candidates sit λ_m/2 apart).

    Returns
    -------
    ndarray, shape (n, T) or (n,)
    """
    return ula_steering(n, theta, wavelength_ratio)


def _kron_columns(a: NDArray[np.complex128], b: NDArray[np.complex128]) -> NDArray:
    """Column-wise Kronecker product: out[:, t] = kron(a[:, t], b[:, t])."""
    if a.ndim == 1:
        return np.kron(a, b)
    return (a[:, None, :] * b[None, :, :]).reshape(a.shape[0] * b.shape[0], a.shape[1])


def upa_steering(
    rows: int, cols: int, phi: ArrayLike, theta: ArrayLike
) -> NDArray[np.complex128]:
    """mmWave UPA response α(N_row, φ) ⊗ α(N_col, θ) (seed eqs. 7 and 22).

    Parameters
    ----------
    rows, cols : int
        Array rows (z) and columns (x).
    phi, theta : array_like, shape (T,) or scalars
        Surrogate elevation and azimuth.

    Returns
    -------
    ndarray, shape (rows·cols, T) complex, row-major element order (or (rows·cols,))
    """
    phi_a, theta_a = np.broadcast_arrays(np.asarray(phi, float), np.asarray(theta, float))
    return _kron_columns(ula_steering(rows, phi_a), ula_steering(cols, theta_a))


def sub6_steering(
    rows: int, cols: int, phi: ArrayLike, theta: ArrayLike, wavelength_ratio: float
) -> NDArray[np.complex128]:
    """β(φ, θ) = γ(N_row − 1, φ) ⊗ γ(N_col − 1, θ), seed eq. 3, over all candidates.

    Parameters
    ----------
    rows, cols : int
        mmWave array rows and columns (the candidate grid is one smaller each way).
    phi, theta : array_like, shape (T,) or scalars
        Surrogate elevation and azimuth.
    wavelength_ratio : float
        λ_m / λ_s.

    Returns
    -------
    ndarray, shape ((rows−1)(cols−1), T) complex, row-major candidate order
    """
    phi_a, theta_a = np.broadcast_arrays(np.asarray(phi, float), np.asarray(theta, float))
    return _kron_columns(
        gamma_vector(rows - 1, phi_a, wavelength_ratio),
        gamma_vector(cols - 1, theta_a, wavelength_ratio),
    )


def sub6_candidate_positions(rows: int, cols: int, wavelength_m: float) -> NDArray[np.float64]:
    """Positions [x_n, 0, z_m] of the candidate sub-6G antennas (seed Fig. 5).

    x_n = (n−1) λ_m/2 and z_m = (m−1) λ_m/2 for the candidate at row m, column n.

    Parameters
    ----------
    rows, cols : int
        mmWave array rows and columns.
    wavelength_m : float
        mmWave wavelength λ_m, m.

    Returns
    -------
    ndarray, shape ((rows−1)(cols−1), 3), metres, row-major candidate order
    """
    m, n = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    half = wavelength_m / 2
    pos = np.stack([n.ravel() * half, np.zeros(m.size), m.ravel() * half], axis=1)
    return pos
