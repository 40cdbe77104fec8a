"""Instrument profiles: which ``*IDN?`` a driver accepts, the SCPI dialect it speaks, and
the limits of each setting (TOML files, validated by pydantic).

A profile is a TOML table::

    kind = "instrument"
    name = "my-analyzer"
    base = "generic-spectrum-analyzer"   # optional: start from another profile
    instrument = "spectrum-analyzer"     # power-meter | spectrum-analyzer | vna | positioner
    idn = ["ACME,SA-9*"]                 # fnmatch patterns on the whole *IDN? reply
    reading = "dbm"                      # dbm | w | complex | none
    [dialect]
    setup = ["INIT:CONT OFF"]            # sent once after opening
    measure = "INIT;*OPC?;:CALC:MARK:MAX;:CALC:MARK:Y?"   # one line; reading = last field
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
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rfctl.errors import ConfigError

__all__ = ["InstrumentProfile", "SettingSpec", "builtin_profiles", "load_instrument_profile",
           "match_profile"]

PROFILE_DIR = Path(__file__).with_name("instrument_profiles")
INSTRUMENT_KINDS = ("power-meter", "spectrum-analyzer", "vna", "positioner")


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
        return self


class Dialect(_Model):
    """Commands of one instrument family."""

    setup: list[str] = []
    measure: str
    settings: dict[str, SettingSpec] = {}


class InstrumentProfile(_Model):
    """An instrument profile (see the module docstring)."""

    kind: Literal["instrument"] = "instrument"
    name: str
    instrument: Literal["power-meter", "spectrum-analyzer", "vna", "positioner"]
    description: str = ""
    idn: list[str] = []
    reading: Literal["dbm", "w", "complex", "none"] = "dbm"
    dialect: Dialect

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
        bpath = _resolve(str(base), path.parent)
        if bpath in seen:
            raise ConfigError(f"{path}: base: {base!r} refers back to itself",
                              source=str(path), field="base", reason="cycle")
        data = _merge(_read(bpath, (*seen, path)), data)
    return data


def _resolve(name: str, here: Path = PROFILE_DIR) -> Path:
    p = Path(name)
    if p.suffix == ".toml":
        return p if p.is_absolute() or p.exists() else here / p
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
        return InstrumentProfile.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = ".".join(str(x) for x in e["loc"]) or "<root>"
        raise ConfigError(f"{path}: {field}: {e['msg']}", source=str(path), field=field,
                          reason=e["msg"]) from None


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
