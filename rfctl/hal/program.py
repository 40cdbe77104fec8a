"""Programming boards: ``program``, ``program_many``, ``store_beam``, ``select_beam``.

A transaction trusts the board, not the host's memory:

- **Plans start from the board's truth in this session.** A board with a staged buffer
  checks the staged CRC-32 before it latches, so a delta planned against a stale base is
  refused (nothing latched) and re-planned as a full write; a "nothing to do" shortcut is
  taken only after the board reported the image's CRC. A board without a staged buffer
  is read back before the plan.
- **Every failure is a** :class:`~rfctl.errors.ProgramError` with ``holds`` per board:
  ``"previous"`` (nothing latched, or the board says it kept its image), ``"new"`` (only
  in ``program_many``: boards that did latch when another failed), or ``"unknown"`` only
  when the board could not be asked within the link's bound (the driver reconnects
  within that bound first).

Because a board with ``atomic_latch`` changes all outputs together, an active image is
never a mixture; after an uncertain latch the board answers "old" or "new".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from rfctl.config import BoardProfile
from rfctl.errors import (
    ConfigError,
    DeviceError,
    HardwareConstraintError,
    ProgramError,
    RfctlError,
    stop_phrase,
)
from rfctl.hal.device import Device, LinkStats, StageError, operation_deadline
from rfctl.hal.discovery import open_device
from rfctl.hal.image import DeviceImage, check_layout, delta_writes, image_crc, pack_image

__all__ = ["PlannedStep", "ProgramError", "ProgramResult", "board_key", "open_for_program",
           "plan_steps", "program", "program_many", "select_beam", "store_beam"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgramResult:
    """What a successful program call did.

    Attributes
    ----------
    device : str
    crc : int
        CRC-32 of the active image now on the board (as the board reported it).
    payload_bytes : int
        Image bytes written (the delta).
    full_bytes : int
        Size of the whole image, bytes.
    writes : int
        Write frames.
    stats : LinkStats
        Bytes on the wire, retries, timeouts and reconnects of this call.
    elapsed_s : float
        Wall time of the call, s.
    """

    device: str
    crc: int
    payload_bytes: int
    full_bytes: int
    writes: int
    stats: LinkStats
    elapsed_s: float


@dataclass
class _Plan:
    device: Device
    image: DeviceImage
    new: bytes
    crc: int
    prev: bytes | None
    writes: list[tuple[int, int, bytes]] = field(default_factory=list)
    prestaged: bool = False  # the writes are already in flight behind the previous latch

    @property
    def payload(self) -> int:
        return sum(len(w[2]) for w in self.writes)


def _plan(device: Device, image: DeviceImage, chunk: int | None, *,
          base: bytes | str | None = "session") -> _Plan:
    """Plan the writes. ``base="session"``: the image the board confirmed in this session
    (or, for a board that cannot check a base itself, the image read from it now). When
    the driver prestaged this image's writes behind its last latch (``prestaged_crc``),
    the plan writes nothing and only latches (the LATCH's CRC check still decides)."""
    info = device.info()
    check_layout(image, info)  # before a single programming byte is sent
    caps = device.capabilities
    if base == "session":
        prev = device.verified_active
        if not caps.staged_buffer or (prev is None and len(image.banks) < len(info.banks)):
            # nothing on the board checks the base: read it (board truth, not memory)
            prev = device.read_active()
            device.verified_active = prev
    else:
        prev = base  # type: ignore[assignment]
    new = pack_image(image, info, prev)
    crc = image_crc(new)
    if (caps.pipelined and prev is not None and prev != new
            and getattr(device, "prestaged_crc", None) == crc):
        # this image's writes are in flight behind the previous latch: latch only
        return _Plan(device, image, new, crc, prev, [], prestaged=True)
    return _Plan(device, image, new, crc, prev,
                 delta_writes(prev, new, info, chunk=chunk or caps.max_chunk))


def _ask(device: Device, plan: _Plan) -> tuple[str, str]:
    """After an uncertain latch: what does the board hold? (holds, reason)"""
    try:
        crc = device.active_crc()
    except RfctlError as exc:
        log.warning("%s: cannot read the active CRC: %s", device.name, exc)
        return "unknown", f"the board could not be asked within the bound: {exc}"
    if crc == plan.crc:
        return "new", ""
    if plan.prev is not None:
        if crc == image_crc(plan.prev):
            return "previous", ""
    elif device.capabilities.atomic_latch:
        # a full write over an image the host never read: an atomic board shows the old
        # image or the new one, and it says it is not the new one
        return "previous", ""
    return "unknown", (f"the board shows CRC {crc:#010x}, neither the previous nor the new "
                       "image (a reset may have cleared it)")


def _vs_call(plan: _Plan, holds: str, why: str, orig_crc: int | None) -> tuple[str, str]:
    """``holds`` relative to the whole call: after a re-plan, "previous" means the image
    the last attempt started from; if that is not the image the board held when the call
    began (a reset changed it), the board holds neither."""
    if holds == "previous" and orig_crc is not None and plan.prev is not None:
        crc = image_crc(plan.prev)
        if crc != orig_crc:
            return "unknown", (f"the board shows CRC {crc:#010x}, neither the previous nor "
                               "the new image (a reset may have cleared it)")
    return holds, why


def _fail(device: Device, plan: _Plan | None, exc: DeviceError, orig_crc: int | None,
          what: str, holds: str = "previous", why: str = "") -> NoReturn:
    """Settle the host's copy to what the board holds (judged against the whole call)
    and raise the ProgramError that says so."""
    if plan is not None:
        _settle(device, plan, holds)
        holds, why = _vs_call(plan, holds, why, orig_crc)
    raise ProgramError(f"{device.name}: {what}: {exc}" + (f"; {why}" if why else ""),
                       holds={device.name: holds}, cause=exc) from exc


def _interrupted(device: Device, plan: _Plan | None, exc: KeyboardInterrupt,
                 orig_crc: int | None) -> NoReturn:
    """Ctrl-C (or SIGTERM / SIGHUP, a :class:`~rfctl.errors.Terminated`) during
    :func:`program`: ask the board what it holds (within the link's bound; a second
    Ctrl-C gives up asking) and raise the ProgramError that says so, chained from the
    KeyboardInterrupt (the CLI exits 130, or 128 + the signal's number)."""
    if plan is None:
        raise ProgramError(f"{device.name}: {stop_phrase(exc)} before anything was sent",
                           holds={device.name: "previous"}, cause=exc) from exc
    try:
        holds, why = _ask(device, plan)
    except KeyboardInterrupt:
        holds, why = "unknown", "interrupted again while asking the board"
    _settle(device, plan, holds)
    holds, why = _vs_call(plan, holds, why, orig_crc)
    raise ProgramError(f"{device.name}: {stop_phrase(exc)}" + (f"; {why}" if why else ""),
                       holds={device.name: holds}, cause=exc) from exc


def _settle(device: Device, plan: _Plan, holds: str) -> None:
    device.staged_clean = False
    if holds == "new":
        device.verified_active = plan.new
    elif holds != "previous" or plan.prev is None:
        device.verified_active = None


#: Most attempts one program call makes after a reboot or a latch that did not take
#: (the operation deadline bounds them too).
MAX_ATTEMPTS = 8


def _op_deadline(device: Device) -> float:
    """The operation deadline of ``device``, s (its ``deadline_s``, else from its
    profile's link settings, else 2 s)."""
    d = getattr(device, "deadline_s", None)
    if isinstance(d, int | float) and d > 0:
        return float(d)
    link = getattr(getattr(device, "profile", None), "link", None)
    return operation_deadline(link) if link is not None else 2.0


class _Budget:
    """Retries by deadline: a reboot or a latch that did not take is retried (re-planned
    from the board's truth) until the operation deadline, at most ``MAX_ATTEMPTS`` times."""

    def __init__(self, device: Device) -> None:
        self.deadline = time.perf_counter() + _op_deadline(device)
        self.attempts = 1

    def again(self) -> bool:
        if self.attempts >= MAX_ATTEMPTS or time.perf_counter() >= self.deadline:
            return False
        self.attempts += 1
        return True


@dataclass(frozen=True)
class PlannedStep:
    """One step of a sequence planned ahead (:func:`plan_steps`): the staged writes that
    turn the whole-image bytes ``base`` into ``image``'s bytes ``new``.

    Given as ``then=`` to :func:`program`, a step is used only when ``base`` is exactly
    the image that call latches and ``chunk`` is the call's frame size; otherwise the
    writes are planned afresh from ``image`` (a step can never send wrong bytes: the
    board's LATCH checks the staged CRC in any case).

    Attributes
    ----------
    image : DeviceImage
    base : bytes
        Whole-image bytes the writes start from.
    new : bytes
        Whole-image bytes after the writes.
    crc : int
        CRC-32 of ``new``.
    writes : tuple of (bank, offset, bytes)
    chunk : int
        Largest payload per write the writes were split at, bytes.
    """

    image: DeviceImage
    base: bytes
    new: bytes
    crc: int
    writes: tuple[tuple[int, int, bytes], ...]
    chunk: int


def plan_steps(device: Device, images: Sequence[DeviceImage], start: bytes, *,
               chunk: int | None = None) -> list[PlannedStep]:
    """Plan a sequence of images ahead (a sweep): each image's writes against the one
    before it, the first against ``start``.

    Planning (packing, CRC, delta) then happens before a sweep instead of between a
    point's reading and the next latch. Consecutive equal images give an empty step.

    Parameters
    ----------
    device : Device
        The open driver (for its layout and frame size).
    images : sequence of DeviceImage
        In the order they will be programmed.
    start : bytes
        Whole-image bytes the board holds before the first image.
    chunk : int, optional
        Largest payload per write frame, bytes (default: the driver's).

    Returns
    -------
    list of PlannedStep
        One per image, same order.

    Raises
    ------
    HardwareConstraintError
        An image does not fit the device's layout.
    """
    info = device.info()
    size = chunk or device.capabilities.max_chunk
    steps: list[PlannedStep] = []
    base = start
    for img in images:
        check_layout(img, info)
        new = pack_image(img, info, base)
        steps.append(PlannedStep(img, base, new, image_crc(new),
                                 tuple(delta_writes(base, new, info, chunk=size)), size))
        base = new
    return steps


def _then_writes(device: Device, plan: _Plan, then: DeviceImage | PlannedStep,
                 chunk: int | None) -> tuple[list[tuple[int, int, bytes]], int]:
    """The writes that turn ``plan``'s image into ``then`` on the staged buffer, and the
    CRC-32 of the result (a :class:`PlannedStep` from this very image is used as is)."""
    size = chunk or device.capabilities.max_chunk
    if isinstance(then, PlannedStep):
        if then.base == plan.new and then.chunk == size:
            return list(then.writes), then.crc
        then = then.image
    info = device.info()
    nxt = pack_image(then, info, plan.new)
    return delta_writes(plan.new, nxt, info, chunk=size), image_crc(nxt)


def _stage_with_rebase(device: Device, plan: _Plan, chunk: int | None, *,
                       latch: bool, budget: _Budget | None = None,
                       then: DeviceImage | PlannedStep | None = None,
                       ask_active: bool = False) -> tuple[_Plan, int | None]:
    """Stage (and latch); if the board refuses the base, or reboots (or loses the session)
    before the latch left the host, re-plan from the board's image and try again, until
    the operation deadline (``budget``; without one: once more). ``then``: the next
    image, whose writes (against this plan's image) are prestaged behind the latch;
    ``ask_active``: the first attempt asks ACTIVE_CRC ahead of its writes and latches only
    if the board does not already show the image (both only for a driver with
    ``capabilities.pipelined``)."""
    budget = budget or _Budget(device)
    while True:
        sync = not device.staged_clean and plan.prev is not None and not plan.prestaged
        try:
            if (then is not None or ask_active) and latch:
                opts: dict[str, Any] = {"ask_active": True} if ask_active else {}
                if then is not None:
                    opts["then"] = _then_writes(device, plan, then, chunk)
                return plan, device.stage(plan.writes, plan.crc, sync=sync, latch=True,
                                          **opts)
            return plan, device.stage(plan.writes, plan.crc, sync=sync, latch=latch)
        except StageError as exc:
            if exc.session_lost and not exc.latch_sent:
                # the board rebooted (or the session was lost) before the latch left the
                # host: it holds its previous image; start again from its truth
                log.info("%s: %s before the latch; programming again", device.name, exc)
            elif not exc.base_mismatch:
                raise
            else:
                log.info("%s: the board's image is not the one this plan started from "
                         "(%s); writing the whole image", device.name, exc)
            if not budget.again():
                raise
        ask_active = False
        device.verified_active = None
        device.staged_clean = False
        plan = _plan(device, plan.image, chunk)  # a full write, or a read-back and a delta


def program(device: Device, image: DeviceImage, *, chunk: int | None = None,
            then: DeviceImage | PlannedStep | None = None) -> ProgramResult:
    """Program one board: delta-write staged, check staged CRC, latch, verify active CRC.

    A reboot of the board before the latch, and a latch the board reports as not taken
    (it kept its previous image), are retried from the board's truth until the operation
    deadline (the link's ``timeout_s × (retries + 1)``), at most ``MAX_ATTEMPTS`` times;
    then the call fails with the board's true holding.

    Parameters
    ----------
    device : Device
        An open driver.
    image : DeviceImage
        From :func:`rfctl.hal.quantize` for this board's profile. Banks the image leaves
        out keep their current contents.
    chunk : int, optional
        Largest payload per write frame, bytes (default: the driver's).
    then : DeviceImage or PlannedStep, optional
        The image the *next* call will program (a sweep's next point). On a driver with
        ``capabilities.pipelined`` its staged writes are sent right behind this latch and
        cross the line while the caller measures; the next ``program`` of that image
        then sends only the LATCH, whose CRC check still decides (a prestage that went
        wrong is refused by the board and rewritten). This call's outcome is unchanged:
        the active image is this ``image``, verified by the latch's CRC. Ignored by
        other drivers. A :class:`PlannedStep` (:func:`plan_steps`) carries those writes
        planned ahead; it is used when it starts from exactly this ``image``.

    Returns
    -------
    ProgramResult

    Raises
    ------
    HardwareConstraintError
        The image (or ``then``) does not fit the device's layout (nothing was sent).
    ProgramError
        Any device failure; ``holds`` says whether the board holds the previous image or
        (only if it could not be asked within the link's bound) an unknown one. An
        uncertain latch that the board confirms as taken is a success, not an error.
    """
    t0 = time.perf_counter()
    before = device.stats.copy()
    budget = _Budget(device)
    plan: _Plan | None = None
    orig_crc: int | None = None  # CRC of the image the board held when the call began
    caps = device.capabilities
    then = then if caps.pipelined and caps.staged_buffer else None
    ask = False
    try:
        plan = _plan(device, image, chunk)
        orig_crc = None if plan.prev is None else image_crc(plan.prev)
        if then is not None:  # before a single programming byte is sent
            check_layout(then.image if isinstance(then, PlannedStep) else then, device.info())
        if plan.prev is not None and plan.prev == plan.new:
            # the host's copy says nothing changes: believe it only if the board agrees
            crc = device.active_crc() if device.capabilities.staged_buffer else plan.crc
            if crc == plan.crc:
                device.verified_active = plan.new  # confirmed by the board just now
                return ProgramResult(device.name, plan.crc, 0, len(plan.new), 0,
                                     device.stats.since(before), time.perf_counter() - t0)
            log.info("%s: the board's active CRC %#010x is not the host's copy; rewriting",
                     device.name, crc)
            device.verified_active = None
            device.staged_clean = False
            plan = _plan(device, image, chunk)
        elif plan.prev is None and caps.staged_buffer and caps.pipelined:
            # nothing confirmed in this session: ACTIVE_CRC goes ahead of the writes, and
            # the latch waits for its answer (not sent if the board shows the image)
            ask = True
        elif plan.prev is None and caps.staged_buffer:
            # nothing confirmed in this session: if the board already shows the image's
            # CRC, nothing needs writing (asked now, never from the host's memory)
            try:
                orig_crc = device.active_crc()
                if orig_crc == plan.crc:
                    device.verified_active = plan.new
                    return ProgramResult(device.name, plan.crc, 0, len(plan.new), 0,
                                         device.stats.since(before),
                                         time.perf_counter() - t0)
            except StageError:
                pass  # cannot tell: write the image
        while True:
            try:
                plan, active = _stage_with_rebase(device, plan, chunk, latch=True,
                                                  budget=budget, then=then, ask_active=ask)
                if ask:
                    orig_crc = getattr(device, "asked_active_crc", None)
            except StageError as exc:
                if not (exc.session_lost and exc.latch_sent):
                    raise
                # the board rebooted or lost the session after the latch request was
                # written (perhaps into a dead link): ask it; if it kept its previous
                # image, the attempt never happened for it, so program again from its truth
                holds, why = _ask(device, plan)
                if holds != "previous" or not budget.again():
                    raise
                log.info("%s: %s; the board holds its previous image, programming again",
                         device.name, exc)
                _settle(device, plan, holds)
                plan = _plan(device, image, chunk)
                continue
            if active == plan.crc:
                break
            holds, why = _ask(device, plan)
            if holds == "new":
                active = plan.crc
                break
            if holds != "previous" or not budget.again():
                _settle(device, plan, holds)
                holds, why = _vs_call(plan, holds, why, orig_crc)
                raise ProgramError(
                    f"{device.name}: latch did not take: active CRC {active:#010x}, expected "
                    f"{plan.crc:#010x} (after {budget.attempts} attempt(s))"
                    + (f"; {why}" if why else ""), holds={device.name: holds})
            log.info("%s: latch did not take (active CRC %#010x); programming again",
                     device.name, active)
            _settle(device, plan, holds)
            plan = _plan(device, image, chunk)
    except ProgramError:
        raise  # already says what the board holds
    except StageError as exc:
        if plan is None or not exc.latch_sent:  # nothing can have latched
            _fail(device, plan, exc, orig_crc, "programming failed")
        holds, why = _ask(device, plan)
        if holds != "new":
            _fail(device, plan, exc, orig_crc, "programming failed", holds, why)
        log.info("%s: latch outcome confirmed by the board's active CRC after: %s",
                 device.name, exc)
        active = plan.crc
    except DeviceError as exc:  # before anything could latch (plan, read-back, no-op check)
        _fail(device, plan, exc, orig_crc, "programming failed before the latch")
    except KeyboardInterrupt as exc:
        _interrupted(device, plan, exc, orig_crc)
    device.verified_active = plan.new
    # with writes prestaged behind the latch, staged is no longer the active image
    device.staged_clean = caps.staged_buffer and getattr(device, "prestaged_crc", None) is None
    # asked in the batch of the writes: the board already showed this image, so the
    # writes only reached its staged buffer and nothing was latched (nothing changed)
    unchanged = ask and orig_crc == plan.crc
    res = ProgramResult(device.name, plan.crc, 0 if unchanged else plan.payload,
                        len(plan.new), 0 if unchanged else len(plan.writes),
                        device.stats.since(before), time.perf_counter() - t0)
    if plan.prestaged:
        log.info("%s: latched the image prestaged behind the previous latch (%d bytes), "
                 "%.2f ms, %d retries", device.name, len(plan.new), res.elapsed_s * 1e3,
                 res.stats.retries)
    else:
        log.info("%s: programmed %d of %d bytes in %d write%s, %.2f ms, %d retries",
                 device.name, res.payload_bytes, len(plan.new), res.writes,
                 "" if res.writes == 1 else "s", res.elapsed_s * 1e3, res.stats.retries)
    return res


def board_key(device: Device, index: int, devices: Sequence[Device]) -> str:
    """The key of ``device`` in :attr:`ProgramError.holds` from :func:`program_many`.

    ``device.name`` when it is unique among ``devices``; otherwise
    ``"{name}@{url}"`` (the driver's ``url`` or serial number) when that is unique, else
    ``"{name}#{index}"`` (its position in the pairs given). Every board gets its own entry.
    """
    names = [d.name for d in devices]
    if names.count(device.name) == 1:
        return device.name

    def where(d: Device) -> str:
        url = getattr(d, "url", None)
        if not url:
            try:
                url = d.info().serial
            except RfctlError:
                url = ""
        return f"{d.name}@{url}" if url else ""

    key = where(device)
    if key and [where(d) for d in devices].count(key) == 1:
        return key
    return f"{device.name}#{index}"


def _latch_with_retries(p: _Plan, key: str, chunk: int | None) -> tuple[_Plan, str, str]:
    """Latch one staged board of :func:`program_many`; a latch that the board reports as
    not taken (it kept its previous image), or a reboot before the latch, is retried —
    staged again from the board's truth, then latched — until the operation deadline,
    at most ``MAX_ATTEMPTS`` times. Returns (plan, holds, error text or "")."""
    budget = _Budget(p.device)
    while True:
        err = ""
        try:
            active = p.device.latch(p.crc)
            h, why = ("new", "") if active == p.crc else _ask(p.device, p)
            if h != "new":
                err = f"{key}: active CRC {active:#010x} after the latch" + (
                    f"; {why}" if why else "")
        except StageError as exc:
            h, why = _ask(p.device, p) if exc.latch_sent else ("previous", "")
            if h != "new":
                err = f"{key}: {exc}" + (f"; {why}" if why else "")
        except DeviceError as exc:
            h, why = _ask(p.device, p)
            if h != "new":
                err = f"{key}: {exc}" + (f"; {why}" if why else "")
        if h != "previous" or not budget.again():
            if err and h == "previous" and budget.attempts > 1:
                err += f" (after {budget.attempts} attempts)"
            return p, h, err
        log.info("%s: the latch did not take (%s); staging again", key, err)
        _settle(p.device, p, h)
        try:
            p, _ = _stage_with_rebase(p.device, _plan(p.device, p.image, chunk), chunk,
                                      latch=False, budget=budget)
        except DeviceError as exc:  # staging never changes the active image
            return p, "previous", f"{key}: staging again failed: {exc}"


def program_many(pairs: Sequence[tuple[Device, DeviceImage]], *, chunk: int | None = None
                 ) -> list[ProgramResult]:
    """Program several boards: stage all, then latch all.

    If any board fails to plan or stage, none is latched (all keep their previous
    images). A latch that a board reports as not taken (it kept its previous image) is
    retried for that board — staged again from its truth, then latched — until the
    operation deadline, at most ``MAX_ATTEMPTS`` times, as :func:`program` does. If a
    latch still fails, the error says which board holds which image: ``holds``
    has one entry per board, keyed by :func:`board_key` (the device name, or
    ``name@url`` / ``name#index`` when several boards share a name), so a mixed outcome
    is reported as mixed.

    Raises
    ------
    HardwareConstraintError
        An image does not fit its device (nothing was sent to any board).
    ProgramError
        With ``holds`` for every board.
    """
    t0 = time.perf_counter()
    befores = [d.stats.copy() for d, _ in pairs]
    devices = [d for d, _ in pairs]
    keys = [board_key(d, i, devices) for i, d in enumerate(devices)]
    plans: list[_Plan] = []
    staging = ""
    try:
        for k, (d, img) in zip(keys, pairs, strict=True):
            staging = k
            plans.append(_plan(d, img, chunk))
        for i, p in enumerate(plans):
            staging = keys[i]
            plans[i], _ = _stage_with_rebase(p.device, p, chunk, latch=False)
    except DeviceError as exc:
        for q in plans:
            q.device.staged_clean = False
        raise ProgramError(f"staging failed on {staging}, nothing latched: {exc}",
                           holds=dict.fromkeys(keys, "previous"), cause=exc) from exc
    holds: dict[str, str] = {}
    errors = []
    for i, key in enumerate(keys):
        plans[i], h, err = _latch_with_retries(plans[i], key, chunk)
        p = plans[i]
        holds[key] = h
        if err:
            errors.append(err)
        if h == "new":
            p.device.verified_active = p.new
            p.device.staged_clean = p.device.capabilities.staged_buffer
        else:
            _settle(p.device, p, h)
    if any(h != "new" for h in holds.values()):
        mixed = len(set(holds.values())) > 1
        raise ProgramError(("mixed outcome: " if mixed else "")
                           + "latch failed on some boards: " + "; ".join(errors), holds=holds)
    return [ProgramResult(p.device.name, p.crc, p.payload, len(p.new), len(p.writes),
                          p.device.stats.since(b), time.perf_counter() - t0)
            for p, b in zip(plans, befores, strict=True)]


def open_for_program(profile: BoardProfile, url: str | None = None, **kwargs: Any) -> Any:
    """Open the board a profile names (:func:`rfctl.hal.discovery.open_device`) for
    programming; a failure to open says what the board holds.

    Opening sends only HELLO and IDENT, which never change the board's images, so a
    board that is busy, does not answer or cannot be reached keeps its previous image.

    Parameters
    ----------
    profile : BoardProfile
    url : str, optional
        Overrides ``profile.link.url``.

    Returns
    -------
    Device
        Open; its ``url`` attribute is the link it was opened on.

    Raises
    ------
    ProgramError
        The board could not be opened (``holds`` is "previous": nothing was sent).
    ConfigError, HardwareConstraintError
        The profile names no usable driver, or the board's layout differs (nothing
        programming was sent).
    """
    where = url or profile.link.url
    try:
        dev = open_device(profile, **({"url": url} if url else {}), **kwargs)
    except DeviceError as exc:
        raise ProgramError(f"{profile.name}: opening {where} failed: {exc}; the board keeps "
                           "its previous image (nothing was sent)",
                           holds={profile.name: "previous"}, cause=exc) from exc
    except HardwareConstraintError as exc:  # another model or layout: refused at IDENT
        raise HardwareConstraintError(f"{exc}; the board keeps its previous image (nothing "
                                      "was sent)", bank=exc.bank, element=exc.element) from exc
    if not getattr(dev, "url", None):
        try:
            dev.url = where
        except AttributeError:  # a driver with fixed attributes
            pass
    return dev


def _beams(device: Device) -> dict[int, tuple[int, bytes]]:
    beams = getattr(device, "beams", None)
    return beams if isinstance(beams, dict) else {}


def store_beam(device: Device, slot: int, image: DeviceImage, *, chunk: int | None = None
               ) -> int:
    """Stage ``image`` and store it in beam slot ``slot`` (the active image is unchanged).

    Returns
    -------
    int
        CRC-32 of the stored image (verified against the board's).

    Raises
    ------
    ProgramError
        The board has no beam slot ``slot``, or storing failed (``holds`` is "previous":
        storing never changes the active image).
    """
    n = device.capabilities.beam_slots
    if not 0 <= slot < n:
        raise ProgramError(f"{device.name}: beam slot {slot} does not exist (the board has "
                           f"{n} slot(s))", holds={device.name: "previous"})
    plan: _Plan | None = None
    try:
        plan = _plan(device, image, chunk)
        plan, _ = _stage_with_rebase(device, plan, chunk, latch=False)
        crc = device.store_beam(slot)
    except DeviceError as exc:
        device.staged_clean = False
        raise ProgramError(f"{device.name}: storing beam {slot} failed: {exc}",
                           holds={device.name: "previous"}, cause=exc) from exc
    device.staged_clean = False  # staged now holds the beam, not the active image
    if crc != plan.crc:
        raise ProgramError(f"{device.name}: beam slot {slot} CRC {crc:#010x} != "
                           f"{plan.crc:#010x}", holds={device.name: "previous"})
    _beams(device)[slot] = (plan.crc, plan.new)
    return crc


def select_beam(device: Device, slot: int, expected_crc: int | None = None) -> int:
    """Make stored beam ``slot`` active (the fast path), verified by CRC.

    Parameters
    ----------
    expected_crc : int, optional
        CRC-32 of the stored image; defaults to the one recorded by :func:`store_beam`
        in this session.

    Raises
    ------
    ConfigError
        No CRC is known for the slot.
    ProgramError
        The select failed; ``holds`` says which image the board holds.
    """
    beams = _beams(device)
    new = None
    if expected_crc is None:
        if slot not in beams:
            raise ConfigError(f"{device.name}: no image stored in beam slot {slot} by this "
                              "session; give expected_crc", field="slot", reason="unknown slot")
        expected_crc, new = beams[slot]
    n = device.capabilities.beam_slots
    if not 0 <= slot < n:
        raise ProgramError(f"{device.name}: beam slot {slot} does not exist (the board has "
                           f"{n} slot(s))", holds={device.name: "previous"})
    prev = device.verified_active
    plan = _Plan(device, DeviceImage("", ""), new or b"", expected_crc, prev)
    try:
        active = device.select_beam(slot, expected_crc)
    except DeviceError as exc:  # a StageError before anything was sent cannot have taken
        sent = not isinstance(exc, StageError) or exc.latch_sent
        h, why = _ask(device, plan) if sent else ("previous", "")
        if h != "new":
            _settle(device, plan, h)
            raise ProgramError(f"{device.name}: selecting beam {slot} failed: {exc}"
                               + (f"; {why}" if why else ""),
                               holds={device.name: h}, cause=exc) from exc
        active = expected_crc
    if active != expected_crc:
        h, why = _ask(device, plan)
        _settle(device, plan, h)
        raise ProgramError(f"{device.name}: beam {slot} select: active CRC {active:#010x} "
                           f"!= {expected_crc:#010x}" + (f"; {why}" if why else ""),
                           holds={device.name: h})
    device.verified_active = new
    device.staged_clean = new is not None and device.capabilities.staged_buffer
    return active
