"""Phase calibration by rotating one element at a time (the rotating-element method).

The beam points at the probe, using the current estimate of the offsets. For each
element n, its phase is stepped through M equally spaced states ψ_k = 2πk/M while the
received power P_k is measured. With the field R of all the other elements,

    P(ψ) = |R + g_n e^{j(ψ + γ_n)}|² = c₀ + 2 g_n |R| cos(ψ + γ_n − ∠R),

so the first Fourier coefficients b = (2/M) Σ P_k cos ψ_k and c = (2/M) Σ P_k sin ψ_k
give γ_n − ∠R = atan2(−c, b). Here γ_n is the element's uncompensated phase error at
ψ = 0. That includes the quantization error of its base code, which the HAL reports
and which is therefore subtracted. Adding the rest to the estimate aligns element n
with the others. ∠R is common to all
elements, and the global phase is irrelevant, so the circular mean is removed. Two or
three passes converge; the first corrects offsets of any size.

Noise: with complex receiver noise σ (in units of one element's field), the phase
estimate of element n has standard deviation ≈ σ / (g_n √M) radians, whatever |R| is.
The tests derive their tolerance from this.

The result is a calibration table (CSV ``element,phase_offset_rad``). A board profile
points at it (``calibration_file``), and the HAL then quantizes φ − δ̂_n.

**Few-bit banks.** The global phase of the offsets is free for a continuous phase
shifter but not for a b-bit one: a common rotation α of the table changes every
element's quantization. After each pass the rotation is chosen that maximises the
predicted field of the quantized beam (a search over α in one code step), instead of
removing the circular mean.

**One-bit banks** cannot rotate an element through a circle (M = 2 states give only
the sign of the cosine). :func:`onebit_calibration` instead estimates every element's
complex contribution d_n relative to a reference from power readings
(:func:`rfctl.lab.blind.channel_estimation`) and writes offsets δ̂_n = ∠(−d_n) − θ_ref,
so that quantizing the zero-phase beam gives x_n = [Re(e^{−jθ_ref} d_n) > 0]. The global
phase θ_ref, which a one-bit board cannot absorb, is fixed explicitly: ``"optimum"`` (the
direction of the exact best one-bit configuration for the estimated channel — the
received field including the direct path is the reference) or an element index (that
element's contribution is the reference). Too small a budget, or a reference element
whose contribution is not measurably above the others' noise, is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import sleep as _sleep  # the settle wait (a test counts the calls)

import numpy as np

from rfctl.config import BoardProfile
from rfctl.errors import ConfigError, RfctlError
from rfctl.hal import CompiledBoard, compile_board, quantize
from rfctl.hal.codebooks import UniformPhaseCodebook
from rfctl.hal.device import Device
from rfctl.hal.program import program
from rfctl.lab.blind import (
    MeasurementLog,
    best_onebit,
    channel_estimation,
    estimation_budget,
)
from rfctl.lab.instruments import PowerSensor
from rfctl.lab.optimize import codes_image, lab_routing, restore_board, restore_outcome
from rfctl.lab.restore import RestoreOutcome, stopped_message
from rfctl.lab.sweeps import has_switch, steering_state
from rfctl.state import ArrayState

__all__ = ["CalibrationInterruptedError", "CalibrationResult", "check_onebit", "check_rotation",
           "onebit_calibration", "phase_calibration", "write_calibration"]

log = logging.getLogger(__name__)


@dataclass
class CalibrationResult:
    """Outcome of :func:`phase_calibration`.

    Attributes
    ----------
    offsets : ndarray, shape (N,)
        Estimated phase offsets δ̂_n, rad (circular mean removed).
    passes : list of ndarray
        The estimate after each pass.
    measurements : int
        Power readings taken.
    power_before_w, power_after_w : float
        Power at the probe with the plain steering beam, and with the calibrated one.
    amplitudes : ndarray, shape (N,)
        Fitted cosine amplitudes 2 g_n |R| of the last pass (relative element gains;
        one-bit: |d_n|, W^½).
    readings : list of dict
        Every reading (``n``, ``phase``, ``power_w``; rotating method also ``element``,
        ``state``).
    reference : str
        How the global phase was fixed.
    """

    offsets: np.ndarray
    passes: list[np.ndarray] = field(default_factory=list)
    measurements: int = 0
    power_before_w: float = float("nan")
    power_after_w: float = float("nan")
    amplitudes: np.ndarray | None = None
    readings: list[dict] = field(default_factory=list)
    reference: str = "circular mean"


class CalibrationInterruptedError(RfctlError):
    """A calibration stopped early (Ctrl-C, a device or instrument error): ``readings``
    holds every reading taken, and the board was put back on its previous image
    (``restored`` says whether that succeeded). The cause is chained (``__cause__``)."""

    def __init__(self, message: str, readings: list[dict], restored: bool,
                 restore: RestoreOutcome | None = None) -> None:
        super().__init__(message)
        self.readings = readings
        self.restored = restored
        self.restore = restore


def _interrupted(what: str, done: int, total: int, exc: BaseException, readings: list[dict],
                 got: RestoreOutcome) -> CalibrationInterruptedError:
    return CalibrationInterruptedError(
        stopped_message(f"{what} stopped after {done} of {total} readings", exc, got),
        readings, got.restored, got)


def _with_offsets(profile: BoardProfile, offsets: np.ndarray) -> CompiledBoard:
    """The profile's code books with the phase bank calibrated by ``offsets``."""
    cb = compile_board(profile)
    ph = profile.bank("phase")
    book = cb.codebooks[ph.name]
    if not isinstance(book, UniformPhaseCodebook):
        raise ConfigError("phase calibration needs a uniform phase bank", field="banks",
                          reason="table phase bank")
    cb.codebooks[ph.name] = UniformPhaseCodebook(book.bits, book.count, offsets)
    return cb


