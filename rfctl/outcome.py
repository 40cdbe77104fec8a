"""One vocabulary for how a solve or an iteration ended.

Solver statuses come in each solver's own spelling (Clarabel's ``SolverStatus`` enum,
cvxpy's strings). Every optimizer maps them here, once, and tests success with
:func:`solved` instead of comparing strings: ``AlmostSolved`` and ``optimal_inaccurate``
are *not* silently taken for optimal; a caller that accepts them says so.

Iterative methods (alternations, ADMM, SCA, searches) report a :class:`StopReason`:
``converged`` only when a convergence test fired, ``iteration_cap`` when the cap ended
the run, and so on. Results carry both, with the iteration count and residuals in one
shape (:class:`Outcome`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Outcome", "SolverStatus", "StopReason", "from_clarabel", "from_cvxpy",
           "log_fallback", "solved"]

log = logging.getLogger(__name__)


class SolverStatus(StrEnum):
    """How one convex solve ended."""

    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal-inaccurate"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    ITERATION_CAP = "iteration-cap"
    NUMERICAL_ERROR = "numerical-error"
    OTHER = "other"


class StopReason(StrEnum):
    """Why an iterative method stopped."""

    CONVERGED = "converged"
    ITERATION_CAP = "iteration-cap"
    NO_PROGRESS = "no-progress"
    INFEASIBLE = "infeasible"
    SOLVER_FAILED = "solver-failed"
    EXHAUSTED = "exhausted"
    """A finite search visited every candidate (exact for what it searched)."""


_CLARABEL = {
    "Solved": SolverStatus.OPTIMAL,
    "AlmostSolved": SolverStatus.OPTIMAL_INACCURATE,
    "PrimalInfeasible": SolverStatus.INFEASIBLE,
    "AlmostPrimalInfeasible": SolverStatus.INFEASIBLE,
    "DualInfeasible": SolverStatus.UNBOUNDED,
    "AlmostDualInfeasible": SolverStatus.UNBOUNDED,
    "MaxIterations": SolverStatus.ITERATION_CAP,
    "MaxTime": SolverStatus.ITERATION_CAP,
    "NumericalError": SolverStatus.NUMERICAL_ERROR,
    "InsufficientProgress": SolverStatus.NUMERICAL_ERROR,
}

_CVXPY = {
    "optimal": SolverStatus.OPTIMAL,
    "optimal_inaccurate": SolverStatus.OPTIMAL_INACCURATE,
    "infeasible": SolverStatus.INFEASIBLE,
    "infeasible_inaccurate": SolverStatus.INFEASIBLE,
    "unbounded": SolverStatus.UNBOUNDED,
    "unbounded_inaccurate": SolverStatus.UNBOUNDED,
    "user_limit": SolverStatus.ITERATION_CAP,
    "solver_error": SolverStatus.NUMERICAL_ERROR,
}


def from_clarabel(status: object) -> SolverStatus:
    """Map a Clarabel ``SolverStatus`` (enum or its string) to :class:`SolverStatus`."""
    name = str(status).rsplit(".", 1)[-1]
    return _CLARABEL.get(name, SolverStatus.OTHER)


def from_cvxpy(status: str | None) -> SolverStatus:
    """Map a cvxpy ``problem.status`` string to :class:`SolverStatus`."""
    if status is None:
        return SolverStatus.NUMERICAL_ERROR
    return _CVXPY.get(str(status), SolverStatus.OTHER)


def solved(status: SolverStatus, *, accept_inaccurate: bool = False) -> bool:
    """True for an optimal solve (and, only if asked, an inaccurate one)."""
    if status is SolverStatus.OPTIMAL:
        return True
    return accept_inaccurate and status is SolverStatus.OPTIMAL_INACCURATE


def log_fallback(what: str, first: str, status: SolverStatus, then: str) -> None:
    """Record, at WARNING, that ``what`` fell back from solver ``first`` to ``then``."""
    log.warning("%s: %s ended %s; falling back to %s", what, first, status.value, then)


@dataclass
class Outcome:
    """How an optimizer's run ended, in one shape for every result type.

    Attributes
    ----------
    stop_reason : StopReason
    iterations : int
        Outer iterations run.
    status : SolverStatus
        Status of the last (or deciding) convex solve.
    residuals : dict of str to float
        Final residuals and constraint margins by name (dimensionless or SI, named
        with their unit, e.g. ``"power_margin_w"``).
    """

    stop_reason: StopReason
    iterations: int
    status: SolverStatus = SolverStatus.OPTIMAL
    residuals: dict[str, float] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        """True only when a convergence test fired (not an iteration cap)."""
        return self.stop_reason in (StopReason.CONVERGED, StopReason.EXHAUSTED)
