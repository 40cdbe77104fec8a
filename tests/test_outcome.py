"""The solver-status vocabulary: every Clarabel and cvxpy status maps somewhere definite,
and only an optimal solve counts as solved unless the caller accepts inaccuracy."""

from __future__ import annotations

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from rfctl.outcome import Outcome, SolverStatus, StopReason, from_clarabel, from_cvxpy, solved


def test_every_clarabel_status_is_mapped() -> None:
    names = [n for n in dir(clarabel.SolverStatus) if not n.startswith("_")]
    mapped = {n: from_clarabel(getattr(clarabel.SolverStatus, n)) for n in names}
    assert mapped["Solved"] is SolverStatus.OPTIMAL
    assert mapped["AlmostSolved"] is SolverStatus.OPTIMAL_INACCURATE
    assert mapped["PrimalInfeasible"] is SolverStatus.INFEASIBLE
    assert mapped["MaxIterations"] is SolverStatus.ITERATION_CAP
    # only statuses that say nothing about the problem fall through to OTHER
    assert {n for n, s in mapped.items() if s is SolverStatus.OTHER} <= {
        "Unsolved", "CallbackTerminated"}


def test_every_cvxpy_status_is_mapped() -> None:
    for s in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE,
              cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE, cp.USER_LIMIT, cp.SOLVER_ERROR):
        assert from_cvxpy(s) is not SolverStatus.OTHER, s
    assert from_cvxpy(None) is SolverStatus.NUMERICAL_ERROR


def test_inaccurate_is_not_solved_unless_accepted() -> None:
    assert solved(SolverStatus.OPTIMAL)
    assert not solved(SolverStatus.OPTIMAL_INACCURATE)
    assert solved(SolverStatus.OPTIMAL_INACCURATE, accept_inaccurate=True)
    assert not solved(SolverStatus.INFEASIBLE, accept_inaccurate=True)


def test_real_solves_map_to_the_right_status() -> None:
    """An infeasible LP (x ≥ 1, x ≤ 0) and a feasible one, through Clarabel directly."""
    P = sp.csc_matrix((1, 1))
    A = sp.csc_matrix(np.array([[-1.0], [1.0]]))
    cones = [clarabel.NonnegativeConeT(2)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    bad = clarabel.DefaultSolver(P, np.array([1.0]), A, np.array([-1.0, 0.0]), cones,
                                 settings).solve()
    good = clarabel.DefaultSolver(P, np.array([1.0]), A, np.array([0.0, 1.0]), cones,
                                  settings).solve()
    assert from_clarabel(bad.status) is SolverStatus.INFEASIBLE
    assert from_clarabel(good.status) is SolverStatus.OPTIMAL


def test_outcome_converged_only_when_a_test_fired() -> None:
    assert Outcome(StopReason.CONVERGED, 12).converged
    assert not Outcome(StopReason.ITERATION_CAP, 300).converged
