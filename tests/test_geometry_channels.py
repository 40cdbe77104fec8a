"""Steering vectors (DBRAA seed eqs. 2–4, 8) and channels (eqs. 5, 7)."""

from __future__ import annotations

import numpy as np
import pytest

from rfctl.channels import check_channel, dbraa_channels, mmwave_channel, sub6_channel
from rfctl.config import load_config
from rfctl.errors import ConfigError
from rfctl.geometry import sub6_candidate_positions, sub6_steering, ula_steering, upa_steering


def test_upa_is_row_major_kronecker() -> None:
    # element (m, n) of a 3×4 UPA has phase π(m φ + n θ) (eq. 8, half-wavelength)
    phi, theta = 0.3, -0.7
    a = upa_steering(3, 4, phi, theta)
    m, n = np.divmod(np.arange(12), 4)
    assert np.allclose(a, np.exp(1j * np.pi * (m * phi + n * theta)))
    assert np.allclose(a, np.kron(ula_steering(3, phi), ula_steering(4, theta)))


def test_upa_vectorised_over_directions() -> None:
    phi = np.array([0.1, 0.5, -0.2])
    theta = np.array([0.0, 0.4, 0.9])
    A = upa_steering(5, 6, phi, theta)
    assert A.shape == (30, 3)
    for t in range(3):
        assert np.allclose(A[:, t], upa_steering(5, 6, phi[t], theta[t]))


def test_sub6_steering_matches_positions() -> None:
    # β entry for candidate (m, n) is exp(j 2π (z_m φ + x_n θ) / λ_s) (eq. 2) with
    # x_n = n λ_m/2, z_m = m λ_m/2 (0-based), i.e. phase π (λ_m/λ_s)(m φ + n θ) (eq. 4)
    lam_m, lam_s = 0.01, 0.06
    pos = sub6_candidate_positions(4, 5, lam_m)
    phi, theta = 0.6, -0.25
    b = sub6_steering(4, 5, phi, theta, lam_m / lam_s)
    expect = np.exp(1j * 2 * np.pi * (pos[:, 2] * phi + pos[:, 0] * theta) / lam_s)
    assert b.shape == (12,)
    assert np.allclose(b, expect)


def test_channel_is_the_sum_of_its_paths(rng) -> None:
    spec = load_config("dbraa-14x14").dbraa
    ch = mmwave_channel(rng, spec, users=3, paths=4)
    k = 1
    h = sum(ch.gains[k, l] * upa_steering(14, 14, ch.phi[k, l], ch.theta[k, l])
            for l in range(4)) / np.sqrt(4)
    assert np.allclose(ch.H[:, k], h)
    ch6 = sub6_channel(rng, spec, users=2, paths=5)
    assert ch6.H.shape == (169, 2)
    assert np.all(np.abs(ch.theta) <= 1) and np.all(np.abs(ch.phi) <= 1)


def test_channel_power_normalisation() -> None:
    # E‖h‖² = N: each path vector has ‖a‖² = N, gains are CN(0,1), scaled by 1/L.
    # Over 400 users × 196 elements the sample mean of ‖h‖²/N has std ≈ 1/√(400·L)·…;
    # a 10 % band is many standard deviations wide.
    spec = load_config("dbraa-14x14").dbraa
    ch = mmwave_channel(np.random.default_rng(0), spec, users=400, paths=3)
    ratio = np.mean(np.sum(np.abs(ch.H) ** 2, axis=0)) / spec.n_mmwave
    assert ratio == pytest.approx(1.0, rel=0.1)


def test_realisations_are_reproducible_and_independent() -> None:
    spec = load_config("dbraa-14x14").dbraa
    a6, am = dbraa_channels(spec, seed=5, realisation=2, sub6_users=4, mmwave_users=4)
    b6, bm = dbraa_channels(spec, seed=5, realisation=2, sub6_users=4, mmwave_users=4)
    c6, _ = dbraa_channels(spec, seed=5, realisation=3, sub6_users=4)
    assert np.array_equal(a6.H, b6.H) and np.array_equal(am.H, bm.H)
    assert not np.allclose(a6.H, c6.H)


def test_check_channel_rejects_nan_and_shape() -> None:
    H = np.ones((4, 2), complex)
    assert check_channel(H, 4).shape == (4, 2)
    with pytest.raises(ConfigError, match="shape"):
        check_channel(H, 5)
    H[1, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        check_channel(H, 4)
