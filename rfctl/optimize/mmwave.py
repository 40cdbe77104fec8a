"""DBRAA mmWave design: reconfigurable hybrid beamforming (ADMM-RHB) and baselines.

Seed §III-B and §V: maximise the sum-rate of K_m users subject to the sensing gains
‖(F_RF F_BB)ᴴ a_t‖² ≥ Υ_t and the power ‖F_RF F_BB‖² ≤ P_m, where F_RF = diag(e^{jφ}) S has
one phase shifter per antenna and a binary switch matrix S.

Algorithm 3 (ADMM-RHB) runs on the augmented Lagrangian of F_m = diag(f_P) S F_BB
(eq. 68). Each iteration does the following:

1. WMMSE receivers u_k and weights w_k in closed form (eqs. 72, 74);
2. the F_m step (eq. 77): the sensing gains linearised at the current F_m (SCA, eq. 76),
   solved exactly by :func:`rfctl.optimize.mmwave_fm.fm_step_fast` (``inner`` SCA
   steps, default one: measured, more do not help, see BENCHMARKS.md);
3. phase shifters and switch rows (eqs. 82–86): for every antenna and every allowed
   pattern, the closed-form phase, keeping the pattern of least cost. This is
   vectorised over the antennas;
4. F_BB by least squares (eq. 88), and the dual update (eq. 89);

and the loop stops when (i) I_M iterations are done, or (ii)
‖F_RF F_BB − previous‖² ≤ ε. Then the final feasibility step (below) runs.

Pattern sets give the structures: RHB has all 2^N_RF patterns per antenna; DHB puts
every antenna on exactly one chain; PCHB has fixed contiguous sub-arrays (antenna m on
chain ⌊m N_RF / N_m⌋, phases only). FD is the F_m problem alone (WMMSE + SCA, no hybrid
coupling). FCHB is MO-AltMin (Yu, Shen, Zhang, Letaief 2016) fitted to the FD design.

Choices the seed leaves open (used by the sims too), with their measured effect on the
Fig. 7 setting (tuning draws 1000–1009; the table is in BENCHMARKS.md):

- **Steering vectors** are unnormalised (unit-modulus entries), and Υ is a squared
  gain; the Parseval bound is Υ_t ≤ P_m N_m.
- **SNR** (Fig. 8) = P_m / σ_m².
- **Start** (``init="zf"``, the default): the zero-forcing precoder (unit-norm columns,
  equal power) plus eq. 70's least-norm sensing beam, then fully digital WMMSE–SCA
  iterations until the sum-rate changes by ≤ 10⁻⁴ (at most 120), computed in
  span{h_k, a_t} where they stay. The seed's eq. 70 start alone (``init="eq70"``) leaves
  RHB at 0.78 × FD and below DHB in every tuning draw: the start is the dominant cause.
  Eq. 70 followed by 120 of the same iterations (``init="fd"``) reaches 0.93 × FD too,
  but needs about five times as many iterations as the ZF start. Eq. 70's κ sets
  ‖F‖² = P_m; if that point misses a sensing target, every column gets the least-norm
  beam meeting all targets added before rescaling. D₀ = 0 (N_m × K_m; the seed's
  "N_p × K_s" is a slip). F_RF, F_BB start from MO-AltMin (3 × 10 steps) fitted to the
  start.
- **Penalty**: ρ₀ = 1, multiplied by 0.9 per iteration, floor 10⁻³ (0.95 or 0.8 change
  the sum-rate by < 0.5 %; ρ₀ = 0.1 costs 2 %).
- **FD**: the F_m step needs a proximal weight c > 0; FD uses c = 10⁻⁶ towards the
  previous iterate (a proximal-point step with the same fixed points). FD stops when
  the sum-rate changes by at most 10⁻⁶ (relative) in one iteration (stop reason
  CONVERGED), or after 2000 iterations (ITERATION_CAP).
- **Stopping**: I_M = 300, ε = 3·10⁻⁵ P_m (‖ΔF_RF F_BB‖² per iteration; 10⁻⁵ takes 28 % more
  iterations for the same sum-rate, 10⁻⁴ loses 0.7 % and leaves the final step more to do).
- **Final feasibility step** (:func:`refine_baseband`): WMMSE–SCA on F_BB with the analog
  part fixed, from the ADMM's F_BB, until the sum-rate changes by ≤ 10⁻⁵ (at most 100
  iterations). Its linearised sensing constraints are inner approximations, so the
  design meets every gain and the power; from a start that misses gains the targets
  are approached by back-off steps. If it cannot, the result says ``feasible=False``.
  The old scaling of F_BB (``final="scale"``) left 4 of 10 designs below Υ.
- **MO-AltMin** (FCHB, and the ADMM initialisation of F_BB): F_RF starts from the
  phases of the target's columns (random phases on chains beyond K). At most 20 outer
  alternations and 30 Riemannian gradient steps each, with Armijo backtracking.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.linalg.lapack import dposv as _dposv

from rfctl.channels import check_channel
from rfctl.config import Scenario
from rfctl.errors import ConfigError, InfeasibleError
from rfctl.metrics import beam_gain, sinr, sum_rate
from rfctl.optimize.dbraa_scenario import band_problem, check_parseval
from rfctl.optimize.mmwave_fm import FmProblem, Subspace, fm_step_fast
from rfctl.outcome import Outcome, SolverStatus, StopReason
from rfctl.state import ArrayState, DesignRecord

__all__ = [
    "MmwaveResult",
    "MmwaveTask",
    "admm_hybrid",
    "baseband_ls",
    "fully_connected",
    "fully_digital",
    "mo_altmin",
    "pattern_set",
    "refine_baseband",
    "switch_and_phase",
    "task_from_scenario",
    "track",
    "wmmse_sca",
    "zf_precoder",
]

log = logging.getLogger(__name__)
FEAS_TOL = 1e-9
"""Relative tolerance of the feasibility flag: min_t G_t/Υ_t ≥ 1 − tol, ‖F‖²/P ≤ 1 + tol."""
Structure = Literal["RHB", "DHB", "PCHB"]


@dataclass
class MmwaveTask:
    """One mmWave design problem.

    Attributes
    ----------
    H : ndarray, shape (N_m, K_m)
    A : ndarray, shape (N_m, T_m)
        Sensing steering vectors.
    upsilon : ndarray, shape (T_m,)
    power : float
        P_m, W.
    sigma2 : float
    n_rf : int
    """

    H: NDArray[np.complex128]
    A: NDArray[np.complex128]
    upsilon: NDArray[np.float64]
    power: float
    sigma2: float
    n_rf: int

    def __post_init__(self) -> None:
        self.H = check_channel(self.H, np.asarray(self.H).shape[0], "mmWave channel H")
        N, K = self.H.shape
        self.A = check_channel(np.asarray(self.A).reshape(N, -1), N, "sensing steering A")
        self.upsilon = np.broadcast_to(np.asarray(self.upsilon, float),
                                       (self.A.shape[1],)).copy()
        if self.n_rf < K:
            raise ConfigError(f"N_RF = {self.n_rf} < K_m = {K}: each user needs a chain",
                              field="dbraa.n_rf", reason="N_RF < K")
        if self.power <= 0 or self.sigma2 <= 0:
            raise ConfigError("power and noise must be positive", field="mmwave.power",
                              reason="not positive")
        check_parseval(self.upsilon, self.power, N, "P_m N_m")


@dataclass
class MmwaveResult:
    """A mmWave design.

    Attributes
    ----------
    structure : str
        "FD", "FCHB", "RHB", "DHB" or "PCHB".
    F : ndarray, shape (N_m, K_m)
        The transmitted precoder (F_RF F_BB, or F for FD), after any final scaling.
    phases : ndarray, shape (N_m,) or None
        Phase shifters, rad (RHB/DHB/PCHB).
    switch : ndarray, shape (N_m, N_RF) bool or None
    F_rf : ndarray, shape (N_m, N_RF) or None
        The analog beamformer (FCHB: fully connected unit-modulus).
    F_bb : ndarray, shape (N_RF, K_m) or None
    sum_rate : float
        bit/s/Hz, from rfctl.metrics.
    sinr, gains : ndarray
        Per-user SINR and per-target sensing gain of ``F``.
    outcome : Outcome
        How the design's main iteration ended: FD the WMMSE–SCA loop (CONVERGED when
        the sum-rate change test fired, ITERATION_CAP, INFEASIBLE); ADMM designs the
        ADMM loop (CONVERGED when ‖ΔF_RF F_BB‖² ≤ ε P_m fired, else ITERATION_CAP; with
        no ADMM iteration, as in a cheap :func:`track` update, the final step's);
        FCHB the final step's. ``status`` is that of the last F_m (or F_BB)
        subproblem. ``residuals`` (dimensionless): ``gain_margin_rel`` =
        min_t(G_t/Υ_t) − 1, ``power_margin_rel`` = ‖F‖²/P_m − 1; hybrid designs also
        ``hybrid_residual_rel`` = ‖F_m − F_RF F_BB‖_F / ‖F_m‖_F; ADMM designs also
        ``rate_to_fd_ratio`` (sum-rate over that of the fully digital start) and, after
        :func:`track`, ``rate_to_fd_ref_ratio`` (that ratio at the last full update).
    baseband : Outcome or None
        Outcome of the final feasibility step (:func:`refine_baseband`), if it ran.
    update : str
        "cold" (designed from scratch), or for :func:`track` "tracked-baseband" (the
        cheap update) or "tracked-admm" (the full update).
    scaled : bool
        True if F_BB was scaled down to meet P_m.
    feasible : bool
        True if the returned ``F`` meets every sensing gain and the power budget to
        :data:`FEAS_TOL` (relative); ``outcome.residuals`` hold the margins either way.
    trace : list of float
        Sum-rate of F_RF F_BB (or F) after each iteration.
    elapsed_s : float
    F_digital : ndarray, shape (N_m, K_m) or None
        ADMM: the fully digital start F_m the ADMM began from (the warm start of
        :func:`track`).
    dual : (ndarray, float) or None
        ADMM: the final dual variable D (N_m × K_m) and penalty ρ (warm start of
        :func:`track`).
    """

    structure: str
    F: NDArray[np.complex128]
    phases: NDArray[np.float64] | None
    switch: NDArray[np.bool_] | None
    F_rf: NDArray[np.complex128] | None
    F_bb: NDArray[np.complex128] | None
    sum_rate: float
    sinr: NDArray[np.float64]
    gains: NDArray[np.float64]
    outcome: Outcome
    baseband: Outcome | None = None
    update: str = "cold"
    scaled: bool = False
    feasible: bool = True
    trace: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    record: DesignRecord | None = None
    F_digital: NDArray[np.complex128] | None = None
    dual: tuple[NDArray[np.complex128], float] | None = None

    def state(self) -> ArrayState:
        """The design as an ArrayState (phases, switch matrix, F_BB) for the HAL."""
        if self.phases is None:
            raise ConfigError(f"a {self.structure} design has no phase-shifter/switch "
                              "state to program", field="structure", reason="not hybrid")
        return ArrayState(phases=self.phases, switch=self.switch, f_bb=self.F_bb,
                          record=self.record or DesignRecord())


# --------------------------------------------------------------------------- helpers
def _wmmse(H: NDArray, F: NDArray, sigma2: float) -> tuple[NDArray, NDArray]:
    """u_k (eq. 72) and w_k = 1/e_k (eq. 74) for precoder F."""
    HF = H.conj().T @ F  # [k, i] = h_kᴴ f_i
    tot = np.sum(np.abs(HF) ** 2, axis=1) + sigma2
    d = np.diag(HF)
    u = d.conj() / tot
    e = 1.0 - np.abs(d) ** 2 / tot  # MMSE
    return u, 1.0 / np.maximum(e, 1e-300)


def _wmmse_rate(H: NDArray, F: NDArray, sigma2: float) -> tuple[NDArray, NDArray, float]:
    """:func:`_wmmse` and the sum-rate of F (as rfctl.metrics computes it) from one HᴴF."""
    HF = H.conj().T @ F  # [k, i] = h_kᴴ f_i
    G = np.abs(HF) ** 2
    d, sig = HF.diagonal(), G.diagonal()
    Gs = G.sum(axis=1)
    tot = Gs + sigma2
    u = d.conj() / tot
    e = 1.0 - np.abs(d) ** 2 / tot  # MMSE
    rate = float(np.sum(np.log2(1.0 + sig / ((Gs - sig) + sigma2))))
    return u, 1.0 / np.maximum(e, 1e-300), rate


def _evaluate(task: MmwaveTask, structure: str, F: NDArray, outcome: Outcome,
              **kw) -> MmwaveResult:
    """The result for precoder F; the margins are added to ``outcome.residuals``."""
    s = sinr(task.H, F, task.sigma2)
    g = beam_gain(task.A, F) if task.A.shape[1] else np.zeros(0)
    res = outcome.residuals
    res["gain_margin_rel"] = float(np.min(g / task.upsilon) - 1) if g.size else 0.0
    res["power_margin_rel"] = float(np.vdot(F, F).real / task.power - 1)
    feasible = res["gain_margin_rel"] >= -FEAS_TOL and res["power_margin_rel"] <= FEAS_TOL
    if not feasible:
        log.warning("%s design misses its constraints: gain margin %+.3g, power margin %+.3g",
                    structure, res["gain_margin_rel"], res["power_margin_rel"])
    return MmwaveResult(structure=structure, F=F, sum_rate=sum_rate(s), sinr=s, gains=g,
                        outcome=outcome, feasible=feasible, **kw)


def initial_precoder(task: MmwaveTask) -> NDArray[np.complex128]:
    """Eq. 70: columns κ(h_k + Σ_t a_t), κ so that ‖F‖² = P_m; a sensing fix-up if needed."""
    a_sum = task.A.sum(axis=1)
    F = task.H + a_sum[:, None]
    F *= np.sqrt(task.power) / np.linalg.norm(F)
    T = task.A.shape[1]
    if T and np.any(beam_gain(task.A, F) < task.upsilon):
        # add, to every column, the least-norm beam x with |a_tᴴ x|² ≥ Υ_t for all t
        x = task.A @ np.linalg.lstsq(task.A.conj().T @ task.A,
                                     np.sqrt(task.upsilon).astype(complex), rcond=None)[0]
        F = F + x[:, None]
        F *= np.sqrt(task.power) / np.linalg.norm(F)
        if np.any(beam_gain(task.A, F) < task.upsilon):
            raise InfeasibleError(
                "no starting point meets the sensing thresholds within P_m (the "
                "thresholds may be too high for these directions)",
                bound="sensing gains at P_m", value=float(np.max(task.upsilon)))
    return F


def zf_precoder(task: MmwaveTask) -> NDArray[np.complex128]:
    """Zero-forcing directions H (HᴴH)⁺, unit-norm columns, equal power, ‖F‖² = P_m.

    The start of the fully digital iterations in :func:`admm_hybrid` (``init="zf"``): it
    already nulls inter-user interference, so WMMSE–SCA reaches the fully digital
    optimum's sum-rate in tens of iterations instead of hundreds from eq. 70 (the
    sensing gains are then raised by the back-off steps of :func:`wmmse_sca`).
    """
    H = task.H
    Z = H @ np.linalg.pinv(H.conj().T @ H)
    Z = Z / np.maximum(np.linalg.norm(Z, axis=0), 1e-300)[None, :]
    Z *= np.sqrt(task.power / H.shape[1])
    if task.A.shape[1] and np.any(beam_gain(task.A, Z) < task.upsilon):
        # the least-norm beam meeting every target (eq. 70's fix-up), shared by the
        # columns, with the power split between it and the ZF beams
        x = task.A @ np.linalg.lstsq(task.A.conj().T @ task.A,
                                     np.sqrt(task.upsilon).astype(complex), rcond=None)[0]
        Z = Z + x[:, None] / np.sqrt(H.shape[1])
        Z *= np.sqrt(task.power) / np.linalg.norm(Z)
    return Z


def pattern_set(structure: Structure, n: int, n_rf: int) -> NDArray[np.bool_]:
    """Allowed switch rows: (n_patterns, n_rf) for RHB/DHB, or (n, 1, n_rf) for PCHB."""
    if structure == "RHB":
        b = np.arange(1 << n_rf)
        return ((b[:, None] >> np.arange(n_rf)[None, :]) & 1).astype(bool)
    if structure == "DHB":
        return np.eye(n_rf, dtype=bool)  # every antenna on exactly one chain
    if structure == "PCHB":
        chain = (np.arange(n) * n_rf) // n
        return np.eye(n_rf, dtype=bool)[chain][:, None, :]
    raise ConfigError(f"unknown structure {structure!r}", field="structure", reason="unknown")


def switch_and_phase(Fk: NDArray, F_bb: NDArray, patterns: NDArray[np.bool_]
                     ) -> tuple[NDArray, NDArray[np.bool_]]:
    """Eqs. 82–86 for every antenna at once.

    Parameters
    ----------
    Fk : ndarray, shape (N, K)
        Target F_m + ρD.
    F_bb : ndarray, shape (N_RF, K)
    patterns : ndarray, shape (B, N_RF) shared, or (N, B, N_RF) per antenna

    Returns
    -------
    phases : ndarray, shape (N,)
        rad; 0 for an antenna on no chain.
    S : ndarray, shape (N, N_RF) bool
    """
    if patterns.ndim == 2:
        V = patterns.astype(float) @ F_bb  # (B, K): F_BBᵀ s_b
        inner = Fk.conj() @ V.T  # (N, B): f_k,mᴴ F_BBᵀ s_b
        cost = np.sum(np.abs(V) ** 2, axis=1)[None, :] - 2 * np.abs(inner)
        best = np.argmin(cost, axis=1)
        S = patterns[best]
        ip = inner[np.arange(Fk.shape[0]), best]
    else:
        V = patterns.astype(float) @ F_bb  # (N, B, K)
        inner = np.einsum("nk,nbk->nb", Fk.conj(), V)
        cost = np.sum(np.abs(V) ** 2, axis=2) - 2 * np.abs(inner)
        best = np.argmin(cost, axis=1)
        S = patterns[np.arange(Fk.shape[0]), best]
        ip = inner[np.arange(Fk.shape[0]), best]
    phases = -np.angle(ip)  # f_P,m = exp(−j∠(f_k,mᴴ F_BBᵀ s))
    return phases, S


def baseband_ls(phases: NDArray, S: NDArray[np.bool_], Fk: NDArray) -> NDArray:
    """Eq. 88: F_BB = F_RF⁺ F_k (the least-norm least-squares fit) for F_RF = diag(e^{jφ}) S.

    F_RFᴴ F_RF = SᵀS (unit-modulus phases) and F_RF⁺ = (F_RFᴴF_RF)⁺ F_RFᴴ, so the fit is
    (SᵀS)⁺ Sᵀ diag(e^{−jφ}) F_k: an N_RF × N_RF problem instead of an N × N_RF one.
    SᵀS counts the antennas shared by two chains: an integer matrix, singular only when
    a chain is unused or two chains have the same antennas. Otherwise its Cholesky
    pivots l_ii² = det G_i / det G_{i−1} are ≥ 1/N^{N_RF−1} (det G_i ≥ 1, det G_{i−1} ≤
    N^{i−1}), far above rounding, so a Cholesky solve with pivots ≥ 10⁻¹² max_i G_ii is
    used and the least-norm solution (singular values of SᵀS below 10⁻¹⁰ of the
    largest: exactly the zero ones) otherwise.

    Parameters
    ----------
    phases : ndarray, shape (N,)
        rad.
    S : ndarray, shape (N, N_RF) bool
    Fk : ndarray, shape (N, K)

    Returns
    -------
    F_bb : ndarray, shape (N_RF, K)
    """
    Sf = S.astype(float)
    rhs = Sf.T @ (np.exp(-1j * phases)[:, None] * Fk)
    G = Sf.T @ Sf
    K = rhs.shape[1]
    c, x, info = _dposv(G, np.hstack([rhs.real, rhs.imag]), lower=1)
    if info == 0 and float(c.diagonal().min()) ** 2 >= 1e-12 * float(G.diagonal().max()):
        return x[:, :K] + 1j * x[:, K:]
    return np.linalg.lstsq(G, rhs, rcond=1e-10)[0]


# --------------------------------------------------------------------------- MO-AltMin
def mo_altmin(F_opt: NDArray, n_rf: int, *, power: float | None = None,
              rng: np.random.Generator | None = None, outer: int = 20, inner: int = 30
              ) -> tuple[NDArray, NDArray]:
    """Fully connected hybrid fit of F_opt (MO-AltMin, Yu et al. 2016).

    Alternates F_BB = F_RF⁺ F_opt (least squares) with Riemannian gradient steps on the
    unit-modulus F_RF. The Euclidean gradient is −2(F_opt − F_RF F_BB)F_BBᴴ, projected
    on the tangent space and retracted elementwise to |x| = 1.

    Returns
    -------
    F_rf : ndarray, shape (N, n_rf), unit modulus
    F_bb : ndarray, shape (n_rf, K), scaled so that ‖F_RF F_BB‖² = power (if given)
    """
    N, K = F_opt.shape
    if rng is None:
        rng = np.random.default_rng(0)
    X = np.exp(1j * rng.uniform(0, 2 * np.pi, (N, n_rf)))
    m = min(K, n_rf)
    X[:, :m] = np.exp(1j * np.angle(F_opt[:, :m]))  # start from the columns' phases
    for _ in range(outer):
        Fbb = np.linalg.lstsq(X, F_opt, rcond=None)[0]
        R = F_opt - X @ Fbb  # residual, carried with the accepted X below
        f = float(np.vdot(R, R).real)
        step = 1.0 / max(np.linalg.norm(Fbb, 2) ** 2, 1e-12)
        FbbH = Fbb.conj().T
        for _ in range(inner):
            G = -2 * (R @ FbbH)
            G -= (G.real * X.real + G.imag * X.imag) * X  # tangent projection
            gn = float(np.vdot(G, G).real)
            if gn < 1e-20:
                break
            t = step
            while True:
                Xn = X - t * G
                Xn /= np.abs(Xn)
                Rn = F_opt - Xn @ Fbb
                fn = float(np.vdot(Rn, Rn).real)
                if fn <= f - 1e-4 * t * gn or t < 1e-12:
                    break
                t *= 0.5
            X, f, R = Xn, fn, Rn
            step = t * 2
    Fbb = np.linalg.lstsq(X, F_opt, rcond=None)[0]
    if power is not None:
        Fbb *= np.sqrt(power) / max(np.linalg.norm(X @ Fbb), 1e-300)
    return X, Fbb


# --------------------------------------------------------------------------- WMMSE-SCA
@dataclass
class SolveInfo:
    """How a WMMSE–SCA loop ended.

    Attributes
    ----------
    trace : list of float
        Sum-rate after each iteration (bit/s/Hz), the start first.
    outcome : Outcome
        ``stop_reason`` CONVERGED (relative sum-rate change ≤ tol with every gain met),
        ITERATION_CAP or INFEASIBLE (no point meeting the sensing gains within P was
        found); ``status`` OPTIMAL, or INFEASIBLE when the last F subproblem was.
    restored : bool
        True if some iteration had to ask for less than the full sensing targets.
    """

    trace: list[float]
    outcome: Outcome
    restored: bool = False


def wmmse_sca(H: NDArray, A: NDArray, upsilon: NDArray, power: float, sigma2: float,
              F0: NDArray, *, max_iter: int = 300, tol: float = 1e-6
              ) -> tuple[NDArray, SolveInfo]:
    """Sum-rate maximisation under ‖Fᴴa_t‖² ≥ Υ_t and ‖F‖² ≤ P by WMMSE with SCA.

    Each iteration updates the WMMSE receivers and weights (eqs. 72, 74) and solves the
    F problem with the sensing gains linearised at the current F (eq. 76), exactly, by
    :func:`fm_step_fast` (with a proximal weight 10⁻⁶ towards the current F). The
    linearisation is an inner approximation, so once an iterate is feasible every later
    one is, and the sum-rate does not decrease.

    From a start that misses some gains, each iteration asks for
    Υ'_t = Υ_t − (1 − s)(Υ_t − G_t)⁺ (G_t the current gains) with the largest s in
    {1, 1/2, …, 2⁻¹⁰} whose linearised problem is feasible (s → 0 is always feasible:
    the current point meets it). The gains rise towards Υ while the WMMSE objective
    stays in the loop (a pure least-norm restoration loses most of the sum-rate).

    Parameters
    ----------
    H : ndarray, shape (n, K)
    A : ndarray, shape (n, T)
    upsilon : ndarray, shape (T,)
    power : float
        W.
    sigma2 : float
    F0 : ndarray, shape (n, K)
        Start.
    max_iter : int
    tol : float
        Stop when the sum-rate changes by at most ``tol`` (relative) in one iteration and
        every gain is met.

    Returns
    -------
    F : ndarray, shape (n, K)
    info : SolveInfo
        ``outcome.stop_reason`` is CONVERGED, ITERATION_CAP or INFEASIBLE (the gains
        were still short at the end, or no step was possible).
    """
    F = F0
    pw = float(np.vdot(F, F).real)
    if pw > power:
        F = F * np.sqrt(power / pw)
    u, w, rate = _wmmse_rate(H, F, sigma2)
    trace: list[float] = [rate]
    hint: dict = {}
    it = 0
    reason = StopReason.ITERATION_CAP
    status = SolverStatus.OPTIMAL
    restored = False
    basis = Subspace.of(H, A)
    while it < max_iter:
        it += 1
        gbar = (F.conj().T @ A).T
        g = np.sum(np.abs(gbar) ** 2, axis=1)
        short = np.maximum(upsilon - g, 0.0)
        step = 1.0
        while True:
            target = upsilon - (1.0 - step) * short
            p = FmProblem(H, u, w, F, 1e-6, power, A, gbar, target)
            Fn, info = fm_step_fast(p, nu_hint=hint.get("nu"), mu_hint=hint.get("mu"),
                                    basis=basis)
            if info["feasible"] or step < 2.0 ** -10:
                break
            step /= 2
            restored = True
        if not info["feasible"]:
            reason, status = StopReason.INFEASIBLE, SolverStatus.INFEASIBLE
            break
        hint = info
        F = Fn
        u, w, rate = _wmmse_rate(H, F, sigma2)  # this iterate's rate, the next one's u, w
        trace.append(rate)
        if step == 1.0 and abs(trace[-1] - trace[-2]) <= tol * max(1.0, abs(trace[-1])):
            reason = StopReason.CONVERGED
            break
    if np.any(beam_gain(A, F) < upsilon * (1 - FEAS_TOL)):
        reason = StopReason.INFEASIBLE
    return F, SolveInfo(trace, Outcome(reason, it, status), restored)


def refine_baseband(task: MmwaveTask, F_rf: NDArray, F_bb: NDArray, *, max_iter: int = 100,
                    tol: float = 1e-5) -> tuple[NDArray, SolveInfo]:
    """The final feasibility step: WMMSE–SCA on F_BB with the analog beamformer fixed.

    With F_RF = U Σ Vᴴ (thin SVD, rank r), every precoder F_RF F_BB is U Y for an
    r × K matrix Y, with ‖F‖ = ‖Y‖, h_kᴴF = (Uᴴh_k)ᴴY and a_tᴴF = (Uᴴa_t)ᴴY. So the step is
    :func:`wmmse_sca` on the r-dimensional channels Uᴴ H and steering vectors Uᴴ A, from
    Y = Uᴴ F_RF F_BB, and F_BB = V Σ⁻¹ Y. It returns a design that meets the sensing gains
    and the power exactly (up to the QP's rounding) whenever one is found, and never
    lowers the sum-rate of a feasible start.

    Parameters
    ----------
    task : MmwaveTask
    F_rf : ndarray, shape (N, N_RF)
    F_bb : ndarray, shape (N_RF, K)
        Start.

    Returns
    -------
    F_bb : ndarray, shape (N_RF, K)
    info : SolveInfo
    """
    U, sv, Vh = np.linalg.svd(F_rf, full_matrices=False)
    r = int(np.sum(sv > sv[0] * 1e-10)) if sv.size and sv[0] > 0 else 0
    if r == 0:
        return F_bb, SolveInfo([0.0], Outcome(StopReason.INFEASIBLE, 0,
                                              SolverStatus.INFEASIBLE))
    U, sv, Vh = U[:, :r], sv[:r], Vh[:r]
    Y0 = U.conj().T @ (F_rf @ F_bb)
    Y, info = wmmse_sca(U.conj().T @ task.H, U.conj().T @ task.A, task.upsilon, task.power,
                        task.sigma2, Y0, max_iter=max_iter, tol=tol)
    return Vh.conj().T @ (Y / sv[:, None]), info


def _in_subspace(task: MmwaveTask, F0: NDArray, *, max_iter: int, tol: float
                 ) -> tuple[NDArray, SolveInfo]:
    """:func:`wmmse_sca` for the fully digital problem, solved in span{h_k, a_t}.

    Objective and constraints see F only through Hᴴ F, Aᴴ F and ‖F‖, so a component of F
    orthogonal to Q = orth[H, A] only spends power: every iterate of the full-space
    method from a start in span Q stays there, and the optimum lies there. Working with
    Qᴴ H and Qᴴ A ((K + T) rows instead of N_m) gives the same iterates at a fraction of
    the cost. The start is projected onto span Q (which keeps Hᴴ F and Aᴴ F and does not
    raise the power).
    """
    Q, sv, _ = np.linalg.svd(np.hstack([task.H, task.A]), full_matrices=False)
    Q = Q[:, sv > sv[0] * 1e-12]
    Qh = Q.conj().T
    X, info = wmmse_sca(Qh @ task.H, Qh @ task.A, task.upsilon, task.power, task.sigma2,
                        Qh @ F0, max_iter=max_iter, tol=tol)
    return Q @ X, info


# --------------------------------------------------------------------------- FD
def fully_digital(task: MmwaveTask, *, max_iter: int = 2000, tol: float = 1e-6,
                  start: NDArray | None = None) -> MmwaveResult:
    """FD: WMMSE with the sensing constraints by SCA (the F_m problem alone).

    Starts from eq. 70 (or ``start``) and stops when the sum-rate changes by at most
    ``tol`` (relative) in one iteration (``outcome.stop_reason`` CONVERGED) or after
    ``max_iter`` iterations (ITERATION_CAP).
    """
    t0 = time.perf_counter()
    F0 = initial_precoder(task) if start is None else start
    F, info = _in_subspace(task, F0, max_iter=max_iter, tol=tol)
    return _evaluate(task, "FD", F, info.outcome, phases=None, switch=None, F_rf=None,
                     F_bb=None, trace=info.trace, elapsed_s=time.perf_counter() - t0)


def fully_connected(task: MmwaveTask, *, fd: MmwaveResult | None = None,
                    rng: np.random.Generator | None = None) -> MmwaveResult:
    """FCHB: MO-AltMin fitted to the FD design, then the final feasibility step on F_BB."""
    t0 = time.perf_counter()
    fd = fd or fully_digital(task)
    X, Fbb = mo_altmin(fd.F, task.n_rf, power=task.power, rng=rng)
    hyb = float(np.linalg.norm(fd.F - X @ Fbb) / np.linalg.norm(fd.F))
    Fbb, info = refine_baseband(task, X, Fbb)
    F = X @ Fbb
    # MO-AltMin runs a fixed number of alternations: the final step decides the outcome
    outcome = replace(info.outcome, residuals={"hybrid_residual_rel": hyb})
    return _evaluate(task, "FCHB", F, outcome, phases=None, switch=None, F_rf=X, F_bb=Fbb,
                     baseband=info.outcome, trace=info.trace,
                     elapsed_s=time.perf_counter() - t0)


# --------------------------------------------------------------------------- ADMM
def admm_hybrid(task: MmwaveTask, structure: Structure = "RHB", *, max_iter: int = 300,
                eps: float = 3e-5, rho0: float = 1.0, rho_decay: float = 0.9,
                rho_min: float = 1e-3, init: Literal["zf", "fd", "eq70"] = "zf",
                start_iters: int = 120, start_tol: float = 1e-4, inner: int = 1,
                inner_tol: float = 1e-4,
                final: Literal["refine", "scale"] = "refine",
                start: NDArray | None = None, warm: MmwaveResult | None = None,
                warm_dual: bool = False, baseband_iters: int = 100,
                rng: np.random.Generator | None = None) -> MmwaveResult:
    """Algorithm 3 (ADMM-RHB); ``structure`` selects RHB, DHB or PCHB.

    Parameters
    ----------
    task : MmwaveTask
    structure : {"RHB", "DHB", "PCHB"}
    max_iter, eps : int, float
        I_M and ε of the stopping rule (ε relative to P_m).
    rho0, rho_decay, rho_min : float
        Penalty schedule ρ_i = max(ρ₀ γⁱ, ρ_min).
    init : {"zf", "fd", "eq70"}
        Start of F_m: eq. 70 (the seed); eq. 70 followed by fully digital WMMSE–SCA
        iterations ("fd"); or the zero-forcing precoder followed by them ("zf", the
        default; see the module docstring). The iterations stop when the sum-rate
        changes by ≤ ``start_tol`` (relative) or after ``start_iters``.
    inner, inner_tol : int, float
        SCA iterations of eq. 77 per ADMM iteration (re-linearising at the new F_m),
        stopped early when ‖ΔF_m‖² ≤ inner_tol · P_m.
    final : {"refine", "scale"}
        Final step: :func:`refine_baseband` (exact feasibility) or the old scaling of F_BB.
    start : ndarray, shape (N, K), optional
        F_m start (overrides ``init``).
    warm : MmwaveResult, optional
        A previous design of the same structure (see :func:`track`): F_m starts from
        its digital iterate, followed by ``start_iters`` fully digital WMMSE–SCA
        iterations on the new channel, and the analog part and F_BB start from it
        (no MO-AltMin).
    warm_dual : bool
        With ``warm``: also start D and ρ from its final values.
    baseband_iters : int
        Iteration cap of the final :func:`refine_baseband` step.

    Returns
    -------
    MmwaveResult
        With phases, switch matrix, F_BB and residuals.
    """
    t0 = time.perf_counter()
    N, K = task.H.shape
    patterns = pattern_set(structure, N, task.n_rf)
    if warm is not None:
        if warm.F_bb is None or warm.phases is None or warm.switch is None:
            raise ConfigError("a warm start needs a hybrid design (phases, switch, F_BB)",
                              field="warm", reason="not hybrid")
        Fm = start if start is not None else (
            warm.F_digital if warm.F_digital is not None else warm.F)
        if start_iters > 0:
            Fm, _ = _in_subspace(task, Fm, max_iter=start_iters, tol=start_tol)
        Fbb, phases, S = warm.F_bb, warm.phases, warm.switch
        F_start = Fm
    else:
        if start is not None:
            Fm = start
        else:
            Fm = zf_precoder(task) if init == "zf" else initial_precoder(task)
            if init in ("zf", "fd") and start_iters > 0:
                Fm, _ = _in_subspace(task, Fm, max_iter=start_iters, tol=start_tol)
        F_start = Fm
        _, Fbb = mo_altmin(Fm, task.n_rf, power=task.power, rng=rng, outer=3, inner=10)
        phases, S = switch_and_phase(Fm, Fbb, patterns)
    D = np.zeros((N, K), complex)
    rho = rho0
    if warm is not None and warm_dual and warm.dual is not None:
        D, rho = warm.dual[0].copy(), max(warm.dual[1], rho_min)
    Frf = np.exp(1j * phases)[:, None] * S
    Fh = Frf @ Fbb
    trace: list[float] = []
    hint: dict = {"feasible": True}
    basis = Subspace.of(task.H, task.A)  # fixed for every F_m step of the run
    reason = StopReason.ITERATION_CAP
    it = 0
    while it < max_iter:
        it += 1
        u, w = _wmmse(task.H, Fm, task.sigma2)                      # eqs. 72, 74
        for _ in range(inner):                                      # eq. 77 by SCA
            gbar = (Fm.conj().T @ task.A).T
            p = FmProblem(task.H, u, w, Fh - rho * D, 1 / (2 * rho), task.power, task.A,
                          gbar, task.upsilon)
            Fn, hint = fm_step_fast(p, nu_hint=hint.get("nu"), mu_hint=hint.get("mu"),
                                    basis=basis)
            dF = Fn - Fm
            Fm = Fn
            if inner > 1 and float(np.vdot(dF, dF).real) <= inner_tol * task.power:
                break
        Fk = Fm + rho * D
        phases, S = switch_and_phase(Fk, Fbb, patterns)             # eqs. 82–86
        Frf = np.exp(1j * phases)[:, None] * S
        Fbb = baseband_ls(phases, S, Fk)                            # eq. 88
        Fh_new = Frf @ Fbb
        D = D + (Fm - Fh_new) / rho                                 # eq. 89
        change = float(np.sum(np.abs(Fh_new - Fh) ** 2))
        Fh = Fh_new
        trace.append(sum_rate(sinr(task.H, Fh, task.sigma2)))
        rho = max(rho * rho_decay, rho_min)
        if change <= eps * task.power:  # stopping rule (ii)
            reason = StopReason.CONVERGED
            break
    hyb = float(np.linalg.norm(Fm - Fh) / max(np.linalg.norm(Fm), 1e-300))
    outcome = Outcome(reason, it, SolverStatus.OPTIMAL if hint["feasible"]
                      else SolverStatus.INFEASIBLE)
    scaled = False
    baseband = None
    if final == "refine":
        Fbb, info = refine_baseband(task, Frf, Fbb, max_iter=baseband_iters)
        baseband = info.outcome
        if it == 0:  # no ADMM iteration ran: the final step is the whole update
            outcome = replace(baseband, residuals={})
        trace.extend(info.trace[1:])
    pw = float(np.vdot(Frf @ Fbb, Frf @ Fbb).real)
    if pw > task.power:
        Fbb = Fbb * np.sqrt(task.power / pw)
        scaled = True
    Fh = Frf @ Fbb
    outcome.residuals.update({"hybrid_residual_rel": hyb,
                              "rate_to_fd_ratio": _rate_to_fd(task, Fh, F_start)})
    return _evaluate(task, structure, Fh, outcome, phases=phases, switch=S, F_rf=Frf,
                     F_bb=Fbb, baseband=baseband, scaled=scaled, trace=trace,
                     elapsed_s=time.perf_counter() - t0, F_digital=F_start, dual=(D, rho))


def _rate_to_fd(task: MmwaveTask, F: NDArray, F_digital: NDArray | None) -> float:
    """Sum-rate of F over that of the fully digital start (1 if there is none)."""
    if F_digital is None:
        return 1.0
    fd = sum_rate(sinr(task.H, F_digital, task.sigma2))
    return sum_rate(sinr(task.H, F, task.sigma2)) / fd if fd > 0 else 1.0


def track(previous: MmwaveResult, task: MmwaveTask, *, fd_iters: int = 3,
          admm_iters: int = 12, rho: float = 0.3, rho_decay: float = 0.8,
          baseband_iters: int = 10, refresh_margin: float | None = 0.01) -> MmwaveResult:
    """Warm-started update of a hybrid design after a small channel change.

    Re-solves ``task`` (the new channel; same array, targets and budget) from
    ``previous``, for beam tracking within a coherence time.

    1. Cheap update: ``fd_iters`` fully digital WMMSE–SCA iterations move the previous
       fully digital start (``previous.F_digital``) to the new channel, and the final
       step (:func:`refine_baseband`, at most ``baseband_iters`` iterations) re-solves
       F_BB with the previous phases and switches.
    2. If that design is infeasible, or its sum-rate relative to the moved fully digital
       design fell by more than ``refresh_margin`` (relative) below the ratio of the last
       full update (``outcome.residuals["rate_to_fd_ref_ratio"]``; a cold design's
       ``"rate_to_fd_ratio"``), a full update runs: ``admm_iters`` ADMM iterations
       (penalty ``rho``, ×``rho_decay`` per iteration, D from zero) from the previous
       phases, switches and F_BB, then the final step. ``refresh_margin=None`` always
       runs the full update.

    Measured on a Gauss–Markov channel (BENCHMARKS.md): the cheap update alone drifts to
    ~0.87 of a cold start's sum-rate within 25 steps; warm-starting D and ρ, or fewer
    ADMM iterations at a small ρ, drift to ~0.92; the full update holds ~1.00.

    Parameters
    ----------
    previous : MmwaveResult
        The last design (RHB, DHB or PCHB, from :func:`admm_hybrid` or :func:`track`).
    task : MmwaveTask
        The problem on the new channel.

    Returns
    -------
    MmwaveResult
        The same structure; ``feasible`` and the margins as for a cold start;
        ``update`` is "tracked-baseband" or "tracked-admm".
    """
    if previous.structure not in ("RHB", "DHB", "PCHB"):
        raise ConfigError(f"track() updates hybrid designs, not {previous.structure}",
                          field="previous.structure", reason="not hybrid")
    t0 = time.perf_counter()
    structure = previous.structure
    cheap = admm_hybrid(task, structure, warm=previous,  # type: ignore[arg-type]
                        start_iters=fd_iters, max_iter=0, baseband_iters=baseband_iters)
    prev_res = previous.outcome.residuals
    q_ref = prev_res.get("rate_to_fd_ref_ratio", prev_res.get("rate_to_fd_ratio"))
    q = cheap.outcome.residuals["rate_to_fd_ratio"]
    if refresh_margin is not None and q_ref is not None and cheap.feasible \
            and q >= q_ref * (1 - refresh_margin):
        cheap.outcome.residuals["rate_to_fd_ref_ratio"] = q_ref
        cheap.update = "tracked-baseband"
        cheap.elapsed_s = time.perf_counter() - t0
        return cheap
    full = admm_hybrid(task, structure, warm=previous,  # type: ignore[arg-type]
                       start=cheap.F_digital, start_iters=0, max_iter=admm_iters,
                       rho0=rho, rho_decay=rho_decay, baseband_iters=baseband_iters)
    full.outcome.residuals["rate_to_fd_ref_ratio"] = full.outcome.residuals["rate_to_fd_ratio"]
    full.update = "tracked-admm"
    full.elapsed_s = time.perf_counter() - t0
    return full


# --------------------------------------------------------------------------- scenario
def task_from_scenario(scenario: Scenario, realisation: int = 0, *,
                       power: float | None = None) -> MmwaveTask:
    """The mmWave task of one channel realisation (P_m from the scenario or ``power``)."""
    bp = band_problem(scenario, "mmwave", realisation)
    mm = scenario.mmwave
    assert mm is not None
    return MmwaveTask(H=bp.channel.H, A=bp.A,
                      upsilon=np.full(len(mm.targets), mm.gain_threshold),
                      power=mm.power if power is None else power, sigma2=mm.noise_power,
                      n_rf=bp.spec.n_rf)
