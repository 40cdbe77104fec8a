"""Studies that need both an optimizer's design and the HAL: what quantization costs.

This module sits above the HAL and the optimizers (see the import contract), so that
neither of them has to know the other.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rfctl.config import parse_config
from rfctl.errors import InfeasibleError
from rfctl.hal import dequantize, quantize
from rfctl.metrics import beam_gain, hybrid_precoder, sinr, sum_rate
from rfctl.optimize.dma import DmaDesign, DmaTask, tuning_state
from rfctl.optimize.dma_digital import solve_digital
from rfctl.optimize.mmwave import MmwaveResult, MmwaveTask

__all__ = ["lorentzian_bits_study", "phase_bits_study"]


def phase_bits_study(result: MmwaveResult, task: MmwaveTask,
                     bits: Iterable[int] = range(1, 9)) -> list[dict]:
    """Sum-rate and sensing gains of a hybrid design after b-bit phase quantization.

    For each bit width, a board with uniform b-bit phase shifters and the design's switch
    network quantizes the state through the HAL. The dequantized phases, the switches and
    F_BB are then evaluated with rfctl.metrics on the design's channel.

    Returns
    -------
    list of dict
        One row per bit width: ``bits``, ``sum_rate``, ``rate_loss`` (bit/s/Hz),
        ``min_gain_db``, ``gain_loss_db`` (the worst target's loss) and
        ``max_phase_error_deg``; a first row with ``bits = None`` holds the continuous
        design.
    """
    state = result.state()
    N, nrf = state.switch.shape
    F0 = hybrid_precoder(state.phases, state.switch, state.f_bb)
    g0 = beam_gain(task.A, F0)
    r0 = sum_rate(sinr(task.H, F0, task.sigma2))
    rows = [{"bits": None, "sum_rate": r0, "rate_loss": 0.0,
             "min_gain_db": float(10 * np.log10(g0.min())), "gain_loss_db": 0.0,
             "max_phase_error_deg": 0.0}]
    for b in bits:
        prof = parse_config({"kind": "board", "name": f"study-{b}bit", "banks": [
            {"name": "phase", "kind": "phase", "count": N, "bits": b},
            {"name": "switch", "kind": "switch_matrix", "antennas": N, "rf_chains": nrf}]})
        img = quantize(state.replace(f_bb=None), prof)
        q = dequantize(img, state)
        F = hybrid_precoder(q.phases, q.switch, q.f_bb)
        g = beam_gain(task.A, F)
        r = sum_rate(sinr(task.H, F, task.sigma2))
        rows.append({"bits": b, "sum_rate": r, "rate_loss": r0 - r,
                     "min_gain_db": float(10 * np.log10(g.min())),
                     "gain_loss_db": float(np.max(10 * np.log10(g0 / g))),
                     "max_phase_error_deg": float(np.degrees(img.banks["phase"].max_error))})
    return rows


def lorentzian_bits_study(design: DmaDesign, task: DmaTask,
                          bits: Iterable[int] = (1, 2, 3, 4, 8),
                          psi_range: tuple[float, float] = (-0.475 * np.pi, 1.45 * np.pi)
                          ) -> list[dict]:
    """Gains and SINRs of a DMA design after its tunings go through b-bit tables.

    For each bit width, a board with a generated Lorentzian table (2^b responses on
    ``psi_range``, nearest-entry policy) quantizes the tunings through the HAL. The
    realised loads are then evaluated exactly: with the design's B kept, and with B
    re-optimised for the quantized loads.

    Returns
    -------
    list of dict
        ``bits`` (None for the continuous design), ``objective``, ``min_sinr_ratio``
        (min SINR/Γ), ``feasible``, ``objective_reopt`` (re-optimised B, NaN if that
        SDR is infeasible) and ``max_q_error``.
    """
    state = tuning_state(task, design)
    L = design.b.size
    ex = task.exact(design.b, design.B)
    rows = [{"bits": None, "objective": ex["objective"],
             "min_sinr_ratio": float(np.min(ex["sinr"] / task.gamma)),
             "feasible": task.feasible(ex), "objective_reopt": ex["objective"],
             "max_q_error": 0.0}]
    for b in bits:
        prof = parse_config({"kind": "board", "name": f"dma-{b}bit", "banks": [
            {"name": "tuning", "kind": "lorentzian", "count": L, "out_of_range": "nearest",
             "arc": {"bits": b, "psi_min": psi_range[0], "psi_max": psi_range[1]}}]})
        img = quantize(state, prof)
        q = dequantize(img, state)
        loads = q.dma.load
        exq = task.exact(design.b, design.B, loads=loads)
        try:
            reopt = solve_digital(task.problem(design.b, loads=loads)).objective
        except InfeasibleError:
            reopt = float("nan")
        rows.append({"bits": b, "objective": exq["objective"],
                     "min_sinr_ratio": float(np.min(exq["sinr"] / task.gamma)),
                     "feasible": task.feasible(exq), "objective_reopt": reopt,
                     "max_q_error": img.banks["tuning"].max_error})
    return rows
