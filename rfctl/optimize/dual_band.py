"""The DBRAA dual-band design (seed §III-C): P1 (sub-6 GHz) then P2 (mmWave).

P1 minimises the sub-6 GHz power P̄_s under its SINR and sensing constraints (FS-JBAS).
The mmWave side then gets what is left, P_m = P_t − P̄_s, and P2 maximises its sum-rate
with ADMM-RHB. Without ``total_power`` in the scenario, P_m is the scenario's
``mmwave.power``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rfctl.config import Scenario
from rfctl.errors import InfeasibleError
from rfctl.optimize import mmwave, sub6g
from rfctl.outcome import Outcome
from rfctl.state import ArrayState, DesignRecord

__all__ = ["DualBandResult", "combined_outcome", "design_dual_band"]


@dataclass
class DualBandResult:
    """Both bands' designs and the combined state.

    Attributes
    ----------
    sub6 : rfctl.optimize.sub6g.Sub6Result
    mmwave : rfctl.optimize.mmwave.MmwaveResult
    mmwave_power : float
        P_m given to the mmWave design, W.
    mmwave_task : rfctl.optimize.mmwave.MmwaveTask
        The mmWave problem solved (channel, targets, Υ, P_m).
    state : ArrayState
        Phases, switch matrix, F_BB, selection map and F_s, with both channels recorded.
    metrics : dict
        Sub-6G power, SINRs and gains; mmWave sum-rate, SINRs and gains.
    outcome : Outcome
        Both designs in one: the sub-6G design's stop reason and status unless it
        converged, else the mmWave design's; iterations summed; residuals of both with
        the prefixes ``sub6_`` and ``mmwave_`` (see :func:`combined_outcome`).
    """

    sub6: sub6g.Sub6Result
    mmwave: mmwave.MmwaveResult
    mmwave_power: float
    mmwave_task: mmwave.MmwaveTask
    state: ArrayState
    metrics: dict
    outcome: Outcome


def combined_outcome(sub6: Outcome, mm: Outcome) -> Outcome:
    """One outcome for P1 then P2: converged only if both converged."""
    first = mm if sub6.converged else sub6
    residuals = {f"sub6_{k}": v for k, v in sub6.residuals.items()}
    residuals |= {f"mmwave_{k}": v for k, v in mm.residuals.items()}
    return Outcome(first.stop_reason, sub6.iterations + mm.iterations, first.status,
                   residuals)


def design_dual_band(scenario: Scenario, realisation: int = 0, *,
                     structure: mmwave.Structure = "RHB") -> DualBandResult:
    """Run P1 then P2 for one channel realisation.

    Raises
    ------
    InfeasibleError
        If the sub-6 GHz design alone needs the whole total power (P_m ≤ 0).
    """
    s6 = sub6g.design_sub6g(scenario, realisation)
    if scenario.total_power is not None:
        pm = scenario.total_power - s6.power
        if pm <= 0:
            raise InfeasibleError(
                f"the sub-6 GHz design needs {s6.power:.4g} W, all of P_t = "
                f"{scenario.total_power:g} W: nothing is left for mmWave",
                bound="total power P_t", value=s6.power)
    else:
        assert scenario.mmwave is not None
        pm = scenario.mmwave.power
    task = mmwave.task_from_scenario(scenario, realisation, power=pm)
    mm = mmwave.admm_hybrid(task, structure)
    assert s6.record is not None
    record = DesignRecord(
        scenario=scenario.model_dump(mode="json"), seed=scenario.seed, realisation=realisation,
        channels={"sub6": s6.record.channels["sub6"], "mmwave": task.H},
        notes={"design": "rfctl.optimize.dual_band", "sub6_power_w": s6.power,
               "mmwave_power_w": pm, "structure": structure, "mmwave_scaled": mm.scaled,
               "mmwave_feasible": mm.feasible, "sub6_feasible": s6.feasible})
    state = ArrayState(phases=mm.phases, switch=mm.switch, f_bb=mm.F_bb,
                       selection=s6.selection, f_s=s6.F_s, record=record)
    metrics = {
        "sub6_power_w": s6.power, "sub6_sinr": s6.sinr.tolist(), "sub6_gains": s6.gains.tolist(),
        "mmwave_power_w": pm, "mmwave_sum_rate": mm.sum_rate, "mmwave_sinr": mm.sinr.tolist(),
        "mmwave_gains": mm.gains.tolist(),
        "mmwave_scaled": mm.scaled, "mmwave_feasible": mm.feasible,
        "sub6_feasible": s6.feasible,
    }
    return DualBandResult(s6, mm, pm, task, state, metrics,
                          combined_outcome(s6.outcome, mm.outcome))
