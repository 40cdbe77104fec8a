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
import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from rfctl.errors import ConfigError

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
    "load_config",
    "parse_config",
]

SPEED_OF_LIGHT = 299_792_458.0
"""Speed of light in vacuum, m/s."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    rows: PositiveInt
    cols: PositiveInt
    carrier_hz: PositiveFloat
    spacing_m: PositiveFloat | None = None

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

    rows: Annotated[int, Field(ge=2)]
    cols: Annotated[int, Field(ge=2)]
    f_m: PositiveFloat
    f_s: PositiveFloat
    h_s: PositiveInt
    v_s: PositiveInt
    n_sub6: PositiveInt
    n_rf: PositiveInt

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

    frequency_hz: PositiveFloat
    waveguide_a_m: PositiveFloat
    waveguide_b_m: PositiveFloat
    n_waveguides: PositiveInt
    elements_per_waveguide: PositiveInt
    element_spacing_m: PositiveFloat
    waveguide_spacing_m: PositiveFloat
    r0_siemens: PositiveFloat = 1.0
    dipole_length_m: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _check(self) -> DmaSpec:
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


class Sub6Scenario(_Model):
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

    users: PositiveInt
    paths: PositiveInt = 5
    targets: list[SurrogateDirection] = Field(default_factory=list)
    sinr_threshold: PositiveFloat = 10.0
    gain_threshold: Annotated[float, Field(ge=0.0)] = 10.0
    noise_power: PositiveFloat = 1.0
    power_budget: PositiveFloat | None = None
    """P_s, W: the sub-6G budget (None: unlimited; the design minimises power anyway)."""


class MmwaveScenario(_Model):
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

    users: PositiveInt
    paths: PositiveInt = 3
    targets: list[SurrogateDirection] = Field(default_factory=list)
    gain_threshold: Annotated[float, Field(ge=0.0)] = 11.0
    power: PositiveFloat = 7.0
    noise_power: PositiveFloat = 1.0


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

    users: PositiveInt = 3
    sensing_streams: Annotated[int, Field(ge=0)] = 1
    directions: list[tuple[float, float]] = Field(default_factory=list)
    user_region_m: tuple[float, float, float, float, float] = (-20.0, 20.0, 20.0, 60.0, 1.5)
    max_power: PositiveFloat = 1.0
    noise_power: PositiveFloat = 1e-12


class Scenario(_Model):
    """A complete scenario: the array it runs on and the tasks, with the seed.

    Exactly one of ``dbraa`` / ``dma`` describes the array.
    """

    kind: Literal["scenario"] = "scenario"
    name: str
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    total_power: PositiveFloat | None = None
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

    url: str = "sim://"
    baud: PositiveInt = 921_600
    timeout_s: PositiveFloat = 0.5
    retries: Annotated[int, Field(ge=0, le=20)] = 3
    chunk: Annotated[int, Field(ge=1, le=1024)] = 256
    """Largest image payload per write frame, bytes."""
    visa_library: str | None = None
    """pyvisa backend for VISA links: ``"@py"`` (pyvisa-py), ``"file.yaml@sim"``
    (pyvisa-sim), or None for the system's default."""


class _BankBase(_Model):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")]
    max_on: PositiveInt | None = None
    """Safety limit: most elements of this bank that may be on (code ≠ 0) at once."""


class PhaseBank(_BankBase):
    """Phase shifters, one per mmWave element.

    Either a uniform ``bits``-bit code book (code c ↦ 2πc/2^b, wraps at 2π) or a table
    of I/Q entries (``table_file``: CSV ``code,i,q``; the phase of entry c is
    ``atan2(q, i)``). An optional ``calibration_file`` (CSV ``element,phase_offset_rad``)
    gives each element's measured offset: element k realises table[c] + δ_k, so the HAL
    quantizes φ − δ_k.
    """

    kind: Literal["phase"] = "phase"
    count: PositiveInt
    bits: Annotated[int, Field(ge=1, le=16)] | None = None
    table_file: str | None = None
    calibration_file: str | None = None

    @model_validator(mode="after")
    def _check(self) -> PhaseBank:
        if (self.bits is None) == (self.table_file is None):
            raise ValueError("give exactly one of bits (uniform) or table_file (I/Q table)")
        return self


class SwitchMatrixBank(_BankBase):
    """RF switch network S, one bit per (antenna, RF chain), row-major."""

    kind: Literal["switch_matrix"] = "switch_matrix"
    antennas: PositiveInt
    rf_chains: PositiveInt

    @property
    def count(self) -> int:
        return self.antennas * self.rf_chains


