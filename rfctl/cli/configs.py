"""``rfctl validate`` and ``rfctl configs``."""

from __future__ import annotations

import argparse
from typing import TextIO

from rfctl.config import BoardProfile, Scenario, builtin_names, load_config
from rfctl.hal import compile_board


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    """Validate configs (and load their tables), one OK line each."""
    for name in args.config:
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
    """List the built-in configs."""
    for name in builtin_names():
        cfg = load_config(name)
        print(f"{name:<26}{cfg.kind:<10}{cfg.description}", file=out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    v = sub.add_parser("validate", help="validate board profiles or scenarios")
    v.add_argument("config", nargs="+", help="built-in name or TOML file")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("configs", help="list the built-in configs")
    c.set_defaults(func=cmd_configs)
