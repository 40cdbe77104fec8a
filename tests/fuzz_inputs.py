"""Fuzzing machinery for tests/test_fuzz_inputs.py (issue 14).

Inputs are valid documents (the built-in configs, saved states, CLI argument lists)
with one to three mutations: a leaf or a container replaced by a value from a pool of
awkward values (NaN, ±inf, complex, 1e300, 10**30, -1, 0, 0.5, "6", true, null, NUL
bytes, wrong containers), a key deleted or an unknown key added.

Two invariants are judged per input:

- **only RfctlError**: any other exception escaping the library (or, for the CLI, an
  exit status outside 0–2) is a *crash*;
- **oracle**: when a mutation put a clearly bad value in a numeric field — NaN, ±inf, a
  complex, a huge magnitude, a string or a bool where a number belongs, a fraction where
  an integer belongs, a negative or zero where the field must be positive — and the
  input was *accepted*, that is a *silent acceptance*.

Outcomes are counted in a :class:`Tally` instead of failing inside hypothesis, so a run
reports how many inputs it judged and how many of each failure it saw.
"""

from __future__ import annotations

import copy
import io
import json
import math
import re
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from rfctl.config import BoardProfile, builtin_names, load_config, parse_config
from rfctl.errors import RfctlError
from rfctl.state import ArrayState, DesignRecord, DmaTaskRecord, DmaTuning

NAN = float("nan")
INF = float("inf")

# values that must never be accepted in a numeric field
BAD_NUMBERS: list[Any] = [NAN, INF, -INF, 1e300, -1e300, 10**30, -(10**30), 1e17,
                          complex(1.0, 1.0), complex(0.0, 0.0), "6", "1.5", "abc", True, False]
# values whose acceptance depends on the field
MAYBE: list[Any] = [-1, 0, 0.5, -0.0, 1, 2, 3.0, 1e-300, 5e-324, None, "", [], {}, [1, 2],
                    {"re": [1.0], "im": [0.0]}, [[0, 1], [1]], "a\x00b", "\udcff", "x" * 5000,
                    [NAN, 0.0], [0.0, INF], [[1e300]]]
POOL = BAD_NUMBERS + MAYBE

# config fields (the last string key on the path) where these are fine
CFG_NEG_OK = {"theta", "phi", "psi_min", "psi_max", "directions", "user_region_m", "bias_v"}
CFG_ZERO_OK = CFG_NEG_OK | {"gain_threshold", "sensing_streams", "retries", "seed"}
# state fields where a negative / zero is wrong (everything else is a signed real)
STATE_POSITIVE = {"r0", "gamma", "p_max", "sigma2"}
STATE_NONNEG = {"realisation", "seed", "switch", "selection", "r0", "beta", "beta_max",
                "n_sensing", "gamma", "p_max", "sigma2"}
STATE_BINARY = {"switch", "selection"}


@dataclass
class Tally:
    """What a fuzz run judged."""

    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    by_target: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return (f"{self.inputs} inputs ({dict(self.by_target)}): {self.accepted} accepted, "
                f"{self.refused} refused with RfctlError, {len(self.crashes)} exceptions "
                f"outside RfctlError, {len(self.silent)} bad values accepted")


# ----------------------------------------------------------------- mutation
def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        # long numeric arrays: a few positions are enough
        idx = range(len(doc)) if len(doc) <= 6 else [0, 1, len(doc) // 2, len(doc) - 1]
        for i in idx:
            out += _paths(doc[i], (*prefix, i))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _field(path: tuple) -> str:
    keys = [p for p in path if isinstance(p, str) and p not in ("re", "im")]
    return keys[-1] if keys else ""


def _final(doc: Any, changes: list) -> list:
    """The changes still in place (a later mutation may overwrite or delete one)."""
    out = []
    for path, old, new in changes:
        try:
            cur = _get(doc, path)
        except (KeyError, IndexError, TypeError):
            continue
        if cur is new:
            out.append((path, old, new))
    return out


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


@st.composite
def mutated(draw: Any, base: dict) -> tuple[dict, list[tuple[tuple, Any, Any]]]:
    """A copy of ``base`` with 1–3 mutations; returns it and (path, old, new) of each
    value replacement, ``old`` being the value at that path in ``base`` (None if the
    path is not in ``base``)."""
    doc = copy.deepcopy(base)
    changes: list[tuple[tuple, Any, Any]] = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        paths = _paths(doc)
        if not paths:
            break
        numeric = [p for p in paths if _is_number(_get(doc, p))]
        if numeric and draw(st.booleans()):
            paths = numeric  # half the time: a number (where the oracle judges)
        path = draw(st.sampled_from(paths))
        parent = _get(doc, path[:-1])
        op = draw(st.sampled_from(["value", "value", "value", "delete", "extra", "float"]))
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "extra" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["colour", "Kind", "extra_field"]))] = 1
        else:
            if op == "float":
                new = draw(st.one_of(
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-(2**70), 2**70),
                ))
            else:
                new = copy.deepcopy(draw(st.sampled_from(POOL)))
            try:  # judge against the base document's value, not an earlier mutation's
                old = _get(base, path)
            except (KeyError, IndexError, TypeError):
                old = None
            parent[path[-1]] = new
            changes.append((path, old, new))
    return doc, changes


