"""One band of a DBRAA scenario as arrays: the channel of a realisation and the steering
vectors of the sensing targets.

Both DBRAA task builders (:func:`rfctl.optimize.sub6g.task_from_scenario`,
:func:`rfctl.optimize.mmwave.task_from_scenario`) and the closed-form
:mod:`rfctl.optimize.steering` design read a scenario through here, so the two bands
cannot drift apart in how a scenario becomes a problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from rfctl.channels import Channel, dbraa_channels
from rfctl.config import DbraaSpec, MmwaveScenario, Scenario, Sub6Scenario, SurrogateDirection
from rfctl.errors import ConfigError, InfeasibleError
from rfctl.geometry import sub6_steering, upa_steering

__all__ = ["Band", "BandProblem", "band_problem", "check_parseval", "target_steering"]

Band = Literal["sub6g", "mmwave"]


@dataclass(frozen=True)
class BandProblem:
    """The arrays of one band of one realisation.

    Attributes
    ----------
    spec : DbraaSpec
        The array (panel size, spacing, N_s, N_RF).
    task : Sub6Scenario or MmwaveScenario
        The band's table of the scenario (users, targets, thresholds, powers in W).
    channel : Channel
        ``H`` is (N_p, K_s) over the sub-6G candidates or (N_m, K_m) over the mmWave
        elements.
    A : ndarray, shape (N_p or N_m, T)
        Steering vectors of the sensing targets (unit-modulus entries).
    """

    spec: DbraaSpec
    task: Sub6Scenario | MmwaveScenario
    channel: Channel
    A: NDArray[np.complex128]


def target_steering(spec: DbraaSpec, targets: list[SurrogateDirection], band: Band
                    ) -> NDArray[np.complex128]:
    """Steering vectors of ``targets`` over the band's antennas, shape (N, T).

    N is N_p (the sub-6G candidates, :func:`rfctl.geometry.sub6_steering`) or N_m (the
    mmWave elements, :func:`rfctl.geometry.upa_steering`); T may be 0.
    """
    t = np.array([[d.phi, d.theta] for d in targets], float).reshape(-1, 2)
    if band == "sub6g":
        A = sub6_steering(spec.rows, spec.cols, t[:, 0], t[:, 1], spec.wavelength_ratio)
        return A.reshape(spec.n_candidates, -1)
    return upa_steering(spec.rows, spec.cols, t[:, 0], t[:, 1]).reshape(spec.n_mmwave, -1)


def band_problem(scenario: Scenario, band: Band, realisation: int = 0) -> BandProblem:
    """Channel and target steering of one band for one channel realisation.

    Raises
    ------
    ConfigError
        The scenario has no ``[dbraa]`` table or no table for ``band``.
    """
    spec, task = scenario.dbraa, getattr(scenario, band)
    if spec is None or task is None:
        raise ConfigError(f"{scenario.name}: needs [dbraa] and [{band}] tables",
                          field=band, reason="missing")
    if band == "sub6g":
        channel, _ = dbraa_channels(spec, seed=scenario.seed, realisation=realisation,
                                    sub6_users=task.users, sub6_paths=task.paths)
    else:
        _, channel = dbraa_channels(spec, seed=scenario.seed, realisation=realisation,
                                    mmwave_users=task.users, mmwave_paths=task.paths)
    assert channel is not None  # users ≥ 1 by the config model
    return BandProblem(spec, task, channel, target_steering(spec, task.targets, band))


def check_parseval(upsilon: NDArray[np.float64], power: float, n: int, band: str) -> None:
    """Refuse a sensing threshold above the Parseval bound Υ_t ≤ P N.

    With unit-modulus steering entries, ‖Fᴴa_t‖² ≤ ‖F‖² ‖a_t‖² = P N.

    Parameters
    ----------
    upsilon : ndarray, shape (T,)
        Thresholds Υ_t (linear power gains).
    power : float
        The band's power budget, W.
    n : int
        Antennas the band transmits on.
    band : str
        How the bound is written in the message, e.g. "P_m N_m".

    Raises
    ------
    InfeasibleError
        Naming the first threshold above the bound and the bound.
    """
    bound = power * n
    bad = np.flatnonzero(np.asarray(upsilon) > bound)
    if bad.size:
        t = int(bad[0])
        raise InfeasibleError(
            f"sensing threshold Υ_{t} = {upsilon[t]:.4g} exceeds the Parseval bound "
            f"{band} = {bound:.4g}", bound="Parseval sensing gain", value=bound)