def check_rotation(profile: BoardProfile, *, rows: int, cols: int, states: int | None = None,
                   passes: int = 3) -> int:
    """The checks :func:`phase_calibration` makes before touching the board, callable on
    their own; returns the number of states M (default min(8, 2^bits)).

    Raises
    ------
    ConfigError
        ``field`` names the argument: no uniform phase bank or a one-bit one (``banks``),
        ``states`` below 2 or not dividing 2^bits, ``passes`` < 1, or ``rows`` × cols
        not the bank's element count.
    """
    ph = profile.find_bank("phase")
    if ph is None or ph.bits is None:
        raise ConfigError(f"{profile.name}: phase calibration needs a uniform phase bank",
                          field="banks", reason="no uniform phase bank")
    if ph.bits == 1:
        raise ConfigError(f"{profile.name}: bank {ph.name!r} is one-bit: an element cannot be "
                          "rotated through a circle; use onebit_calibration (rfctl lab "
                          "calibrate picks it)", field="banks", reason="one-bit bank")
    states = min(8, 1 << ph.bits) if states is None else states
    if states < 2 or (1 << ph.bits) % states:
        raise ConfigError(f"states = {states} must be ≥ 2 and divide 2^bits = {1 << ph.bits} "
                          "of the phase bank", field="states", reason="not representable")
    if passes < 1:
        raise ConfigError(f"passes = {passes} must be ≥ 1", field="passes", reason="below 1")
    if rows * cols != ph.count:
        raise ConfigError(f"rows × cols = {rows * cols} but bank {ph.name!r} has {ph.count} "
                          "elements", field="rows", reason="geometry does not match the bank")
    return states


def check_onebit(profile: BoardProfile, *, budget: int | None = None,
                 reference: str | int = "optimum") -> int:
    """The checks :func:`onebit_calibration` makes before touching the board, callable
    on their own; returns the budget (default 8N).

    Raises
    ------
    ConfigError
        ``field`` names the argument: not a one-bit phase bank (``banks``), a budget
        below 2(N + R) + 2, a reference that is neither ``"optimum"`` nor an element
        index in 0 … N − 1.
    """
    ph = profile.find_bank("phase")
    if ph is None or ph.bits != 1:
        raise ConfigError(f"{profile.name}: onebit_calibration needs a one-bit phase bank",
                          field="banks", reason="not one-bit")
    n = ph.count
    budget = 8 * n if budget is None else budget
    if isinstance(reference, int) and not 0 <= reference < n:
        raise ConfigError(f"reference element {reference} is outside 0 … {n - 1}",
                          field="reference", reason="out of range")
    if not isinstance(reference, int) and reference != "optimum":
        raise ConfigError(f"reference {reference!r} is neither 'optimum' nor an element "
                          "index", field="reference", reason="unknown reference")
    # the budget counts every reading: the uncalibrated beam, the estimation and the
    # check of the calibrated beam; a budget the estimation cannot use is refused first
    need, _ = estimation_budget(n)
    if budget < need + 2:
        raise ConfigError(f"one-bit calibration of {n} elements needs a budget of at least "
                          f"{need + 2} readings (2(N + R) = {need} for the estimation, and "
                          f"the beam before and after), got {budget}", field="budget",
                          reason="below the method's minimum")
    return budget


