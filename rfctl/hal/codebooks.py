"""Code books: the values a bank can realise and the nearest-value search into them.

- :class:`UniformPhaseCodebook` — b-bit phase, code c ↦ 2πc/2^b, wraps at 2π.
- :class:`TablePhaseCodebook` — a table of I/Q entries (e.g. 128 on a beamformer IC);
  the phase of an entry is its argument; nearest by distance on the circle.
- :class:`LorentzianCodebook` — code ↦ measured normalised Lorentzian response q
  (complex); nearest by complex distance.

Phase code books take per-element calibration offsets δ_k (rad): element k realises
table[c] + δ_k, so the search runs on φ − δ_k ("calibration applied before quantizing").
Each ``quantize`` returns codes, realised values and per-element errors; nothing is
clipped silently.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

__all__ = [
    "LorentzianCodebook",
    "TablePhaseCodebook",
    "UniformPhaseCodebook",
    "lorentzian_arc_table",
    "wrap_phase",
]

TWO_PI = 2.0 * math.pi


def wrap_phase(x: ArrayLike) -> NDArray[np.float64]:
    """Wrap angles to [−π, π), rad."""
    return (np.asarray(x, dtype=float) + math.pi) % TWO_PI - math.pi


def _bits_for(n_codes: int) -> int:
    return max(1, math.ceil(math.log2(n_codes)))


class UniformPhaseCodebook:
    """Uniform b-bit phase shifter: code c ↦ 2πc/2^b (+ δ_k per element).

    Parameters
    ----------
    bits : int
        Bit width b.
    count : int
        Number of elements.
    offsets : array_like, shape (count,), optional
        Per-element calibration offsets δ_k, rad.
    """

    def __init__(self, bits: int, count: int, offsets: ArrayLike | None = None) -> None:
        self.bits = int(bits)
        self.count = int(count)
        self.n_codes = 1 << self.bits
        self.step = TWO_PI / self.n_codes
        self.offsets = (
            np.zeros(self.count) if offsets is None else np.asarray(offsets, dtype=float)
        )

    def values(self, codes: ArrayLike) -> NDArray[np.float64]:
        """Realised phases of ``codes`` per element, wrapped to [−π, π), rad."""
        return wrap_phase(np.asarray(codes) * self.step + self.offsets)

    def quantize(
        self, phases: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """Nearest codes for ``phases`` (rad, any real angle), shape (count,).

        Returns
        -------
        codes : ndarray, shape (count,) int, in [0, 2^b)
        realised : ndarray, shape (count,), rad in [−π, π)
        error : ndarray, shape (count,), realised − target wrapped to [−π, π), rad
        """
        rel = np.mod(phases - self.offsets, TWO_PI)
        codes = np.rint(rel / self.step).astype(np.int64) % self.n_codes
        realised = self.values(codes)
        return codes, realised, wrap_phase(realised - phases)


class TablePhaseCodebook:
    """Phase shifter with a table of I/Q entries; nearest entry on the circle.

    Parameters
    ----------
    entries : array_like, shape (M,) complex
        Entry c's I/Q value; its phase is ``angle(entries[c])``. Non-zero.
    count : int
        Number of elements.
    offsets : array_like, shape (count,), optional
        Per-element calibration offsets δ_k, rad.
    """

    def __init__(self, entries: ArrayLike, count: int, offsets: ArrayLike | None = None) -> None:
        e = np.asarray(entries, dtype=complex)
        if e.ndim != 1 or e.size < 2:
            raise ValueError("a phase table needs at least two entries")
        if np.any(np.abs(e) == 0):
            raise ValueError("a phase table entry of zero amplitude has no phase")
        self.entries = e
        self.count = int(count)
        self.n_codes = e.size
        self.bits = _bits_for(e.size)
        self.offsets = (
            np.zeros(self.count) if offsets is None else np.asarray(offsets, dtype=float)
        )
        ang = np.mod(np.angle(e), TWO_PI)
        self._order = np.argsort(ang, kind="stable")
        self._sorted = ang[self._order]

    @property
    def phases(self) -> NDArray[np.float64]:
        """Phase of each table entry, rad in [−π, π)."""
        return wrap_phase(np.angle(self.entries))

    def values(self, codes: ArrayLike) -> NDArray[np.float64]:
        """Realised phases of ``codes`` per element, rad in [−π, π)."""
        return wrap_phase(np.angle(self.entries[np.asarray(codes)]) + self.offsets)

    def quantize(
        self, phases: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """Nearest entry (circular distance) for each element; see
        :meth:`UniformPhaseCodebook.quantize` for the returns."""
        rel = np.mod(phases - self.offsets, TWO_PI)
        s = self._sorted
        m = s.size
        hi = np.searchsorted(s, rel) % m
        lo = (hi - 1) % m
        d_hi = np.abs(wrap_phase(s[hi] - rel))
        d_lo = np.abs(wrap_phase(s[lo] - rel))
        pick = np.where(d_lo <= d_hi, lo, hi)
        codes = self._order[pick].astype(np.int64)
        realised = self.values(codes)
        return codes, realised, wrap_phase(realised - phases)


def lorentzian_arc_table(bits: int, psi_min: float, psi_max: float) -> NDArray[np.complex128]:
    """Ideal Lorentzian responses q = (−j + e^{jψ})/2 for ψ evenly spaced on an arc.

    Parameters
    ----------
    bits : int
        2^bits entries.
    psi_min, psi_max : float
        Arc ends, rad (both included).

    Returns
    -------
    ndarray, shape (2^bits,) complex
    """
    psi = np.linspace(psi_min, psi_max, 1 << bits)
    return (-1j + np.exp(1j * psi)) / 2


def _psi_prime(q: NDArray[np.complex128]) -> NDArray[np.float64]:
    """Position on the Lorentzian circle measured so that the unreachable point q = 0
    (ψ = π/2) sits at ±π: ψ' = wrap(ψ + π/2) with ψ = arg(2q + j)."""
    return wrap_phase(np.angle(2 * q + 1j) + math.pi / 2)


