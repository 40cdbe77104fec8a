"""Studies that need both an optimizer's design and the HAL: what quantization costs.

This module sits above the HAL and the optimizers (see the import contract), so that
neither of them has to know the other.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rfctl.config import parse_config
from rfctl.hal import dequantize, quantize
from rfctl.metrics import beam_gain, hybrid_precoder, sinr, sum_rate
from rfctl.optimize.mmwave import MmwaveResult, MmwaveTask

__all__ = ["phase_bits_study"]


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
