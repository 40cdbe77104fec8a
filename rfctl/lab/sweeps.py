"""Beam sweeps and beampattern measurements: program → settle → measure.

An interrupted run (Ctrl-C, an instrument error) puts the board back on the image it
held before the run, keeps the data taken so far, and raises :class:`SweepInterruptedError`
with those data, so that a script can still save them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rfctl.errors import RfctlError
from rfctl.geometry import upa_steering
from rfctl.hal import CompiledBoard, quantize
from rfctl.hal.device import Device
from rfctl.hal.image import DeviceImage, image_from_bytes
from rfctl.hal.program import plan_steps, program
from rfctl.lab.instruments import PowerSensor, ProbePositioner
from rfctl.lab.restore import RestoreOutcome, restore_image, stopped_message
from rfctl.state import ArrayState

__all__ = ["SweepData", "SweepInterruptedError", "beam_sweep", "beampattern", "chain0_switch",
           "has_switch", "steering_state"]

log = logging.getLogger(__name__)


def chain0_switch(n: int, n_rf: int = 1) -> np.ndarray:
    """The switch matrix every lab routine uses: each of ``n`` elements on RF chain 0
    (the chain the probe's sensor measures), shape (n, n_rf) bool."""
    S = np.zeros((n, n_rf), dtype=bool)
    S[:, 0] = True
    return S


def steering_state(rows: int, cols: int, theta: float, phi: float, *, n_rf: int = 1,
                   switch: bool = True) -> ArrayState:
    """Phases steering the beam at (θ, φ) and, with ``switch``, every element on RF
    chain 0 (leave ``switch`` False for boards without a switch bank).

    The phase of element n is ∠a_n(φ, θ), so that the field Σ_n e^{jφ_n} conj(a_n) adds
    in phase in that direction. Calibration offsets are applied by the HAL, not here.
    """
    a = upa_steering(rows, cols, phi, theta)
    if not switch:
        return ArrayState(phases=np.angle(a))
    return ArrayState(phases=np.angle(a), switch=chain0_switch(rows * cols, n_rf))


def has_switch(profile) -> bool:
    """Whether a board profile has a switch-matrix bank."""
    return any(b.kind == "switch_matrix" for b in profile.banks)


@dataclass
class SweepData:
    """Points measured so far.

    Attributes
    ----------
    rows : list of dict
        One per point (SI): the parameters, ``power_w``, ``t_s`` (time since start),
        ``program_s`` (programming time) and, per bank, the applied codes.
    elapsed_s : float
        Time of the sweep, s (the restore not included).
    restore : RestoreOutcome or None
        Set by ``beam_sweep(..., restore=True)``.
    """

    rows: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: with ``beam_sweep(..., restore=True)``: how putting the board back on its image
    #: from before the sweep went (None: not asked, the board holds the last point)
    restore: RestoreOutcome | None = None

    def column(self, key: str) -> np.ndarray:
        """One field of every row as an array, shape (points,)."""
        return np.array([r[key] for r in self.rows])


class SweepInterruptedError(RfctlError):
    """A sweep stopped early; ``data`` holds the points taken, and the board was put
    back on its previous image (``restored`` says whether that succeeded; ``restore``,
    a :class:`~rfctl.lab.restore.RestoreOutcome`, what the board holds and how many
    Ctrl-C presses were deferred during the restore)."""

    def __init__(self, message: str, data: SweepData, restored: bool,
                 restore: RestoreOutcome | None = None) -> None:
        super().__init__(message)
        self.data = data
        self.restored = restored
        self.restore = restore


def _run(points: Sequence[dict], prepare: Callable[[dict], None], device: Device,
         board: CompiledBoard, sensor: PowerSensor, state_of: Callable[[dict], ArrayState],
         settle_s: float, progress: Callable[[int, int], None] | None,
         keep_codes: bool, prestage: bool = True) -> SweepData:
    data = SweepData()
    initial = device.read_active() if device.verified_active is None else device.verified_active
    info = device.info()
    # quantize every distinct state before the first point: the loop only programs
    states = [state_of(pt) for pt in points]
    images: dict[int, DeviceImage] = {}
    for st in states:
        if id(st) not in images:
            images[id(st)] = quantize(st, board)
    # and plan each point's writes against the point before it, so that between a
    # reading and the next latch nothing is packed or compared
    caps = device.capabilities
    steps = plan_steps(device, [images[id(st)] for st in states], initial) \
        if prestage and caps.pipelined and caps.staged_buffer and len(images) > 1 else None
    t0 = time.perf_counter()
    last_state = None
    try:
        for i, pt in enumerate(points):
            prepare(pt)
            st = states[i]
            t1 = time.perf_counter()
            img = images[id(st)]
            if st is not last_state:
                # the next point's writes cross the line while this point is measured
                nxt = states[i + 1] if steps is not None and i + 1 < len(points) else st
                program(device, img, then=None if nxt is st or steps is None else steps[i + 1])
                last_state = st
            t2 = time.perf_counter()
            if settle_s:
                time.sleep(settle_s)
            p = sensor.read_power()
            row = {**pt, "power_w": p, "t_s": time.perf_counter() - t0,
                   "program_s": t2 - t1}
            if keep_codes:
                row["codes"] = {k: b.codes.tolist() for k, b in img.banks.items()}
            data.rows.append(row)
            if progress is not None:
                progress(i + 1, len(points))
    except (KeyboardInterrupt, RfctlError, OSError) as exc:
        got = restore_image(  # Ctrl-C is deferred while the board is restored
            device, image_from_bytes(initial, info, board.profile.name))
        data.elapsed_s = time.perf_counter() - t0
        raise SweepInterruptedError(stopped_message(
            f"sweep stopped after {len(data.rows)} of {len(points)} points", exc, got),
            data, got.restored, got) from exc
    data.elapsed_s = time.perf_counter() - t0
    return data


def beam_sweep(device: Device, board: CompiledBoard, sensor: PowerSensor,
               angles: Sequence[tuple[float, float]], *, rows: int, cols: int,
               settle_s: float = 0.0, progress: Callable[[int, int], None] | None = None,
               keep_codes: bool = True, prestage: bool = True,
               restore: bool = False) -> SweepData:
    """Steer the beam over ``angles`` (θ, φ) and measure the power at the fixed probe.

    The board ends on the last angle's beam; with ``restore`` it is put back, after a
    completed sweep, on the image it held before the sweep
    (:func:`rfctl.lab.restore.restore_image`: verified by the board's CRC, Ctrl-C
    deferred) and ``SweepData.restore`` says how that went (a failed restore is logged
    and reported there, not raised: the readings are complete). An interrupted sweep
    always restores the board (:class:`SweepInterruptedError`).

    With ``prestage`` (default) the next angle's staged writes are sent right behind
    each latch and cross the board's line while this angle is measured; each point then
    only latches (the board checks the staged CRC; boards without a staged buffer, or
    drivers without ``capabilities.pipelined``, program each point whole). Every
    reading is taken after the board confirmed that angle's image.

    Returns
    -------
    SweepData
        One row per angle (``theta``, ``phi``, ``power_w``, …).

    Raises
    ------
    SweepInterruptedError
        On Ctrl-C or an instrument/device error; the board is restored.
    """
    sw = has_switch(board.profile)
    if angles:  # every angle's phases in one array operation, shape (rows·cols, points)
        th, ph = (np.array([a[k] for a in angles], dtype=float) for k in (0, 1))
        phases = np.angle(upa_steering(rows, cols, ph, th))
    S = chain0_switch(rows * cols)
    states = {i: ArrayState(phases=phases[:, i], switch=S if sw else None)
              for i in range(len(angles))}
    points = [{"index": i, "theta": th, "phi": ph} for i, (th, ph) in enumerate(angles)]
    before = (device.read_active() if device.verified_active is None
              else bytes(device.verified_active)) if restore else None
    data = _run(points, lambda pt: None, device, board, sensor,
                lambda pt: states[pt["index"]], settle_s, progress, keep_codes, prestage)
    if before is not None:
        data.restore = restore_image(device, image_from_bytes(before, device.info(),
                                                              board.profile.name))
        if not data.restore.restored:
            log.error("sweep completed, but the board was not put back on its image from "
                      "before the sweep: %s", data.restore.describe())
    return data


def beampattern(device: Device, board: CompiledBoard, sensor: PowerSensor,
                positioner: ProbePositioner, state: ArrayState,
                probes: Sequence[tuple[float, float]], *, settle_s: float = 0.0,
                progress: Callable[[int, int], None] | None = None) -> SweepData:
    """Program one beam, then move the probe over ``probes`` (θ, φ) and measure."""
    points = [{"index": i, "theta": th, "phi": ph} for i, (th, ph) in enumerate(probes)]
    return _run(points, lambda pt: positioner.move(pt["theta"], pt["phi"]), device, board,
                sensor, lambda pt: state, settle_s, progress, keep_codes=False)
