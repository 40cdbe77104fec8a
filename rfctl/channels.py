"""Multipath channels of the DBRAA seed (eqs. 5 and 7), seeded explicitly.

h_k = √(1/L) Σ_l ζ_{k,l} a(φ_{k,l}, θ_{k,l}), with ζ ~ CN(0, 1) and the path directions
drawn from physical angles: elevation ψ ~ U(−π/2, π/2) and azimuth ϖ ~ U(−π/2, π/2) (the
front half-space), mapped to surrogate angles θ = cos ψ sin ϖ, φ = sin ψ. The seed does
not state the angle distribution; this choice is documented here and used by the sims.

Every function takes a ``numpy.random.Generator``; none touches global random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rfctl.config import DbraaSpec
from rfctl.errors import ConfigError
from rfctl.geometry import sub6_steering, upa_steering

__all__ = [
    "Channel",
    "check_channel",
    "dbraa_channels",
    "mmwave_channel",
    "realisation_rng",
    "sub6_channel",
]


@dataclass(frozen=True)
class Channel:
    """A multipath channel realisation.

    Attributes
    ----------
    H : ndarray, shape (N, K) complex
        Column k is the channel h_k of user k (users receive h_kᴴ x).
    gains : ndarray, shape (K, L) complex
        Path gains ζ_{k,l}.
    phi, theta : ndarray, shape (K, L)
        Surrogate elevation and azimuth of each path.
    """

    H: NDArray[np.complex128]
    gains: NDArray[np.complex128]
    phi: NDArray[np.float64]
    theta: NDArray[np.float64]


def _draw_paths(
    rng: np.random.Generator, users: int, paths: int
) -> tuple[NDArray, NDArray, NDArray]:
    psi = rng.uniform(-np.pi / 2, np.pi / 2, size=(users, paths))
    varpi = rng.uniform(-np.pi / 2, np.pi / 2, size=(users, paths))
    theta = np.cos(psi) * np.sin(varpi)
    phi = np.sin(psi)
    gains = (rng.standard_normal((users, paths)) + 1j * rng.standard_normal((users, paths)))
    gains /= np.sqrt(2.0)
    return gains, phi, theta


def _multipath(rng: np.random.Generator, steering, n: int, users: int,
               paths: int) -> Channel:
    """Seed eqs. 5 and 7: H[:, k] = Σ_l α_kl a(φ_kl, θ_kl) / √L.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the path gains α ~ CN(0, 1) and angles (see :func:`_draw_paths`).
    steering : callable
        ``steering(phi, theta) -> ndarray (n, users·paths)``, unit-modulus entries.
    n : int
        Rows of H (candidates or elements).
    users, paths : int
        K users, L paths each.

    Returns
    -------
    Channel
        ``H`` of shape (n, users), with the gains and surrogate angles drawn.
    """
    gains, phi, theta = _draw_paths(rng, users, paths)
    A = steering(phi.ravel(), theta.ravel()).reshape(n, users, paths)
    H = np.einsum("nkl,kl->nk", A, gains) / np.sqrt(paths)
    return Channel(H=H, gains=gains, phi=phi, theta=theta)


def sub6_channel(
    rng: np.random.Generator, spec: DbraaSpec, users: int, paths: int
) -> Channel:
    """Sub-6G channels of all candidates, seed eq. 5: ``H`` (N_p, K_s), rows in
    row-major candidate order, for K_s = ``users`` users with L_s = ``paths`` paths each,
    drawn from ``rng`` on the array ``spec``.
    """
    return _multipath(rng, lambda p, t: sub6_steering(spec.rows, spec.cols, p, t,
                                                      spec.wavelength_ratio),
                      spec.n_candidates, users, paths)


def mmwave_channel(
    rng: np.random.Generator, spec: DbraaSpec, users: int, paths: int
) -> Channel:
    """mmWave channels, seed eq. 7: ``H`` (N_m, K_m), rows in row-major element
    order, for K_m = ``users`` users with L_m = ``paths`` paths each, drawn from ``rng``
    on the array ``spec``.
    """
    return _multipath(rng, lambda p, t: upa_steering(spec.rows, spec.cols, p, t),
                      spec.n_mmwave, users, paths)


def check_channel(H: NDArray, n_rows: int, name: str = "H") -> NDArray[np.complex128]:
    """Validate a channel matrix: 2-D, ``n_rows`` rows, finite.

    Raises
    ------
    ConfigError
        Naming the channel and what is wrong with it.
    """
    arr = np.asarray(H)
    if arr.ndim != 2 or arr.shape[0] != n_rows:
        raise ConfigError(
            f"{name}: expected shape ({n_rows}, K), got {arr.shape}", field=name,
            reason="wrong shape",
        )
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name}: contains NaN or infinite entries", field=name,
                          reason="non-finite")
    return arr.astype(np.complex128, copy=False)


def realisation_rng(seed: int, realisation: int, stream: int) -> np.random.Generator:
    """Generator for one channel realisation of a scenario.

    Realisation ``r`` of a scenario with seed ``s`` uses
    ``SeedSequence([s, r]).spawn(...)[stream]``: stream 0 is the sub-6G channel, 1 the
    mmWave channel, 2 the DMA users. Any realisation can be regenerated on its own.
    """
    children = np.random.SeedSequence([int(seed), int(realisation)]).spawn(3)
    return np.random.default_rng(children[stream])


def dbraa_channels(
    spec: DbraaSpec,
    *,
    seed: int,
    realisation: int = 0,
    sub6_users: int = 0,
    sub6_paths: int = 5,
    mmwave_users: int = 0,
    mmwave_paths: int = 3,
) -> tuple[Channel | None, Channel | None]:
    """Both bands' channels for realisation ``realisation`` of seed ``seed``.

    Returns
    -------
    (sub6, mmwave) : Channel or None each (None when that band has no users)
    """
    sub6 = mm = None
    if sub6_users:
        sub6 = sub6_channel(realisation_rng(seed, realisation, 0), spec, sub6_users, sub6_paths)
    if mmwave_users:
        mm = mmwave_channel(realisation_rng(seed, realisation, 1), spec, mmwave_users,
                            mmwave_paths)
    return sub6, mm
