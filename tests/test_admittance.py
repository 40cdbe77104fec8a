"""The DMA admittance model: every identity listed in
../shared/reference/dma_admittance_model.md."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rfctl.admittance import DmaModel
from rfctl.config import load_config

SPEC = load_config("dma-4x8").dma


@pytest.fixture(scope="module")
def model() -> DmaModel:
    return DmaModel.from_spec(SPEC)


def loads(rng, L: int) -> np.ndarray:
    """Random passive Lorentzian loads: Re = R0 = 1 S, Im ~ N(0, 10²) S."""
    return 1.0 + 1j * rng.normal(0, 10, L)


def test_symmetry_and_signs(model) -> None:
    assert np.array_equal(model.Y_ss, model.Y_ss.T)
    assert np.all(model.Y_tt.real == 0) and np.all(model.Y_st.real == 0)
    assert np.linalg.eigvalsh(np.real(model.Y_ss)).min() > 0  # Re(Y_ss) positive definite


def test_self_conductances(model) -> None:
    # k ω ε l² / (3π) = 12.37 S at 10 GHz with l = 1 (ground plane doubles 6π → 3π)
    assert np.allclose(np.real(np.diag(model.Y_ss)), 12.37, atol=0.01)
    assert model.g_rad == pytest.approx(2 * model.g_rr)
    users = np.array([[0.0, 30.0, 1.5], [5.0, 40.0, 1.5]])
    assert np.allclose(np.diag(model.user_self(users)), model.g_rr)


def test_power_balance(model, rng) -> None:
    """½ Re(j_tᴴ Y_p j_t) = ½ j_sᴴ Re(Y_ss) j_s + ½ j_sᴴ Re(Y_s) j_s."""
    for _ in range(3):
        ys = loads(rng, model.L)
        jt = rng.standard_normal(model.N) + 1j * rng.standard_normal(model.N)
        js = model.element_currents(ys, jt)
        pt = 0.5 * np.real(jt.conj() @ model.port_admittance(ys) @ jt)
        prad = 0.5 * np.real(js.conj() @ np.real(model.Y_ss) @ js)
        pload = 0.5 * np.real(js.conj() @ np.diag(ys.real) @ js)
        assert pt == pytest.approx(prad + pload, rel=1e-10)
        assert pt == pytest.approx(model.transmit_power(ys, jt), rel=1e-12)


def _half_space_grid(nt: int = 300, nphi: int = 600):
    th = (np.arange(nt) + 0.5) / nt * np.pi / 2
    ph = (np.arange(nphi) + 0.5) / nphi * 2 * np.pi
    TH, PH = np.meshgrid(th, ph, indexing="ij")
    w = np.sin(TH) * (np.pi / 2 / nt) * (2 * np.pi / nphi) / (4 * np.pi)
    return TH, PH, w


def test_gain_integrates_to_radiated_fraction(model, rng) -> None:
    """∫ G dΩ / 4π over the half space = P_rad / P_t (checks the mutual radiation terms)."""
    TH, PH, w = _half_space_grid()
    ys = loads(rng, model.L)
    jt = rng.standard_normal(model.N) + 1j * rng.standard_normal(model.N)
    js = model.element_currents(ys, jt)
    pt = 0.5 * np.real(jt.conj() @ model.port_admittance(ys) @ jt)
    prad = 0.5 * np.real(js.conj() @ np.real(model.Y_ss) @ js)
    integral = float(np.sum(model.gain(ys, jt, TH, PH) * w))
    assert integral == pytest.approx(prad / pt, rel=2e-4)  # midpoint-rule accuracy


def test_single_element_peaks_at_three() -> None:
    one = DmaModel.from_spec(SPEC.model_copy(update={"n_waveguides": 1,
                                                     "elements_per_waveguide": 1}))
    TH, PH, w = _half_space_grid(200, 400)
    g = one.gain(np.array([0j]), np.array([1.0 + 0j]), TH, PH)  # lossless load
    assert g.max() == pytest.approx(3.0, rel=1e-4)  # 4.77 dBi
    assert float(np.sum(g * w)) == pytest.approx(1.0, rel=2e-4)


def test_matched_port_admittance() -> None:
    m = DmaModel.from_spec(SPEC.model_copy(update={"waveguide_a_m": 0.02194,
                                                   "waveguide_b_m": 0.005}))
    assert m.matched_port_admittance == pytest.approx(35.34, abs=0.01)


def test_resonance_warning(caplog) -> None:
    # L_μ = 10 at d = λ/2 with a = 0.73λ puts S_μ near a multiple of half a guide wavelength
    with caplog.at_level(logging.WARNING, logger="rfctl.admittance"):
        DmaModel.from_spec(SPEC.model_copy(update={"elements_per_waveguide": 10}))
    assert any("resonance" in r.getMessage() for r in caplog.records)


def test_beampattern_and_users(model, rng) -> None:
    ys = loads(rng, model.L)
    B = rng.standard_normal((model.N, 2)) + 1j * rng.standard_normal((model.N, 2))
    th, ph = np.array([0.1, 0.5]), np.array([0.0, 1.0])
    P = model.beampattern(ys, B, th, ph)
    W = model.phi(ys) @ model.Y_st @ B
    direct = [np.sum(np.abs(model.steering(t, p) @ W) ** 2) for t, p in zip(th, ph, strict=True)]
    assert np.allclose(P, direct)
    users = np.array([[0.0, 30.0, 1.5], [10.0, 50.0, 1.5], [-15.0, 25.0, 1.5]])
    H = model.user_channels(users, ys)
    assert H.shape == (3, model.N) and np.all(np.isfinite(H))
    Hr = model.user_channels(users, ys, model="rayleigh", rng=rng)
    assert Hr.shape == (3, model.N)


@pytest.mark.parametrize("distance", [40.0, 1000.0])
def test_received_power_channel_matches_a_friis_budget(rng, distance) -> None:
    """With scale="received_power", |h b|² (interference-free, one user) equals the Friis
    budget P_t G_t G_r (λ/4πD)² built from the model's own gain toward the user and the
    user's dipole gain 1.5 sin²ψ: to 1e-3 at 1 km, and to 1 % at 40 m (the Fresnel
    terms of the 4λ aperture). The normalised channel sits ~36 dB below."""
    m = DmaModel.from_spec(SPEC, origin=(0.0, 0.0, 10.0))
    centre = m.positions.mean(axis=0)
    for _ in range(4):
        ys = loads(rng, m.L)
        d = rng.normal(size=3)
        d[1] = abs(d[1]) + 0.5  # in front of the radiating wall
        d /= np.linalg.norm(d)
        user = (centre + distance * d)[None, :]
        jt = rng.normal(size=m.N) + 1j * rng.normal(size=m.N)
        p_r = abs(m.user_channels(user, ys) @ jt)[0] ** 2
        p_t = m.transmit_power(ys, jt)
        theta, phi = np.arccos(d[1]), np.arctan2(d[2], d[0])
        friis = (p_t * float(m.gain(ys, jt, theta, phi)) * 1.5 * (1 - d[2] ** 2)
                 * (m.lam / (4 * np.pi * distance)) ** 2)
        assert p_r == pytest.approx(friis, rel=1e-3 if distance > 500 else 1e-2)
        p_norm = abs(m.user_channels(user, ys, scale="normalised") @ jt)[0] ** 2
        assert 10 * np.log10(p_r / p_norm) == pytest.approx(36.3, abs=0.3)


def test_thermal_noise_power() -> None:
    from rfctl.admittance import thermal_noise_power
    from rfctl.errors import ConfigError

    # k_B T B F at 290 K, 100 MHz, F = 4 dB: −90 dBm (the dma-4x8 scenario's 1e-12 W)
    assert 10 * np.log10(thermal_noise_power(100e6, 4.0) / 1e-3) == pytest.approx(-90, abs=0.1)
    with pytest.raises(ConfigError, match="bandwidth"):
        thermal_noise_power(0.0, 4.0)
