"""Multi-channel bias sources (SCPI over VISA) that tune DMA elements.

One channel per Lorentzian element: code c of a ``lorentzian`` bank maps to the bias
``v0 + c (v1 − v0) / (2^bits − 1)`` (the bank's ``bias_v``). The SCPI dialect is declared
once in :data:`DIALECT` (the simulated source in ``rfctl.sims.bias_source`` serves it).

A bias source has no latch: channels change one by one. The driver therefore reads
every channel first (the HAL plans against the source's truth, not the host's memory),
sets only the channels that change, checks ``SYST:ERR?``, and reads every channel back.
If anything fails, it restores the previous voltages and reports what the source holds.

Resets: the IEEE 488.2 power-on bit (PON, bit 7 of ``*ESR?``) is set when the source
powers up and cleared when read. The driver reads it at open and before every read of
the channels; a set bit means the source lost its settings (back to its power-on state),
so the host's copy is forgotten. A ``*RST`` from elsewhere does not set PON: it is caught
because the channels are read before every plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from rfctl.config import BoardProfile, LorentzianBank
from rfctl.errors import ConfigError, DeviceError
from rfctl.hal.device import Capabilities, DeviceInfo, StageError, layout_from_profile
from rfctl.hal.image import image_crc as crc32
from rfctl.hal.image import pack_codes, unpack_codes

from .no_beam_memory import NoBeamMemory
from .scpi import ScpiInstrument, open_visa

__all__ = ["DIALECT", "VisaBiasBoard", "open_visa_bias"]

log = logging.getLogger(__name__)
wire_log = logging.getLogger("rfctl.wire")

DIALECT = {
    "idn": "*IDN?",
    "set": "CH{ch}:VOLT {v:.4f}",
    "get": "CH{ch}:VOLT?",
    "err": "SYST:ERR?",
    "esr": "*ESR?",
    "no_error": '0,"No error"',
    "range_error": '-222,"Data out of range"',
    "command_error": '-100,"Command error"',
}
"""The SCPI commands of the bias source (channels count from 1)."""


class VisaBiasBoard(NoBeamMemory):
    """A bias source driving one ``lorentzian`` bank, as a HAL device.

    Parameters
    ----------
    profile : BoardProfile
        Must hold exactly one ``lorentzian`` bank (one channel per element, its
        ``bias_v`` the voltages of the first and last code, V).
    resource : pyvisa resource
        Opened with ``"\\n"`` terminations (see :func:`open_visa_bias`).
    name : str, optional
        Used in errors and logs (default: the profile's name).

    Raises
    ------
    ConfigError
        The profile is not one lorentzian bank.
    DeviceError
        ``*IDN?`` names another model, the error queue holds an error, or ``*ESR?``
        answers something that is not a number.
    """

    no_beams_reason = "a bias source has no beam memory"

    def __init__(self, profile: BoardProfile, resource, *, name: str | None = None) -> None:
        banks = profile.banks
        if len(banks) != 1 or not isinstance(banks[0], LorentzianBank):
            raise ConfigError(f"{profile.name}: a visa-bias profile needs exactly one "
                              "lorentzian bank", field="banks", reason="unsupported layout")
        self.profile = profile
        self.bank = banks[0]
        self.name = name or profile.name
        self.scpi = ScpiInstrument(resource, self.name, expect_model=profile.model)
        self.inst = resource
        self.stats = self.scpi.stats
        self.verified_active: bytes | None = None
        self.staged_clean = True
        self.beams: dict[int, tuple[int, bytes]] = {}
        self.max_chunk = 1 << 16
        self.capabilities = Capabilities(staged_buffer=False, atomic_latch=False,
                                         beam_slots=0, max_chunk=self.max_chunk,
                                         sessions=False)
        self._info = DeviceInfo(model=profile.model, firmware="SCPI",
                                banks=layout_from_profile(profile))
        self.bits = self._info.banks[0].bits
        v0, v1 = self.bank.bias_v
        self.v0 = v0
        self.step = (v1 - v0) / ((1 << self.bits) - 1)
        self._staged: bytearray | None = None
        self.power_ons = 0
        self._opened = False
        self.check_power_on()  # clears the power-on bit of the source's current boot
        self._opened = True

    # ---------------------------------------------------------------- SCPI I/O
    def _write(self, cmd: str) -> None:
        self.scpi.write(cmd)

    def _query(self, cmd: str) -> str:
        return self.scpi.query(cmd)

    def check_errors(self) -> None:
        """Drain ``SYST:ERR?``; raise the first error (see ScpiInstrument)."""
        self.scpi.check_errors()

    def check_power_on(self) -> bool:
        """Read ``*ESR?``; True if the power-on bit was set (the source rebooted since the
        last read: the host's copy is forgotten)."""
        r = self._query(DIALECT["esr"])
        try:
            esr = int(float(r))
        except ValueError:
            raise DeviceError(f"{self.name}: *ESR? answered {r!r}") from None
        if esr & 0x80:
            self.power_ons += 1
            if self._opened:  # not the boot the session opened on
                log.warning("%s: the source powered up again (PON in *ESR?); its channels "
                            "are at their power-on values, the host's copy is forgotten",
                            self.name)
                self.stats.resets_seen += 1
            self.verified_active = None
            self._staged = None
            return True
        return False

    # ---------------------------------------------------------------- codes ↔ volts
    def _volts(self, codes: np.ndarray) -> np.ndarray:
        return self.v0 + codes * self.step

    def _codes(self, volts: np.ndarray) -> np.ndarray:
        return np.rint((volts - self.v0) / self.step).astype(np.int64)

    def read_volts(self, channels: Sequence[int] | None = None) -> np.ndarray:
        """Voltages the source holds (``CHn:VOLT?``).

        Parameters
        ----------
        channels : sequence of int, optional
            Zero-based channel indices (default: every channel of the bank).

        Returns
        -------
        ndarray, shape (len(channels),)
            Volts.

        Raises
        ------
        DeviceError
            A channel answers something that is not a number.
        """
        chs = range(self.bank.count) if channels is None else channels
        out = []
        for k in chs:
            r = self._query(DIALECT["get"].format(ch=k + 1))
            try:
                out.append(float(r))
            except ValueError:
                raise DeviceError(f"{self.name}: channel {k + 1} answered {r!r}") from None
        return np.asarray(out)

    # ---------------------------------------------------------------- Device API
    def info(self) -> DeviceInfo:
        """Identity and layout (from the profile; ``*IDN?`` was checked at open)."""
        return self._info

    def read_active(self) -> bytes:
        """Every channel's voltage as codes (after a power-on check)."""
        self.check_power_on()
        v = self.read_volts()
        codes = self._codes(v)
        off = np.abs(v - self._volts(codes)) > self.step * 0.01
        if np.any(off) or np.any((codes < 0) | (codes >= 1 << self.bits)):
            raise DeviceError(f"{self.name}: channel(s) "
                              f"{(np.flatnonzero(off) + 1).tolist()} hold voltages that are "
                              "no code of the tuning table")
        return pack_codes(codes, self.bits)

    def active_crc(self) -> int:
        """CRC-32 of the codes the channels hold now (read, never a cache).

        Raises
        ------
        DeviceError
            A channel holds a voltage that is no code of the tuning table.
        """
        return crc32(self.read_active())

    def stage(self, writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
              sync: bool, latch: bool) -> int | None:
        """Build the codes host-side on the source's read state, then :meth:`latch`
        if ``latch``.

        Parameters
        ----------
        writes : sequence of (int, int, bytes)
            Bank index, byte offset in the bank, packed codes.
        image_crc : int
            CRC-32 the staged codes must have.
        sync : bool
            Start again from the codes the source holds.
        latch : bool
            Set the channels now.

        Returns
        -------
        int or None
            The active CRC-32 after the latch, or None without one.

        Raises
        ------
        StageError
            The staged codes differ from the image (``latch_sent=False``) or the latch
            failed (see :meth:`latch`).
        """
        if self._staged is None or sync or not self.staged_clean:
            base = self.verified_active if self.verified_active is not None \
                else self.read_active()
            self._staged = bytearray(base)
        for _bank, off, data in writes:
            self._staged[off: off + len(data)] = data
        if crc32(bytes(self._staged)) != image_crc:
            raise StageError(f"{self.name}: staged codes differ from the image",
                             latch_sent=False)
        return self.latch(image_crc) if latch else None

    def latch(self, image_crc: int) -> int:
        """Set the changed channels, check errors, read them back; roll back on failure."""
        assert self._staged is not None
        new = unpack_codes(bytes(self._staged), self.bits, self.bank.count)
        old_bytes = self.verified_active if self.verified_active is not None \
            else self.read_active()
        old = unpack_codes(old_bytes, self.bits, self.bank.count)
        changed = np.flatnonzero(new != old)
        try:
            for k in changed:
                self._write(DIALECT["set"].format(ch=k + 1, v=self._volts(new[k])))
            self.check_errors()
            back = self._codes(self.read_volts())  # every channel: the whole image
            bad = np.flatnonzero(back != new)
            if bad.size:
                raise DeviceError(f"{self.name}: channel(s) {(bad + 1).tolist()} read back "
                                  "other voltages than set")
        except DeviceError as exc:
            self._rollback(old, changed)
            raise StageError(f"{exc}; previous voltages restored", latch_sent=True,
                             cause=exc) from exc
        return crc32(pack_codes(new, self.bits))

    def _rollback(self, old: np.ndarray, changed: np.ndarray) -> None:
        try:
            for k in changed:
                self._write(DIALECT["set"].format(ch=k + 1, v=self._volts(old[k])))
            self.check_errors()
        except DeviceError as exc:
            log.error("%s: rollback failed: %s", self.name, exc)

    def close(self) -> None:
        """Close the VISA resource (the voltages stay; never raises)."""
        self.scpi.close()


def open_visa_bias(profile: BoardProfile, *, url: str | None = None,
                   visa_library: str | None = None) -> VisaBiasBoard:
    """Entry point ``visa-bias``: open the instrument with pyvisa.

    ``url`` is the VISA resource (default ``profile.link.url``); the backend is
    ``visa_library`` or ``profile.link.visa_library`` (``"@py"``, ``"x.yaml@sim"``).
    """
    inst = open_visa(url or profile.link.url,
                     visa_library=visa_library or profile.link.visa_library,
                     timeout_s=profile.link.timeout_s)
    try:
        return VisaBiasBoard(profile, inst)
    except Exception:
        inst.close()
        raise
