"""The board design's fallback (``rfctl.studies.design_dma_for_board``, step 4)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rfctl.config import load_config
from rfctl.errors import InfeasibleError
from rfctl.optimize.dma import task_from_scenario
from rfctl.studies import check_dma_state, design_dma_for_board


def test_an_arc_infeasible_task_is_finished_from_the_unconfined_design() -> None:
    """dma-4x8 realisation 2: inside sim-dma-4x8's arc the SDR is infeasible at every
    start; the unconfined design (the same generator stream as ``design_dma``) finished on
    the codes meets every constraint, and re-checking the saved state agrees."""
    task, rng = task_from_scenario(load_config("dma-4x8"), 2)
    bd = design_dma_for_board(task, "sim-dma-4x8", rng=rng)
    assert bd.path == "unconfined"
    assert bd.report["feasible"], bd.report["violations"]
    for board in (None, "sim-dma-4x8"):
        rep = check_dma_state(bd.state, board)
        assert rep["feasible"] and not rep["violations"]
        assert rep["objective"] == pytest.approx(bd.report["objective"], rel=1e-12)
    assert bd.state.record.notes["path"] == "unconfined"


def test_a_task_no_design_meets_names_both_attempts() -> None:
    """Γ raised 10⁴-fold (40 dB above the interference-free SNR less 30 dB): no start
    is feasible inside the arc or unconfined; the error says so for both."""
    task, rng = task_from_scenario(load_config("dma-4x8"), 1)
    hard = dataclasses.replace(task, gamma=np.asarray(task.gamma) * 1e4)
    with pytest.raises(InfeasibleError) as err:
        design_dma_for_board(hard, "sim-dma-4x8", rng=rng)
    msg = str(err.value)
    assert "inside the board arc" in msg and "unconfined" in msg
