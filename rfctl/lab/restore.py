"""Putting a board back on the image it held before a lab run, robust to more Ctrl-C.

A run stopped by Ctrl-C (or by an error) restores the board's previous image. A user
often presses Ctrl-C twice in quick succession; the second press must not cut the
restore short and leave the board on an unknown image. :func:`restore_image` therefore
defers SIGINT for the bounded duration of the restore (one :func:`program` call, bounded
by the link's operation deadline): a first press during the restore is recorded and the
restore goes on; a further press aborts it, and the outcome then says what the board
holds (the run's last image, the previous image after all, or unknown — as
:class:`~rfctl.errors.ProgramError` reports it).

SIGTERM and SIGHUP (a ``timeout``, a job scheduler, an SSH drop: the ``rfctl`` command
turns them into :class:`~rfctl.errors.Terminated`, a KeyboardInterrupt) are deferred the
same way, and counted with the Ctrl-C presses.

Signals can only be handled on the main thread (elsewhere the restore runs unprotected).
Whatever handler was installed is replaced for the duration of the restore and put back
afterwards; the presses deferred are reported (:attr:`RestoreOutcome.deferred`), so a
caller can still treat the run as stopped by Ctrl-C.
"""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rfctl.errors import ProgramError, RfctlError, Terminated, interruption, stop_phrase
from rfctl.hal.device import Device
from rfctl.hal.image import DeviceImage
from rfctl.hal.program import program
from rfctl.stopsignals import STOP_SIGNALS, handling, signal_label, stop_exception

__all__ = ["RestoreOutcome", "deferred_sigint", "restore_image", "stop_cause", "stopped_message"]

log = logging.getLogger(__name__)


@dataclass
class RestoreOutcome:
    """What :func:`restore_image` achieved.

    Attributes
    ----------
    restored : bool
        The board holds the image before the run (confirmed by its active CRC).
    holds : str
        ``"previous"`` (restored), ``"last"`` (still the run's last image: nothing of the
        restore latched) or ``"unknown"``.
    detail : str
        Why not restored (empty when restored).
    deferred : int
        Ctrl-C presses (or SIGTERM / SIGHUP) received during the restore and deferred
        until it finished.
    deferred_signal : int
        The first of those signals (``signal.SIGINT`` for Ctrl-C).
    """

    restored: bool
    holds: str
    detail: str = ""
    deferred: int = 0
    deferred_signal: int = signal.SIGINT

    def describe(self) -> str:
        """One phrase for a message: ``board restored …`` or ``board NOT restored …``."""
        if self.restored:
            text = "board restored to its previous image (verified by CRC)"
        elif self.holds == "last":
            text = ("board NOT restored: nothing of the restore took effect, so it holds the "
                    "run's last image (if it is still powered)")
        else:
            text = "board NOT restored: the restore failed, so its image is unknown"
        if self.detail:
            text += f" ({self.detail})"
        if self.deferred and self.restored:
            text += (f"; a {signal_label(self.deferred_signal)} during the restore was "
                     "deferred until it finished")
        return text


@dataclass
class _Presses:
    count: int = 0
    signum: int = signal.SIGINT  # the first signal received
    armed: bool = True  # the aborting press raises only while this is set
    aborted: bool = False  # it did


@contextmanager
def deferred_sigint(abort_after: int = 2) -> Iterator[_Presses]:
    """Defer SIGINT, SIGTERM and SIGHUP inside the block: they are counted together; the
    ``abort_after``-th raises (KeyboardInterrupt for SIGINT, else
    :class:`~rfctl.errors.Terminated`) once, if ``armed`` is still set (so a user can
    still abort), and later ones are only counted. Only on the main thread (elsewhere the
    block runs unchanged); the previous handlers are put back afterwards.

    Yields
    ------
    object
        With ``count`` (the signals received in the block), ``signum`` (the first of
        them) and ``armed``.
    """
    presses = _Presses()

    def handler(signum, frame) -> None:  # nothing that takes a lock (logging, print)
        presses.count += 1
        if presses.count == 1:
            presses.signum = signum
        if presses.count == abort_after and presses.armed:
            presses.armed = False
            presses.aborted = True
            raise stop_exception(signum)

    with handling(handler, STOP_SIGNALS):
        try:
            yield presses
        finally:
            if presses.count:
                log.warning("%d %s during the board's restore: %s", presses.count,
                            signal_label(presses.signum), "the restore was aborted"
                            if presses.aborted else "deferred until it finished")