def phase_calibration(
    device: Device, profile: BoardProfile, sensor: PowerSensor, *, rows: int, cols: int,
    probe: tuple[float, float] = (0.0, 0.0), states: int | None = None, passes: int = 3,
    progress: Callable[[int, int], None] | None = None, settle_s: float = 0.0,
) -> CalibrationResult:
    """Estimate every element's phase offset from power measurements at a fixed probe.

    Parameters
    ----------
    device : Device
        The board (one RF chain feeds all elements during calibration).
    profile : BoardProfile
        With a uniform ``phase`` bank of at least 2 bits (a ``switch_matrix`` bank, if
        any, closes every element onto RF chain 0). One-bit banks:
        :func:`onebit_calibration`.
    sensor : PowerSensor
    rows, cols : int
        Array geometry (row-major elements).
    probe : (θ, φ)
        Where the probe is (surrogate angles).
    states : int, optional
        Phase states M ≥ 2 per element; must divide 2^bits so that each state is exact
        (default min(8, 2^bits)).
    passes : int
        Passes over all elements.
    progress : callable, optional
        ``progress(done, total)`` after each reading.
    settle_s : float
        Wait after each programming before the reading, s.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    CalibrationInterruptedError
        Stopped by Ctrl-C or a device / instrument error: the board is restored to its
        previous image and the readings taken are in the error.
    """
    states = check_rotation(profile, rows=rows, cols=cols, states=states, passes=passes)
    ph = profile.bank("phase")
    n = rows * cols
    base = steering_state(rows, cols, *probe, switch=has_switch(profile))
    step = 2 * np.pi / states
    psi = step * np.arange(states)
    est = np.zeros(n)
    history: list[np.ndarray] = []
    count = 0
    total = passes * n * states
    amps = np.zeros(n)

    readings: list[dict] = []

    def measure(board: CompiledBoard, phases: np.ndarray, **where: int) -> float:
        nonlocal count
        program(device, quantize(base.replace(phases=phases), board))
        if settle_s:
            _sleep(settle_s)
        p = sensor.read_power()
        count += 1
        readings.append({"n": count, "phase": "rotate" if where else "beam", "power_w": p,
                         **where})
        if progress is not None:
            progress(count, total + 2)
        return p

    before = device.read_active() if device.verified_active is None \
        else device.verified_active
    try:
        return _rotate(measure, profile, ph, base, est, psi, passes, n, states, amps,
                       history, readings, lambda: count)
    except (KeyboardInterrupt, RfctlError, OSError) as exc:
        got = restore_outcome(device, profile, before)  # Ctrl-C deferred meanwhile
        raise _interrupted("calibration", count, total + 2, exc, readings, got) from exc


def _rotate(measure, profile, ph, base, est, psi, passes, n, states, amps, history,
            readings, counted) -> CalibrationResult:
    """The passes of :func:`phase_calibration` (restored by the caller on failure)."""

    def base_error(board: CompiledBoard) -> np.ndarray:
        """Quantization error of the base beam per element (realised − wanted), rad."""
        return quantize(base, board).banks[ph.name].error

    power_before = measure(compile_board(profile), base.phases)
    for _ in range(passes):
        board = _with_offsets(profile, est)
        qerr = base_error(board)  # the element's phase at ψ = 0 is off by this much too
        for e in range(n):
            P = np.empty(states)
            for k in range(states):
                phases = base.phases.copy()
                phases[e] += psi[k]
                P[k] = measure(board, phases, element=e, state=k)
            b = 2 / states * np.sum(P * np.cos(psi))
            c = 2 / states * np.sum(P * np.sin(psi))
            # element error relative to the rest (+ ∠R), less its known quantization error
            est[e] += np.arctan2(-c, b) - qerr[e]
            amps[e] = np.hypot(b, c)
        est = _best_global_phase(est, amps, compile_board(profile).codebooks[ph.name].step,
                                 base.phases)
        history.append(est.copy())
        log.info("calibration pass %d: %d measurements so far", len(history), counted())
    power_after = measure(_with_offsets(profile, est), base.phases)
    return CalibrationResult(est, history, counted(), power_before, power_after, amps,
                             readings, "best quantized global phase")


def _best_global_phase(est: np.ndarray, amps: np.ndarray, step: float,
                       target: np.ndarray) -> np.ndarray:
    """The common rotation of ``est`` (within one code step) under which the quantized
    beam's predicted field is largest; the circular mean is removed first."""
    est = np.angle(np.exp(1j * est) * np.exp(-1j * np.angle(np.mean(np.exp(1j * est)))))
    w = np.maximum(amps, 0) if np.any(amps > 0) else np.ones_like(est)
    best, best_v = est, -1.0
    for a in np.linspace(0, step, 33)[:-1]:
        cand = est - a
        rel = np.mod(target - cand, 2 * np.pi)
        codes = np.rint(rel / step) % round(2 * np.pi / step)
        v = abs(np.sum(w * np.exp(1j * (codes * step + est - target))))
        if v > best_v + 1e-12:
            best, best_v = cand, v
    return np.angle(np.exp(1j * best))


