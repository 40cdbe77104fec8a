"""Instrument profiles: which ``*IDN?`` a driver accepts, the SCPI dialect it speaks, and
the limits of each setting (TOML files, validated by pydantic).

A profile is a TOML table::

    kind = "instrument"
    name = "my-analyzer"
    base = "generic-spectrum-analyzer"   # optional: start from another profile
    instrument = "spectrum-analyzer"     # power-meter | spectrum-analyzer | vna | positioner
    idn = ["ACME,SA-9*"]                 # fnmatch patterns on the whole *IDN? reply
    reading = "dbm"                      # dbm | w | complex | none
    timeout_s = 5.0                      # optional: read timeout, s (default 2)
    error_check_every = 100              # read the error queue every K readings (0: at
                                         # the end of a run only)
    [dialect]
    setup = ["INIT:CONT OFF"]            # sent once after opening
    measure = "INIT;*OPC?;:CALC:MARK:MAX;:CALC:MARK:Y?"   # one line; reading = last field
    errors = "SYST:ERR?"                 # the error-queue query (answers "0,…" when empty)
    [dialect.settings.rbw]
    set = "BAND:RES {v:.9e}"             # {v} in SI (Hz, counts)
    query = "BAND:RES?"
    min = 1.0
    max = 1e7

Built-in profiles live next to this module (``instrument_profiles/*.toml``): a generic
dialect per instrument kind (used, with a warning, for a model no profile claims) and
rfctl's simulated instruments. Errors are :class:`~rfctl.errors.ConfigError` naming the
file, the field and the reason.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from rfctl.errors import ConfigError

__all__ = ["InstrumentProfile", "SettingSpec", "builtin_profiles", "load_instrument_profile",
           "match_profile"]

PROFILE_DIR = Path(__file__).with_name("instrument_profiles")
INSTRUMENT_KINDS = ("power-meter", "spectrum-analyzer", "vna", "positioner")
DEFAULT_TIMEOUT_S = 2.0
"""Read timeout of an instrument whose profile and caller give none, s."""
MAX_TIMEOUT_S = 3600.0
"""Longest read timeout a profile or ``--meter-timeout`` may ask for, s."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettingSpec(_Model):
    """One setting: SCPI to set it (``{v}`` in SI) and to read it back, and its limits."""

    set: str
    query: str | None = None
    min: float | None = None
    max: float | None = None
    integer: bool = False

    @model_validator(mode="after")
    def _check(self) -> SettingSpec:
        if "{v" not in self.set:
            raise ValueError("set must contain the value placeholder {v…}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min = {self.min} > max = {self.max}")
        sample = int(self.min or 0) if self.integer else float(self.min or 0.0)
        try:
            self.set.format(v=sample)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            kind = "an integer" if self.integer else "a float"
            raise ValueError(f"set {self.set!r} cannot format {kind} ({exc}); an integer "
                             "setting needs integer = true and {v:d}, a float one {v:.9e}"
                             ) from None
        return self


class Dialect(_Model):
    """Commands of one instrument family."""

    setup: list[str] = []
    measure: str
    errors: str = "SYST:ERR?"
    settings: dict[str, SettingSpec] = {}


class InstrumentProfile(_Model):
    """An instrument profile (see the module docstring)."""

    kind: Literal["instrument"] = "instrument"
    name: str
    instrument: Literal["power-meter", "spectrum-analyzer", "vna", "positioner"]
    description: str = ""
    idn: list[str] = []
    reading: Literal["dbm", "w", "complex", "none"] = "dbm"
    timeout_s: float | None = None
    error_check_every: int = 100
    dialect: Dialect
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("timeout_s")
    @classmethod
    def _timeout(cls, t: float | None) -> float | None:
        if t is not None and not (math.isfinite(t) and 0 < t <= MAX_TIMEOUT_S):
            raise ValueError(f"{t} s is not a finite number of seconds in "
                             f"(0, {MAX_TIMEOUT_S:g}]")
        return t

    @field_validator("error_check_every")
    @classmethod
    def _every(cls, k: int) -> int:
        if k < 0:
            raise ValueError(f"{k} is negative (0: read the error queue at the end of a "
                             "run only)")
        return k

    @property
    def source(self) -> Path | None:
        """The TOML file the profile was loaded from (``None`` if built in code)."""
        return self._source

    def matches(self, idn: str) -> bool:
        """Whether an ``*IDN?`` reply is one this profile claims (case-insensitive)."""
        norm = ",".join(f.strip() for f in idn.split(",")).upper()
        return any(fnmatch.fnmatchcase(norm, p.upper()) for p in self.idn)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else v
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", source=str(path),
                          reason="unreadable") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", source=str(path),
                          reason="TOML syntax") from None
    base = data.pop("base", None)
    if base is not None:
        try:
            bpath = _resolve(str(base), path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: base: {exc}", source=str(path), field="base",
                              reason=exc.reason) from None
        if bpath in seen:
            raise ConfigError(f"{path}: base: {base!r} refers back to itself",
                              source=str(path), field="base", reason="cycle")
        data = _merge(_read(bpath, (*seen, path)), data)
    return data


def _resolve(name: str, here: Path = PROFILE_DIR) -> Path:
    p = Path(name)
    if p.suffix == ".toml":
        if p.is_absolute() or p.exists() or (here / p).exists():
            return p if p.is_absolute() or p.exists() else here / p
        where = "the current folder" if here == PROFILE_DIR else f"{str(here)!r}"
        raise ConfigError(f"instrument profile {name!r}: no such file (looked in {where}"
                          + (" and among the built-in profiles" if here == PROFILE_DIR else "")
                          + ")", field="profile", reason="no such file")
    cand = PROFILE_DIR / f"{name}.toml"
    if not cand.exists():
        raise ConfigError(f"instrument profile {name!r}: no such built-in profile (built-in: "
                          f"{', '.join(sorted(builtin_names()))}) and not a .toml path",
                          field="profile", reason="unknown profile")
    return cand


def load_instrument_profile(name_or_path: str | Path) -> InstrumentProfile:
    """Load a built-in profile by name or a TOML file.

    Raises
    ------
    ConfigError
        Naming the file, the field (dotted path) and the reason.
    """
    path = _resolve(str(name_or_path))
    data = _read(path)
    try:
        prof = InstrumentProfile.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: {field}: {msg}", source=str(path), field=field,
                          reason=msg) from None
    prof._source = path.resolve()
    return prof


def builtin_names() -> list[str]:
    """Names of the built-in instrument profiles (``instrument_profiles/*.toml``)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def builtin_profiles() -> list[InstrumentProfile]:
    """Every built-in profile."""
    return [load_instrument_profile(n) for n in builtin_names()]


def match_profile(kind: str, idn: str, profiles: list[InstrumentProfile] | None = None
                  ) -> InstrumentProfile | None:
    """The first profile of ``kind`` whose ``idn`` patterns match, or ``None``."""
    for p in profiles if profiles is not None else builtin_profiles():
        if p.instrument == kind and p.matches(idn):
            return p
    return None
