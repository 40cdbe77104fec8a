"""Readable brute-force reference quantizers.

They compare every target with every code's realised value, which is O(count × codes)
and obviously correct. Tests check that the fast code books agree with them, and the
quantization benchmark reports the fast path's speed against them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rfctl.hal.codebooks import wrap_phase

__all__ = ["nearest_complex", "nearest_phase"]


def nearest_phase(
    code_phases: NDArray[np.float64], targets: NDArray[np.float64],
    offsets: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Nearest code on the circle for every element, by exhaustive search.

    Parameters
    ----------
    code_phases : ndarray, shape (M,)
        Phase each code realises (before the element's offset), rad.
    targets : ndarray, shape (count,)
        Requested phases, rad.
    offsets : ndarray, shape (count,), optional
        Per-element calibration offsets δ_k, rad (element k realises code_phases + δ_k).

    Returns
    -------
    codes : ndarray, shape (count,) int
    distance : ndarray, shape (count,), circular distance to the chosen code, rad
    """
    off = np.zeros_like(targets) if offsets is None else offsets
    realised = code_phases[None, :] + off[:, None]  # (count, M)
    d = np.abs(wrap_phase(realised - targets[:, None]))
    codes = np.argmin(d, axis=1)
    return codes, d[np.arange(targets.size), codes]


def nearest_complex(
    table: NDArray[np.complex128], targets: NDArray[np.complex128]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Nearest table entry by complex distance, by exhaustive search.

    Returns
    -------
    codes : ndarray, shape (count,) int
    distance : ndarray, shape (count,)
    """
    d = np.abs(table[None, :] - targets[:, None])
    codes = np.argmin(d, axis=1)
    return codes, d[np.arange(targets.size), codes]
