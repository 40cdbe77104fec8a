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

All are served as SCPI on 127.0.0.1 (pyvisa-py) with error queues and range checks.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
from rfctl.drivers.instruments import DIALECTS

from rfctl.config import BoardProfile, PhaseBank
from rfctl.geometry import upa_steering
from rfctl.hal.codebooks import UniformPhaseCodebook
from rfctl.hal.device import DeviceInfo, layout_from_profile, unpack_image

from .scpi_server import ScpiServer
from .simboard import SimBoardFirmware

__all__ = ["BenchModel", "SimBench"]

K_BOLTZMANN = 1.380649e-23


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
        ph = next(b for b in self.profile.banks if isinstance(b, PhaseBank))
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

    def field(self) -> complex:
        """One noisy measurement of the field at the probe."""
        self.measurements += 1
        a = upa_steering(self.rows, self.cols, self.probe[1], self.probe[0])
        y = complex(np.sum(self.element_weights() * np.conj(a)))
        y += self.noise * (self.rng.standard_normal() + 1j * self.rng.standard_normal()) \
            / math.sqrt(2)
        return y

    def ideal_power_w(self) -> float:
        """The power a perfectly phase-calibrated array steered at the probe would give."""
        return self.element_power_w * float(np.sum(self.gains)) ** 2


class _Instrument:
    """SCPI handler with an error queue and a model string."""

    def __init__(self, kind: str, bench: BenchModel) -> None:
        self.kind = kind
        self.d = DIALECTS[kind]
        self.bench = bench
        self.errors: list[str] = []
        self.values: dict[str, float] = {"freq": 30e9, "center": 30e9, "span": 1e6,
                                         "rbw": 1e3, "theta": 0.0, "phi": 0.0}
        self.silent = False  # fault: never answer queries

    def _set(self, key: str, arg: str, lo: float, hi: float) -> None:
        try:
            v = float(arg)
        except ValueError:
            self.errors.append('-104,"Data type error"')
            return
        if not lo <= v <= hi:
            self.errors.append('-222,"Data out of range"')
            return
        self.values[key] = v
        if self.kind == "positioner":
            self.bench.probe = (self.values["theta"], self.values["phi"])

    def __call__(self, line: str) -> str | None:
        if self.silent:
            return None
        up = line.upper()
        if up == "*IDN?":
            return f"RFCTL,{self.d['model']},0001,1.0"
        if up == "SYST:ERR?":
            return self.errors.pop(0) if self.errors else '0,"No error"'
        head, _, arg = line.partition(" ")
        limits = {"freq": (1e6, 110e9), "center": (1e6, 110e9), "span": (1.0, 1e10),
                  "rbw": (1.0, 1e7), "theta": (-1.0, 1.0), "phi": (-1.0, 1.0)}
        for key, cmd in self.d.items():
            if key in limits and arg and head.upper() == cmd.split(" ")[0].upper():
                self._set(key, arg, *limits[key])
                return None
            if key.endswith("?") and up == cmd.upper():
                return f"{self.values[key[:-1]]:.6f}"
        b = self.bench
        if self.kind == "power-meter" and up == self.d["power"]:
            return f"{_dbm(b.element_power_w * abs(b.field()) ** 2):.4f}"
        if self.kind == "spectrum-analyzer":
            if up == self.d["peak"]:
                return None
            if up == self.d["marker"]:
                floor = K_BOLTZMANN * 290 * self.values["rbw"] * 10  # NF = 10 dB
                return f"{_dbm(b.element_power_w * abs(b.field()) ** 2 + floor):.4f}"
        if self.kind == "vna" and up == self.d["s21"]:
            y = b.field() * math.sqrt(b.element_power_w)
            return f"{y.real:.9e},{y.imag:.9e}"
        self.errors.append('-113,"Undefined header"')
        return None


def _dbm(w: float) -> float:
    return 10 * math.log10(max(w, 1e-30)) + 30


class SimBench:
    """The bench's instruments as loopback SCPI servers (pyvisa-py TCPIP SOCKET)."""

    def __init__(self, model: BenchModel) -> None:
        self.model = model
        self.instruments = {k: _Instrument(k, model) for k in DIALECTS}
        self.servers: dict[str, ScpiServer] = {}
        self._lock = threading.Lock()

    def start(self) -> dict[str, str]:
        """Start one server per instrument; returns kind → VISA resource."""
        for kind, handler in self.instruments.items():
            srv = ScpiServer(handler)
            srv.lock = self._lock  # one bench: one measurement at a time
            srv.start()
            self.servers[kind] = srv
        return {k: s.resource for k, s in self.servers.items()}

    def stop(self) -> None:
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
        self.bench.stop()
        self.server.stop()


def lab_bench(profile: BoardProfile, *, rows: int, cols: int, seed: int, noise: float,
              probe: tuple[float, float] = (0.0, 0.0), baud: int | None = None) -> LabBench:
    """Entry point (group ``rfctl.sims``, name ``lab-bench``): start a simulated board of
    ``profile`` on a loopback socket and a bench of instruments that measure its active
    image with hidden per-element offsets drawn from ``seed``."""
    from .simserver import board_server

    server = board_server(profile, baud=baud)
    model = BenchModel.random(server.firmware, profile, rows, cols, seed=seed, noise=noise)
    model.probe = probe
    bench = SimBench(model)
    resources = bench.start()
    url = server.start_socket()
    return LabBench(server, bench, url, resources)
