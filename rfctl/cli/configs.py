"""``rfctl validate`` and ``rfctl configs``."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import TextIO

from rfctl.config import BoardProfile, Scenario, builtin_names, load_config
from rfctl.errors import ConfigError
from rfctl.hal import compile_board
from rfctl.hal.discovery import load_entry_point


def _instrument_profile(name: str):
    """The instrument profile ``name`` names (a TOML file whose ``kind`` is
    ``instrument``, or a built-in instrument profile), loaded and validated by the
    instrument drivers (errors name the file, the field and the reason); ``None`` when
    ``name`` is a board profile or a scenario."""
    p = Path(name)
    if p.suffix == ".toml" and p.is_file():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None  # load_config says what is wrong with it
        kind = data.get("kind")
        if kind != "instrument" and (kind is not None or "base" not in data):
            return None
    elif name in builtin_names() or p.suffix:
        return None
    load = load_entry_point("rfctl.instrument_profiles", "load")
    try:
        return load(p if p.suffix else name)
    except ConfigError as exc:
        if exc.reason == "unknown profile" and not p.suffix:
            return None  # neither: load_config names the built-in configs
        raise  # an instrument profile's own error (e.g. an unknown base) is its error


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    """Validate configs (and load their tables) and instrument profiles, one OK line
    each."""
    for name in args.config:
        prof = _instrument_profile(name)
        if prof is not None:
            settings = ", ".join(prof.dialect.settings) or "none"
            idn = ", ".join(prof.idn) or "none (a generic dialect)"
            timeout = f"{prof.timeout_s:g} s" if prof.timeout_s is not None else "default"
            print(f"OK  instrument {prof.name}: {prof.instrument}; reading {prof.reading}; "
                  f"idn {idn}; settings {settings}; timeout {timeout}", file=out)
            continue
        cfg = load_config(name)
        if isinstance(cfg, BoardProfile):
            compile_board(cfg)  # tables and calibration files must load too
            banks = ", ".join(f"{b.name}({b.kind}, {b.count})" for b in cfg.banks)
            print(f"OK  board {cfg.name}: model {cfg.model}; banks {banks}", file=out)
        else:
            assert isinstance(cfg, Scenario)
            arr = "dbraa" if cfg.dbraa is not None else "dma"
            tasks = [t for t in ("sub6g", "mmwave", "dma_task") if getattr(cfg, t) is not None]
            print(f"OK  scenario {cfg.name}: array {arr}; tasks {', '.join(tasks)}; "
                  f"seed {cfg.seed}", file=out)
    return 0


def cmd_configs(args: argparse.Namespace, out: TextIO) -> int:
    """List the built-in configs, then the built-in instrument profiles."""
    profs = load_entry_point("rfctl.instrument_profiles", "builtin")()
    width = max(len(n) for n in [*builtin_names(), *(p.name for p in profs)]) + 2
    for name in builtin_names():
        cfg = load_config(name)
        print(f"{name:<{width}}{cfg.kind:<12}{cfg.description}", file=out)
    for prof in profs:
        what = f"{prof.instrument}: " + (prof.description or f"reading {prof.reading}")
        print(f"{prof.name:<{width}}{'instrument':<12}{what}", file=out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    v = sub.add_parser("validate", help="validate board profiles, scenarios or "
                       "instrument profiles")
    v.add_argument("config", nargs="+", help="built-in name or TOML file (a board profile, "
                   "a scenario, or an instrument profile: kind = \"instrument\")")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("configs", help="list the built-in configs (board profiles, "
                       "scenarios) and instrument profiles")
    c.set_defaults(func=cmd_configs)