class PinLinkBank(_BankBase):
    """PIN diodes joining neighbouring mmWave pixels of a ``rows × cols`` panel.

    Codes: the ``rows × (cols−1)`` horizontal links row-major, then the
    ``(rows−1) × cols`` vertical links row-major; 1 = diode on (pixels joined).
    """

    kind: Literal["pin_links"] = "pin_links"
    rows: Annotated[int, Field(ge=2)]
    cols: Annotated[int, Field(ge=2)]
    h_s: PositiveInt = 1
    v_s: PositiveInt = 1

    @property
    def count(self) -> int:
        return self.rows * (self.cols - 1) + (self.rows - 1) * self.cols


class FeedMuxBank(_BankBase):
    """Sub-6 GHz feed switches: per sub-6G RF chain, the index (row-major, into the
    ``(rows−1) × (cols−1)`` candidate grid) of the antenna it is routed to."""

    kind: Literal["feed_mux"] = "feed_mux"
    rf_chains: PositiveInt
    rows: Annotated[int, Field(ge=2)]
    cols: Annotated[int, Field(ge=2)]

    @property
    def count(self) -> int:
        return self.rf_chains

    @property
    def n_inputs(self) -> int:
        return (self.rows - 1) * (self.cols - 1)


class LorentzianArc(_Model):
    """A generated Lorentzian tuning table: ``2**bits`` responses q = (−j + e^{jψ})/2
    with ψ evenly spaced on [psi_min, psi_max] (radians, both included)."""

    bits: Annotated[int, Field(ge=1, le=12)]
    psi_min: float = -math.pi / 2 * 0.95
    psi_max: float = math.pi * 1.45

    @model_validator(mode="after")
    def _check(self) -> LorentzianArc:
        if not self.psi_max > self.psi_min:
            raise ValueError("psi_max must exceed psi_min")
        if self.psi_max - self.psi_min >= 2 * math.pi:
            raise ValueError("the arc must be shorter than 2π (q = 0 is not realisable)")
        return self


class LorentzianBank(_BankBase):
    """DMA element tunings: code → measured normalised Lorentzian response q.

    Either ``table_file`` (CSV ``code,re,im``) or a generated ``arc``. 1-bit and few-level
    elements are tables with 2 or 2^b rows; their boards usually set
    ``out_of_range = "nearest"``.
    """

    kind: Literal["lorentzian"] = "lorentzian"
    count: PositiveInt
    table_file: str | None = None
    arc: LorentzianArc | None = None
    out_of_range: Literal["raise", "nearest"] = "raise"
    """A target outside the table's arc raises (default) or takes the nearest entry;
    either way the image reports how many elements were out of range."""
    bias_v: tuple[float, float] = (0.0, 10.0)
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
    name: str
    model: str = "rfctl-sim"
    description: str = ""
    driver: str = "rfctl-serial"
    """Entry point (group ``rfctl.drivers``) of the driver that talks to this board."""
    link: LinkSpec = Field(default_factory=LinkSpec)
    banks: list[Bank]
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
        return self

    def bank(self, kind: str) -> Any:
        """The bank of a given kind, or ``None``."""
        for b in self.banks:
            if b.kind == kind:
                return b
        return None

    def resolve(self, relpath: str) -> Path:
        """Resolve a table/calibration file path relative to the profile's directory."""
        p = Path(relpath)
        return p if p.is_absolute() else Path(self.base_dir) / p


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
        Unknown name, unreadable file, TOML syntax error or invalid content.
    """
    text: str
    s = str(name_or_path)
    path = Path(s)
    if path.suffix == ".toml" or path.exists():
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}", source=source) from None
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
    return parse_config(data, source=source, base_dir=base_dir)


# --------------------------------------------------------------------------- tables
def read_table_csv(path: Path, columns: Sequence[str], *, source: str) -> np.ndarray:
    """Read a numeric CSV with a header naming at least ``columns``.

    Returns
    -------
    ndarray, shape (rows, len(columns)), float64

    Raises
    ------
    ConfigError
        Missing file or column, non-numeric or non-finite entry.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise ConfigError(
                    f"{source}: {path}: missing column(s) {missing} (header: {header})",
                    source=source,
                    field=str(path),
                    reason="missing column",
                )
            rows = []
            for lineno, row in enumerate(reader, start=2):
                try:
                    vals = [float(row[c]) for c in columns]
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"{source}: {path}:{lineno}: non-numeric entry",
                        source=source,
                        field=str(path),
                        reason="non-numeric entry",
                    ) from None
                if not all(math.isfinite(v) for v in vals):
                    raise ConfigError(
                        f"{source}: {path}:{lineno}: non-finite entry",
                        source=source,
                        field=str(path),
                        reason="non-finite entry",
                    )
                rows.append(vals)
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot read {path}: {exc.strerror}", source=source, field=str(path)
        ) from None
    if not rows:
        raise ConfigError(f"{source}: {path}: empty table", source=source, field=str(path))
    return np.asarray(rows, dtype=float)