def onebit_calibration(device: Device, profile: BoardProfile, sensor: PowerSensor, *,
                       rng: np.random.Generator, budget: int | None = None,
                       reference: str | int = "optimum",
                       progress: Callable[[int, int], None] | None = None,
                       settle_s: float = 0.0) -> CalibrationResult:
    """Calibrate a one-bit phase bank from power readings (see the module docstring).

    Parameters
    ----------
    device, profile, sensor
        A board whose phase bank has ``bits = 1``.
    rng : numpy.random.Generator
        Reference patterns of the estimation.
    budget : int, optional
        Readings for the estimation (default 8N; at least 2(N + R), R = the readings of
        each reference, :func:`rfctl.lab.blind.channel_estimation`). At 4N an earlier
        version of the estimation left one draw 5.8 dB short; the default stays 8N
        (4N calibration has not been re-measured with the current estimation).
    reference : "optimum" or int
        What fixes the global phase: the direction of the best configuration for the
        estimated channel (the whole received field, direct path included), or the
        contribution of element ``reference``.
    progress : callable, optional
    settle_s : float
        Wait after each programming before the reading, s.

    Returns
    -------
    CalibrationResult
        ``offsets`` such that the zero-phase beam quantizes to the estimated best
        configuration (``reference="optimum"``); ``amplitudes`` = |d_n|, W^½.

    Raises
    ------
    ConfigError
        Not a one-bit bank, a budget below 2(N + R) + 2 (refused before any reading;
        the budget counts every reading, the beam before and after included) or an
        element index out of range; refused before any reading.
    CalibrationInterruptedError
        Stopped by Ctrl-C or a device / instrument error, or refused after the readings
        because the reference element's estimated contribution is below a tenth of the
        median (its phase is not identifiable; the ConfigError is the ``__cause__``).
        The board is restored and the readings are kept.
    """
    budget = check_onebit(profile, budget=budget, reference=reference)
    ph = profile.bank("phase")
    n = ph.count
    before = device.read_active()
    device.verified_active = before
    routing = lab_routing(profile)  # a switch bank: every element on the measured chain

    def measure(codes: np.ndarray) -> float:
        program(device, codes_image(profile, codes, routing))
        if settle_s:
            _sleep(settle_s)
        return sensor.read_power()

    meas = MeasurementLog(measure, budget - 1,
                          (lambda d, t: progress(d, budget)) if progress else None)
    try:
        p_before = meas(np.zeros(n, np.int64), "uncalibrated")
        res = channel_estimation(meas, n, budget=meas.remaining, rng=rng)
        d = res.estimate["d"]
        if reference == "optimum":
            _, _, theta = best_onebit(res.estimate["gamma"], d)
            how = "optimum direction (whole received field, direct path included)"
        else:
            mags = np.abs(d)
            if mags[reference] < 0.1 * np.median(mags):
                raise ConfigError(
                    f"reference element {reference}: estimated contribution "
                    f"{mags[reference]:.3g} is below a tenth of the median {np.median(mags):.3g}"
                    "; its phase is not identifiable, choose another element or 'optimum'",
                    field="reference", reason="not identifiable")
            theta = float(np.angle(-d[reference]))
            how = f"element {reference}"
        offsets = np.angle(np.exp(1j * (np.angle(-d) - theta)))
        if reference == "optimum":
            # where the re-measured flips overruled the estimate, follow the flips: the
            # zero-phase beam is then the best configuration found
            zero = quantize(ArrayState(phases=np.zeros(n)),
                            _with_offsets(profile, offsets)).banks[ph.name].codes
            offsets = np.angle(np.exp(1j * (offsets + np.pi * (zero != res.codes))))
        cal = _with_offsets(profile, offsets)
        zero = quantize(ArrayState(phases=np.zeros(n)), cal).banks[ph.name].codes
        meas.budget += 1  # the check of the calibrated beam
        p_after = meas(zero, "calibrated")
    except (KeyboardInterrupt, RfctlError, OSError) as exc:
        if isinstance(exc, ConfigError) and not meas.rows:
            restore_board(device, profile, before)
            raise  # a refusal before any reading (budget, reference)
        # an interruption, a failure, or a refusal after readings were taken (a
        # reference element whose phase is not identifiable): the readings are kept
        got = restore_outcome(device, profile, before)  # Ctrl-C deferred meanwhile
        raise _interrupted("one-bit calibration", meas.used, budget, exc, meas.rows,
                           got) from exc
    return CalibrationResult(offsets, [offsets.copy()], meas.used, p_before, p_after,
                             np.abs(d), meas.rows, how)



def write_calibration(path: str | Path, offsets: np.ndarray) -> Path:
    """Write a calibration table the HAL reads (``element,phase_offset_rad``)."""
    path = Path(path)
    lines = ["element,phase_offset_rad"] + [f"{k},{float(v)!r}" for k, v in enumerate(offsets)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
