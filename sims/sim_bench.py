"""A simulated measurement bench: the board's real active image → field at a probe →
instruments.

The field at the probe (surrogate angles θ, φ) is

    y = Σ_n s_n g_n e^{j(φ_n + δ_n)} conj(a_n(φ, θ)) + noise,

where φ_n is the phase that element n's **active** code realises on the simulated
board, and s_n says whether element n is switched onto RF chain 0. The hidden
per-element phase offsets δ_n and gain errors g_n are not told to the library. The
receiver noise is complex Gaussian, with standard deviation σ in units of one
element's field. One element's field delivers ``element_power_w`` to the receiver.

The instruments read it as follows:

- power meter: p_elem |y|², in dBm;
- spectrum analyzer: the marker reads the same, plus the thermal floor
  kTB·NF at the set RBW;
- VNA: S21 = y √p_elem (re, im);
- positioner: moves the probe.

All are served as SCPI on 127.0.0.1 (pyvisa-py) with error queues, range checks and
single/continuous sweeps (:mod:`rfctl.sims.scpi_instruments`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from rfctl.config import BoardProfile
from rfctl.geometry import upa_steering
from rfctl.hal.codebooks import UniformPhaseCodebook
from rfctl.hal.device import DeviceInfo, layout_from_profile
from rfctl.hal.image import unpack_image

from .scpi_instruments import MODELS, SimInstrument
from .scpi_server import ScpiServer
from .simboard import SimBoardFirmware

__all__ = ["BenchModel", "LabBench", "SimBench", "lab_bench"]


@dataclass
class BenchModel:
    """The hidden physics of the bench.

    Attributes
    ----------
    firmware : SimBoardFirmware
        The simulated board whose active image is measured.
    profile : BoardProfile
        Its profile (a uniform ``phase`` bank and a ``switch_matrix`` bank).
    rows, cols : int
        Array geometry (row-major elements).
    offsets, gains : ndarray, shape (N,)
        Hidden phase offsets δ_n (rad) and gain errors g_n.
    noise : float
        σ of the complex receiver noise, in units of one element's field.
    element_power_w : float
        Received power of one element's field, W.
    rng : numpy.random.Generator
    """

    firmware: SimBoardFirmware
    profile: BoardProfile
    rows: int
    cols: int
    offsets: np.ndarray
    gains: np.ndarray
    noise: float = 0.05
    element_power_w: float = 1e-7
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    probe: tuple[float, float] = (0.0, 0.0)  # (theta, phi)
    measurements: int = 0

    @classmethod
    def random(cls, firmware: SimBoardFirmware, profile: BoardProfile, rows: int, cols: int,
               *, seed: int, offset_std_rad: float = math.pi, gain_std: float = 0.1,
               noise: float = 0.05) -> BenchModel:
        """A bench with random hidden offsets (uniform on ±π by default) and gains."""
        rng = np.random.default_rng(seed)
        n = rows * cols
        off = rng.uniform(-offset_std_rad, offset_std_rad, n) if offset_std_rad >= math.pi \
            else rng.normal(0, offset_std_rad, n)
        gains = np.clip(1 + gain_std * rng.standard_normal(n), 0.5, 1.5)
        return cls(firmware, profile, rows, cols, off, gains, noise,
                   rng=np.random.default_rng(seed + 1))

    def __post_init__(self) -> None:
        self._info = DeviceInfo(self.profile.model, "", layout_from_profile(self.profile))
        ph = self.profile.bank("phase")
        self._book = UniformPhaseCodebook(ph.bits, ph.count)
        self._phase_name = ph.name
        self._switch_name = next((b.name for b in self.profile.banks
                                  if b.kind == "switch_matrix"), None)

    def element_weights(self) -> np.ndarray:
        """s_n g_n e^{j(φ_n + δ_n)} from the board's active image."""
        codes = unpack_image(bytes(self.firmware.active), self._info)
        phases = self._book.values(codes[self._phase_name])
        n = phases.size
        if self._switch_name is not None:
            S = codes[self._switch_name].reshape(n, -1)
            s = S[:, 0].astype(float)
        else:
            s = np.ones(n)
        return s * self.gains * np.exp(1j * (phases + self.offsets))

    def field(self, freq_hz: float | None = None) -> complex:
        """One noisy measurement of the field at the probe (this bench is flat in
        frequency: ``freq_hz`` is ignored)."""
        self.measurements += 1
        a = upa_steering(self.rows, self.cols, self.probe[1], self.probe[0])
        y = complex(np.sum(self.element_weights() * np.conj(a)))
        y += self.noise * (self.rng.standard_normal() + 1j * self.rng.standard_normal()) \
            / math.sqrt(2)
        return y

    def ideal_power_w(self) -> float:
        """The power a perfectly phase-calibrated array steered at the probe would give."""
        return self.element_power_w * float(np.sum(self.gains)) ** 2


