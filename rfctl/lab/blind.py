"""Configuring a surface from power measurements alone ("blind" beamforming).

These functions know nothing about boards or instruments: they call ``measure(codes)``
(codes: one integer state per element; returns a received power, W) at most ``budget``
times, and return the best configuration found. :mod:`rfctl.lab.optimize` connects them
to a board and a power sensor.

The measurement model (one-bit elements, state x_i ∈ {0, 1})::

    y(x) = g + Σ_i x_i d_i,        P(x) = |y(x)|² + noise,

with g the field of the all-zero pattern (direct path included) and d_i the change of
the field when element i switches. Methods:

- :func:`greedy_flips` — coordinate flips: switch one element, keep the change if the
  power rises above the incumbent's estimate; the incumbent is re-measured after every
  accepted change (and averaged), so that one lucky noisy reading does not stick.
- :func:`conditional_sample_mean` — random sampling: T random patterns; element i takes
  the state whose samples have the larger mean power (Ren, Shen et al., IEEE TWC 2023).
  With ``groups`` > 1 the elements are configured group by group against the others
  held fixed (Lai et al., arXiv 2305.18998), which keeps working when the direct path
  is weak.
- :func:`channel_estimation` — K reference patterns, each read R times, and from each
  every single-element toggle (K(N + R) measurements); a toggle's power change is
  ΔP_{k,i} = 2 s_{k,i} Re(y_k* d_i) + |d_i|² (s = ±1 by the element's state). Reference
  0 is random (its toggles give Re(y_0* d_i)); reference 1 switches about half of the
  elements, chosen so that the estimated in-phase part of its field cancels, so its field
  is turned by about 90° and as strong as a random pattern's (the strongest-reading of
  four such sets), and its toggles give the quadrature parts. A weighted
  Levenberg–Marquardt fit of the exact model |γ + Σ x_i d_i|² + b to every measurement
  estimates d (relative to the all-zero field, up to a conjugation that changes no
  power); the first fit starts from several closed forms, and the start whose optimum
  reads strongest wins. Each further reference is the optimum of the current estimate,
  refitted; what is left of the budget toggles the elements whose decision is closest,
  and the final optimum is kept only if it reads above the best reference. The exact
  best pattern for an estimate is one of the N + 1 patterns x_i = [Re(e^{−jθ} d_i) > 0]
  as θ sweeps the circle (:func:`best_onebit`). Reading each reference R times matters:
  its error is common to all its toggles and shifts every element's decision threshold.
  The fit exploits the toggle structure (per-element 2 × 2 blocks plus a rank-(4K + 4)
  coupling, :class:`_ArrowNormal`), O(M + N K²) per iteration; the dense normal
  equations stay as the reference path.

Every method leaves its trace in a :class:`MeasurementLog` (each reading, its phase and
the incumbent's estimated power), which the records plot against the measurement count.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from rfctl.errors import ConfigError

__all__ = [
    "BlindResult",
    "MeasurementLog",
    "best_onebit",
    "channel_estimation",
    "conditional_sample_mean",
    "fit_affine_field",
    "greedy_flips",
]

log = logging.getLogger(__name__)

Measure = Callable[[np.ndarray], float]

_REF1_TRIES = 4  # candidate sets for the estimation's reference 1, each read once
_START_ITERATIONS = 30  # LM iterations of each start of the first fit (then refitted)
_CHECK_READINGS = 2  # readings of the final estimate's optimum against the best reference


@dataclass
class MeasurementLog:
    """Counts and records measurements against a budget.

    Parameters
    ----------
    measure : callable
        ``measure(codes) -> power`` (W); codes shape (N,) int.
    budget : int
        Largest number of calls allowed.
    progress : callable, optional
        ``progress(done, budget)`` after every measurement.

    Attributes
    ----------
    rows : list of dict
        One per measurement: ``n`` (1-based), ``phase``, ``power_w``, ``incumbent_w``
        (estimated power of the best configuration known at that point).
    patterns : list of ndarray
        The codes measured, in order.
    """

    measure: Measure
    budget: int
    progress: Callable[[int, int], None] | None = None
    rows: list[dict] = field(default_factory=list)
    patterns: list[np.ndarray] = field(default_factory=list)
    incumbent_w: float = float("nan")

    @property
    def used(self) -> int:
        """Readings taken so far."""
        return len(self.rows)

    @property
    def remaining(self) -> int:
        """Readings left in the budget."""
        return self.budget - len(self.rows)

    def __call__(self, codes: np.ndarray, phase: str) -> float:
        if self.remaining <= 0:
            raise ConfigError(f"measurement budget of {self.budget} exhausted", field="budget",
                              reason="exhausted")
        c = np.asarray(codes, dtype=np.int64).copy()
        p = float(self.measure(c))
        self.patterns.append(c)
        self.rows.append({"n": len(self.rows) + 1, "phase": phase, "power_w": p,
                          "incumbent_w": self.incumbent_w})
        if self.progress is not None:
            self.progress(len(self.rows), self.budget)
        return p

    def set_incumbent(self, power_w: float) -> None:
        """Record the incumbent's estimated power (shown from the last row on)."""
        self.incumbent_w = float(power_w)
        if self.rows:
            self.rows[-1]["incumbent_w"] = self.incumbent_w


