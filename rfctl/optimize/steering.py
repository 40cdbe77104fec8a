"""A simple, closed-form DBRAA design: the reference point the real optimizers beat.

mmWave: an interleaved dynamic sub-array design — antenna p joins RF chain p mod N_RF,
its phase shifter steers that chain towards its user's strongest path, and F_BB is
zero-forcing on the effective K × N_RF channel, scaled to the power budget P_m.

Sub-6G: the fixed array of the seed's baselines (:func:`rfctl.optimize.sub6g.fixed_positions`:
N_s antennas on the spacing grid C of seed eq. 26, packed as a near-square block) —
with zero-forcing F_s whose columns are scaled so that every user gets exactly Γ.

It is closed form (no solver) and therefore instant; it ignores the sensing
constraints, which the result reports rather than hides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rfctl.config import DbraaSpec, Scenario
from rfctl.errors import ConfigError
from rfctl.geometry import upa_steering
from rfctl.metrics import (
    beam_gain,
    hybrid_precoder,
    sinr,
    sub6_precoder,
    transmit_power,
)
from rfctl.optimize.dbraa_scenario import band_problem, target_steering
from rfctl.optimize.sub6g import fixed_positions
from rfctl.state import ArrayState, DesignRecord

__all__ = ["SteeringResult", "evaluate_dbraa", "fixed_selection", "steering_design"]


def fixed_selection(spec: DbraaSpec) -> NDArray[np.bool_]:
    """The fixed-array selection map (see :func:`rfctl.optimize.sub6g.fixed_positions`).

    Raises
    ------
    InfeasibleError
        If grid C has fewer than N_s points (the panel is too small for the spacing).
    """
    P = np.zeros(spec.candidate_shape, dtype=bool)
    for r, c in fixed_positions(spec):
        P[r, c] = True
    return P


@dataclass(frozen=True)
class SteeringResult:
    """Result of :func:`steering_design`.

    Attributes
    ----------
    state : ArrayState
    sub6_sinr, mmwave_sinr : ndarray, shape (K,)
    sub6_gain, mmwave_gain : ndarray, shape (T,)
        Sensing beam gains (squared norms) at the scenario's targets.
    sub6_power, mmwave_power : float
        Transmit powers, W.
    """

    state: ArrayState
    sub6_sinr: NDArray[np.float64]
    mmwave_sinr: NDArray[np.float64]
    sub6_gain: NDArray[np.float64]
    mmwave_gain: NDArray[np.float64]
    sub6_power: float
    mmwave_power: float


def _zf(Heff: NDArray[np.complex128]) -> NDArray[np.complex128]:
    """Zero-forcing directions for effective channel Heff (N × K): W with Heffᴴ W diagonal."""
    return np.linalg.pinv(Heff.conj().T)


def steering_design(scenario: Scenario, realisation: int = 0) -> SteeringResult:
    """Closed-form DBRAA design for one channel realisation of a scenario.

    Parameters
    ----------
    scenario : Scenario
        Must have a ``[dbraa]`` array and ``[sub6g]`` and ``[mmwave]`` tasks.
    realisation : int
        Channel realisation index (see :func:`rfctl.channels.realisation_rng`).

    Returns
    -------
    SteeringResult
    """
    spec = scenario.dbraa
    if spec is None or scenario.sub6g is None or scenario.mmwave is None:
        raise ConfigError(f"{scenario.name}: steering_design needs [dbraa], [sub6g] and "
                          "[mmwave] tables", field="dbraa", reason="missing")
    s6, mm = scenario.sub6g, scenario.mmwave
    ch6 = band_problem(scenario, "sub6g", realisation).channel
    chm = band_problem(scenario, "mmwave", realisation).channel

    # --- mmWave: interleaved sub-arrays steering at each user's strongest path
    nrf, K = spec.n_rf, mm.users
    chain = np.arange(spec.n_mmwave) % nrf
    S = np.zeros((spec.n_mmwave, nrf), dtype=bool)
    S[np.arange(spec.n_mmwave), chain] = True
    best = np.argmax(np.abs(chm.gains), axis=1)
    user_of_chain = np.arange(nrf) % K
    a = upa_steering(spec.rows, spec.cols, chm.phi[np.arange(K), best],
                     chm.theta[np.arange(K), best])  # (N_m, K)
    phases = np.angle(a[np.arange(spec.n_mmwave), user_of_chain[chain]])
    F_rf = np.exp(1j * phases)[:, None] * S
    W = _zf(F_rf.conj().T @ chm.H)  # (N_RF, K)
    F_bb = W * np.sqrt(mm.power / transmit_power(F_rf @ W))

    # --- sub-6G: fixed array, ZF scaled to SINR = Γ exactly
    P = fixed_selection(spec)
    p = P.ravel()
    Hsel = ch6.H[p]  # (N_s, K_s)
    Wz = _zf(Hsel)
    scale = np.sqrt(s6.sinr_threshold * s6.noise_power) / np.abs(np.sum(Hsel.conj() * Wz, 0))
    F_s = np.zeros((spec.n_candidates, s6.users), dtype=complex)
    F_s[p] = Wz * scale

    record = DesignRecord(
        scenario=scenario.model_dump(mode="json"),
        seed=scenario.seed,
        realisation=realisation,
        channels={"sub6": ch6.H, "mmwave": chm.H},
        notes={"design": "rfctl.optimize.steering.steering_design"},
    )
    state = ArrayState(phases=phases, switch=S, selection=P, f_bb=F_bb, f_s=F_s,
                       record=record)
    return evaluate_dbraa(state, scenario)


def evaluate_dbraa(state: ArrayState, scenario: Scenario) -> SteeringResult:
    """Metrics of a DBRAA state on the channels stored in its record.

    Parameters
    ----------
    state : ArrayState
        With phases, switch, selection, f_bb, f_s and channels ``sub6`` / ``mmwave``.
    scenario : Scenario
        Gives the targets and noise powers.
    """
    spec, s6, mm = scenario.dbraa, scenario.sub6g, scenario.mmwave
    assert spec is not None and s6 is not None and mm is not None
    F6 = sub6_precoder(state.selection, state.f_s)
    Fm = hybrid_precoder(state.phases, state.switch, state.f_bb)
    A6 = target_steering(spec, s6.targets, "sub6g")
    Am = target_steering(spec, mm.targets, "mmwave")
    ch = state.record.channels
    return SteeringResult(
        state=state,
        sub6_sinr=sinr(ch["sub6"], F6, s6.noise_power),
        mmwave_sinr=sinr(ch["mmwave"], Fm, mm.noise_power),
        sub6_gain=beam_gain(A6, F6),
        mmwave_gain=beam_gain(Am, Fm),
        sub6_power=transmit_power(F6),
        mmwave_power=transmit_power(Fm),
    )
