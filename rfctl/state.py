"""ArrayState: the continuous, physical settings an optimizer produces.

An :class:`ArrayState` holds any subset of

- ``phases`` — mmWave phase shifters, rad, shape (N_m,), row-major element order;
- ``switch`` — RF switch matrix S, bool, shape (N_m, N_RF);
- ``selection`` — sub-6G selection map P, bool, shape (N_row−1, N_col−1);
- ``f_bb`` — mmWave digital beamformer, complex, (N_RF, K_m);
- ``f_s`` — sub-6G digital beamformer over all candidates, complex, (N_p, K_s);
- ``dma`` — DMA element tunings (:class:`DmaTuning`) and ``dma_b`` — the DMA digital
  beamformer B = [B_c B_s], complex, (N, M + N_s); ``dma_task`` — the DMA task it was
  designed for (:class:`DmaTaskRecord`: geometry, users, directions, Γ, β, β_max,
  P_max, σ²), so the design can be re-checked with the model alone;

plus a :class:`DesignRecord` saying what it was designed for (scenario and channel, or
the seed and config that regenerate them), so a saved design can be re-evaluated.

**Selection rule (box reading of seed eq. 15).** Taken literally, eq. 15 asks every pair
of selected antennas to be at least H_s apart horizontally *and* V_s vertically; four
antennas then cannot fit on 13 × 13 candidates with H_s = V_s = 6, and the seed's own
candidate grid C (eq. 26) breaks it. rfctl reads it as a box rule: no two selected
antennas lie within an H_s × V_s box of each other, i.e. for every pair
|ΔH| ≥ H_s **or** |ΔV| ≥ V_s. Independently, two selected 2×2 antennas may never share a
pixel (|ΔH| ≤ 1 and |ΔV| ≤ 1 means overlap).

JSON: complex arrays are stored as ``{"re": [...], "im": [...]}``; Python writes floats
with the shortest repr that round-trips, so a save/load cycle is exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from rfctl.config import DmaSpec, Scenario, parse_config, read_text_file, write_text_output
from rfctl.errors import ConfigError, HardwareConstraintError

__all__ = [
    "ArrayState",
    "DesignRecord",
    "DmaTaskRecord",
    "DmaTuning",
    "check_selection",
    "lorentzian_response",
    "selection_indices",
]

STATE_FORMAT = "rfctl-state/1"

MAX_STATE_BYTES = 64 << 20
"""Largest state file read, bytes."""
MAX_ARRAY_ELEMENTS = 1 << 22
"""Most entries of one array in a state file (checked before anything is allocated)."""
MAX_ABS = 1e12
"""Largest magnitude of any number in a state array (beamformer, channel, admittance)."""
MAX_PHASE_RAD = 1e4
"""Largest magnitude of a phase, rad (beyond it wrapping loses all precision)."""


# --------------------------------------------------------------------------- selection
def selection_indices(selection: NDArray[np.bool_]) -> NDArray[np.int64]:
    """(row, col) of every selected antenna in row-major order, shape (N_s, 2)."""
    return np.argwhere(np.asarray(selection, dtype=bool))


def check_selection(
    selection: NDArray[np.bool_],
    *,
    h_s: int,
    v_s: int,
    n_selected: int | None = None,
    shape: tuple[int, int] | None = None,
    bank: str | None = None,
) -> None:
    """Validate a sub-6G selection map.

    Parameters
    ----------
    selection : ndarray, shape (N_row−1, N_col−1) bool
        Selection map P.
    h_s, v_s : int
        Minimum horizontal (column) and vertical (row) spacing, candidate steps.
    n_selected : int, optional
        Required number of ones N_s.
    shape : (int, int), optional
        Required map shape.
    bank : str, optional
        Bank name for the error.

    Raises
    ------
    HardwareConstraintError
        Wrong shape or count, two antennas sharing a pixel, or a pair inside each other's
        H_s × V_s box. The message names the pair.
    """
    P = np.asarray(selection)
    if P.ndim != 2:
        raise HardwareConstraintError(f"selection map must be 2-D, got shape {P.shape}",
                                      bank=bank)
    if shape is not None and P.shape != tuple(shape):
        raise HardwareConstraintError(
            f"selection map has shape {P.shape}, the array needs {tuple(shape)}", bank=bank
        )
    if P.dtype != bool and not np.all((P == 0) | (P == 1)):
        raise HardwareConstraintError("selection map entries must be 0 or 1", bank=bank)
    idx = selection_indices(P)
    if n_selected is not None and len(idx) != n_selected:
        raise HardwareConstraintError(
            f"selection map selects {len(idx)} antennas, N_s = {n_selected} required",
            bank=bank,
        )
    if len(idx) < 2:
        return
    d = np.abs(idx[:, None, :] - idx[None, :, :])  # (n, n, 2): |ΔV|, |ΔH|
    iu = np.triu_indices(len(idx), 1)
    dv, dh = d[..., 0][iu], d[..., 1][iu]
    overlap = (dv <= 1) & (dh <= 1)
    if np.any(overlap):
        k = int(np.argmax(overlap))
        a, b = idx[iu[0][k]].tolist(), idx[iu[1][k]].tolist()
        raise HardwareConstraintError(
            f"selected antennas at (row, col) {tuple(a)} and {tuple(b)} share a pixel",
            bank=bank,
        )
    too_close = (dh < h_s) & (dv < v_s)
    if np.any(too_close):
        k = int(np.argmax(too_close))
        a, b = idx[iu[0][k]].tolist(), idx[iu[1][k]].tolist()
        raise HardwareConstraintError(
            f"selected antennas at (row, col) {tuple(a)} and {tuple(b)} are within each "
            f"other's H_s × V_s = {h_s} × {v_s} box (|ΔH| = {abs(a[1] - b[1])}, "
            f"|ΔV| = {abs(a[0] - b[0])})",
            bank=bank,
        )


# --------------------------------------------------------------------------- DMA tuning
def lorentzian_response(
    b: NDArray[np.float64], r0: float, y_self: NDArray[np.complex128]
) -> NDArray[np.complex128]:
    """Normalised Lorentzian response q of each DMA element from its load susceptance.

    An isolated element's weight is 1/(G + jB) with G = R0 + Re y_ss,ll and
    B = b + Im y_ss,ll. Normalised and rotated onto the circle of the admittance note,
    q = −j G / (G + jB) = 1/(t + j) with t = −B/G, so |q + j/2| = 1/2 and
    q = (−j + e^{jψ})/2 (time convention e^{+jωt}).

    Parameters
    ----------
    b : ndarray, shape (L,)
        Im Y_s per element, S.
    r0 : float
        Re Y_s, S.
    y_self : ndarray, shape (L,) complex
        Element self-admittances diag(Y_ss), S.

    Returns
    -------
    ndarray, shape (L,) complex
    """
    G = r0 + np.real(y_self)
    B = np.asarray(b, float) + np.imag(y_self)
    return -1j * G / (G + 1j * B)


@dataclass(frozen=True)
class DmaTuning:
    """Tunable DMA element loads Y_s = diag(g + j b), with g = R0 unless measured.

    Attributes
    ----------
    b : ndarray, shape (L,)
        Im Y_s per element, S.
    r0 : float
        Nominal Re Y_s (the same for every element), S.
    y_self : ndarray, shape (L,) complex
        diag(Y_ss), S — needed to express the Lorentzian state of each element.
    g : ndarray, shape (L,), optional
        Per-element Re Y_s, S, when it differs from R0 (a quantized design whose tuning
        table entries lie off the ideal Lorentzian circle). ``None`` means R0.
    """

    b: NDArray[np.float64]
    r0: float
    y_self: NDArray[np.complex128]
    g: NDArray[np.float64] | None = None

    @property
    def conductance(self) -> NDArray[np.float64]:
        """Re Y_s per element, S."""
        return np.full(self.b.shape, float(self.r0)) if self.g is None else self.g

    @property
    def load(self) -> NDArray[np.complex128]:
        """Y_s per element (the diagonal), S."""
        return self.conductance + 1j * self.b

    @property
    def response(self) -> NDArray[np.complex128]:
        """Normalised Lorentzian response q per element (see :func:`lorentzian_response`).

        Normalised by the nominal G = R0 + Re y_ss,ll, so a lossier element lies inside
        the unit circle of the ideal one."""
        G0 = self.r0 + np.real(self.y_self)
        return -1j * G0 / (self.load + self.y_self)

    @property
    def psi(self) -> NDArray[np.float64]:
        """Lorentzian phase ψ per element, rad: q = (−j + e^{jψ})/2."""
        return np.angle(2 * self.response + 1j)

    def resonance_frequency(self, frequency_hz: float, damping: float) -> NDArray[np.float64]:
        """Resonance frequency f₀ per element that realises ψ at ``frequency_hz``, Hz.

        From q = Γω / (ω₀² − ω² + jΓω) = (−j + e^{jψ})/2:
        ω₀² = ω² + Γω tan(ψ/2 + π/4), with ``damping`` Γ in rad/s. NaN where ω₀² ≤ 0
        (not reachable by a physical resonator).
        """
        w = 2 * np.pi * frequency_hz
        w0sq = w**2 + damping * w * np.tan(self.psi / 2 + np.pi / 4)
        with np.errstate(invalid="ignore"):
            return np.where(w0sq > 0, np.sqrt(w0sq) / (2 * np.pi), np.nan)

    def from_response(self, q: NDArray[np.complex128]) -> DmaTuning:
        """The tuning that realises responses ``q`` (inverse of :attr:`response`).

        Y_s = −jG₀/q − y_ss,ll with G₀ = R0 + Re y_ss,ll. For q on the Lorentzian circle,
        Re Y_s = R0 exactly; otherwise the implied conductance is kept in ``g``.
        """
        G0 = self.r0 + np.real(self.y_self)
        ys = -1j * G0 / np.asarray(q, dtype=complex) - self.y_self
        g = np.real(ys)
        on_circle = np.allclose(g, self.r0, rtol=1e-9, atol=1e-12)
        return DmaTuning(b=np.imag(ys), r0=self.r0, y_self=self.y_self,
                         g=None if on_circle else g)


@dataclass(frozen=True)
class DmaTaskRecord:
    """The DMA design task (DMA seed, P1) a state was made for, so that a saved design
    can be re-checked with the model without replaying the scenario's generator.

    Attributes
    ----------
    spec : dict
        The DMA geometry (``DmaSpec.model_dump()``).
    origin : ndarray, shape (3,)
        Array corner, m.
    users : ndarray, shape (M, 3)
        User positions, m.
    theta, phi : ndarray, shape (D,)
        Sensing directions, rad.
    gamma : ndarray, shape (M,)
        SINR targets Γ_m, linear.
    beta : ndarray, shape (D,)
        Lower beampattern bounds β_d, in the units of P(θ, φ) = ‖a_dᵀ Φ Y_st B‖²
        (seed eq. 3).
    beta_max : float
        Upper beampattern bound, same units.
    p_max : float
        P_max, W.
    sigma2 : float
        Noise power σ², W.
    channel_scale : str
        ``"received_power"`` or ``"normalised"`` (see :mod:`rfctl.admittance`).
    n_sensing : int
        Sensing streams N_s.
    """

    spec: dict[str, Any]
    origin: NDArray[np.float64]
    users: NDArray[np.float64]
    theta: NDArray[np.float64]
    phi: NDArray[np.float64]
    gamma: NDArray[np.float64]
    beta: NDArray[np.float64]
    beta_max: float
    p_max: float
    sigma2: float
    channel_scale: str = "received_power"
    n_sensing: int = 0

    _ARRAYS = ("origin", "users", "theta", "phi", "gamma", "beta")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (arrays encoded as in :meth:`ArrayState.to_dict`)."""
        out: dict[str, Any] = {"spec": self.spec}
        for k in self._ARRAYS:
            out[k] = _encode_array(np.asarray(getattr(self, k), float))
        out.update(beta_max=float(self.beta_max), p_max=float(self.p_max),
                   sigma2=float(self.sigma2), channel_scale=self.channel_scale,
                   n_sensing=int(self.n_sensing))
        return out

    @classmethod
    def from_dict(cls, d: Any, source: str) -> DmaTaskRecord:
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        d : object
            The decoded ``dma_task`` value.
        source : str
            File or label named in errors.

        Raises
        ------
        ConfigError
            Not an object, an unknown or missing field, or a malformed array.
        """
        where = f"{source}: dma_task"
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: must be an object", source=source, field="dma_task",
                              reason="not an object")
        known = {"spec", *cls._ARRAYS, "beta_max", "p_max", "sigma2", "channel_scale",
                 "n_sensing"}
        extra = sorted(set(d) - known)
        missing = sorted(known - set(d))
        if extra or missing:
            name = (extra or missing)[0]
            raise ConfigError(f"{where}.{name}: {'unknown' if extra else 'missing'} field",
                              source=source, field=f"dma_task.{name}",
                              reason="unknown field" if extra else "missing field")
        spec = d["spec"]
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}.spec: must be an object", source=source,
                              field="dma_task.spec", reason="not an object")
        try:
            DmaSpec.model_validate(spec)
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            loc = ".".join(str(x) for x in e["loc"])
            raise ConfigError(f"{where}.spec.{loc}: {e['msg']}", source=source,
                              field=f"dma_task.spec.{loc}", reason=e["msg"]) from None
        if d["channel_scale"] not in ("received_power", "normalised"):
            raise ConfigError(f"{where}.channel_scale: must be 'received_power' or "
                              f"'normalised', got {d['channel_scale']!r}", source=source,
                              field="dma_task.channel_scale", reason="unknown scale")
        for k, lo in (("gamma", 1e-30), ("beta", 0.0)):
            vals = _decode_array(d[k], f"{where}.{k}", "real", ndim=1)
            if np.any(vals < lo):
                raise ConfigError(f"{where}.{k}: entries must be ≥ {lo:g}", source=source,
                                  field=f"dma_task.{k}", reason="out of range")
        try:
            arrays = {k: np.asarray(_decode_array(d[k], f"{where}.{k}"), float)
                      for k in cls._ARRAYS}
            rec = cls(spec=dict(d["spec"]),
                      beta_max=_real_scalar(d["beta_max"], f"{where}.beta_max", 0.0, MAX_ABS),
                      p_max=_real_scalar(d["p_max"], f"{where}.p_max", 1e-30, 1e9),
                      sigma2=_real_scalar(d["sigma2"], f"{where}.sigma2", 1e-30, 1e9),
                      channel_scale=str(d["channel_scale"]),
                      n_sensing=int(_real_scalar(d["n_sensing"], f"{where}.n_sensing", 0, 256,
                                                 integer=True)),
                      **arrays)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: bad entry ({exc})", source=source,
                              field="dma_task", reason="bad value") from None
        M, D = rec.gamma.size, rec.beta.size
        if (rec.users.shape != (M, 3) or rec.origin.shape != (3,) or rec.theta.shape != (D,)
                or rec.phi.shape != (D,)):
            raise ConfigError(f"{where}: shapes disagree (users {rec.users.shape}, gamma "
                              f"{rec.gamma.shape}, theta {rec.theta.shape}, beta "
                              f"{rec.beta.shape})", source=source, field="dma_task",
                              reason="wrong shape")
        return rec

    def same(self, other: DmaTaskRecord) -> bool:
        """True if both records describe the same task: equal specs, scalars and
        arrays (same shape, dtype and values)."""
        return (self.spec == other.spec and all(
            _same(np.asarray(getattr(self, k)), np.asarray(getattr(other, k)))
            for k in self._ARRAYS) and (self.beta_max, self.p_max, self.sigma2,
                                        self.channel_scale, self.n_sensing)
            == (other.beta_max, other.p_max, other.sigma2, other.channel_scale,
                other.n_sensing))


# --------------------------------------------------------------------------- record
@dataclass(frozen=True)
class DesignRecord:
    """What a design was made for, so it can be re-evaluated independently.

    Attributes
    ----------
    scenario : dict or None
        The scenario as validated (``Scenario.model_dump()``), or None.
    seed : int or None
        Seed of the channel realisation (with the scenario, regenerates the channel).
    realisation : int
        Index of the realisation within that seed's stream.
    channels : dict of str to ndarray
        Channel matrices used (e.g. ``"sub6"``, ``"mmwave"``), stored exactly.
    notes : dict
        Free-form facts (optimizer name, version, stopping reason).
    """

    scenario: dict[str, Any] | None = None
    seed: int | None = None
    realisation: int = 0
    channels: dict[str, NDArray] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- state
_ARRAY_FIELDS = ("phases", "switch", "selection", "f_bb", "f_s", "dma_b")


@dataclass(frozen=True)
class ArrayState:
    """Continuous, physical array settings (see module docstring for shapes and units)."""

    phases: NDArray[np.float64] | None = None
    switch: NDArray[np.bool_] | None = None
    selection: NDArray[np.bool_] | None = None
    f_bb: NDArray[np.complex128] | None = None
    f_s: NDArray[np.complex128] | None = None
    dma: DmaTuning | None = None
    dma_b: NDArray[np.complex128] | None = None
    dma_task: DmaTaskRecord | None = None
    record: DesignRecord = field(default_factory=DesignRecord)

    def __post_init__(self) -> None:
        conv = {
            "phases": _as_real_phases,
            "switch": lambda a: _as_bool(a, "switch"),
            "selection": lambda a: _as_bool(a, "selection"),
            "f_bb": lambda a: _as_numeric(a, "f_bb", complex),
            "f_s": lambda a: _as_numeric(a, "f_s", complex),
            "dma_b": lambda a: _as_numeric(a, "dma_b", complex),
        }
        for name, fn in conv.items():
            v = getattr(self, name)
            if v is not None:
                try:
                    object.__setattr__(self, name, fn(v))
                except (TypeError, ValueError) as exc:
                    if isinstance(exc, ConfigError):
                        raise
                    raise ConfigError(f"{name}: not a numeric array ({exc})", field=name,
                                      reason="not numeric") from None
        if self.phases is not None and self.phases.ndim != 1:
            raise ConfigError(f"phases must be 1-D, got shape {self.phases.shape}",
                              field="phases", reason="wrong shape")
        if self.switch is not None and self.switch.ndim != 2:
            raise ConfigError(f"switch must be 2-D, got shape {self.switch.shape}",
                              field="switch", reason="wrong shape")
        if (self.phases is not None and self.switch is not None
                and self.switch.shape[0] != self.phases.shape[0]):
            raise ConfigError(
                f"switch has {self.switch.shape[0]} rows but there are "
                f"{self.phases.shape[0]} phase shifters", field="switch", reason="wrong shape")

    def replace(self, **changes: Any) -> ArrayState:
        """A copy with some parts replaced."""
        return replace(self, **changes)

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (complex arrays as ``{"re", "im"}``)."""
        out: dict[str, Any] = {"format": STATE_FORMAT}
        for name in _ARRAY_FIELDS:
            v = getattr(self, name)
            if v is not None:
                out[name] = _encode_array(v)
        if self.dma is not None:
            out["dma"] = {
                "b": _encode_array(self.dma.b),
                "r0": float(self.dma.r0),
                "y_self": _encode_array(self.dma.y_self),
                "g": None if self.dma.g is None else _encode_array(self.dma.g),
            }
        if self.dma_task is not None:
            out["dma_task"] = self.dma_task.to_dict()
        r = self.record
        out["record"] = {
            "scenario": r.scenario,
            "seed": r.seed,
            "realisation": r.realisation,
            "channels": {k: _encode_array(v) for k, v in r.channels.items()},
            "notes": r.notes,
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> ArrayState:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ConfigError
            Unknown format or field, or a malformed array.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a state must be a JSON object", source=source)
        fmt = data.get("format")
        if fmt != STATE_FORMAT:
            raise ConfigError(
                f"{source}: format: expected {STATE_FORMAT!r}, got {fmt!r}",
                source=source, field="format", reason="unknown format",
            )
        known = {*_ARRAY_FIELDS, "dma", "dma_task", "record", "format"}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"{source}: {extra[0]}: unknown field (not allowed)",
                              source=source, field=extra[0], reason="unknown field")
        kw: dict[str, Any] = {}
        for name in _ARRAY_FIELDS:
            if name in data and data[name] is not None:
                kw[name] = _decode_array(data[name], f"{source}: {name}", _FIELD_KIND[name],
                                         ndim=_FIELD_NDIM[name],
                                         bound=MAX_PHASE_RAD if name == "phases" else MAX_ABS)
        if data.get("dma") is not None:
            kw["dma"] = _decode_dma(data["dma"], source)
        if data.get("dma_task") is not None:
            kw["dma_task"] = DmaTaskRecord.from_dict(data["dma_task"], source)
        kw["record"] = _decode_record(data.get("record"), source)
        try:
            return cls(**kw)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}", source=source, field=exc.field,
                              reason=exc.reason) from None

    def to_json(self) -> str:
        """The state as JSON text.

        Raises
        ------
        ConfigError
            A non-finite number or an object JSON cannot hold (e.g. in ``notes``).
        """
        try:
            return json.dumps(self.to_dict(), indent=1, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"state cannot be written as JSON: {exc}",
                              reason="not JSON-serialisable") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "<json>") -> ArrayState:
        """Parse :meth:`to_json` output.

        Raises
        ------
        ConfigError
            Invalid JSON (NaN/Infinity tokens included), nesting too deep, or any
            :meth:`from_dict` error.
        """

        def no_constants(tok: str) -> Any:
            raise ConfigError(f"{source}: invalid JSON: {tok} is not a number JSON allows",
                              source=source, reason="non-finite number")

        try:
            data = json.loads(text, parse_constant=no_constants)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: invalid JSON: {exc}", source=source) from None
        except RecursionError:
            raise ConfigError(f"{source}: invalid JSON: nested too deeply", source=source,
                              reason="nested too deeply") from None
        return cls.from_dict(data, source=source)

    def save(self, path: str | Path) -> None:
        """Write the state as JSON.

        Raises
        ------
        OutputError
            The path is a directory, its parent is missing, or writing failed.
        """
        write_text_output(path, self.to_json(), what="state")

    @classmethod
    def load(cls, path: str | Path) -> ArrayState:
        """Read a state written by :meth:`save`.

        Raises
        ------
        ConfigError
            Unreadable, oversized or non-UTF-8 file, or invalid content (naming the file,
            the field and the reason).
        """
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"{path}: is a directory, not a state file", source=str(path),
                              reason="is a directory")
        text = read_text_file(p, source=str(path), limit=MAX_STATE_BYTES)
        return cls.from_json(text, source=str(path))

    def equals(self, other: ArrayState) -> bool:
        """Exact equality of every part (arrays compared element-wise, bit for bit)."""
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "record":
                if (a.scenario, a.seed, a.realisation, a.notes) != (
                    b.scenario, b.seed, b.realisation, b.notes
                ) or a.channels.keys() != b.channels.keys():
                    return False
                if not all(_same(a.channels[k], b.channels[k]) for k in a.channels):
                    return False
            elif f.name == "dma_task":
                if (a is None) != (b is None) or (a is not None and not a.same(b)):
                    return False
            elif f.name == "dma":
                if (a is None) != (b is None):
                    return False
                if a is not None and not (
                    _same(a.b, b.b) and a.r0 == b.r0 and _same(a.y_self, b.y_self)
                    and (a.g is None) == (b.g is None)
                    and (a.g is None or _same(a.g, b.g))
                ):
                    return False
            elif (a is None) != (b is None) or (a is not None and not _same(a, b)):
                return False
        return True