def _clearly_bad(old: Any, new: Any, fld: str, *, kind: str) -> bool:
    """Would accepting ``new`` in place of the numeric leaf ``old`` be a silent bug?"""
    if not _is_number(old):
        return False
    if isinstance(new, bool) or isinstance(new, str | complex | dict | list) or new is None:
        # None is a legal "unset" for some optional config fields; bool/str/complex never
        if new is None:
            return kind == "state" and fld != "seed"
        return not (kind == "state" and fld in STATE_BINARY and isinstance(new, bool))
    if not _is_number(new):
        return False
    if isinstance(new, float) and not math.isfinite(new):
        return True
    if abs(new) >= 1e15 and fld != "seed":
        return True
    if fld == "seed" and abs(new) >= 2**63:
        return True
    if type(old) is int and (type(new) is float) and kind == "config":
        return True  # strict: no float where an integer belongs
    if kind == "config":
        if new < 0 and fld not in CFG_NEG_OK:
            return True
        return new == 0 and fld not in CFG_ZERO_OK
    if fld in STATE_BINARY:
        return new not in (0, 1) or type(new) is float
    if fld in ("realisation", "seed", "n_sensing"):
        return new < 0 or type(new) is float
    if fld in STATE_NONNEG and new < 0:
        return True
    if fld in STATE_POSITIVE and new <= 0:
        return True
    return fld == "phases" and abs(new) > 1e4


# ----------------------------------------------------------------- targets
def config_bases() -> list[dict]:
    """Every built-in config as a JSON-like mapping."""
    out = []
    for name in builtin_names():
        cfg = load_config(name)
        d = cfg.model_dump(mode="json")
        out.append(d)
    return out


CONFIG_DIR = str(Path(load_config("sim-dma-4x8").base_dir))


def check_config(doc: dict, changes: list, tally: Tally) -> None:
    """Parse a mutated config (and compile a board's tables)."""
    from rfctl.hal import compile_board

    tally.inputs += 1
    tally.by_target["config"] += 1
    try:
        cfg = parse_config(doc, source="fuzz.toml", base_dir=CONFIG_DIR)
        if isinstance(cfg, BoardProfile):
            compile_board(cfg)
    except RfctlError:
        tally.refused += 1
        return
    except Exception:
        tally.crashes.append(f"config {changes}: {traceback.format_exc(limit=3)}")
        return
    tally.accepted += 1
    for path, old, new in _final(doc, changes):
        if _clearly_bad(old, new, _field(path), kind="config"):
            tally.silent.append(f"config {path}: {old!r} -> {new!r} accepted")


def state_bases() -> list[dict]:
    """Saved states: a DBRAA steering design with its record, a DMA tuning, a small one."""
    from rfctl.optimize.steering import steering_design

    sc = load_config("dbraa-14x14")
    dbraa = steering_design(sc, realisation=0).state
    rng = np.random.default_rng(20261126)
    task = DmaTaskRecord(
        spec=load_config("dma-4x8").dma.model_dump(mode="json"), origin=np.zeros(3),
        users=rng.normal(0, 10, (3, 3)), theta=np.full(2, 0.5), phi=np.array([0.0, 1.0]),
        gamma=np.full(3, 2.0), beta=np.full(2, 1e-3), beta_max=1.0, p_max=1.0,
        sigma2=1e-12, channel_scale="received_power", n_sensing=1)
    dma = ArrayState(
        dma=DmaTuning(b=rng.normal(0, 3, 8), r0=1.0, y_self=0.05 + 0.1j * rng.random(8)),
        dma_b=rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4)),
        dma_task=task,
        record=DesignRecord(scenario=load_config("dma-4x8").model_dump(mode="json"),
                            seed=7, realisation=2, notes={"optimizer": "fuzz"}),
    )
    small = ArrayState(phases=np.array([0.1, -2.0, 3.0]), switch=np.eye(3, 2, dtype=bool),
                       selection=np.eye(2, dtype=bool))
    return [json.loads(s.to_json()) for s in (dbraa, dma, small)]


