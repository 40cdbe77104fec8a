"""Measurement-driven configuration of a board's phase bank (``rfctl lab optimize``).

:func:`optimize_board` connects the blind methods of :mod:`rfctl.lab.blind` to a board
and a power sensor: every measurement programs the phase bank's codes (stage → latch →
verify, :func:`rfctl.hal.device.program`) and then reads the sensor, so each reading is
taken after the board latched. At the end the best configuration is programmed and
re-measured (``verify`` readings). If anything fails or the run is interrupted, the board
is put back on the image it held before the run and :class:`OptimizeInterruptedError`
carries the measurements taken so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rfctl.config import BoardProfile, PhaseBank
from rfctl.errors import ConfigError, RfctlError
from rfctl.hal.device import Device
from rfctl.hal.image import BankImage, DeviceImage, image_from_bytes, unpack_image
from rfctl.hal.program import program
from rfctl.lab.blind import (
    BlindResult,
    MeasurementLog,
    channel_estimation,
    conditional_sample_mean,
    estimation_budget,
    greedy_flips,
)
from rfctl.lab.instruments import PowerSensor
from rfctl.lab.restore import RestoreOutcome, restore_image, stopped_message

__all__ = ["METHODS", "OptimizeInterruptedError", "OptimizeResult", "check_optimize",
           "codes_image", "csm_budget", "few_bit_estimate_warning", "lab_routing",
           "optimize_board",
           "phase_bank",
           "restore_board", "restore_outcome"]

log = logging.getLogger(__name__)

METHODS = ("greedy", "csm", "estimate")


def phase_bank(profile: BoardProfile) -> PhaseBank:
    """The profile's phase bank (uniform, with a bit width).

    Raises
    ------
    ConfigError
        No phase bank, or a table bank without a bit width.
    """
    ph = profile.find_bank("phase")
    if ph is None:
        raise ConfigError(f"{profile.name}: the lab routines need a phase bank",
                          field="banks", reason="no phase bank")
    if ph.bits is None:
        raise ConfigError(f"{profile.name}: bank {ph.name!r} is table-based; the lab "
                          "routines need a uniform phase bank (bits)", field="banks",
                          reason="table phase bank")
    return ph


def lab_routing(profile: BoardProfile) -> dict[str, BankImage]:
    """The switch-matrix bank of a board (if it has one) set as every lab routine sets
    it: every element on RF chain 0, the chain the probe's sensor measures (as in
    :func:`rfctl.lab.sweeps.steering_state`). Empty for a board without a switch bank.

    Returns
    -------
    dict of str to BankImage
        At most one entry, the switch bank's image.
    """
    from rfctl.hal import compile_board, quantize
    from rfctl.lab.sweeps import chain0_switch
    from rfctl.state import ArrayState

    sw = next((b for b in profile.banks if b.kind == "switch_matrix"), None)
    if sw is None:
        return {}
    img = quantize(ArrayState(switch=chain0_switch(phase_bank(profile).count)),
                   compile_board(profile))
    return {sw.name: img.banks[sw.name]}


def codes_image(profile: BoardProfile, codes: np.ndarray,
                routing: dict[str, BankImage] | None = None) -> DeviceImage:
    """An image setting the phase bank's codes and, with ``routing`` (from
    :func:`lab_routing`), the switch bank; other banks keep their contents."""
    ph = phase_bank(profile)
    c = np.asarray(codes, np.int64)
    if c.shape != (ph.count,):
        raise ConfigError(f"codes have shape {c.shape}, bank {ph.name!r} has {ph.count} "
                          "elements", field="codes", reason="wrong size")
    z = np.zeros(c.size)
    return DeviceImage(profile.name, profile.model,
                       {ph.name: BankImage(ph.name, ph.kind, c, ph.bits, c, c, z),
                        **(routing or {})})


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimize_board`.

    Attributes
    ----------
    codes : ndarray, shape (N,) int
        The configuration left on the board.
    verified_w : list of float
        Re-measurements of it on the board, W.
    initial_w : float
        Power of the board's configuration before the run, W.
    blind : BlindResult
    rows : list of dict
        Every reading (``n``, ``phase``, ``power_w``, ``incumbent_w``).
    elapsed_s : float
    image_before, image_after : bytes
        The board's whole image before and after the run.
    kept_start : bool
        The search's result measured below the starting configuration when both were
        re-measured ``verify`` times, so the board was left on the start.
    start_w : list of float
        The start's re-measurements, W (taken only when the result measured below the
        start's single reading).
    unchanged : bool
        The search found nothing better than the starting configuration (its result is
        the start's codes), so the board is on the start; ``verified_w`` are the
        start's re-measurements then.
    """

    codes: np.ndarray
    verified_w: list[float]
    initial_w: float
    blind: BlindResult
    rows: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    image_before: bytes = b""
    image_after: bytes = b""
    kept_start: bool = False
    start_w: list[float] = field(default_factory=list)
    unchanged: bool = False

    @property
    def power_w(self) -> float:
        """Mean of the verification readings, W."""
        return float(np.mean(self.verified_w))


