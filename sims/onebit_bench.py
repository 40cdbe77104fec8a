"""A simulated one-bit bench: an OpenSourceRIS-like 16 × 16 board (its simulated firmware,
reached through the ``osris`` driver) in front of a receiver, with a hidden channel.

The received field at frequency f, for the board's active pattern x ∈ {0, 1}^N, is

    y(x, f) = h_0 e^{−j2π(f − f_0)τ_0}
              + Σ_i a_i e^{j(φ_i − 2π(f − f_0)τ_i)} · (1 if x_i = 0 else ρ_i e^{jδ_i(f)}),

    δ_i(f) = δ_i + κ_i (f − f_0)/f_0,

with hidden per-element amplitudes a_i and phases φ_i, a direct path h_0, an on/off phase
difference δ_i that is close to but not exactly π (and an amplitude ratio ρ_i ≈ 1 of the
"on" state), path delays τ_i and a detuning slope κ_i (the element's resonance moves the
phase difference away from f_0). The receiver adds complex Gaussian noise of standard
deviation σ (``noise``, in units of one element's mean amplitude) to the field of every
reading. One unit of field delivers ``element_power_w`` to the receiver.

Writing each element as c_i + x_i d_i (c_i = a_i e^{jφ_i}, d_i = c_i(ρ_i e^{jδ_i} − 1)),
y = g + Σ x_i d_i with g = h_0 + Σ c_i. The bench knows its own optimum: the best pattern
for a field that is affine in x is one of the N + 1 patterns x_i = [Re(u* d_i) > 0] as
the unit direction u sweeps the circle (:meth:`OneBitBench.optimum`, checked against
brute force in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["OneBitBench", "best_onebit_pattern", "onebit_lab_bench"]


def best_onebit_pattern(g: complex, d: np.ndarray) -> tuple[np.ndarray, float]:
    """The x ∈ {0,1}^N maximising |g + Σ x_i d_i| (exact; sector sweep).

    Every candidate x(θ) = [Re(e^{−jθ} d_i) > 0] changes only where θ crosses
    arg(d_i) ± π/2; evaluating |g + d·x| at one θ inside each of the ≤ 2N arcs covers
    them all.

    Returns
    -------
    x : ndarray, shape (N,) bool
    value : float
        |g + Σ x_i d_i|.
    """
    d = np.asarray(d, complex)
    ang = np.angle(d)
    bps = np.sort(np.mod(np.concatenate([ang + math.pi / 2, ang - math.pi / 2]), 2 * math.pi))
    mids = (bps + np.append(bps[1:], bps[0] + 2 * math.pi)) / 2 if bps.size else np.zeros(1)
    X = (np.real(np.exp(-1j * mids)[:, None] * d[None, :]) > 0)
    vals = np.abs(g + X @ d)
    k = int(np.argmax(vals))
    return X[k], float(vals[k])


@dataclass
class OneBitBench:
    """Hidden channel of a one-bit bench and its receiver (see the module docstring).

    Attributes
    ----------
    firmware : object
        The simulated board; its ``pattern`` (32 bytes, MSB = element 1) is measured.
    h0 : complex
    a, phi, delta, rho, tau, kappa : ndarray, shape (N,)
    tau0 : float
    f0 : float
        Centre frequency, Hz.
    noise : float
        σ of the receiver noise on the field (units of one element's mean amplitude).
    element_power_w : float
    rng : numpy.random.Generator
    """

    firmware: object
    h0: complex
    a: np.ndarray
    phi: np.ndarray
    delta: np.ndarray
    rho: np.ndarray
    tau: np.ndarray
    kappa: np.ndarray
    tau0: float = 0.0
    f0: float = 5.3e9
    noise: float = 1.0
    element_power_w: float = 1e-9
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    probe: tuple[float, float] = (0.0, 0.0)
    measurements: int = 0

    @classmethod
    def random(cls, firmware: object, *, seed: int, n: int = 256, direct_path: float = 1.0,
               noise: float = 1.0, delta_std_rad: float = 0.25, f0: float = 5.3e9
               ) -> OneBitBench:
        """A bench with a random hidden channel.

        Parameters
        ----------
        seed : int
            Seeds the channel (and, with ``seed + 1``, the receiver noise).
        direct_path : float
            |h_0| relative to the RMS field of a random pattern, √(Σ a_i²) (3: strong
            line of sight, 0.3: weak).
        delta_std_rad : float
            Spread of the on/off phase difference around π + 0.3 rad, rad.
        """
        rng = np.random.default_rng(seed)
        a = np.clip(1 + 0.25 * rng.standard_normal(n), 0.3, 2.0)
        phi = rng.uniform(-math.pi, math.pi, n)
        delta = math.pi + 0.3 + delta_std_rad * rng.standard_normal(n)
        rho = np.clip(0.9 + 0.05 * rng.standard_normal(n), 0.6, 1.1)
        tau = rng.uniform(5e-9, 15e-9, n)
        kappa = rng.normal(-20.0, 5.0, n)  # rad per unit relative detuning (a resonance)
        h0 = direct_path * math.sqrt(float(np.sum(a ** 2))) * np.exp(
            1j * rng.uniform(-math.pi, math.pi))
        return cls(firmware, complex(h0), a, phi, delta, rho, tau, kappa, 4e-9, f0, noise,
                   rng=np.random.default_rng(seed + 1))

    @property
    def n(self) -> int:
        """Number of one-bit elements, N."""
        return int(self.a.size)

    def affine(self, freq_hz: float | None = None) -> tuple[complex, np.ndarray]:
        """(g, d) with y(x) = g + Σ x_i d_i at ``freq_hz`` (default f_0)."""
        df = 0.0 if freq_hz is None else freq_hz - self.f0
        c = self.a * np.exp(1j * (self.phi - 2 * math.pi * df * self.tau))
        dl = self.delta + self.kappa * df / self.f0
        d = c * (self.rho * np.exp(1j * dl) - 1)
        g = self.h0 * np.exp(-2j * math.pi * df * self.tau0) + np.sum(c)
        return complex(g), d

    def pattern(self) -> np.ndarray:
        """The board's active pattern x, shape (N,) bool (element 1 = MSB of byte 0)."""
        bits = np.unpackbits(np.frombuffer(bytes(self.firmware.pattern), np.uint8))
        return bits[: self.n].astype(bool)

    def power_w(self, x: np.ndarray, freq_hz: float | None = None) -> float:
        """Noiseless received power of pattern ``x``, W."""
        g, d = self.affine(freq_hz)
        return self.element_power_w * abs(g + np.asarray(x, float) @ d) ** 2

    def field(self, freq_hz: float | None = None) -> complex:
        """One noisy reading of the field for the board's active pattern."""
        self.measurements += 1
        g, d = self.affine(freq_hz)
        y = g + self.pattern().astype(float) @ d
        return complex(y + self.noise * (self.rng.standard_normal()
                                         + 1j * self.rng.standard_normal()) / math.sqrt(2))

    def optimum(self, freq_hz: float | None = None) -> tuple[np.ndarray, float]:
        """The best pattern and its noiseless power, W."""
        g, d = self.affine(freq_hz)
        x, v = best_onebit_pattern(g, d)
        return x, self.element_power_w * v ** 2

    def gap_db(self, x: np.ndarray, freq_hz: float | None = None) -> float:
        """dB below the optimum of pattern ``x`` (≥ 0)."""
        return 10 * math.log10(self.optimum(freq_hz)[1] / max(self.power_w(x, freq_hz), 1e-300))


def onebit_lab_bench(profile, *, seed: int, noise: float, direct_path: float = 1.0,
                     baud: int | None = None, f0: float = 5.3e9, port: int = 0):
    """A simulated OpenSourceRIS board on a loopback socket plus SCPI instruments that
    measure its pattern through a hidden one-bit channel (see :func:`rfctl.sims.sim_bench.
    lab_bench`, which calls this for ``osris`` profiles)."""
    from .osris_firmware import firmware_for
    from .sim_bench import SimBench, serve_bench
    from .simserver import SimServer

    fw = firmware_for(profile)
    server = SimServer(fw, baud=baud)
    model = OneBitBench.random(fw, seed=seed, noise=noise, direct_path=direct_path, f0=f0)
    bench = SimBench(model, freq_hz=f0)
    return serve_bench(server, bench, port)
