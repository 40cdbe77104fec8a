"""Metrics on tiny cases computed by hand (DBRAA seed eqs. 10–12, 16–17, 22)."""

from __future__ import annotations

import numpy as np
import pytest

from rfctl.metrics import (
    beam_gain,
    hybrid_precoder,
    sinr,
    sub6_precoder,
    sum_rate,
    transmit_power,
)


def test_sinr_two_users_by_hand() -> None:
    # h1 = [1, 0], h2 = [1, 1]; f1 = [2, 0], f2 = [0, 1]; σ² = 0.5
    # user 1: signal |h1ᴴ f1|² = 4, interference |h1ᴴ f2|² = 0     → 4 / 0.5 = 8
    # user 2: signal |h2ᴴ f2|² = 1, interference |h2ᴴ f1|² = 4     → 1 / 4.5
    H = np.array([[1, 1], [0, 1]], dtype=complex)
    F = np.array([[2, 0], [0, 1]], dtype=complex)
    s = sinr(H, F, 0.5)
    assert s == pytest.approx([8.0, 1 / 4.5])
    assert sum_rate(s) == pytest.approx(np.log2(9) + np.log2(1 + 1 / 4.5))


def test_sinr_uses_conjugate_transpose() -> None:
    # h = [j], f = [j]: hᴴ f = (−j)(j) = 1, so SINR = 1/σ² = 4 (not |j·j|² = 1 either way,
    # but a phase-sensitive combination shows up with two antennas):
    # h = [1, j], f = [1, j]: hᴴ f = 1 + (−j)(j) = 2 → |·|² = 4; hᵀ f would be 1 − 1 = 0
    H = np.array([[1], [1j]])
    F = np.array([[1], [1j]])
    assert sinr(H, F, 1.0) == pytest.approx([4.0])


def test_beam_gain_is_squared_norm() -> None:
    # a = [1, 1]; F = [[1, 0], [1, 2]] → Fᴴ a = [2, 2], squared norm 8
    A = np.array([[1], [1]], dtype=complex)
    F = np.array([[1, 0], [1, 2]], dtype=complex)
    assert beam_gain(A, F) == pytest.approx([8.0])
    # vectorised over directions: second direction a = [1, −1] → Fᴴ a = [0, −2] → 4
    A2 = np.array([[1, 1], [1, -1]], dtype=complex)
    assert beam_gain(A2, F) == pytest.approx([8.0, 4.0])


def test_transmit_power_is_frobenius_squared() -> None:
    F = np.array([[1 + 1j, 0], [2, 1j]])
    assert transmit_power(F) == pytest.approx(2 + 4 + 1)


def test_hybrid_and_sub6_precoders() -> None:
    phases = np.array([0.0, np.pi / 2, np.pi])
    S = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
    F_bb = np.array([[1], [2]], dtype=complex)
    # row n: e^{jφ_n} Σ_u S[n,u] F_bb[u]: [1, j·3, −1·2]
    assert np.allclose(hybrid_precoder(phases, S, F_bb).ravel(), [1, 3j, -2])
    P = np.array([[1, 0], [0, 1]], dtype=bool)
    F_s = np.arange(4, dtype=complex).reshape(4, 1) + 1
    assert np.allclose(sub6_precoder(P, F_s).ravel(), [1, 0, 0, 4])