class OptimizeInterruptedError(RfctlError):
    """The run stopped early; ``rows`` holds the readings taken, and the board was put
    back on its previous image (``restored`` says whether that succeeded)."""

    def __init__(self, message: str, rows: list[dict], restored: bool,
                 image_before: bytes = b"", restore: RestoreOutcome | None = None) -> None:
        super().__init__(message)
        self.rows = rows
        self.restored = restored
        self.image_before = image_before
        self.restore = restore


def restore_board(device: Device, profile: BoardProfile, image: bytes) -> bool:
    """Program ``image`` (whole-image bytes) back; True on success (errors are logged).
    Ctrl-C is deferred during the restore (:func:`rfctl.lab.restore.restore_image`)."""
    return restore_outcome(device, profile, image).restored


def restore_outcome(device: Device, profile: BoardProfile, image: bytes) -> RestoreOutcome:
    """:func:`restore_board` returning the whole :class:`RestoreOutcome` (what the board
    holds, Ctrl-C presses deferred)."""
    try:
        img = image_from_bytes(image, device.info(), profile.name)
    except (RfctlError, OSError) as exc:
        log.error("could not restore the board: %s", exc)
        return RestoreOutcome(False, "last", f"nothing was sent: {exc}")
    return restore_image(device, img)


def few_bit_estimate_warning(profile: BoardProfile, method: str) -> str | None:
    """The warning for ``method="estimate"`` on a bank of 2 bits or more (None
    otherwise): the estimation toggles every element between two codes half a turn
    apart, so only two of its 2^b states are ever used."""
    ph = phase_bank(profile)
    if method != "estimate" or ph.bits < 2:
        return None
    return (f"--method estimate on bank {ph.name!r} of {ph.bits} bits uses only two of its "
            f"{1 << ph.bits} phase states (codes 0 and {1 << (ph.bits - 1)}, half a turn "
            "apart): the result is a one-bit configuration; to use every state, calibrate "
            "the board (rfctl lab calibrate measures each element's phase offset) and steer "
            "with the table")


def csm_budget(levels: int, groups: int) -> int:
    """Least search budget with which conditional sample mean samples every group: per
    group 2 × ``levels`` random states (each state seen about twice per element) and
    two readings kept for the group's confirmation, plus the incumbent's reading with
    groups. The starting configuration's reading is not included."""
    return (1 if groups > 1 else 0) + groups * (2 * levels + 2)


def check_optimize(profile: BoardProfile, *, method: str, budget: int, verify: int = 1,
                   settle_s: float = 0.0, groups: int = 4) -> None:
    """The checks :func:`optimize_board` makes before touching the board, callable on
    their own (the CLI runs them before it opens the board or creates a run folder).

    Raises
    ------
    ConfigError
        ``field`` names the argument: an unknown method, budget < 1 or below the
        method's minimum (``estimate``: 2(N + R) + 1; ``csm``: 1 + :func:`csm_budget`),
        groups outside [1, N] (``csm``), verify < 1, settle < 0, or no usable phase bank
        (field ``banks``).
    """
    if method not in METHODS:
        raise ConfigError(f"method {method!r} is not one of {', '.join(METHODS)}",
                          field="method", reason="unknown method")
    if budget < 1:
        raise ConfigError(f"budget = {budget} must be ≥ 1", field="budget", reason="below 1")
    if verify < 1:
        raise ConfigError(f"verify = {verify} must be ≥ 1", field="verify", reason="below 1")
    if settle_s < 0:
        raise ConfigError(f"settle = {settle_s} s must be ≥ 0", field="settle",
                          reason="negative")
    ph = phase_bank(profile)
    n = ph.count
    if method == "csm":
        if not 1 <= groups <= n:
            raise ConfigError(f"groups = {groups} must be in [1, {n}] (the elements of bank "
                              f"{ph.name!r})", field="groups", reason="out of range")
        need = 1 + csm_budget(1 << ph.bits, groups)
        if budget < need:
            raise ConfigError(
                f"--method csm with {groups} group{'s' if groups > 1 else ''} on "
                f"{ph.bits}-bit bank {ph.name!r} needs a budget of at least {need} readings "
                f"(the start's reading, then per group 2 × {1 << ph.bits} random states and "
                f"the group's confirmation), got {budget}; give a larger --budget or fewer "
                "--groups", field="budget", reason="below the method's minimum")
    if method == "estimate":
        need, _ = estimation_budget(n)
        if budget < need + 1:
            raise ConfigError(f"--method estimate on {n} elements needs a budget of at least "
                              f"{need + 1} readings (the starting configuration's reading "
                              f"and 2(N + R) = {need} for the estimation), got {budget}",
                              field="budget", reason="below the method's minimum")


