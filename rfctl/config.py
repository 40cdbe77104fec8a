"""Validated configuration: array specs, board profiles and scenarios (TOML).

Everything inside is SI: hertz, metres, watts (linear), siemens, radians. Thresholds
(SINR Γ, sensing gain Υ) are linear ratios as in the seeds. Every model forbids unknown
fields. Loading errors become :class:`rfctl.errors.ConfigError` naming the file, the
dotted field path and the reason.

A config file is a TOML table with ``kind = "scenario"`` or ``kind = "board"``.
Built-ins live in the package ``rfctl.configs`` and load by name
(``load_config("dbraa-14x14")``); any other argument is a file path.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from rfctl.errors import ConfigError, OutputError

__all__ = [
    "SPEED_OF_LIGHT",
    "BoardProfile",
    "DbraaSpec",
    "DmaScenario",
    "DmaSpec",
    "FeedMuxBank",
    "LinkSpec",
    "LorentzianBank",
    "MmwaveScenario",
    "PhaseBank",
    "PinLinkBank",
    "Scenario",
    "Sub6Scenario",
    "SwitchMatrixBank",
    "UpaSpec",
    "builtin_names",
    "check_board_for_scenario",
    "load_config",
    "parse_config",
    "read_table_csv",
    "read_text_file",
    "write_text_output",
]

SPEED_OF_LIGHT = 299_792_458.0
"""Speed of light in vacuum, m/s."""


# --------------------------------------------------------------------------- limits
# Every number in a config is a finite, strictly typed value inside a physical range:
# no "6" -> 6, no true -> 1, no NaN/inf, no 1e300. Sizes are bounded before anything is
# allocated from them (a bank of 10**12 elements is refused here, not by a MemoryError).
MAX_ELEMENTS = 65_536
"""Most elements of one bank, array or candidate grid."""
MAX_SIDE = 256
"""Most rows or columns of a panel."""
MAX_ITEMS = 256
"""Most users, paths, RF chains, targets or directions of a scenario."""
MAX_BANKS = 16
MAX_TIMEOUT_S = 300.0
"""Largest link reply timeout, s (a timeout must stay bounded)."""
MAX_CONFIG_BYTES = 1 << 20
"""Largest config (TOML) file read, bytes."""
MAX_TABLE_ROWS = 65_536
"""Largest CSV table (tuning, I/Q or calibration) read, rows."""
MAX_TABLE_BYTES = 8 << 20
"""Largest CSV table file read, bytes."""
MAX_STR = 4096


def _tuple(v: Any) -> Any:
    """TOML has arrays, not tuples: accept a list for a tuple field (items stay strict)."""
    return tuple(v) if isinstance(v, list) else v


def _plain_text(v: str) -> str:
    bad = [c for c in v if ord(c) < 32 and c not in "\t\n"]
    if bad:
        raise ValueError(f"control character {bad[0]!r} (e.g. a NUL byte) is not allowed")
    return v


def _path_text(v: str) -> str:
    _plain_text(v)
    if "\n" in v or "\t" in v or not v.strip():
        raise ValueError("a file name must be a non-empty single line")
    return v


Count = Annotated[int, Field(ge=1, le=MAX_ELEMENTS)]
Side = Annotated[int, Field(ge=2, le=MAX_SIDE)]
Small = Annotated[int, Field(ge=1, le=MAX_ITEMS)]
Frequency = Annotated[float, Field(ge=1e3, le=1e13)]
"""Hz: 1 kHz … 10 THz."""
Length = Annotated[float, Field(ge=1e-9, le=1e3)]
"""m: 1 nm … 1 km."""
Power = Annotated[float, Field(ge=1e-30, le=1e9)]
"""W (linear), noise powers included."""
Ratio = Annotated[float, Field(gt=0.0, le=1e12)]
"""Linear power ratio (thresholds), up to 120 dB."""
Gain = Annotated[float, Field(ge=0.0, le=1e12)]
Text = Annotated[str, Field(max_length=MAX_STR), AfterValidator(_plain_text)]
FileName = Annotated[str, Field(min_length=1, max_length=MAX_STR), AfterValidator(_path_text)]


def _plain_numbers(v: Any) -> Any:
    """NumPy integers and floats (e.g. from a sweep grid) as Python ``int``/``float``;
    NumPy bools and complex numbers stay as they are, and are refused."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, list):
        return [_plain_numbers(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_plain_numbers(x) for x in v)
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _numpy_scalars(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: _plain_numbers(v) for k, v in data.items()}
        return data


# --------------------------------------------------------------------------- arrays
class UpaSpec(_Model):
    """Uniform planar array in the x–z plane.

    Attributes
    ----------
    rows, cols : int
        Elements along z (rows) and x (columns).
    carrier_hz : float
        Carrier frequency, Hz.
    spacing_m : float or None
        Element spacing, m. ``None`` means half a wavelength at the carrier.
    """

    rows: Annotated[int, Field(ge=1, le=MAX_SIDE)]
    cols: Annotated[int, Field(ge=1, le=MAX_SIDE)]
    carrier_hz: Frequency
    spacing_m: Length | None = None

    @property
    def wavelength(self) -> float:
        """Carrier wavelength, m."""
        return SPEED_OF_LIGHT / self.carrier_hz

    @property
    def spacing(self) -> float:
        """Element spacing, m."""
        return self.spacing_m if self.spacing_m is not None else self.wavelength / 2

    @property
    def n_elements(self) -> int:
        """Number of elements, ``rows × cols``."""
        return self.rows * self.cols


class DbraaSpec(_Model):
    """Dual-band reconfigurable antenna array (DBRAA seed §II-A).

    The mmWave panel is a half-wavelength ``rows × cols`` UPA at ``f_m``; a sub-6 GHz
    antenna is a 2×2 block of mmWave pixels joined by PIN diodes, so there are
    ``(rows−1)(cols−1)`` candidates, of which ``n_sub6`` are selected. Selected antennas
    keep out of each other's ``h_s × v_s`` box (see :mod:`rfctl.state`).

    Attributes
    ----------
    rows, cols : int
        mmWave elements along z and x (N_row, N_col), each ≥ 2.
    f_m, f_s : float
        mmWave and sub-6 GHz carriers, Hz (seed: 30 GHz and 5 GHz).
    h_s, v_s : int
        Minimum horizontal / vertical spacing between selected sub-6G antennas, in
        candidate-grid steps (λ_m/2). Seed: 6.
    n_sub6 : int
        Selected sub-6 GHz antennas N_s (one RF chain each).
    n_rf : int
        mmWave RF chains N_RF.
    """

    rows: Side
    cols: Side
    f_m: Frequency
    f_s: Frequency
    h_s: Annotated[int, Field(ge=1, le=MAX_SIDE)]
    v_s: Annotated[int, Field(ge=1, le=MAX_SIDE)]
    n_sub6: Small
    n_rf: Small

    @model_validator(mode="after")
    def _check(self) -> DbraaSpec:
        if self.f_s >= self.f_m:
            raise ValueError("f_s must be below f_m (the sub-6 GHz band is the lower one)")
        if self.n_sub6 > self.n_candidates:
            raise ValueError(
                f"n_sub6 = {self.n_sub6} exceeds the {self.n_candidates} candidate positions"
            )
        if self.n_rf > self.n_mmwave:
            raise ValueError(f"n_rf = {self.n_rf} exceeds the {self.n_mmwave} mmWave elements")
        return self

    @property
    def n_mmwave(self) -> int:
        """Number of mmWave elements N_m."""
        return self.rows * self.cols

    @property
    def candidate_shape(self) -> tuple[int, int]:
        """Shape of the selection map P, (N_row − 1, N_col − 1)."""
        return (self.rows - 1, self.cols - 1)

    @property
    def n_candidates(self) -> int:
        """Number of candidate sub-6 GHz positions N_p."""
        return (self.rows - 1) * (self.cols - 1)

    @property
    def wavelength_ratio(self) -> float:
        """λ_m / λ_s = f_s / f_m (appears in the sub-6G steering vector, eq. 4)."""
        return self.f_s / self.f_m

    @property
    def mmwave_upa(self) -> UpaSpec:
        """The whole ``rows × cols`` panel as a UPA at the mmWave carrier ``f_m``."""
        return UpaSpec(rows=self.rows, cols=self.cols, carrier_hz=self.f_m)


class DmaSpec(_Model):
    """Dynamic metasurface antenna geometry (admittance model of Williams et al. 2022).

    Attributes
    ----------
    frequency_hz : float
        Operating frequency, Hz.
    waveguide_a_m, waveguide_b_m : float
        Waveguide width (z) and height (y), m. TE10 must propagate: a > λ/2.
    n_waveguides : int
        Waveguides N, one RF chain each.
    elements_per_waveguide : int
        Elements L_μ per waveguide.
    element_spacing_m : float
        Element spacing d along the waveguide, m.
    waveguide_spacing_m : float
        Spacing s_wg between waveguide axes along z, m.
    r0_siemens : float
        Fixed real part R0 of the element load Y_s, S.
    dipole_length_m : float
        Dipole normalisation l (every admittance carries l²); reference examples use 1.
    """

    frequency_hz: Frequency
    waveguide_a_m: Length
    waveguide_b_m: Length
    n_waveguides: Annotated[int, Field(ge=1, le=1024)]
    elements_per_waveguide: Annotated[int, Field(ge=1, le=4096)]
    element_spacing_m: Length
    waveguide_spacing_m: Length
    r0_siemens: Annotated[float, Field(ge=1e-9, le=1e9)] = 1.0
    dipole_length_m: Length = 1.0

    @model_validator(mode="after")
    def _check(self) -> DmaSpec:
        if self.n_elements > MAX_ELEMENTS:
            raise ValueError(
                f"n_waveguides × elements_per_waveguide = {self.n_elements} exceeds the "
                f"limit of {MAX_ELEMENTS} elements"
            )
        lam = SPEED_OF_LIGHT / self.frequency_hz
        if self.waveguide_a_m <= lam / 2:
            raise ValueError(
                f"waveguide_a_m = {self.waveguide_a_m:.4g} m is below cut-off "
                f"(TE10 needs a > λ/2 = {lam / 2:.4g} m)"
            )
        if self.waveguide_spacing_m < self.waveguide_a_m:
            raise ValueError("waveguide_spacing_m must be at least waveguide_a_m")
        return self

    @property
    def n_elements(self) -> int:
        """Total elements L = N · L_μ."""
        return self.n_waveguides * self.elements_per_waveguide


# --------------------------------------------------------------------------- scenarios
class SurrogateDirection(_Model):
    """A direction in surrogate angles (DBRAA seed eq. 2): θ = cos ψ sin ϖ, φ = sin ψ."""

    theta: Annotated[float, Field(ge=-1.0, le=1.0)]
    phi: Annotated[float, Field(ge=-1.0, le=1.0)]


class _BandTask(_Model):
    """What the tasks of both bands declare: users, their paths, sensing directions and
    the receiver noise (the bands' attributes are listed on each subclass)."""

    users: Small
    paths: Small
    targets: Annotated[list[SurrogateDirection], Field(max_length=MAX_ITEMS)] = Field(
        default_factory=list)
    noise_power: Power = 1.0


class Sub6Scenario(_BandTask):
    """Sub-6 GHz ISAC task (DBRAA seed §III-A).

    Attributes
    ----------
    users : int
        K_s single-antenna users.
    paths : int
        Multipath components per user L_s,k (seed: 5).
    targets : list of SurrogateDirection
        Sensing directions (T_s of them).
    sinr_threshold : float
        Γ_k, linear (seed: 10).
    gain_threshold : float
        Υ_s,t, linear power gain ‖F_sᴴ diag(p) β‖² (seed: 10).
    noise_power : float
        σ_s², W (seed: 1).
    """

    paths: Small = 5
    sinr_threshold: Ratio = 10.0
    gain_threshold: Gain = 10.0
    power_budget: Power | None = None
    """P_s, W: the sub-6G budget (None: unlimited; the design minimises power anyway)."""


class MmwaveScenario(_BandTask):
    """mmWave ISAC task (DBRAA seed §III-B).

    Attributes
    ----------
    users : int
        K_m users (≤ N_RF).
    paths : int
        Multipath components per user L_m,k (seed: 3).
    targets : list of SurrogateDirection
        Sensing directions T_m.
    gain_threshold : float
        Υ_m,t, linear power gain (seed Fig. 7: 11).
    power : float
        P_m, W (seed Fig. 7: 7).
    noise_power : float
        σ_m², W (seed: 1).
    """

    paths: Small = 3
    gain_threshold: Gain = 11.0
    power: Power = 7.0


Direction = Annotated[
    tuple[Annotated[float, Field(ge=-math.pi, le=math.pi)],
          Annotated[float, Field(ge=-2 * math.pi, le=2 * math.pi)]],
    BeforeValidator(_tuple),
]
"""(θ, φ), rad: |θ| ≤ π, |φ| ≤ 2π."""
Coordinate = Annotated[float, Field(ge=-1e5, le=1e5)]
"""m, within 100 km."""


class DmaScenario(_Model):
    """DMA ISAC task (DMA seed, problem P1).

    Attributes
    ----------
    users : int
        M communication users.
    sensing_streams : int
        N_s sensing streams in B = [B_c B_s].
    directions : list of (float, float)
        D sensing directions (θ, φ) in radians (elevation from broadside, azimuth).
    user_region_m : tuple
        Users drawn uniformly in x ∈ [x0, x1], y ∈ [y0, y1] at height z, metres.
    max_power : float
        P_max, W.
    noise_power : float
        Receiver noise power, W.
    """

    users: Small = 3
    sensing_streams: Annotated[int, Field(ge=0, le=MAX_ITEMS)] = 1
    directions: Annotated[list[Direction], Field(max_length=MAX_ITEMS)] = Field(
        default_factory=list)
    user_region_m: Annotated[
        tuple[Coordinate, Coordinate, Coordinate, Coordinate, Coordinate],
        BeforeValidator(_tuple),
    ] = (-20.0, 20.0, 20.0, 60.0, 1.5)
    max_power: Power = 1.0
    noise_power: Power = 1e-12

    @model_validator(mode="after")
    def _check(self) -> DmaScenario:
        x0, x1, y0, y1, _ = self.user_region_m
        if not (x0 <= x1 and y0 <= y1):
            raise ValueError(
                f"user_region_m = {self.user_region_m}: needs x0 ≤ x1 and y0 ≤ y1"
            )
        return self


class Scenario(_Model):
    """A complete scenario: the array it runs on and the tasks, with the seed.

    Exactly one of ``dbraa`` / ``dma`` describes the array.
    """

    kind: Literal["scenario"] = "scenario"
    name: Annotated[Text, Field(max_length=200)]
    description: Text = ""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    total_power: Power | None = None
    dbraa: DbraaSpec | None = None
    dma: DmaSpec | None = None
    sub6g: Sub6Scenario | None = None
    mmwave: MmwaveScenario | None = None
    dma_task: DmaScenario | None = None

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if (self.dbraa is None) == (self.dma is None):
            raise ValueError("give exactly one array: a [dbraa] or a [dma] table")
        if self.dbraa is not None:
            if self.dma_task is not None:
                raise ValueError("dma_task needs a [dma] array, not [dbraa]")
            if self.sub6g is not None and self.sub6g.users > self.dbraa.n_sub6:
                raise ValueError(
                    f"sub6g.users = {self.sub6g.users} exceeds dbraa.n_sub6 = "
                    f"{self.dbraa.n_sub6} (K_s ≤ N_s)"
                )
            if self.mmwave is not None and self.mmwave.users > self.dbraa.n_rf:
                raise ValueError(
                    f"mmwave.users = {self.mmwave.users} exceeds dbraa.n_rf = "
                    f"{self.dbraa.n_rf} (K_m ≤ N_RF)"
                )
        if self.dma is not None and (self.sub6g is not None or self.mmwave is not None):
            raise ValueError("sub6g / mmwave tasks need a [dbraa] array, not [dma]")
        return self


# --------------------------------------------------------------------------- boards
class LinkSpec(_Model):
    """How to reach a board.

    Attributes
    ----------
    url : str
        pyserial URL (``/dev/ttyUSB0``, ``socket://127.0.0.1:5000``, ``loop://``) or a
        VISA resource name; ``sim://`` means the in-process simulated board.
    baud : int
        Line rate, bit/s.
    timeout_s : float
        Reply timeout per attempt, s.
    retries : int
        Bounded retransmissions per command.
    """

    url: Annotated[Text, Field(min_length=1)] = "sim://"
    baud: Annotated[int, Field(ge=1, le=100_000_000)] = 921_600
    timeout_s: Annotated[float, Field(gt=0.0, le=MAX_TIMEOUT_S)] = 0.5
    retries: Annotated[int, Field(ge=0, le=20)] = 3
    chunk: Annotated[int, Field(ge=1, le=1024)] = 256
    """Largest image payload per write frame, bytes."""
    visa_library: Text | None = None
    """pyvisa backend for VISA links: ``"@py"`` (pyvisa-py), ``"file.yaml@sim"``
    (pyvisa-sim), or None for the system's default."""


class _BankBase(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
    max_on: Count | None = None
    """Safety limit: most elements of this bank that may be on (code ≠ 0) at once."""

    @model_validator(mode="after")
    def _check_max_on(self) -> _BankBase:
        count = getattr(self, "count", None)
        if self.max_on is not None and count is not None and self.max_on > count:
            raise ValueError(f"max_on = {self.max_on} exceeds the bank's {count} elements")
        return self


class PhaseBank(_BankBase):
    """Phase shifters, one per mmWave element.

    Either a uniform ``bits``-bit code book (code c ↦ 2πc/2^b, wraps at 2π) or a table
    of I/Q entries (``table_file``: CSV ``code,i,q``; the phase of entry c is
    ``atan2(q, i)``). An optional ``calibration_file`` (CSV ``element,phase_offset_rad``)
    gives each element's measured offset: element k realises table[c] + δ_k, so the HAL
    quantizes φ − δ_k.
    """

    kind: Literal["phase"] = "phase"
    count: Count
    bits: Annotated[int, Field(ge=1, le=16)] | None = None
    table_file: FileName | None = None
    calibration_file: FileName | None = None

    @model_validator(mode="after")
    def _check(self) -> PhaseBank:
        if (self.bits is None) == (self.table_file is None):
            raise ValueError("give exactly one of bits (uniform) or table_file (I/Q table)")
        return self


class SwitchMatrixBank(_BankBase):
    """RF switch network S, one bit per (antenna, RF chain), row-major."""

    kind: Literal["switch_matrix"] = "switch_matrix"
    antennas: Count
    rf_chains: Small

    @property
    def count(self) -> int:
        """Switches in the bank: one per (antenna, RF chain), ``antennas × rf_chains``."""
        return self.antennas * self.rf_chains


class PinLinkBank(_BankBase):
    """PIN diodes joining neighbouring mmWave pixels of a ``rows × cols`` panel.

    Codes: the ``rows × (cols−1)`` horizontal links row-major, then the
    ``(rows−1) × cols`` vertical links row-major; 1 = diode on (pixels joined).
    """

    kind: Literal["pin_links"] = "pin_links"
    rows: Side
    cols: Side
    h_s: Annotated[int, Field(ge=1, le=MAX_SIDE)] = 1
    v_s: Annotated[int, Field(ge=1, le=MAX_SIDE)] = 1

    @property
    def count(self) -> int:
        """Links in the bank: horizontal ``rows × (cols − 1)`` then vertical
        ``(rows − 1) × cols``."""
        return self.rows * (self.cols - 1) + (self.rows - 1) * self.cols


class FeedMuxBank(_BankBase):
    """Sub-6 GHz feed switches: per sub-6G RF chain, the index (row-major, into the
    ``(rows−1) × (cols−1)`` candidate grid) of the antenna it is routed to."""

    kind: Literal["feed_mux"] = "feed_mux"
    rf_chains: Small
    rows: Side
    cols: Side

    @model_validator(mode="after")
    def _check(self) -> FeedMuxBank:
        if self.rf_chains > self.n_inputs:
            raise ValueError(f"rf_chains = {self.rf_chains} exceeds the {self.n_inputs} "
                             "candidate antennas")
        return self

    @property
    def count(self) -> int:
        """Codes in the bank: one per sub-6G RF chain."""
        return self.rf_chains

    @property
    def n_inputs(self) -> int:
        """Antennas each switch can route to, ``(rows − 1) × (cols − 1)``."""
        return (self.rows - 1) * (self.cols - 1)


class LorentzianArc(_Model):
    """A generated Lorentzian tuning table: ``2**bits`` responses q = (−j + e^{jψ})/2
    with ψ evenly spaced on [psi_min, psi_max] (radians, both included)."""

    bits: Annotated[int, Field(ge=1, le=12)]
    psi_min: Annotated[float, Field(ge=-4 * math.pi, le=4 * math.pi)] = -math.pi / 2 * 0.95
    psi_max: Annotated[float, Field(ge=-4 * math.pi, le=4 * math.pi)] = math.pi * 1.45

    @model_validator(mode="after")
    def _check(self) -> LorentzianArc:
        if not self.psi_max > self.psi_min:
            raise ValueError("psi_max must exceed psi_min")
        if self.psi_max - self.psi_min >= 2 * math.pi:
            raise ValueError("the arc must be shorter than 2π (q = 0 is not realisable)")
        return self


Voltage = Annotated[float, Field(ge=-1000.0, le=1000.0)]
"""V, within ±1 kV."""


class LorentzianBank(_BankBase):
    """DMA element tunings: code → measured normalised Lorentzian response q.

    Either ``table_file`` (CSV ``code,re,im``) or a generated ``arc``. 1-bit and few-level
    elements are tables with 2 or 2^b rows; their boards usually set
    ``out_of_range = "nearest"``.
    """

    kind: Literal["lorentzian"] = "lorentzian"
    count: Count
    table_file: FileName | None = None
    arc: LorentzianArc | None = None
    out_of_range: Literal["raise", "nearest"] = "raise"
    """A target outside the table's arc raises (default) or takes the nearest entry;
    either way the image reports how many elements were out of range."""
    bias_v: Annotated[tuple[Voltage, Voltage], BeforeValidator(_tuple)] = (0.0, 10.0)
    """Bias voltage of code 0 and of the last code, V (linear in between), for boards
    whose elements are tuned by a multi-channel bias source."""

    @model_validator(mode="after")
    def _check(self) -> LorentzianBank:
        if (self.table_file is None) == (self.arc is None):
            raise ValueError("give exactly one of table_file or arc")
        return self


Bank = Annotated[
    PhaseBank | SwitchMatrixBank | PinLinkBank | FeedMuxBank | LorentzianBank,
    Field(discriminator="kind"),
]


class BoardProfile(_Model):
    """What a board holds and how to reach it.

    Attributes
    ----------
    name : str
        Profile name.
    model : str
        Board model string the device must report in IDENT.
    driver : str
        Driver entry point name (``rfctl-serial``, ``osris``, ``visa-bias``).
    link : LinkSpec
        Transport settings.
    banks : list of Bank
        Actuator banks, at most one of each kind, unique names.
    base_dir : str
        Directory that relative table/calibration files are resolved against (set by
        the loader; not read from the file).
    """

    kind: Literal["board"] = "board"
    name: Annotated[Text, Field(max_length=200)]
    model: Annotated[Text, Field(max_length=200)] = "rfctl-sim"
    description: Text = ""
    driver: Annotated[Text, Field(max_length=200)] = "rfctl-serial"
    """Entry point (group ``rfctl.drivers``) of the driver that talks to this board."""
    link: LinkSpec = Field(default_factory=LinkSpec)
    banks: Annotated[list[Bank], Field(max_length=MAX_BANKS)]
    base_dir: str = Field(default=".", exclude=True)

    @model_validator(mode="after")
    def _check(self) -> BoardProfile:
        names = [b.name for b in self.banks]
        if len(set(names)) != len(names):
            raise ValueError(f"bank names must be unique, got {names}")
        kinds = [b.kind for b in self.banks]
        dup = sorted({k for k in kinds if kinds.count(k) > 1})
        if dup:
            raise ValueError(f"at most one bank of each kind; repeated: {dup}")
        if not self.banks:
            raise ValueError("a board needs at least one bank")
        by_kind = {b.kind: b for b in self.banks}
        ph, sw = by_kind.get("phase"), by_kind.get("switch_matrix")
        pin, feed = by_kind.get("pin_links"), by_kind.get("feed_mux")
        if sw is not None and sw.count > MAX_ELEMENTS:
            raise ValueError(f"bank {sw.name!r}: antennas × rf_chains = {sw.count} exceeds "
                             f"the limit of {MAX_ELEMENTS} switches")
        if ph is not None and sw is not None and ph.count != sw.antennas:
            raise ValueError(
                f"switch_matrix bank {sw.name!r} has antennas = {sw.antennas} but phase "
                f"bank {ph.name!r} has {ph.count} phase shifters (one per antenna)"
            )
        if pin is not None and feed is not None and (pin.rows, pin.cols) != (feed.rows,
                                                                             feed.cols):
            raise ValueError(
                f"pin_links bank {pin.name!r} is {pin.rows} × {pin.cols} but feed_mux bank "
                f"{feed.name!r} is {feed.rows} × {feed.cols} (one panel)"
            )
        panel = pin or feed
        if ph is not None and panel is not None and ph.count != panel.rows * panel.cols:
            raise ValueError(
                f"phase bank {ph.name!r} has {ph.count} elements but the {panel.kind} bank "
                f"{panel.name!r} describes a {panel.rows} × {panel.cols} panel"
            )
        return self

    def bank(self, kind: str) -> Any:
        """The bank of a given kind.

        Raises
        ------
        ConfigError
            The profile has no bank of that kind (naming the profile, the kind and the
            banks it does have).
        """
        b = self.find_bank(kind)
        if b is None:
            have = ", ".join(f"{x.name} ({x.kind})" for x in self.banks)
            raise ConfigError(
                f"board {self.name!r} has no {kind} bank (it has: {have})",
                source=self.name, field="banks", reason=f"no {kind} bank",
            )
        return b

    def find_bank(self, kind: str) -> Any:
        """The bank of a given kind, or ``None``."""
        for b in self.banks:
            if b.kind == kind:
                return b
        return None

    def resolve(self, relpath: str) -> Path:
        """Resolve a table/calibration file path relative to the profile's directory."""
        p = Path(relpath)
        return p if p.is_absolute() else Path(self.base_dir) / p


def check_board_for_scenario(board: BoardProfile, scenario: Scenario) -> None:
    """Check that a board's banks fit a scenario's array.

    DBRAA: phase count = N_m = rows·cols, switch shape = N_m × N_RF, pin/feed panel =
    rows × cols, feed count = N_s. DMA: Lorentzian count = L. Banks the board does not
    have are not checked here (:meth:`BoardProfile.bank` raises when a routine needs one).

    Raises
    ------
    ConfigError
        Naming the board, the bank, the field and both values.
    """

    def fail(bank: Any, fld: str, got: Any, want: Any, what: str) -> None:
        raise ConfigError(
            f"board {board.name!r}: banks.{bank.name}.{fld} = {got} but scenario "
            f"{scenario.name!r} needs {want} ({what})",
            source=board.name, field=f"banks.{bank.name}.{fld}", reason="does not fit",
        )

    if scenario.dbraa is not None:
        d = scenario.dbraa
        if (ph := board.find_bank("phase")) is not None and ph.count != d.n_mmwave:
            fail(ph, "count", ph.count, d.n_mmwave, "phase shifters = rows × cols")
        if (sw := board.find_bank("switch_matrix")) is not None:
            if sw.antennas != d.n_mmwave:
                fail(sw, "antennas", sw.antennas, d.n_mmwave, "switch rows = antennas")
            if sw.rf_chains != d.n_rf:
                fail(sw, "rf_chains", sw.rf_chains, d.n_rf, "switch columns = N_RF")
        for kind in ("pin_links", "feed_mux"):
            if (b := board.find_bank(kind)) is not None and (b.rows, b.cols) != (d.rows,
                                                                                 d.cols):
                fail(b, "rows/cols", f"{b.rows} × {b.cols}", f"{d.rows} × {d.cols}",
                     "the mmWave panel")
        if (fd := board.find_bank("feed_mux")) is not None and fd.rf_chains != d.n_sub6:
            fail(fd, "rf_chains", fd.rf_chains, d.n_sub6, "feed count = N_s")
    if scenario.dma is not None:
        L = scenario.dma.n_elements
        if (lz := board.find_bank("lorentzian")) is not None and lz.count != L:
            fail(lz, "count", lz.count, L, "elements = n_waveguides × elements_per_waveguide")


# --------------------------------------------------------------------------- loading
_CONFIG_ADAPTER: TypeAdapter[Scenario | BoardProfile] = TypeAdapter(
    Annotated[Scenario | BoardProfile, Field(discriminator="kind")]
)


def _format_loc(loc: Sequence[Any]) -> str:
    # Drop the discriminator tag pydantic inserts ('scenario', 'phase', ...).
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else "(top level)"


def _strip_tags(loc: Sequence[Any], data: Any) -> list[Any]:
    """Remove discriminated-union tags from a pydantic error location."""
    out: list[Any] = []
    cur = data
    for p in loc:
        if isinstance(cur, dict) and isinstance(p, str) and p not in cur and out is not None:
            # a union tag such as 'board' or 'phase': skip it, stay at the same level
            if isinstance(cur.get("kind"), str) and cur.get("kind") == p:
                continue
        out.append(p)
        if isinstance(cur, dict):
            cur = cur.get(p)
        elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
            cur = cur[p]
        else:
            cur = None
    return out


def parse_config(data: dict[str, Any], *, source: str = "<dict>", base_dir: str = ".") -> Any:
    """Validate a config mapping (as read from TOML).

    Parameters
    ----------
    data : dict
        The parsed TOML table; must have ``kind = "scenario"`` or ``"board"``.
    source : str
        Where it came from, for error messages.
    base_dir : str
        Directory relative table files resolve against (boards only).

    Returns
    -------
    Scenario or BoardProfile

    Raises
    ------
    ConfigError
        Naming the source, the field path and the reason of the first error (all
        errors are listed in the message).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table, got {type(data).__name__}", source=source)
    kind = data.get("kind")
    if kind not in ("scenario", "board"):
        raise ConfigError(
            f"{source}: kind: must be 'scenario' or 'board', got {kind!r}",
            source=source,
            field="kind",
            reason="unknown config kind",
        )
    if kind == "board":
        data = {**data, "base_dir": base_dir}
    try:
        return _CONFIG_ADAPTER.validate_python(data)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        lines = []
        first_field = first_reason = None
        for e in errs:
            loc = _format_loc(_strip_tags(e["loc"], data))
            reason = e["msg"]
            if e["type"] == "extra_forbidden":
                reason = "unknown field (not allowed)"
            lines.append(f"{source}: {loc}: {reason}")
            if first_field is None:
                first_field, first_reason = loc, reason
        raise ConfigError(
            "\n".join(lines), source=source, field=first_field, reason=first_reason
        ) from None


def builtin_names() -> list[str]:
    """Names of the built-in configs shipped in ``rfctl.configs``."""
    root = importlib.resources.files("rfctl.configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def read_text_file(path: Path, *, source: str, limit: int, what: str = "") -> str:
    """Read a UTF-8 text file, every failure a :class:`ConfigError` naming the file."""
    if not what and str(source) == str(path):
        where = ""  # the file is the source: name it once
    else:
        where = f"{source}: {what}" if what else f"{source}: "
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{where}cannot read {path}: {reason}", source=source,
                          field=what.rstrip(": ") or None, reason=reason) from None
    except ValueError as exc:  # embedded NUL byte and the like
        raise ConfigError(f"{where}invalid file name {str(path)!r}: {exc}", source=source,
                          field=what.rstrip(": ") or None, reason="invalid file name") from None
    if len(raw) > limit:
        raise ConfigError(f"{where}{path} is larger than {limit} bytes", source=source,
                          field=what.rstrip(": ") or None, reason="file too large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{where}{path}: not UTF-8 text (invalid byte at offset {exc.start})",
            source=source, field=what.rstrip(": ") or None, reason="not UTF-8",
        ) from None


def write_text_output(path: str | Path, text: str, *, what: str = "output") -> None:
    """Write a UTF-8 text file; every failure an :class:`OutputError` naming the path.

    Parameters
    ----------
    path : str or Path
        Destination file (not a directory; its parent must exist).
    text : str
        Contents.
    what : str
        What is written, for the message (``"state"``, ``"results"``).
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise OutputError(f"{path}: is a directory; give a file name for the {what}",
                              path=str(path), reason="is a directory")
        if not p.parent.is_dir():
            raise OutputError(f"{path}: directory {str(p.parent)!r} does not exist",
                              path=str(path), reason="missing directory")
        p.write_text(text, encoding="utf-8")
    except OutputError:
        raise
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OutputError(f"{path}: cannot write the {what}: {reason}", path=str(path),
                          reason=reason) from None


def load_config(name_or_path: str | Path) -> Any:
    """Load a scenario or board profile from a built-in name or a TOML file.

    Parameters
    ----------
    name_or_path : str or Path
        A built-in name (see :func:`builtin_names`) or a path to a ``.toml`` file.

    Returns
    -------
    Scenario or BoardProfile

    Raises
    ------
    ConfigError
        Unknown name, unreadable, oversized or non-UTF-8 file, TOML syntax error or
        invalid content.
    """
    s = str(name_or_path)
    if "\0" in s:
        raise ConfigError(f"{s!r}: invalid file name (NUL byte)", source=s,
                          reason="invalid file name")
    path = Path(s)
    try:
        is_file_arg = path.suffix == ".toml" or path.exists()
    except (OSError, ValueError):
        is_file_arg = True
    if is_file_arg:
        source = str(path)
        if path.is_dir():
            raise ConfigError(f"{source}: is a directory, not a config file", source=source,
                              reason="is a directory")
        text = read_text_file(path, source=source, limit=MAX_CONFIG_BYTES)
        base_dir = str(path.resolve().parent)
    else:
        root = importlib.resources.files("rfctl.configs")
        res = root / f"{s}.toml"
        if not res.is_file():
            raise ConfigError(
                f"{s}: no such file and no built-in config of that name "
                f"(built-ins: {', '.join(builtin_names())})",
                source=s,
            )
        source = f"builtin:{s}"
        text = res.read_text(encoding="utf-8")
        base_dir = str(Path(str(res)).parent)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML syntax error: {exc}", source=source) from None
    except RecursionError:
        raise ConfigError(f"{source}: TOML nested too deeply", source=source,
                          reason="nested too deeply") from None
    return parse_config(data, source=source, base_dir=base_dir)


# --------------------------------------------------------------------------- tables
def read_table_csv(path: Path, columns: Sequence[str], *, source: str) -> np.ndarray:
    """Read a numeric CSV with a header naming at least ``columns``.

    A table with a ``code`` column is a code table and needs at least two rows.

    Returns
    -------
    ndarray, shape (rows, len(columns)), float64

    Raises
    ------
    ConfigError
        Missing, unreadable, oversized or non-UTF-8 file, missing column, non-numeric or
        non-finite entry, too few or too many rows.
    """
    text = read_text_file(Path(path), source=source, limit=MAX_TABLE_BYTES)

    def err(msg: str, reason: str) -> ConfigError:
        return ConfigError(f"{source}: {path}{msg}", source=source, field=source.split(": ")[-1],
                           reason=reason)

    rows = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise err(f": missing column(s) {missing} (header: {header})", "missing column")
        for lineno, row in enumerate(reader, start=2):
            if len(rows) >= MAX_TABLE_ROWS:
                raise err(f": more than {MAX_TABLE_ROWS} rows", "too many rows")
            try:
                vals = [float(row[c]) for c in columns]
            except (TypeError, ValueError):
                raise err(f":{lineno}: non-numeric entry", "non-numeric entry") from None
            if not all(math.isfinite(v) and abs(v) <= 1e12 for v in vals):
                raise err(f":{lineno}: non-finite or huge entry (|x| > 1e12)",
                          "non-finite entry")
            rows.append(vals)
    except csv.Error as exc:
        raise err(f": malformed CSV ({exc})", "malformed CSV") from None
    if not rows:
        raise err(": empty table", "empty table")
    if "code" in columns and len(rows) < 2:
        raise err(": a code table needs at least two entries", "too few entries")
    return np.asarray(rows, dtype=float)