def check_state(doc: dict, changes: list, tally: Tally) -> None:
    """Load a mutated state file (JSON text, NaN tokens allowed in the text)."""
    tally.inputs += 1
    tally.by_target["state"] += 1
    try:
        text = json.dumps(doc, allow_nan=True, default=lambda o: {"complex": str(o)})
    except (TypeError, ValueError):
        text = str(doc)
    try:
        ArrayState.from_json(text, source="fuzz.json")
    except RfctlError:
        tally.refused += 1
        return
    except Exception:
        tally.crashes.append(f"state {changes}: {traceback.format_exc(limit=3)}")
        return
    tally.accepted += 1
    for path, old, new in _final(doc, changes):
        if path and path[0] == "record" and len(path) > 1 and path[1] == "notes":
            continue  # free-form
        fld = _field(path)
        if path and len(path) > 1 and (path[0], path[1]) in (("record", "scenario"),
                                                              ("dma_task", "spec")):
            bad = _clearly_bad(old, new, fld, kind="config")
        else:
            bad = _clearly_bad(old, new, fld, kind="state")
        if bad:
            tally.silent.append(f"state {path}: {old!r} -> {new!r} accepted")


# ----------------------------------------------------------------- CLI
class CliFiles:
    """Files the CLI fuzz points at: good and bad configs and states, a directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rfctl-fuzz-"))
        d = self.dir
        (d / "good.json").write_text(
            ArrayState(phases=np.zeros(196), switch=np.zeros((196, 4), bool)).to_json())
        (d / "latin1.json").write_bytes(b'{"format": "rfctl-state/1", "x": "\xe9"}')
        (d / "nan.json").write_text('{"format": "rfctl-state/1", "phases": [NaN]}')
        (d / "latin1.toml").write_bytes(b'kind = "board"\nname = "\xe9"\n')
        (d / "bad.toml").write_text('kind = "board"\nname = "b"\nbanks = 3\n')
        (d / "empty.toml").write_text("")
        (d / "sub").mkdir()
        self.cwd = d / "cwd"  # the CLI runs here; what it writes is removed after each run
        self.cwd.mkdir()
        self.paths = [str(d / n) for n in ("good.json", "latin1.json", "nan.json",
                                           "latin1.toml", "bad.toml", "empty.toml", "sub",
                                           "missing.json", "sub/missing/x.json")]
        self.paths += ["", "a\x00b", "sim-dbraa-14x14", "dma-4x8", "dbraa-14x14",
                       "sim-lab-8x8", "sim-dma-4x8"]


NUM_WORDS = ["-1", "0", "1", "2", "nan", "inf", "-inf", "1e300", "abc", "0x10", "1.5", "",
             "99999999999999999999999"]

COMMANDS = {
    "validate": {"pos": (1, 3), "opts": {}},
    "configs": {"pos": (0, 0), "opts": {}},
    "quantize": {"pos": (1, 1), "opts": {"--board": "path", "--json": None}},
    "demo": {"pos": (0, 0), "opts": {"--scenario": "path", "--board": "path",
                                     "--realisation": "num", "--out": "path",
                                     "--no-board": None}},
    "program": {"pos": (0, 0), "opts": {"--board": "path", "--state": "path",
                                        "--dry-run": None}},
}


@st.composite
def cli_argv(draw: Any, files: CliFiles) -> list[str]:
    """An argument list for one of the quick commands (no servers, no optimizers)."""
    argv: list[str] = []
    if draw(st.booleans()):
        argv.append("-v")
    if draw(st.integers(0, 9)) == 0:
        argv += ["--log-wire", draw(st.sampled_from(files.paths))]
    cmd = draw(st.sampled_from(sorted(COMMANDS)))
    argv.append(cmd)
    spec = COMMANDS[cmd]
    lo, hi = spec["pos"]
    for _ in range(draw(st.integers(lo, hi))):
        argv.append(draw(st.sampled_from(files.paths)))
    for opt, kind in spec["opts"].items():
        if not draw(st.booleans()):
            continue
        argv.append(opt)
        if kind == "path":
            argv.append(draw(st.sampled_from(files.paths)))
        elif kind == "num":
            argv.append(draw(st.sampled_from(NUM_WORDS)))
    if cmd in ("demo",) and "--board" not in argv:
        argv.append("--no-board")
    if draw(st.integers(0, 19)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(
            ["--bogus", "-x", "--help", "--", "\udcff", "a\x00b"])))
    return argv


def check_cli(argv: list[str], tally: Tally, files: CliFiles) -> None:
    """Run the CLI in-process (in ``files.cwd``): the exit status must be 0, 1 or 2."""
    import contextlib
    import shutil

    from rfctl.cli import main

    tally.inputs += 1
    tally.by_target["cli"] += 1
    err = io.StringIO()
    try:
        with contextlib.chdir(files.cwd), contextlib.redirect_stderr(err):
            code = main(argv, out=io.StringIO())
    except BaseException:  # anything escaping main is a crash
        tally.crashes.append(f"cli {argv!r}: {traceback.format_exc(limit=3)}")
        return
    finally:
        for p in files.cwd.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    if code not in (0, 1, 2):
        tally.crashes.append(f"cli {argv!r}: exit {code}: {err.getvalue()[-400:]}")
        return
    if code == 0:
        tally.accepted += 1
        if "--realisation" in argv and "--help" not in argv:  # --help exits 0 unparsed
            v = argv[argv.index("--realisation") + 1] if argv.index("--realisation") + 1 \
                < len(argv) else ""
            if v in ("-1", "nan", "inf", "-inf", "1e300", "99999999999999999999999"):
                tally.silent.append(f"cli {argv!r}: --realisation {v} accepted")
    else:
        tally.refused += 1


# ----------------------------------------------------------------- TOML text
_NUM = re.compile(r"(?<![\w.\-+])[-+]?\d[\d_]*(\.\d+)?([eE][-+]?\d+)?(?![\w.])")
_STR = re.compile(r'"[^"\n]*"')
BAD_TOKENS = ["inf", "-inf", "nan", "+nan", "1e300", "-1e300", "1e999", "true", '"6"',
              "100000000000000000000000000000", "[1.0, 2.0]", "{ re = 1.0 }"]
BYTE_JUNK = [b"\xff", b"\x00", b"\xc3", b"\x1b", b"\r", b"[[", b"]", b"=", b'"', b"\\u0000"]


def toml_bases() -> list[tuple[str, bytes]]:
    """The built-in config files as bytes, with their names."""
    import importlib.resources

    root = importlib.resources.files("rfctl.configs")
    return [(p.name, p.read_bytes()) for p in root.iterdir() if p.name.endswith(".toml")]


def _number_spans(text: str) -> list[tuple[int, int]]:
    """Spans of number literals in values (not in comments, strings or key names)."""
    spans = []
    pos = 0
    for line in text.splitlines(keepends=True):
        code = line.split("#", 1)[0]
        strings = [m.span() for m in _STR.finditer(code)]
        value_start = code.index("=") + 1 if "=" in code else 0
        if not value_start and not code.strip().startswith(("{", "[")):
            value_start = len(code)  # neither a value nor an array continuation line
        if code.strip().startswith("[") and "=" not in code and "[[" in code:
            value_start = len(code)  # a [[table]] header
        for m in _NUM.finditer(code, value_start):
            if not any(a <= m.start() < b for a, b in strings):
                spans.append((pos + m.start(), pos + m.end()))
        pos += len(line)
    return spans


@st.composite
def toml_mutated(draw: Any, bases: list) -> tuple[str, bytes, str | None]:
    """A built-in TOML file with one number replaced by a bad token (judged by the
    oracle) or with bytes inserted, replaced or cut (judged for crashes only)."""
    name, raw = draw(st.sampled_from(bases))
    text = raw.decode()
    spans = _number_spans(text)
    if spans and draw(st.booleans()):
        a, b = draw(st.sampled_from(spans))
        tok = draw(st.sampled_from(BAD_TOKENS))
        return name, (text[:a] + tok + text[b:]).encode(), f"{text[a:b]} -> {tok} at {a}"
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "replace", "cut"]))
        junk = draw(st.sampled_from(BYTE_JUNK))
        if op == "insert":
            data[i:i] = junk
        elif op == "replace":
            data[i:i + len(junk)] = junk
        else:
            data = data[:i]
    return name, bytes(data), None


class TomlDir:
    """A directory holding the built-in tables, where mutated TOML files are written."""

    def __init__(self) -> None:
        import importlib.resources
        import shutil

        self.dir = Path(tempfile.mkdtemp(prefix="rfctl-fuzz-toml-"))
        root = importlib.resources.files("rfctl.configs")
        for p in root.iterdir():
            if p.name.endswith(".csv"):
                shutil.copy(str(p), self.dir / p.name)


def check_toml(case: tuple, tally: Tally, where: TomlDir) -> None:
    """Load a mutated TOML file (and compile a board's tables)."""
    from rfctl.hal import compile_board

    name, data, bad = case
    tally.inputs += 1
    tally.by_target["toml"] += 1
    path = where.dir / name
    path.write_bytes(data)
    try:
        cfg = load_config(path)
        if isinstance(cfg, BoardProfile):
            compile_board(cfg)
    except RfctlError:
        tally.refused += 1
        return
    except Exception:
        tally.crashes.append(f"toml {name} {bad}: {traceback.format_exc(limit=3)}")
        return
    tally.accepted += 1
    if bad is not None:
        tally.silent.append(f"toml {name}: {bad} accepted")