@dataclass
class BlindResult:
    """Outcome of a blind configuration method.

    Attributes
    ----------
    codes : ndarray, shape (N,) int
        The best configuration found.
    power_w : float
        Its estimated power (mean of its readings), W.
    method : str
    measurements : int
    stop : str
        Why the method stopped: ``converged`` (a full pass without an improvement),
        ``budget`` (the budget ran out first) or ``done`` (a one-shot method finished).
    estimate : dict, optional
        Channel estimation: ``gamma`` (|y| of reference 0), ``d`` (complex, shape (N,)),
        ``offset_w``, ``references``, ``fit_iterations``, ``fit_converged``.
    """

    codes: np.ndarray
    power_w: float
    method: str
    measurements: int
    stop: str
    estimate: dict | None = None


# --------------------------------------------------------------------------- helpers
def _check(n: int, levels: int, budget: int) -> None:
    if n < 1:
        raise ConfigError(f"need at least one element, got {n}", field="n", reason="empty")
    if levels < 2:
        raise ConfigError(f"levels = {levels}: a bank needs at least 2 states",
                          field="levels", reason="below 2")
    if budget < 1:
        raise ConfigError(f"budget = {budget} must be ≥ 1", field="budget", reason="below 1")


def _incumbent_loop(meas: MeasurementLog, x: np.ndarray, p_inc: list[float],
                    order: np.ndarray, states: np.ndarray, rng: np.random.Generator,
                    passes: int | None) -> tuple[np.ndarray, str]:
    """Coordinate flips over ``order`` (reshuffled each pass) while the budget allows.

    A flip whose reading beats the incumbent's mean is measured once more and kept only
    if the mean of both readings still beats it; the incumbent is also re-measured every
    ``len(order) // 8`` flips (its last four readings are averaged).
    """
    every = max(1, len(order) // 8)
    tried = 0
    done_passes = 0
    while passes is None or done_passes < passes:
        improved = False
        for i in order:
            for s in states:
                if s == x[i]:
                    continue
                if meas.remaining < 1:
                    return x, "budget"
                tried += 1
                if tried % every == 0 and meas.remaining >= 2:
                    p_inc[:] = [*p_inc[-3:], meas(x, "incumbent")]
                    meas.set_incumbent(float(np.mean(p_inc)))
                cand = x.copy()
                cand[i] = s
                p = meas(cand, "flip")
                if p > float(np.mean(p_inc)):
                    if meas.remaining < 1:
                        return x, "budget"  # cannot confirm: keep the incumbent
                    p2 = meas(cand, "confirm")
                    if (p + p2) / 2 > float(np.mean(p_inc)):
                        x, p_inc[:] = cand, [p, p2]
                        improved = True
                        meas.set_incumbent(float(np.mean(p_inc)))
                        break
        done_passes += 1
        if not improved:
            return x, "converged"
        order = rng.permutation(order)
    return x, "passes"


def greedy_flips(measure: Measure | MeasurementLog, n: int, *, budget: int,
                 rng: np.random.Generator, levels: int = 2, x0: np.ndarray | None = None,
                 passes: int | None = None, elements: np.ndarray | None = None
                 ) -> BlindResult:
    """Greedy coordinate search with re-measured incumbents.

    Parameters
    ----------
    measure : callable or MeasurementLog
    n : int
        Elements.
    budget : int
        Measurements allowed (≥ 1).
    rng : numpy.random.Generator
        Orders the elements of each pass.
    levels : int
        States per element (2 for one-bit).
    x0 : ndarray, shape (n,), optional
        Start (default all zeros).
    passes : int, optional
        Largest number of passes (default: until a pass changes nothing or the budget
        ends).
    elements : ndarray, optional
        Only these elements are tried (default all), in this order for the first pass.

    Returns
    -------
    BlindResult
    """
    _check(n, levels, budget)
    meas = measure if isinstance(measure, MeasurementLog) else MeasurementLog(measure, budget)
    x = np.zeros(n, np.int64) if x0 is None else np.asarray(x0, np.int64).copy()
    p_inc = [meas(x, "incumbent")]
    meas.set_incumbent(p_inc[0])
    order = rng.permutation(n) if elements is None else np.asarray(elements)
    x, stop = _incumbent_loop(meas, x, p_inc, order, np.arange(levels), rng, passes)
    return BlindResult(x, float(np.mean(p_inc)), "greedy", meas.used, stop)


def conditional_sample_mean(measure: Measure | MeasurementLog, n: int, *, budget: int,
                            rng: np.random.Generator, levels: int = 2, groups: int = 1,
                            rounds: int = 1, x0: np.ndarray | None = None) -> BlindResult:
    """Conditional sample mean (CSM), optionally by groups.

    For each group in turn (the other elements held at the current configuration),
    draw random states for the group's elements, measure, and give each element the
    state with the largest mean power over the samples where it had that state. The
    configuration is compared with the incumbent at the end of every group (two
    readings); a group that does not beat it is undone.

    Parameters
    ----------
    groups : int
        Groups (1: plain CSM over all elements).
    rounds : int
        Passes over the groups.
    levels, x0, budget, rng : see :func:`greedy_flips`.

    Returns
    -------
    BlindResult
    """
    _check(n, levels, budget)
    if groups < 1 or groups > n:
        raise ConfigError(f"groups = {groups} must be in [1, {n}]", field="groups",
                          reason="out of range")
    meas = measure if isinstance(measure, MeasurementLog) else MeasurementLog(measure, budget)
    x = np.zeros(n, np.int64) if x0 is None else np.asarray(x0, np.int64).copy()
    perm = rng.permutation(n)
    parts = np.array_split(perm, groups)
    p_inc = [meas(x, "incumbent")] if groups > 1 else []
    if p_inc:
        meas.set_incumbent(p_inc[0])
    steps = groups * rounds
    step = 0
    for _ in range(rounds):
        for part in parts:
            per = (meas.remaining - 2 * (steps - step)) // (steps - step)
            step += 1
            if per < 2 * levels:
                continue
            S = rng.integers(0, levels, size=(per, part.size))
            P = np.empty(per)
            for t in range(per):
                cand = x.copy()
                cand[part] = S[t]
                P[t] = meas(cand, "sample")
            means = np.full((part.size, levels), -np.inf)
            for k in range(levels):
                hit = S == k
                cnt = hit.sum(axis=0)
                ok = cnt > 0
                means[ok, k] = (hit[:, ok] * P[:, None]).sum(axis=0) / cnt[ok]
            cand = x.copy()
            cand[part] = np.argmax(means, axis=1)
            if not p_inc:  # plain CSM: accept, measure it
                x = cand
                if meas.remaining >= 1:
                    p_inc = [meas(x, "incumbent")]
                    meas.set_incumbent(p_inc[0])
                continue
            if meas.remaining < 2:
                break
            pc = [meas(cand, "confirm"), meas(cand, "confirm")]
            if np.mean(pc) > np.mean(p_inc):
                x, p_inc = cand, pc
                meas.set_incumbent(float(np.mean(p_inc)))
    return BlindResult(x, float(np.mean(p_inc)) if p_inc else float("nan"),
                       "csm" if groups == 1 else f"csm-{groups}", meas.used, "done")


def best_onebit(g: complex, d: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The exact x ∈ {0,1}^N maximising |g + Σ x_i d_i| (sector sweep, O(N²) vectorised).

    The candidate x(θ) = [Re(e^{−jθ} d_i) > 0] changes only where θ crosses
    arg(d_i) ± π/2; one θ inside each of the ≤ 2N arcs between those breakpoints covers
    every candidate, and the optimum is among them.

    Returns
    -------
    x : ndarray, shape (N,) int
    value : float
        |g + Σ x_i d_i|.
    theta : float
        The direction θ (rad) of the sector that gives ``x``.
    """
    d = np.asarray(d, complex)
    ang = np.angle(d)
    bps = np.sort(np.mod(np.concatenate([ang + np.pi / 2, ang - np.pi / 2]), 2 * np.pi))
    theta = (bps + np.append(bps[1:], bps[0] + 2 * np.pi)) / 2 if bps.size else np.zeros(1)
    X = np.real(np.exp(-1j * theta)[:, None] * d[None, :]) > 0
    vals = np.abs(g + X @ d)
    k = int(np.argmax(vals))
    return X[k].astype(np.int64), float(vals[k]), float(theta[k])


class _DenseRows:
    """The readable reference: the patterns as a dense matrix X, shape (M, N)."""

    def __init__(self, X: np.ndarray) -> None:
        self.X = X

    def field(self, d: np.ndarray) -> np.ndarray:
        """X d, shape (M,) complex."""
        return self.X @ d

    def xt(self, v: np.ndarray) -> np.ndarray:
        """Xᵀ v for real v of shape (M,), shape (N,)."""
        return self.X.T @ v

    def normal(self, a: np.ndarray, c: np.ndarray, w: np.ndarray, reg: np.ndarray,
               free: np.ndarray) -> _DenseNormal:
        """JᵀJ + diag(reg) of the weighted residuals (see :func:`fit_affine_field`)."""
        return _DenseNormal(self.X, a, c, w, reg, free)


class _DenseNormal:
    """JᵀJ + diag(reg), shape (2N + 2, 2N + 2), assembled densely; the unknowns are
    θ = (γ, Re d, Im d, b) and J's columns are a, X·a, X·c, w (row-scaled X)."""

    def __init__(self, X: np.ndarray, a: np.ndarray, c: np.ndarray, w: np.ndarray,
                 reg: np.ndarray, free: np.ndarray) -> None:
        n = X.shape[1]
        J = np.concatenate([a[:, None], X * a[:, None], X * c[:, None], w[:, None]], axis=1)
        self.A = J.T @ J
        self.A[np.diag_indices(2 * n + 2)] += reg
        self.diag = np.diag(self.A).copy()
        self.free = free

    def step(self, gvec: np.ndarray, lam: float) -> np.ndarray:
        """The LM step −(A + λ diag(diag A + 1e-12 max diag A))⁻¹ g on the free unknowns."""
        free = self.free
        damp = lam * (self.diag + 1e-12 * self.diag.max())
        M = (self.A + np.diag(damp))[np.ix_(free, free)]
        step = np.zeros_like(gvec)
        try:
            step[free] = scipy.linalg.solve(M, -gvec[free], assume_a="pos",
                                            check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            step[free] = np.linalg.lstsq(M, -gvec[free], rcond=None)[0]
        return step


def _gram(Q: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Qᵀ Y (shapes (L, p), (L, p)) as a sum over row blocks.

    Each block's product stays below the size at which OpenBLAS splits a product over
    threads: on a busy machine the threads of one (2N + 2) × p product spin-wait for a
    core and cost ≈ 2 ms of CPU instead of 0.1 ms (measured, N = 256, p = 60).
    """
    rows = max(8, 200_000 // max(1, Q.shape[1] * Y.shape[1]))
    out = Q[:rows].T @ Y[:rows]
    for i in range(rows, Q.shape[0], rows):
        out += Q[i:i + rows].T @ Y[i:i + rows]
    return out


class _ToggleRows:
    """Rows that are each a base pattern with at most one element switched.

    Row m is ``bases[base_of[m]]`` with element ``toggled[m]`` switched (−1: none), so
    x_m = r_k + s_m e_i with s_m = 1 − 2 r_{k,i} (0 without a toggle). Fields, Xᵀv and
    the normal equations' solve then cost O(M + K N + N K²) instead of O(M N) and
    O(N³) (:class:`_ArrowNormal`).
    """

    def __init__(self, structure: tuple[np.ndarray, np.ndarray, np.ndarray], n: int,
                 X: np.ndarray) -> None:
        bases, base_of, tog = structure
        self.bases = np.asarray(bases, float)
        self.base_of = np.asarray(base_of, np.int64)
        tog = np.asarray(tog, np.int64)
        self.k, self.n = self.bases.shape[0], n
        self.rows = np.flatnonzero(tog >= 0)
        self.cols = tog[self.rows]
        self.s = 1.0 - 2.0 * self.bases[self.base_of[self.rows], self.cols]
        self.X = X  # only for the dense fallback of a failed structured solve

    def field(self, d: np.ndarray) -> np.ndarray:
        """X d, shape (M,) complex."""
        y = (self.bases @ d.real + 1j * (self.bases @ d.imag))[self.base_of]
        y[self.rows] += self.s * d[self.cols]
        return y

    def xt(self, v: np.ndarray) -> np.ndarray:
        """Xᵀ v for real v of shape (M,), shape (N,)."""
        per = np.bincount(self.base_of, weights=v, minlength=self.k)
        return self.bases.T @ per + np.bincount(self.cols, weights=self.s * v[self.rows],
                                                minlength=self.n)

    def normal(self, a: np.ndarray, c: np.ndarray, w: np.ndarray, reg: np.ndarray,
               free: np.ndarray) -> _ArrowNormal:
        """JᵀJ + diag(reg) in the structured form of :class:`_ArrowNormal`."""
        return _ArrowNormal(self, a, c, w, reg, free)


class _ArrowNormal:
    """JᵀJ + diag(reg) = B₀ + Q S Qᵀ for rows that toggle one element of K bases.

    With x_m = r_k + s_m e_i, the Jacobian is J = [T + F Rᵀ, J_g]: T holds the toggles
    (row m: s_m a_m at Re d_i, s_m c_m at Im d_i), R the bases (columns (r_k, 0) and
    (0, r_k), shape (2N, 2K)), F the per-base columns of a and c (shape (M, 2K)), and
    J_g the columns of γ and b (a and w). Then

    - B₀ = blockdiag(TᵀT + diag(reg), J_gᵀJ_g): one 2 × 2 block per element (its
      toggles), and the 2 × 2 block of (γ, b);
    - Q = [R, TᵀF, TᵀJ_g, I_g] (2N + 2 rows, 4K + 4 columns) and S couples them:
      S[R, R] = FᵀF, S[R, TᵀF] = I, S[R, I_g] = FᵀJ_g, S[TᵀJ_g, I_g] = I (and the
      transposes).

    The damped system (B₀ + Λ + Q S Qᵀ) δ = −g is solved by the Woodbury identity,
    δ = −(B⁻¹g − B⁻¹Q (I + S QᵀB⁻¹Q)⁻¹ S QᵀB⁻¹g) with B = B₀ + Λ (block diagonal),
    then one step of iterative refinement against the structured product: O(N K²)
    per solve instead of the dense O(N³). :class:`_DenseNormal` is the reference.
    """

    def __init__(self, t: _ToggleRows, a: np.ndarray, c: np.ndarray, w: np.ndarray,
                 reg: np.ndarray, free: np.ndarray) -> None:
        n, k = t.n, t.k
        self.t, self.a, self.c, self.w, self.reg = t, a, c, w, reg
        self.offset = bool(free.size == 2 * n + 2)
        rows, cols, s = t.rows, t.cols, t.s
        ar, cr = a[rows], c[rows]
        # the toggles' 2 × 2 block per element, TᵀT
        self.taa = np.bincount(cols, weights=ar * ar, minlength=n)
        self.tac = np.bincount(cols, weights=ar * cr, minlength=n)
        self.tcc = np.bincount(cols, weights=cr * cr, minlength=n)
        gcols = [a, w] if self.offset else [a]
        self.jg = np.stack(gcols, axis=1)  # (M, G)
        self.gidx = np.array([0, 2 * n + 1][: len(gcols)])
        self.gg = self.jg.T @ self.jg
        # diag(JᵀJ) + reg (x² = x for 0/1 patterns)
        a2, c2 = a * a, c * c
        per_a2 = np.bincount(t.base_of, weights=a2, minlength=k)
        per_c2 = np.bincount(t.base_of, weights=c2, minlength=k)
        diag = np.empty(2 * n + 2)
        diag[0], diag[-1] = a2.sum(), w @ w
        diag[1:n + 1] = t.bases.T @ per_a2 + np.bincount(cols, weights=s * ar * ar, minlength=n)
        diag[n + 1:2 * n + 1] = t.bases.T @ per_c2 + np.bincount(cols, weights=s * cr * cr,
                                                                 minlength=n)
        self.diag = diag + reg
        # Q and S
        G = len(gcols)
        p = 4 * k + 2 * G
        Q = np.zeros((2 * n + 2, p))
        Q[1:n + 1, :k] = t.bases.T
        Q[n + 1:2 * n + 1, k:2 * k] = t.bases.T
        bo = t.base_of[rows]
        for col, blk in ((ar, 0), (cr, k)):  # TᵀF: columns α_k, β_k
            np.add.at(Q[1:n + 1], (cols, 2 * k + blk + bo), s * ar * col)
            np.add.at(Q[n + 1:2 * n + 1], (cols, 2 * k + blk + bo), s * cr * col)
        for j in range(G):  # TᵀJ_g
            q = self.jg[rows, j]
            Q[1:n + 1, 4 * k + j] = np.bincount(cols, weights=s * ar * q, minlength=n)
            Q[n + 1:2 * n + 1, 4 * k + j] = np.bincount(cols, weights=s * cr * q, minlength=n)
        Q[self.gidx, 4 * k + G + np.arange(G)] = 1.0
        S = np.zeros((p, p))
        for x, blk_x in ((a, 0), (c, k)):
            for y, blk_y in ((a, 0), (c, k)):
                S[blk_x + np.arange(k), blk_y + np.arange(k)] = np.bincount(
                    t.base_of, weights=x * y, minlength=k)
            for j in range(G):  # FᵀJ_g
                S[blk_x + np.arange(k), 4 * k + G + j] = np.bincount(
                    t.base_of, weights=x * self.jg[:, j], minlength=k)
        S[4 * k + G:, :2 * k] = S[:2 * k, 4 * k + G:].T
        eye = np.arange(2 * k)
        S[eye, 2 * k + eye] = S[2 * k + eye, eye] = 1.0
        eg = np.arange(G)
        S[4 * k + eg, 4 * k + G + eg] = S[4 * k + G + eg, 4 * k + eg] = 1.0
        # a base read without toggles (a single reading of a candidate) has zero TᵀF
        # columns: dropped, with their rows and columns of S (Q S Qᵀ unchanged)
        tb = np.unique(bo)
        keep = np.concatenate([np.arange(2 * k), 2 * k + tb, 3 * k + tb,
                               np.arange(4 * k, p)])
        self.Q, self.S = Q[:, keep], S[np.ix_(keep, keep)]

    def _binv(self, V: np.ndarray, damp: np.ndarray) -> np.ndarray:
        """B⁻¹ V for B = B₀ + diag(damp) (block diagonal), V shape (2N + 2, q)."""
        n = self.t.n
        du = self.taa + self.reg[1:n + 1] + damp[1:n + 1]
        dv = self.tcc + self.reg[n + 1:2 * n + 1] + damp[n + 1:2 * n + 1]
        det = du * dv - self.tac ** 2
        out = np.zeros_like(V)
        vu, vv = V[1:n + 1], V[n + 1:2 * n + 1]
        out[1:n + 1] = (dv[:, None] * vu - self.tac[:, None] * vv) / det[:, None]
        out[n + 1:2 * n + 1] = (du[:, None] * vv - self.tac[:, None] * vu) / det[:, None]
        g = self.gidx
        out[g] = np.linalg.solve(self.gg + np.diag(damp[g]), V[g])
        return out

    def matvec(self, v: np.ndarray, damp: np.ndarray) -> np.ndarray:
        """(JᵀJ + diag(reg) + diag(damp)) v on the free unknowns (b = 0 without offset)."""
        t, n = self.t, self.t.n
        if not self.offset:
            v = v.copy()
            v[-1] = 0.0
        au = (t.bases @ v[1:n + 1])[t.base_of]
        av = (t.bases @ v[n + 1:2 * n + 1])[t.base_of]
        au[t.rows] += t.s * v[1:n + 1][t.cols]
        av[t.rows] += t.s * v[n + 1:2 * n + 1][t.cols]
        jv = self.a * (v[0] + au) + self.c * av + self.w * v[-1]
        out = np.concatenate([[self.a @ jv], t.xt(self.a * jv), t.xt(self.c * jv),
                              [self.w @ jv]])
        out += (self.reg + damp) * v
        if not self.offset:
            out[-1] = 0.0
        return out

    def step(self, gvec: np.ndarray, lam: float) -> np.ndarray:
        """The LM step of :meth:`_DenseNormal.step`, by the structured solve."""
        damp = lam * (self.diag + 1e-12 * self.diag.max())
        rhs = -gvec.copy()
        if not self.offset:
            rhs[-1] = 0.0
        S, Q = self.S, self.Q
        try:
            with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
                Y = self._binv(Q, damp)
                lu = scipy.linalg.lu_factor(np.eye(S.shape[0]) + S @ _gram(Q, Y),
                                            check_finite=False)

                def solve(b: np.ndarray) -> np.ndarray:
                    h = self._binv(b[:, None], damp)[:, 0]
                    return h - Y @ scipy.linalg.lu_solve(lu, S @ (Q.T @ h),
                                                         check_finite=False)

                step = solve(rhs)
                step += solve(rhs - self.matvec(step, damp))  # one refinement
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning):
            step = np.full_like(rhs, np.nan)
        if not np.all(np.isfinite(step)):
            log.debug("structured LM solve failed (λ = %.3g): dense fallback", lam)
            free = np.arange(rhs.size if self.offset else rhs.size - 1)
            return _DenseNormal(self.t.X, self.a, self.c, self.w, self.reg, free).step(
                gvec, lam)
        return step


def fit_affine_field(patterns: np.ndarray, powers: np.ndarray, d0: np.ndarray, gamma0: float,
                     *, iterations: int = 100, tol: float = 1e-2, ridge: float = 0.0,
                     offset: bool = True,
                     structure: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                     ) -> tuple[float, np.ndarray, float, int, bool]:
    """Levenberg–Marquardt fit of P ≈ |γ + X d|² (+ b) (γ real ≥ 0) to measurements.

    Each reading is weighted by 1/√P (the noise of a power reading grows with the field:
    its standard deviation is ≈ √2 |y| σ for field noise σ).

    Parameters
    ----------
    patterns : ndarray, shape (M, N)
        One-bit patterns (0/1).
    powers : ndarray, shape (M,)
        Readings (any unit; the fit is in that unit).
    d0 : ndarray, shape (N,) complex
        Starting estimate of d.
    gamma0 : float
        Starting γ.
    iterations : int
        Largest number of LM iterations.
    tol : float
        Convergence: one step decreased the weighted cost by less than ``tol`` times the
        mean cost per reading (a change far below what the readings' noise can tell).
    ridge : float
        Weight of a ridge penalty ``ridge · ‖d‖²`` (in the weighted cost's units; 0: none);
        it keeps directions the readings barely determine near zero.
    offset : bool
        Fit the offset b too (a receiver's noise floor). b trades against the common
        part of the powers and is told apart only by the small |d_i|² terms, so the
        normal equations are nearly singular (LM's damping copes). Left out
        (``False``), one weak-direct-path draw of ten at 8N failed (11 dB) where fitting
        it did not.
    structure : (bases, base_of, toggled), optional
        Declares that row m of ``patterns`` is ``bases[base_of[m]]`` (shape (K, N)) with
        element ``toggled[m]`` switched (−1: none). Each LM iteration then costs
        O(M + K N + N K²) (:class:`_ArrowNormal`: block-diagonal per element plus a rank
        4K + 4 coupling, solved by the Woodbury identity) instead of the dense
        O(M N² + N³) of assembling and factorising the (2N + 2)-square normal equations,
        which stays the reference path (``structure=None``).

    Returns
    -------
    gamma, d, offset, iterations, converged
        ``converged``: the decrease fell below ``tol`` (or no step decreased the cost), as
        opposed to reaching ``iterations``.
    """
    X = np.asarray(patterns, float)
    P = np.asarray(powers, float)
    m, n = X.shape
    rows = _DenseRows(X) if structure is None else _ToggleRows(structure, n, X)
    w = 1 / np.sqrt(np.maximum(P, 0.05 * np.median(np.abs(P))) + 1e-300)  # field noise
    theta = np.concatenate([[gamma0], d0.real, d0.imag, [0.0]])
    free = np.arange(2 * n + 2 if offset else 2 * n + 1)
    reg = np.zeros(2 * n + 2)
    reg[1:2 * n + 1] = ridge

    def resid(th: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        y = th[0] + rows.field(th[1:n + 1] + 1j * th[n + 1:2 * n + 1])
        r = (np.abs(y) ** 2 + th[-1] - P) * w
        return r, y, float(r @ r + th @ (reg * th))

    r, y, cost = resid(theta)
    lam = 1e-3
    converged = False
    done = 0
    for k in range(1, iterations + 1):
        done = k
        a, c = 2 * w * y.real, 2 * w * y.imag  # J's columns: γ a, Re d X·a, Im d X·c, b w
        normal = rows.normal(a, c, w, reg, free)
        gvec = np.concatenate([[a @ r], rows.xt(a * r), rows.xt(c * r), [w @ r]]) + reg * theta
        while True:
            new = theta + normal.step(gvec, lam)
            r2, y2, c2 = resid(new)
            if c2 < cost:
                lam = max(lam / 3, 1e-9)
                break
            lam *= 4
            if lam > 1e9:
                break
        if c2 >= cost:
            converged = True  # no step decreases the cost: a stationary point
            break
        drop = (cost - c2) / cost * m  # in units of the mean cost per reading
        theta, r, y, cost = new, r2, y2, c2
        if drop < tol:
            converged = True
            break
    d = theta[1:n + 1] + 1j * theta[n + 1:2 * n + 1]
    gamma = float(theta[0])
    if gamma < 0:  # (γ, d) and (−γ, −d) give the same powers
        gamma, d = -gamma, -d
    return gamma, d, float(theta[-1]), done, converged


def estimation_budget(n: int, reference_readings: int | None = None) -> tuple[int, int]:
    """The smallest budget of :func:`channel_estimation` for ``n`` elements, 2(N + R),
    and the readings per reference R (default max(4, min(32, N // 16))).

    Raises
    ------
    ConfigError
        ``reference_readings`` < 1.
    """
    R = max(4, min(32, n // 16)) if reference_readings is None else int(reference_readings)
    if R < 1:
        raise ConfigError(f"reference_readings = {R} must be ≥ 1", field="reference_readings",
                          reason="below 1")
    return 2 * (n + R), R


def channel_estimation(measure: Measure | MeasurementLog, n: int, *, budget: int,
                       rng: np.random.Generator, high: int = 1,
                       reference_readings: int | None = None, starts: int = 8,
                       dense_fit: bool = False) -> BlindResult:
    """Estimate every element's contribution from powers, then configure exactly.

    Reference patterns, each read ``R`` times (interleaved with its toggles) and with every
    single-element toggle read once (N + R readings per reference), feed one weighted fit
    of the exact model |γ + Σ x_i d_i|² + b to all readings (:func:`fit_affine_field`
    with the toggle structure: O(M + N K²) per iteration).

    1. Reference 0 is random; its toggles give the in-phase parts Re(y_0* d_i).
    2. Reference 1 switches about half of the elements, chosen so that the estimated
       in-phase part of its field cancels (Re(y_0* y_1) ≈ 0): a field turned by about
       90° and as strong as a random pattern's. Four such sets are drawn and the one
       that reads strongest is kept (a set of few elements, or an unlucky draw, leaves a
       field of a few σ whose toggles are mostly noise).
    3. The first fit starts from the closed form of the in-phase parts and of the
       quadrature parts for ``starts`` values of Re(y_0* y_1) (the estimated one, and
       angles spread over (0, π)); the exact optimum of each fit (:func:`best_onebit`) is
       read once, and the fit whose optimum reads strongest is kept (with two references
       the fit has nearly as many unknowns as readings, and its cost does not tell the
       right basin from a wrong one; a reading of the candidate does).
    4. Every further reference is the optimum of the current estimate, refitted; a
       budget that does not fit a whole reference goes to the toggles of the elements
       whose decision is closest.
    5. The final estimate's optimum is read twice and kept only if it reads above the
       best reference (a last refit can move to another basin).

    Why the reference is read R times: a toggle's power change is measured against the
    reference's power, whose error is common to every toggle of that reference. It shifts
    every element's decision threshold the same way and does not average out over the
    elements; reading the reference R times divides it by √R. (Reading it once cost
    ≈ 0.3 dB at 8N with a weak direct path.)

    On the simulated one-bit bench (N = 256, σ = 1) it ends ≈ 0.1–0.2 dB from the
    optimum at 8N and ≈ 0.2–0.4 dB at 4N (BENCHMARKS.md).

    Parameters
    ----------
    measure, n, budget, rng : see :func:`greedy_flips`.
    high : int
        The code of the "1" state (``levels // 2`` on a few-bit bank: the estimation then
        uses the two states half a turn apart).
    reference_readings : int, optional
        R, readings of each reference (default max(4, min(32, N // 16))).
    starts : int
        Starting points of the first fit (step 3; 1: the closed form only, no candidate
        readings).
    dense_fit : bool
        Fit with the dense reference path of :func:`fit_affine_field` (O(N³) per
        iteration, for tests and benchmarks; the same result to rounding).

    Returns
    -------
    BlindResult
        With ``estimate``; ``power_w`` is the mean reading of the result when it was read
        (step 5), else the fitted model's prediction (the result may differ from every
        pattern measured).

    Raises
    ------
    ConfigError
        The budget is smaller than 2(N + R): the contributions are not identifiable.
    """
    _check(n, 2, budget)
    need, R = estimation_budget(n, reference_readings)
    if budget < need:
        raise ConfigError(f"channel estimation of {n} elements needs a budget of at least "
                          f"2(N + R) = {need} measurements (R = {R} readings per reference),"
                          f" got {budget}", field="budget", reason="not identifiable")
    if starts < 1:
        raise ConfigError(f"starts = {starts} must be ≥ 1", field="starts", reason="below 1")
    meas = measure if isinstance(measure, MeasurementLog) else MeasurementLog(measure, budget)
    pats: list[np.ndarray] = []
    pows: list[float] = []
    bases: list[np.ndarray] = []
    base_of: list[int] = []
    toggled: list[int] = []
    ref_means: list[tuple[float, np.ndarray]] = []  # (mean reading, pattern) per reference

    def read(x: np.ndarray, k: int, i: int, phase: str) -> float:
        p = meas(x * high, phase)
        pats.append(x)
        pows.append(p)
        base_of.append(k)
        toggled.append(i)
        return p

    def reference(r: np.ndarray, elements: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Read ``r`` R times and toggle each of ``elements`` (default all, random order)
        once; returns the mean reference power and s_i ΔP_i (NaN where not toggled)."""
        elems = rng.permutation(n) if elements is None else np.asarray(elements)
        every = max(1, elems.size // R)
        k = len(bases)
        bases.append(r.copy())
        ref: list[float] = []
        tog = np.full(n, np.nan)
        for j, i in enumerate(elems):
            if j % every == 0:
                ref.append(read(r, k, -1, "reference"))
            x = r.copy()
            x[i] ^= 1
            tog[i] = read(x, k, int(i), "toggle")
        p_ref = float(np.mean(ref))
        ref_means.append((p_ref, r.copy()))
        return p_ref, (tog - p_ref) * (1 - 2 * r)

    def probe(x: np.ndarray, count: int = 1) -> float:
        """``count`` readings of ``x`` (a base without toggles); their mean."""
        bases.append(x.copy())
        return float(np.mean([read(x, len(bases) - 1, -1, "candidate") for _ in range(count)]))

    def cost_of(k: int) -> int:
        return k + -(-k // max(1, k // R))  # toggles plus interleaved reference readings

    def fit(gamma: float, d: np.ndarray, iterations: int) -> tuple:
        st = (np.array(bases, float), np.array(base_of), np.array(toggled))
        return fit_affine_field(np.array(pats, float), np.array(pows) / scale, d, gamma,
                                iterations=iterations, structure=None if dense_fit else st)

    # 1. reference 0: random; its toggles give the in-phase parts Re(y_0* d_i)
    r0 = rng.integers(0, 2, n)
    P0, V0 = reference(r0)
    gain = (1 - 2 * r0) * V0 / 2  # ≈ the change of Re(y_0* y) when element i toggles
    # 2. reference 1: a random half of the elements, adjusted one element at a time until
    # Re(y_0* y_1) = |y_0|² + Σ_T gain_i is as close to 0 as it gets; the strongest-
    # reading of a few such sets (its field is then mostly quadrature)
    tries = min(_REF1_TRIES, meas.remaining - cost_of(n))
    take, best = np.zeros(0, np.int64), -np.inf
    for _ in range(max(1, tries)):
        in_t = rng.random(n) < 0.5
        u = P0 + float(gain[in_t].sum())
        for _ in range(n):
            delta = np.where(in_t, -gain, gain)
            i = int(np.argmin(np.abs(u + delta)))
            if abs(u + delta[i]) >= abs(u):
                break
            in_t[i] = not in_t[i]
            u += float(delta[i])
        x = r0.copy()
        x[in_t] ^= 1
        p = probe(x) if tries > 1 else 0.0
        if p > best:
            take, best = np.flatnonzero(in_t), p
    r1 = r0.copy()
    r1[take] ^= 1
    P1, V1 = reference(r1)
    scale = float(np.median([P0, P1])) or 1.0
    # 3. closed forms in reference 0's frame (y_0 = γ real): Re d from reference 0; for
    # a value of Re y_1 (= γ + Σ_T s_i Re d_i, estimated, or |y_1| cos φ), |y_1|² = P_1
    # gives Im y_1 and reference 1's toggles give Im d
    gam = math.sqrt(max(P0, 1e-300) / scale)
    re_d = V0 / scale / (2 * gam)
    s0 = 1 - 2 * r0

    def start(re_y1: float) -> tuple:
        im_y1 = math.sqrt(max(P1 / scale - re_y1 ** 2, 1e-3 * P1 / scale))
        im_d = (V1 / scale / 2 - re_y1 * re_d) / im_y1
        d0 = re_d + 1j * im_d
        g0 = gam - complex(r0 @ d0)  # refer to the all-zero pattern
        return fit(abs(g0), d0 * np.exp(-1j * np.angle(g0)), _START_ITERATIONS)

    hyps = [gam + float(np.sum(s0[take] * re_d[take]))]
    hyps += list(math.sqrt(P1 / scale) * np.cos(np.linspace(0, np.pi, starts + 1)[1:-1]))
    sols = [start(h) for h in hyps]
    gamma, d = sols[0][:2]
    cands: dict[bytes, tuple[np.ndarray, tuple]] = {}
    for sol in sols:
        x = best_onebit(sol[0], sol[1])[0]
        cands.setdefault(x.tobytes(), (x, sol))
    measured = 0
    if len(cands) > 1 and meas.remaining >= len(cands) + _CHECK_READINGS + R:
        best, x_best = -np.inf, None
        for x, sol in cands.values():
            p = probe(x)
            if p > best:
                best, x_best, (gamma, d) = p, x, sol[:2]
        measured = len(cands)
        if meas.remaining >= cost_of(n) + _CHECK_READINGS:
            reference(x_best)  # the candidate that read strongest is the next reference
    gamma, d, off, its, conv = fit(gamma, d, 100)
    fits = [(its, conv)]
    # 4. further references: the optimum of the current estimate, each time refitted (its
    # toggles measure every element along the direction that decides its state)
    while meas.remaining >= cost_of(n) + _CHECK_READINGS:
        reference(best_onebit(gamma, d)[0])
        gamma, d, off, its, conv = fit(gamma, d, 10)
        fits.append((its, conv))
    # the rest, but for the final check: the toggles of the elements closest to their
    # decision
    k = meas.remaining - _CHECK_READINGS
    while k > 0 and cost_of(k) > meas.remaining - _CHECK_READINGS:
        k -= 1
    if k > 0:
        x_hat, _, theta = best_onebit(gamma, d)
        margin = np.abs(np.real(np.exp(-1j * theta) * d))
        reference(x_hat, np.argsort(margin)[:k])
    if k > 0 or len(fits) > 1:  # fit the last readings, or polish a 10-iteration refit
        gamma, d, off, its, conv = fit(gamma, d, 100)
        fits.append((its, conv))
    x_hat, val, theta = best_onebit(gamma, d)
    predicted = (val ** 2 + off) * scale
    power, kept = predicted, "estimate"
    # 5. the final estimate's optimum against the best reference, by readings
    p_ref, x_ref = max(ref_means, key=lambda t: t[0])
    if not np.array_equal(x_hat, x_ref) and meas.remaining >= _CHECK_READINGS:
        power = probe(x_hat, _CHECK_READINGS)
        if power < p_ref:
            log.info("channel estimation: the estimate's optimum reads %.3g, below the best "
                     "reference's %.3g: the reference is kept", power, p_ref)
            x_hat, power, kept = x_ref, p_ref, "reference"
    log.info("channel estimation: %d references, %d candidates read, %d fits (last: %d "
             "iterations, converged %s); predicted %.3g, result: %s", len(ref_means),
             measured, len(fits), its, conv, predicted, kept)
    meas.set_incumbent(power)
    est = {"gamma": gamma * math.sqrt(scale), "d": d * math.sqrt(scale),
           "offset_w": off * scale, "references": len(ref_means), "reference_readings": R,
           "candidates": measured, "result": kept,
           "fit_iterations": [f[0] for f in fits], "fit_converged": [f[1] for f in fits],
           "theta_rad": theta, "predicted_w": predicted}
    return BlindResult(x_hat * high, power, "estimate", meas.used, "done", est)
