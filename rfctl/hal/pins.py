"""The DBRAA selection map as PIN-diode links and sub-6G feed-switch codes.

A panel of ``rows × cols`` mmWave pixels has horizontal links h (rows × (cols−1);
h[r, c] joins pixel (r, c) to (r, c+1)) and vertical links v ((rows−1) × cols; v[r, c]
joins (r, c) to (r+1, c)). A selected sub-6G antenna at candidate (m, n) is the 2×2 block
of pixels (m..m+1, n..n+1) and closes its four links h[m, n], h[m+1, n], v[m, n],
v[m, n+1]. Because selected blocks never share a pixel, every link belongs to at most
one antenna and the map can be read back from the links.

The feed switches route the i-th selected antenna (row-major order) to sub-6G RF
chain i; the code of chain i is that antenna's row-major candidate index.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rfctl.errors import HardwareConstraintError

__all__ = ["feed_codes", "links_to_selection", "selection_to_links"]


def selection_to_links(
    selection: NDArray[np.bool_],
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """PIN-diode links closed by a (valid, non-overlapping) selection map.

    Parameters
    ----------
    selection : ndarray, shape (rows−1, cols−1) bool

    Returns
    -------
    h : ndarray, shape (rows, cols−1) bool
    v : ndarray, shape (rows−1, cols) bool
    """
    P = np.asarray(selection, dtype=bool)
    rm, cm = P.shape
    h = np.zeros((rm + 1, cm), dtype=bool)
    v = np.zeros((rm, cm + 1), dtype=bool)
    h[:-1, :] |= P
    h[1:, :] |= P
    v[:, :-1] |= P
    v[:, 1:] |= P
    return h, v


def links_to_selection(h: NDArray[np.bool_], v: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Read a selection map back from PIN-diode links.

    An antenna is present where all four links of a 2×2 block are closed. The links must
    be exactly those of the decoded map (no stray diode on).

    Parameters
    ----------
    h : ndarray, shape (rows, cols−1) bool
    v : ndarray, shape (rows−1, cols) bool

    Returns
    -------
    ndarray, shape (rows−1, cols−1) bool

    Raises
    ------
    HardwareConstraintError
        If some closed link belongs to no complete antenna.
    """
    h = np.asarray(h, dtype=bool)
    v = np.asarray(v, dtype=bool)
    P = h[:-1, :] & h[1:, :] & v[:, :-1] & v[:, 1:]
    h2, v2 = selection_to_links(P)
    if not (np.array_equal(h2, h) and np.array_equal(v2, v)):
        raise HardwareConstraintError(
            "PIN-diode links do not form whole 2×2 antennas (stray or overlapping links)",
            bank="pin_links",
        )
    return P


def feed_codes(selection: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Feed-switch code per sub-6G RF chain: the row-major candidate index of the i-th
    selected antenna, shape (N_s,)."""
    return np.flatnonzero(np.asarray(selection, dtype=bool).ravel()).astype(np.int64)