def restore_image(device: Device, image: DeviceImage) -> RestoreOutcome:
    """Program ``image`` (the board's whole image before the run, e.g. from
    :func:`rfctl.hal.image.image_from_bytes`) back onto ``device``.

    Ctrl-C is deferred during the restore (:func:`deferred_sigint`); a second press
    aborts it. Device errors are logged, not raised.

    Parameters
    ----------
    device : Device
    image : DeviceImage
        Every bank of the board (a whole image).

    Returns
    -------
    RestoreOutcome
    """
    with deferred_sigint() as presses:
        try:
            program(device, image)
            presses.armed = False
            return RestoreOutcome(True, "previous", deferred=presses.count,
                                  deferred_signal=presses.signum)
        except ProgramError as exc:
            presses.armed = False
            holds = exc.holds.get(device.name, "unknown") if exc.holds else "unknown"
            if holds == "new":  # the restore latched (the board said so by its CRC)
                return RestoreOutcome(True, "previous", deferred=presses.count,
                                      deferred_signal=presses.signum)
            log.error("could not restore the board: %s", exc)
            why = _why(exc)
            m = _HOLDS.search(why)
            if m and holds == "previous":  # said by "holds the run's last image" already
                why = why[:m.start()]
            return RestoreOutcome(False, "last" if holds == "previous" else "unknown", why,
                                  presses.count, presses.signum)
        except (RfctlError, OSError) as exc:
            presses.armed = False
            log.error("could not restore the board: %s", exc)
            return RestoreOutcome(False, "unknown", _why(exc), presses.count, presses.signum)
        except KeyboardInterrupt as exc:  # program() converts its own; this came before it
            presses.armed = False
            return RestoreOutcome(False, "last", f"the restore was aborted by {_by(exc)} before "
                                  "anything was sent", presses.count, presses.signum)


def _why(exc: BaseException) -> str:
    text = str(exc)
    if interruption(exc.__cause__) is not None or "interrupted (Ctrl-C)" in text:
        return f"the restore was aborted by {_by(exc.__cause__)}: {text}"
    return text


def _by(exc: BaseException | None) -> str:
    """``Ctrl-C``, or the name of the signal that raised a Terminated in the chain."""
    ki = interruption(exc)
    return ki.signame if isinstance(ki, Terminated) else "Ctrl-C"


# ProgramError appends "(NAME holds the previous image)": "previous" there is the image
# before that one write (the run's last image), not the image before the run
_HOLDS = re.compile(r" \(([^()]*? holds the (?:previous|new) image[^()]*)\)$")


def stop_cause(exc: BaseException) -> str:
    """Why a lab routine stopped, as a phrase for its message.

    ``interrupted (Ctrl-C)`` for a Ctrl-C (also one that program() turned into a
    :class:`~rfctl.errors.ProgramError`), ``terminated (SIGTERM)`` (or SIGHUP) for a
    :class:`~rfctl.errors.Terminated`; otherwise ``Type: message``, where a
    ProgramError's "(X holds the previous image)" is said as "X kept its image from
    before that write" (the run's last image: not the image from before the run, which
    the restore is about) and "holds the new image" as "X latched that write".

    Parameters
    ----------
    exc : BaseException
        The exception that stopped the routine.

    Returns
    -------
    str
        One phrase, without enclosing parentheses.
    """
    if interruption(exc) is not None:
        return stop_phrase(exc)
    text = str(exc)
    m = _HOLDS.search(text)
    if m:
        said = (m.group(1).replace(" holds the previous image",
                                   " kept its image from before that write")
                .replace(" holds the new image", " latched that write"))
        text = f"{text[:m.start()]}; {said}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def stopped_message(what: str, exc: BaseException, got: RestoreOutcome) -> str:
    """``"<what>: <why>; <what the board holds>"`` for a routine stopped by ``exc``
    after which the board was restored (or not) as ``got`` says.

    Parameters
    ----------
    what : str
        E.g. ``"sweep stopped after 3 of 9 points"``.
    exc : BaseException
        The cause (:func:`stop_cause`).
    got : RestoreOutcome
        The restore's outcome (:meth:`RestoreOutcome.describe`).

    Returns
    -------
    str
    """
    return f"{what}: {stop_cause(exc)}; {got.describe()}"