class LorentzianCodebook:
    """DMA element tuning table: code ↦ measured normalised response q; nearest complex.

    The covered range is the arc from the lowest to the highest table entry (measured
    along the circle away from the unreachable q = 0), widened by half the largest gap
    between neighbouring entries. A target outside it is out of range: ``quantize``
    raises or takes the nearest entry depending on the caller's policy, and always
    reports it.

    Parameters
    ----------
    table : array_like, shape (M,) complex
        Response of each code.
    count : int
        Number of elements.
    """

    def __init__(self, table: ArrayLike, count: int) -> None:
        t = np.asarray(table, dtype=complex)
        if t.ndim != 1 or t.size < 2:
            raise ValueError("a Lorentzian table needs at least two entries")
        self.table = t
        self.count = int(count)
        self.n_codes = t.size
        self.bits = _bits_for(t.size)
        self._tree = cKDTree(np.column_stack([t.real, t.imag]))
        pp = np.sort(_psi_prime(t))
        margin = 0.5 * float(np.max(np.diff(pp))) if pp.size > 1 else 0.0
        self.psi_range = (float(pp[0]) - margin, float(pp[-1]) + margin)

    def values(self, codes: ArrayLike) -> NDArray[np.complex128]:
        """Complex responses of ``codes`` (any shape; the result has that shape).

        Raises
        ------
        IndexError
            A code outside ``[0, n_codes)``.
        """
        return self.table[np.asarray(codes)]

    def out_of_range(self, q: NDArray[np.complex128]) -> NDArray[np.bool_]:
        """Elements whose target lies outside the table's arc, shape (count,)."""
        pp = _psi_prime(q)
        lo, hi = self.psi_range
        return (pp < lo) | (pp > hi)

    def quantize(
        self, q: NDArray[np.complex128]
    ) -> tuple[NDArray[np.int64], NDArray[np.complex128], NDArray[np.float64]]:
        """Nearest table entry by complex distance.

        Returns
        -------
        codes : ndarray, shape (count,) int
        realised : ndarray, shape (count,) complex
        error : ndarray, shape (count,), |realised − target|
        """
        pts = np.column_stack([q.real, q.imag])
        dist, idx = self._tree.query(pts)
        codes = np.asarray(idx, dtype=np.int64)
        return codes, self.table[codes], np.asarray(dist, dtype=float)