def optimize_board(device: Device, profile: BoardProfile, sensor: PowerSensor, *,
                   method: str = "greedy", budget: int, rng: np.random.Generator,
                   verify: int = 3, groups: int = 4, settle_s: float = 0.0,
                   progress: Callable[[int, int], None] | None = None) -> OptimizeResult:
    """Configure the phase bank from power readings alone.

    Parameters
    ----------
    device : Device
    profile : BoardProfile
        With a uniform phase bank (one-bit or few-bit; no switch bank needed). A switch
        bank, if the board has one, routes every element to RF chain 0 for the whole run
        (:func:`lab_routing`), as sweeps and calibration do.
    sensor : PowerSensor
    method : {"greedy", "csm", "estimate"}
        Coordinate flips; conditional sample mean (by ``groups``); channel estimation
        then the exact one-bit optimum (few-bit banks: only the two states half a turn
        apart, with a logged warning, :func:`few_bit_estimate_warning`; best from about
        4N readings, greedy below).
    budget : int
        Readings for the search (≥ 1), the starting configuration's reading included;
        ``verify`` more are taken at the end (and ``verify`` of the start when the
        result measures below the start's reading). ``estimate`` needs at least
        2(N + R) + 1 (:func:`rfctl.lab.blind.estimation_budget`), refused before any
        reading.
    rng : numpy.random.Generator
    verify : int
        Re-measurements of the final configuration (≥ 1).
    settle_s : float
        Wait after each latch before reading, s.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    OptimizeResult

    Raises
    ------
    ConfigError
        Unknown method, budget < 1 (or below the estimation's minimum), verify < 1,
        or no usable phase bank.
    OptimizeInterruptedError
        Ctrl-C or an error during the run; the board is restored first.
    """
    check_optimize(profile, method=method, budget=budget, verify=verify, settle_s=settle_s,
                   groups=groups)
    ph = phase_bank(profile)
    levels = 1 << ph.bits
    n = ph.count
    note = few_bit_estimate_warning(profile, method)
    if note:
        log.warning("%s", note)
    before = device.read_active()
    device.verified_active = before
    t0 = time.perf_counter()
    total = budget + verify
    # a switch bank routes every element to the measured chain for the whole run, as
    # in sweeps and calibration (a board fresh from reset has every switch off)
    routing = lab_routing(profile)

    def measure(codes: np.ndarray) -> float:
        program(device, codes_image(profile, codes, routing))
        if settle_s:
            time.sleep(settle_s)
        return sensor.read_power()

    def verify_codes(codes: np.ndarray, phase: str, incumbent_w: float) -> list[float]:
        """``verify`` re-measurements of ``codes`` on the board (outside the budget)."""
        program(device, codes_image(profile, codes, routing))
        got = []
        for _ in range(verify):
            if settle_s:
                time.sleep(settle_s)
            got.append(sensor.read_power())
            meas.rows.append({"n": len(meas.rows) + 1, "phase": phase, "power_w": got[-1],
                              "incumbent_w": incumbent_w})
            if progress is not None:
                progress(min(len(meas.rows), total), total)
        return got

    # the budget counts every reading of the search, the starting configuration's
    # included; the verification readings come on top
    meas = MeasurementLog(measure, budget,
                          (lambda d, t: progress(d, total)) if progress else None)
    kept_start = False
    start_w: list[float] = []
    try:
        start = _codes_of(before, device, ph.name)
        p0 = meas(start, "initial")
        meas.set_incumbent(p0)
        left = meas.remaining
        if left < 1:
            res = BlindResult(start, p0, method, meas.used, "budget")
        elif method == "greedy":
            res = greedy_flips(meas, n, budget=left, rng=rng, levels=levels, x0=start)
        elif method == "csm":
            res = conditional_sample_mean(meas, n, budget=left, rng=rng, levels=levels,
                                          groups=min(groups, n), x0=start)
        else:
            res = channel_estimation(meas, n, budget=left, rng=rng, high=levels // 2)
        codes = np.asarray(res.codes)
        verified = verify_codes(codes, "verify", res.power_w)
        if not np.array_equal(codes, start) and np.mean(verified) < p0:
            # the search's answer measures below the start's single reading: re-measure
            # the start as often, and leave the board on whichever is better
            again = verify_codes(start, "verify start", p0)
            if np.mean(again) > np.mean(verified):
                log.warning("optimize (%s): the result (%.4g W) measures below the starting "
                            "configuration (%.4g W); the board is left on the start",
                            method, np.mean(verified), np.mean(again))
                codes, verified, kept_start = start, again, True
            else:
                program(device, codes_image(profile, codes, routing))
            start_w = again
    except (KeyboardInterrupt, RfctlError, OSError) as exc:
        got = restore_outcome(device, profile, before)  # Ctrl-C deferred meanwhile
        raise OptimizeInterruptedError(
            stopped_message(f"optimize ({method}) stopped after {meas.used} of {budget} "
                            "readings", exc, got), meas.rows, got.restored, before,
            got) from exc
    after = device.read_active()
    rows = meas.rows
    return OptimizeResult(np.asarray(codes), verified, p0, res, rows,
                          time.perf_counter() - t0, before, after, kept_start, start_w,
                          bool(np.array_equal(codes, start)) and not kept_start)


def _codes_of(image: bytes, device: Device, bank: str) -> np.ndarray:
    return unpack_image(image, device.info())[bank].astype(np.int64)
