"""The DMA admittance (mutual-coupling) model of Williams et al. 2022 (see
../shared/reference/dma_admittance_model.md), in SI units.

Time convention e^{+jωt}; the free-space Green's function carries e^{−jkR}. Only TE10
propagates, with k_x = √(k² − (π/a)²). The dipole length ``l`` is a normalisation (every
admittance carries l²).

Geometry: N waveguides (one RF chain each) of L_μ elements, L = N L_μ in all, ordered
waveguide-major. Along each guide, x runs from the shorted feed end at 0 to the other
short at S_μ = (L_μ + 1) d; element l sits at x_l = l d. The radiating wall is y = b, and
waveguide n is centred at z = a/2 + n s_wg. Every dipole is magnetic and oriented along
z. The array's corner is at ``origin``.

Quantities (shapes):

- Y_tt (N × N), Y_st (L × N), Y_ss (L × L), Y_rr (M × M), Y_r (M × M), Y_rs (M × L);
- Φ = (Y_s + Y_ss)⁻¹, the users' channels h_m (rows of (Y_r + Y_rr)⁻¹ Y_rs Φ Y_st, M × N),
  the beampattern P(θ, φ) (seed eq. 3), the SINR γ_m (eq. 1) and the transmit power
  P_t (eq. 5);
- a warning near a cavity resonance (|sin(k_x S_μ)| small).

**Channel scale.** The seed states Y_rs as a normalised channel (the line-of-sight
√PL e^{−jkD} with dipole patterns, or Rayleigh with the same path loss). Read as an
admittance, that channel is smaller than the model's own free-space coupling
2 jωεl² G_a (ground-plane image) by k ω ε l²/π (31.4 dB at 10 GHz, l = 1), and |h b|²
is a squared voltage rather than a power, so an SNR built from it sits ~36 dB below a
Friis budget of the same array. ``scale="received_power"`` (the default) multiplies
Y_rs by j k ω ε l²/π (which turns the far-field √PL e^{−jkD} sin²ψ into exactly
2 jωεl² G_a) and h by √(Re Y_r / 2): then |h_m b|² is the power, in W, delivered to user
m's matched load for unit-power symbols, and the interference-free SNR equals
P_t G_t G_r (λ/4πD)² / σ² with G_t the model's gain toward the user and G_r = 1.5 sin²ψ
(tests/test_admittance.py checks this). ``scale="normalised"`` keeps the seed's
normalised channel. The noise power σ² is then a physical k_B T B F
(:func:`thermal_noise_power`).

Directions (θ, φ): θ is measured from the array broadside (+y), and φ is the azimuth in
the x–z plane from +x. The unit vector is
r̂ = (sin θ cos φ, cos θ, sin θ sin φ).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rfctl.config import SPEED_OF_LIGHT, DmaSpec
from rfctl.errors import ConfigError

__all__ = [
    "BOLTZMANN",
    "DmaModel",
    "free_space_green_zz",
    "thermal_noise_power",
    "waveguide_green",
]

log = logging.getLogger(__name__)
MU0 = 4e-7 * math.pi
EPS0 = 1.0 / (MU0 * SPEED_OF_LIGHT**2)
BOLTZMANN = 1.380649e-23  # J/K
CHANNEL_SCALES = ("received_power", "normalised")


def thermal_noise_power(bandwidth_hz: float, noise_figure_db: float,
                        temperature_k: float = 290.0) -> float:
    """Receiver noise power σ² = k_B T B F, W (e.g. 100 MHz, F = 4 dB: 1.0e-12 W, −90 dBm).

    Raises
    ------
    ConfigError
        Non-positive bandwidth or temperature.
    """
    if bandwidth_hz <= 0 or temperature_k <= 0:
        raise ConfigError("noise power needs a positive bandwidth and temperature",
                          field="bandwidth_hz" if bandwidth_hz <= 0 else "temperature_k",
                          reason="must be > 0")
    return BOLTZMANN * temperature_k * bandwidth_hz * 10 ** (noise_figure_db / 10)


def waveguide_green(x: ArrayLike, xh: ArrayLike, *, kx: float, k: float, a: float, b: float,
                    S: float) -> NDArray[np.float64]:
    """G_w(x, x̂) of a TE10 guide shorted at 0 and S (on the centre line), real-valued.

    Parameters
    ----------
    x, xh : array_like, broadcastable
        Positions along the guide, m.
    kx, k : float
        Guide and free-space wavenumbers, rad/m.
    a, b : float
        Guide width and height, m.
    S : float
        Distance between the shorts, m.

    Returns
    -------
    ndarray
        Broadcast shape of ``x`` and ``xh``, 1/m.
    """
    x, xh = np.asarray(x, float), np.asarray(xh, float)
    num = np.cos(kx * (xh + x - S)) + np.cos(kx * (S - np.abs(xh - x)))
    return -kx * num / (a * b * k**2 * np.sin(kx * S))


def free_space_green_zz(r: NDArray, rh: NDArray, k: float) -> NDArray[np.complex128]:
    """zz component of the free-space dyadic Green's function for all pairs.

    Parameters
    ----------
    r, rh : ndarray, shapes (P, 3) and (Q, 3), metres

    Returns
    -------
    ndarray, shape (P, Q); the diagonal of a self pair (R = 0) is set to 0
    """
    d = r[:, None, :] - rh[None, :, :]
    R = np.linalg.norm(d, axis=2)
    dz = d[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((R**2 - dz**2) / R**2 - 1j * (R**2 - 3 * dz**2) / (k * R**3)
             - (R**2 - 3 * dz**2) / (k**2 * R**4)) * np.exp(-1j * k * R) / (4 * np.pi * R)
    t[R == 0] = 0.0
    return t


@dataclass
class DmaModel:
    """Admittance matrices of one DMA (and, optionally, its users).

    Build it with :meth:`from_spec`. Attributes are the SI quantities of the module
    docstring.
    """

    spec: DmaSpec
    origin: NDArray[np.float64]

    @classmethod
    def from_spec(cls, spec: DmaSpec, origin: ArrayLike = (0.0, 0.0, 0.0)) -> DmaModel:
        """Build every admittance matrix of a DMA.

        Parameters
        ----------
        spec : rfctl.config.DmaSpec
            Geometry and frequency (SI).
        origin : array_like, shape (3,)
            The array's corner, m.

        Returns
        -------
        DmaModel
            With Y_tt (N × N), Y_st (L × N), Y_ss (L × L) and the element positions
            (L × 3, m); a warning is logged near a cavity resonance.
        """
        m = cls(spec, np.asarray(origin, float))
        m._build()
        return m

    # ---------------------------------------------------------------- constants
    def _build(self) -> None:
        s = self.spec
        self.f = s.frequency_hz
        self.omega = 2 * math.pi * self.f
        self.k = self.omega / SPEED_OF_LIGHT
        self.lam = SPEED_OF_LIGHT / self.f
        a, b, l2 = s.waveguide_a_m, s.waveguide_b_m, s.dipole_length_m**2
        self.a, self.b, self.l2 = a, b, l2
        kx2 = self.k**2 - (math.pi / a) ** 2
        if kx2 <= 0:
            raise ConfigError("waveguide below cut-off", field="dma.waveguide_a_m",
                              reason="TE10 does not propagate")
        self.kx = math.sqrt(kx2)
        N, Lm = s.n_waveguides, s.elements_per_waveguide
        self.N, self.Lmu, self.L = N, Lm, N * Lm
        self.S = (Lm + 1) * s.element_spacing_m
        sinks = math.sin(self.kx * self.S)
        self.resonance = abs(sinks)
        if abs(sinks) < 0.05:
            log.warning("DMA waveguides are near a cavity resonance: |sin(k_x S_μ)| = %.3g "
                        "(S_μ = %.4g m); admittances are ill-conditioned", abs(sinks), self.S)
        om, mu, eps = self.omega, MU0, EPS0
        # positions: x along the guide, y = b (radiating wall), z = a/2 + n s_wg
        xl = s.element_spacing_m * np.arange(1, Lm + 1)
        self.x_local = np.tile(xl, N)
        self.guide = np.repeat(np.arange(N), Lm)
        self.positions = self.origin + np.stack([
            self.x_local, np.full(self.L, b), a / 2 + self.guide * s.waveguide_spacing_m],
            axis=1)
        # Y_tt, Y_st (purely imaginary)
        ytt = -2j * l2 * self.kx * math.cos(self.kx * self.S) / (om * mu * a * b * sinks)
        self.Y_tt = ytt * np.eye(N, dtype=complex)
        yst = -2j * l2 * self.kx * np.cos(self.kx * (self.S - self.x_local)) / (
            om * mu * a * b * sinks)
        self.Y_st = np.zeros((self.L, N), complex)
        self.Y_st[np.arange(self.L), self.guide] = yst
        # Y_ss: radiation conductance (ground plane: image factor 2) + cavity reactance
        Ga = free_space_green_zz(self.positions, self.positions, self.k)
        Gw = waveguide_green(self.x_local[:, None], self.x_local[None, :], kx=self.kx,
                             k=self.k, a=a, b=b, S=self.S)
        same = self.guide[:, None] == self.guide[None, :]
        Yss = 1j * om * eps * l2 * (2 * Ga + np.where(same, Gw, 0.0))
        Yss[np.diag_indices(self.L)] = self.g_rad + 1j * om * eps * l2 * np.diag(Gw)
        self.Y_ss = Yss

    @property
    def g_rad(self) -> float:
        """Radiation conductance of one element above the ground plane, k ω ε l²/(3π), S."""
        return self.k * self.omega * EPS0 * self.l2 / (3 * math.pi)

    @property
    def g_rr(self) -> float:
        """Self conductance of a user's dipole (no ground plane), k ω ε l²/(6π), S."""
        return self.k * self.omega * EPS0 * self.l2 / (6 * math.pi)

    @property
    def matched_port_admittance(self) -> float:
        """Y₀ = 2 k_x l²/(ω μ a b): a dipole at the shorted end of a semi-infinite guide, S."""
        return 2 * self.kx * self.l2 / (self.omega * MU0 * self.a * self.b)

    # ---------------------------------------------------------------- loads
    def phi(self, ys: ArrayLike) -> NDArray[np.complex128]:
        """Φ = (Y_s + Y_ss)⁻¹ for element loads ``ys`` (L,), S (read-only array).

        The last few results are memoised by the exact loads: an optimizer evaluates the
        same tuning several times (its model, its SDR, its step bound)."""
        y = np.ascontiguousarray(ys, dtype=complex)
        key = y.tobytes()
        cache = self.__dict__.setdefault("_phi_cache", {})
        hit = cache.get(key)
        if hit is not None:
            return hit
        out = np.linalg.inv(np.diag(y) + self.Y_ss)
        out.flags.writeable = False
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = out
        return out

    def port_admittance(self, ys: ArrayLike) -> NDArray[np.complex128]:
        """Y_p = Y_tt − Y_stᵀ Φ Y_st (plain transpose: reciprocity), N × N."""
        return self.Y_tt - self.Y_st.T @ self.phi(ys) @ self.Y_st

    def element_currents(self, ys: ArrayLike, jt: ArrayLike) -> NDArray[np.complex128]:
        """j_s = −Φ Y_st j_t for port currents j_t (N,)."""
        return -self.phi(ys) @ self.Y_st @ np.asarray(jt, complex)

    def transmit_power(self, ys: ArrayLike, B: ArrayLike) -> float:
        """P_t = ½ Re tr(Y_p B Bᴴ) (DMA seed eq. 5), W, for B (N × S) and unit symbols."""
        B = np.asarray(B, complex).reshape(self.N, -1)
        return float(0.5 * np.real(np.trace(self.port_admittance(ys) @ B @ B.conj().T)))

    # ---------------------------------------------------------------- far field
    @staticmethod
    def direction(theta: ArrayLike, phi: ArrayLike) -> NDArray[np.float64]:
        """Unit vectors r̂(θ, φ), shape (..., 3) (θ from broadside +y, φ from +x in x–z)."""
        th, ph = np.broadcast_arrays(np.asarray(theta, float), np.asarray(phi, float))
        return np.stack([np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)],
                        axis=-1)

    def steering(self, theta: ArrayLike, phi: ArrayLike) -> NDArray[np.complex128]:
        """a(θ, φ): far-field phase of every element, shape (L, D) (or (L,))."""
        rhat = self.direction(theta, phi)
        return np.exp(1j * self.k * (self.positions @ rhat.reshape(-1, 3).T)).reshape(
            (self.L, *rhat.shape[:-1]))

    def beampattern(self, ys: ArrayLike, B: ArrayLike, theta: ArrayLike, phi: ArrayLike
                    ) -> NDArray[np.float64]:
        """P(θ, φ) = ‖a(θ, φ)ᵀ Φ Y_st B‖² (DMA seed eq. 3; unit-power symbols)."""
        B = np.asarray(B, complex).reshape(self.N, -1)
        W = self.phi(ys) @ self.Y_st @ B  # (L, S)
        A = self.steering(theta, phi).reshape(self.L, -1)
        return np.sum(np.abs(A.T @ W) ** 2, axis=1).reshape(np.shape(np.asarray(theta)))

    def gain(self, ys: ArrayLike, jt: ArrayLike, theta: ArrayLike, phi: ArrayLike
             ) -> NDArray[np.float64]:
        """Directive gain G(r̂) = 3 G_rr sin²ψ_z |a(r̂)ᵀ j_s|² / P_t for port currents j_t.

        ψ_z is the angle between r̂ and the dipoles' z axis.
        """
        js = self.element_currents(ys, jt)
        rhat = self.direction(theta, phi)
        sin2 = 1 - rhat[..., 2] ** 2
        af = np.abs(np.einsum("l,l...->...", js, self.steering(theta, phi))) ** 2
        pt = 0.5 * float(np.real(np.conj(jt) @ self.port_admittance(ys) @ jt))
        return 3 * self.g_rr * sin2 * af / pt

    # ---------------------------------------------------------------- users
    def user_channels(self, users: NDArray[np.float64], ys: ArrayLike, *,
                      model: str = "los", rng: np.random.Generator | None = None,
                      scale: str = "received_power") -> NDArray[np.complex128]:
        """The users' effective channels h_m (rows), shape (M, N).

        h_m is the m-th row of (Y_r + Y_rr)⁻¹ Y_rs Φ Y_st. Y_rs is the normalised wireless
        channel. ``los``: √PL e^{−jkD} with PL = (λ/4πD)², times the sin ψ_z patterns
        of both dipoles. ``rayleigh``: the same path loss on CN(0, 1) entries,
        correlated across the elements by the isotropic-scattering kernel
        sin(kd)/(kd) (an approximation for z dipoles). ``scale``: see the module
        docstring ("received_power": |h_m b|² in W at the user's matched load).
        """
        return (self.user_coupling(users, model=model, rng=rng, scale=scale)
                @ self.phi(ys) @ self.Y_st)

    def user_coupling(self, users: NDArray[np.float64], *, model: str = "los",
                      rng: np.random.Generator | None = None,
                      scale: str = "received_power") -> NDArray[np.complex128]:
        """Y_RS = (Y_r + Y_rr)⁻¹ Y_rs (M × L): the part of the users' channels that does
        not depend on the element loads (times √(Re Y_r / 2) and the coupling scale for
        ``scale="received_power"``, see the module docstring)."""
        if scale not in CHANNEL_SCALES:
            raise ConfigError(f"unknown channel scale {scale!r}", field="scale",
                              reason=f"expected one of {CHANNEL_SCALES}")
        Yrs = self.wireless_channel(users, model=model, rng=rng)
        Yrr = self.user_self(users)
        Yr = np.diag(np.conj(np.diag(Yrr)))
        Y_RS = np.linalg.solve(Yr + Yrr, Yrs)
        if scale == "received_power":
            Y_RS = Y_RS * (1j * self.coupling_scale) * np.sqrt(np.real(np.diag(Yr)) / 2)[:, None]
        return Y_RS

    @property
    def coupling_scale(self) -> float:
        """k ω ε l²/π, S: the free-space coupling 2 jωεl² G_a over the normalised LOS
        channel √PL e^{−jkD} sin²ψ in the far field."""
        return self.k * self.omega * EPS0 * self.l2 / math.pi

    def user_self(self, users: NDArray[np.float64]) -> NDArray[np.complex128]:
        """Y_rr (M × M): z dipoles in free space, no ground plane."""
        G = free_space_green_zz(users, users, self.k)
        Y = 1j * self.omega * EPS0 * self.l2 * G
        Y[np.diag_indices(len(users))] = self.g_rr
        return Y

    def wireless_channel(self, users: NDArray[np.float64], *, model: str = "los",
                         rng: np.random.Generator | None = None) -> NDArray[np.complex128]:
        """Y_rs, the normalised channel (see :meth:`user_channels`).

        Parameters
        ----------
        users : ndarray, shape (M, 3)
            User positions, m.
        model : {"los", "rayleigh"}
        rng : numpy.random.Generator, optional
            Needed for ``"rayleigh"``.

        Returns
        -------
        ndarray, shape (M, L) complex

        Raises
        ------
        ConfigError
            An unknown ``model``, or ``"rayleigh"`` without ``rng``.
        """
        d = users[:, None, :] - self.positions[None, :, :]
        D = np.linalg.norm(d, axis=2)
        pl = self.lam / (4 * np.pi * D)
        sin_psi = np.sqrt(np.clip(1 - (d[..., 2] / D) ** 2, 0, 1))
        if model == "los":
            return pl * np.exp(-1j * self.k * D) * sin_psi * sin_psi
        if model == "rayleigh":
            if rng is None:
                raise ConfigError("the Rayleigh channel needs rng", field="rng",
                                  reason="missing")
            dd = np.linalg.norm(self.positions[:, None] - self.positions[None], axis=2)
            C = np.sinc(self.k * dd / np.pi)  # sin(kd)/(kd)
            w, V = np.linalg.eigh(C)
            Lc = V * np.sqrt(np.clip(w, 0, None))
            g = (rng.standard_normal((len(users), self.L)) +
                 1j * rng.standard_normal((len(users), self.L))) / np.sqrt(2)
            return pl * (g @ Lc.T)
        raise ConfigError(f"unknown channel model {model!r}", field="model", reason="unknown")