class SimBench:
    """The bench's instruments as loopback SCPI servers (pyvisa-py TCPIP SOCKET).

    Parameters
    ----------
    model : object
        A bench model with ``field(freq_hz)``, ``element_power_w`` and ``probe``
        (:class:`BenchModel`, or the one-bit bench of :mod:`rfctl.sims.onebit_bench`).
    sweep_time_s : float
        Sweep period of the instruments in continuous mode, s.
    """

    def __init__(self, model, *, sweep_time_s: float = 0.02, freq_hz: float = 30e9) -> None:
        self.model = model
        self.instruments = {k: SimInstrument(k, model, sweep_time_s=sweep_time_s,
                                             freq_hz=freq_hz) for k in MODELS}
        self.servers: dict[str, ScpiServer] = {}
        self._lock = threading.Lock()

    def start(self, first_port: int = 0) -> dict[str, str]:
        """Start one server per instrument (on ``first_port``, ``first_port + 1``, … in
        the order of :data:`MODELS`, or on free ports when 0); returns kind → VISA
        resource."""
        for i, (kind, handler) in enumerate(self.instruments.items()):
            srv = ScpiServer(handler)
            srv.lock = self._lock  # one bench: one measurement at a time
            try:
                srv.start(first_port + i if first_port else 0)
            except OSError:
                self.stop()  # the ones already listening
                raise
            self.servers[kind] = srv
        return {k: s.resource for k, s in self.servers.items()}

    def stop(self) -> None:
        """Stop every instrument server."""
        for s in self.servers.values():
            s.stop()

    def __enter__(self) -> SimBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LabBench:
    """A simulated board behind a loopback socket plus its instruments (see
    :func:`lab_bench`). ``url`` is the board's ``socket://`` URL; ``resources`` maps an
    instrument kind to its VISA resource."""

    server: object
    bench: SimBench
    url: str
    resources: dict[str, str]

    def serve_forever(self) -> None:
        """Serve until interrupted, then stop everything."""
        try:
            self.server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the instruments and the board server."""
        self.bench.stop()
        self.server.stop()


def lab_bench(profile: BoardProfile, *, rows: int, cols: int, seed: int, noise: float,
              probe: tuple[float, float] = (0.0, 0.0), baud: int | None = None,
              direct_path: float = 1.0, port: int = 0) -> LabBench:
    """Entry point (group ``rfctl.sims``, name ``lab-bench``): start a simulated board of
    ``profile`` on a loopback socket and a bench of instruments that measure its active
    image with hidden per-element offsets drawn from ``seed``.

    An ``osris`` profile (one-bit, no switch bank) gets the one-bit bench of
    :mod:`rfctl.sims.onebit_bench` instead (hidden one-bit channel with a direct path
    ``direct_path``; ``rows``, ``cols`` and ``probe`` do not apply).

    With ``port`` the board listens on ``socket://127.0.0.1:port`` and the instruments on
    the next ports (power meter, spectrum analyzer, VNA, positioner); 0 picks free ports.
    """
    from .simserver import board_server

    if profile.driver == "osris":
        from .onebit_bench import onebit_lab_bench

        return onebit_lab_bench(profile, seed=seed, noise=noise, direct_path=direct_path,
                                baud=baud, port=port)

    server = board_server(profile, baud=baud)
    model = BenchModel.random(server.firmware, profile, rows, cols, seed=seed, noise=noise)
    model.probe = probe
    bench = SimBench(model)
    return serve_bench(server, bench, port)


def serve_bench(server, bench: SimBench, port: int = 0) -> LabBench:
    """Start the instruments (on ``port + 1``, … or free ports) and the board server (on
    ``port`` or a free one); if a port is taken, nothing is left listening.

    Raises
    ------
    OSError
        A port cannot be bound.
    """
    resources = bench.start(port + 1 if port else 0)
    try:
        url = server.start_socket(port=port)
    except OSError:
        bench.stop()
        raise
    return LabBench(server, bench, url, resources)
