"""The DMA commands: ``rfctl optimize dma`` (dispatched from :mod:`.optimize`)."""

from __future__ import annotations

import argparse
from typing import TextIO

import numpy as np

from rfctl.config import Scenario
from rfctl.errors import RfctlError
from rfctl.state import DesignRecord


def optimize_dma(scenario: Scenario, args: argparse.Namespace, out: TextIO) -> int:
    """Design a DMA (digital SDR + analog SCA, alternated) and save the state."""
    from rfctl.admittance import DmaModel
    from rfctl.optimize.dma import DmaTask, design_dma, tuning_state
    from rfctl.studies import lorentzian_bits_study

    if scenario.dma is None or scenario.dma_task is None:
        raise RfctlError(f"{scenario.name}: needs [dma] and [dma_task] tables")
    t = scenario.dma_task
    rng = np.random.default_rng([scenario.seed, args.realisation])
    model = DmaModel.from_spec(scenario.dma, origin=(0.0, 0.0, 10.0))
    x0, x1, y0, y1, z = t.user_region_m
    users = np.column_stack([rng.uniform(x0, x1, t.users), rng.uniform(y0, y1, t.users),
                             np.full(t.users, z)])
    d = np.asarray(t.directions, float).reshape(-1, 2)
    task = DmaTask(model, users, d[:, 0], d[:, 1], t.noise_power, t.max_power,
                   n_sensing=max(t.sensing_streams, 1))
    res = design_dma(task, rng=rng)
    print(f"DMA design for {scenario.name}: mean beampattern gain {res.trace[0]:.4g} → "
          f"{res.objective:.4g} in {res.iterations} iterations ({res.stop_reason}); "
          f"digital {res.digital_s:.2f} s, analog {res.analog_s:.2f} s; start correlation "
          f"{res.start_correlation:.2f}", file=out)
    print(f"  SINR/Γ: {np.round(res.sinr / task.gamma, 3).tolist()}; beampattern "
          f"{np.round(res.beampattern, 4).tolist()} (β {task.beta[0]:.4g}, β_max "
          f"{task.beta_max:.4g}); P_t {res.power:.4g} W", file=out)
    print("after quantizing the tunings (Lorentzian tables):", file=out)
    print("  bits   objective   min SINR/Γ   feasible   objective with B re-optimised",
          file=out)
    for r in lorentzian_bits_study(res, task):
        b = "cont." if r["bits"] is None else str(r["bits"])
        print(f"  {b:>5}   {r['objective']:9.4g}   {r['min_sinr_ratio']:10.3f}   "
              f"{r['feasible']!s:>8}   {r['objective_reopt']:9.4g}", file=out)
    st = tuning_state(task, res).replace(record=DesignRecord(
        scenario=scenario.model_dump(mode="json"), seed=scenario.seed,
        realisation=args.realisation, notes={"design": "rfctl.optimize.dma.design_dma",
                                             "users_m": users.tolist()}))
    st.save(args.out)
    print(f"state written to {args.out}", file=out)
    return 0