def _same(a: NDArray, b: NDArray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))


def _as_bool(a: Any, name: str) -> NDArray[np.bool_]:
    arr = np.asarray(a)
    if arr.dtype != bool:
        if not np.all((arr == 0) | (arr == 1)):
            raise ConfigError(f"{name} entries must be 0 or 1", field=name,
                              reason="not binary")
        arr = arr.astype(bool)
    return arr


def _encode_array(a: NDArray) -> Any:
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return {"re": a.real.tolist(), "im": a.imag.tolist()}
    if a.dtype == bool:
        return a.astype(int).tolist()
    return a.tolist()


_FIELD_KIND = {"phases": "real", "switch": "binary", "selection": "binary",
               "f_bb": "complex", "f_s": "complex", "dma_b": "complex"}
_FIELD_NDIM = {"phases": 1, "switch": 2, "selection": 2, "f_bb": 2, "f_s": 2, "dma_b": 2}


def _as_numeric(a: Any, name: str, dtype: type) -> NDArray:
    """Numbers only: strings, bools and objects are refused (no silent "1.5" → 1.5)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiuc":
        raise ConfigError(f"{name} must be numbers, got dtype {arr.dtype}", field=name,
                          reason="not numeric")
    return np.asarray(arr, dtype=dtype)


def _as_real_phases(a: Any) -> NDArray[np.float64]:
    arr = _as_numeric(a, "phases", complex if np.iscomplexobj(a) else float)
    if np.iscomplexobj(arr):
        if np.any(arr.imag != 0):
            raise ConfigError("phases must be real (radians); got complex values",
                              field="phases", reason="complex phase")
        arr = arr.real.copy()
    big = np.isfinite(arr) & (np.abs(arr) > MAX_PHASE_RAD)
    if np.any(big):
        k = int(np.argmax(big))
        raise ConfigError(f"phases: entry {k} = {arr.flat[k]:g} rad exceeds |φ| ≤ "
                          f"{MAX_PHASE_RAD:g} rad", field="phases", reason="out of range")
    return arr


def _real_scalar(v: Any, where: str, lo: float, hi: float, *, integer: bool = False) -> float:
    """A JSON number (no bool, no string) in [lo, hi]; an integer if ``integer``."""
    ok = type(v) is int if integer else type(v) in (int, float)
    if not ok or not lo <= v <= hi:
        raise ConfigError(f"{where}: must be {'an integer' if integer else 'a number'} in "
                          f"[{lo:g}, {hi:g}], got {v!r}", field=where, reason="out of range")
    return float(v)


def _leaves(v: Any, where: str) -> tuple[list[Any], tuple[int, ...]]:
    """Flatten a nested JSON list, checking it is rectangular and bounded in size."""
    if not isinstance(v, list):
        raise ConfigError(f"{where}: expected an array (JSON list), got {type(v).__name__}",
                          field=where, reason="not an array")
    shape: list[int] = []
    level: list[Any] = [v]
    while level and all(isinstance(x, list) for x in level):
        n = len(level[0])
        if any(len(x) != n for x in level):
            raise ConfigError(f"{where}: ragged array (rows of different lengths)",
                              field=where, reason="ragged array")
        shape.append(n)
        if len(shape) > 8:
            raise ConfigError(f"{where}: more than 8 dimensions", field=where,
                              reason="too many dimensions")
        total = 1
        for d in shape:
            total *= d
        if total > MAX_ARRAY_ELEMENTS:
            raise ConfigError(f"{where}: more than {MAX_ARRAY_ELEMENTS} entries", field=where,
                              reason="too large")
        level = [y for x in level for y in x]
        if n == 0:
            break
    if any(isinstance(x, list) for x in level):
        raise ConfigError(f"{where}: ragged array (mixed nesting depth)", field=where,
                          reason="ragged array")
    return level, tuple(shape)


def _real_leaves(v: Any, where: str, *, binary: bool = False,
                 bound: float = MAX_ABS) -> NDArray:
    vals, shape = _leaves(v, where)
    for k, x in enumerate(vals):
        if binary:
            if not (type(x) in (int, bool) and x in (0, 1)):
                raise ConfigError(f"{where}: entry {k} is {x!r}; entries must be 0 or 1",
                                  field=where, reason="not binary")
        elif type(x) not in (int, float):  # exact types: no bool, str, None, object
            raise ConfigError(f"{where}: entry {k} is {x!r}; entries must be real numbers",
                              field=where, reason="not a real number")
        elif not (abs(x) <= bound):  # also catches NaN
            raise ConfigError(f"{where}: entry {k} = {x!r} is not finite or exceeds "
                              f"|x| ≤ {bound:g}", field=where, reason="out of range")
    return np.asarray(vals, dtype=bool if binary else float).reshape(shape)


def _decode_array(v: Any, where: str, kind: str = "real", *, ndim: int | None = None,
                  bound: float = MAX_ABS) -> NDArray:
    """Decode a JSON array: ``kind`` is ``"real"``, ``"complex"`` (``{"re", "im"}``)
    or ``"binary"`` (0/1). Every entry must be a finite number within ``bound``."""
    if kind == "complex":
        if not isinstance(v, dict) or set(v) != {"re", "im"}:
            raise ConfigError(f"{where}: complex arrays are {{\"re\": [...], \"im\": [...]}}",
                              field=where, reason="bad complex array")
        re = _real_leaves(v["re"], f"{where}.re", bound=bound)
        im = _real_leaves(v["im"], f"{where}.im", bound=bound)
        if re.shape != im.shape:
            raise ConfigError(f"{where}: 're' and 'im' shapes differ ({re.shape} vs "
                              f"{im.shape})", field=where, reason="shape mismatch")
        out = np.empty(re.shape, dtype=complex)
        out.real, out.imag = re, im  # exact, keeps signed zeros
    else:
        if isinstance(v, dict):
            raise ConfigError(f"{where}: expected a real array, got a complex/object value",
                              field=where, reason="not a real array")
        out = _real_leaves(v, where, binary=kind == "binary", bound=bound)
    if ndim is not None and out.ndim != ndim:
        raise ConfigError(f"{where}: expected a {ndim}-D array, got shape {out.shape}",
                          field=where, reason="wrong shape")
    return out


def _decode_dma(d: Any, source: str) -> DmaTuning:
    where = f"{source}: dma"
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected an object, got {type(d).__name__}",
                          source=source, field="dma", reason="not an object")
    missing = sorted({"b", "r0", "y_self"} - set(d))
    extra = sorted(set(d) - {"b", "r0", "y_self", "g"})
    if missing or extra:
        raise ConfigError(f"{where}: missing {missing} / unknown {extra} entries",
                          source=source, field="dma", reason="bad entries")
    b = _decode_array(d["b"], f"{where}.b", "real", ndim=1)
    r0 = d["r0"]
    if type(r0) not in (int, float) or not (1e-9 <= r0 <= 1e9):
        raise ConfigError(f"{where}.r0: must be a number in [1e-9, 1e9] S, got {r0!r}",
                          source=source, field="dma.r0", reason="out of range")
    y_self = _decode_array(d["y_self"], f"{where}.y_self", "complex", ndim=1)
    g = None if d.get("g") is None else _decode_array(d["g"], f"{where}.g", "real", ndim=1)
    for name, arr in (("y_self", y_self), ("g", g)):
        if arr is not None and arr.shape != b.shape:
            raise ConfigError(f"{where}.{name}: has {arr.shape[0]} entries, b has "
                              f"{b.shape[0]}", source=source, field=f"dma.{name}",
                              reason="shape mismatch")
    G0 = float(r0) + np.real(y_self)
    if np.any(G0 <= 0):
        k = int(np.argmax(G0 <= 0))
        raise ConfigError(f"{where}.y_self: element {k} has R0 + Re y_self = {G0[k]:.4g} ≤ 0 "
                          "(no Lorentzian response)", source=source, field="dma.y_self",
                          reason="non-positive conductance")
    if g is not None and np.any(g + np.real(y_self) <= 0):
        raise ConfigError(f"{where}.g: g + Re y_self must be > 0", source=source,
                          field="dma.g", reason="non-positive conductance")
    return DmaTuning(b=b, r0=float(r0), y_self=y_self, g=g)


def _decode_record(rec: Any, source: str) -> DesignRecord:
    where = f"{source}: record"
    if rec is None:
        return DesignRecord()
    if not isinstance(rec, dict):
        raise ConfigError(f"{where}: expected an object, got {type(rec).__name__}",
                          source=source, field="record", reason="not an object")
    extra = sorted(set(rec) - {"scenario", "seed", "realisation", "channels", "notes"})
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown field (not allowed)", source=source,
                          field=f"record.{extra[0]}", reason="unknown field")
    scenario = rec.get("scenario")
    if scenario is not None:
        if not isinstance(scenario, dict):
            raise ConfigError(f"{where}.scenario: expected an object or null",
                              source=source, field="record.scenario", reason="not an object")
        if "kind" in scenario and not isinstance(
                parse_config(scenario, source=f"{source}: record.scenario"), Scenario):
            raise ConfigError(f"{where}.scenario: not a scenario", source=source,
                              field="record.scenario", reason="not a scenario")
    seed = rec.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed < 2**63):
        raise ConfigError(f"{where}.seed: must be an integer in [0, 2^63) or null, got "
                          f"{seed!r}", source=source, field="record.seed",
                          reason="not a seed")
    real = rec.get("realisation", 0)
    if type(real) is not int or not 0 <= real <= 10**9:
        raise ConfigError(f"{where}.realisation: must be an integer in [0, 1e9], got "
                          f"{real!r}", source=source, field="record.realisation",
                          reason="not an index")
    channels = rec.get("channels") or {}
    notes = rec.get("notes") or {}
    for name, val in (("channels", channels), ("notes", notes)):
        if not isinstance(val, dict):
            raise ConfigError(f"{where}.{name}: expected an object, got "
                              f"{type(val).__name__}", source=source,
                              field=f"record.{name}", reason="not an object")
    if len(channels) > 64:
        raise ConfigError(f"{where}.channels: more than 64 channels", source=source,
                          field="record.channels", reason="too many")
    return DesignRecord(
        scenario=scenario, seed=seed, realisation=real,
        channels={k: _decode_array(v, f"{where}.channels.{k}",
                                   "complex" if isinstance(v, dict) else "real")
                  for k, v in channels.items()},
        notes=dict(notes),
    )
