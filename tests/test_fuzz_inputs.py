"""Fuzzing configs, TOML files, state files and CLI argument lists (issue 14; the
machinery is in tests/fuzz_inputs.py).

Targets: config mappings (parse, then compile the tables), TOML files (a number replaced
by a bad literal such as ``inf``, or bytes inserted, replaced or cut), state files, and
CLI argument lists of the quick commands. The default run judges 560 inputs; the slow
run (``-m slow``) judges 10 500, with the seed taken from ``RFCTL_FUZZ_SEED`` (default
14), and prints the tally. Invariants: nothing but ``RfctlError`` escapes (CLI: exit
0–2), and no clearly bad value (NaN, inf, complex, huge, wrong type, out of range) is
accepted silently.
"""

from __future__ import annotations

import os

import pytest
from fuzz_inputs import (
    CliFiles,
    Tally,
    TomlDir,
    check_cli,
    check_config,
    check_state,
    check_toml,
    cli_argv,
    config_bases,
    mutated,
    state_bases,
    toml_bases,
    toml_mutated,
)
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

CONFIGS = config_bases()
STATES = state_bases()
FILES = CliFiles()
TOMLS = toml_bases()
TOML_DIR = TomlDir()


def _run(n_config: int, n_toml: int, n_state: int, n_cli: int, rng_seed: int) -> Tally:
    tally = Tally()
    common = dict(deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))

    @seed(rng_seed)
    @settings(max_examples=n_config, **common)
    @given(st.sampled_from(CONFIGS).flatmap(mutated))
    def configs(case: tuple) -> None:
        check_config(*case, tally)

    @seed(rng_seed + 3)
    @settings(max_examples=n_toml, **common)
    @given(toml_mutated(TOMLS))
    def tomls(case: tuple) -> None:
        check_toml(case, tally, TOML_DIR)

    @seed(rng_seed + 1)
    @settings(max_examples=n_state, **common)
    @given(st.sampled_from(STATES).flatmap(mutated))
    def states(case: tuple) -> None:
        check_state(*case, tally)

    @seed(rng_seed + 2)
    @settings(max_examples=n_cli, **common)
    @given(cli_argv(FILES))
    def cli(argv: list[str]) -> None:
        check_cli(argv, tally, FILES)

    for fn, n in ((configs, n_config), (tomls, n_toml), (states, n_state), (cli, n_cli)):
        if n:
            fn()
    return tally


def _judge(tally: Tally) -> None:
    print(tally.summary())
    assert not tally.crashes, f"{len(tally.crashes)} crashes; first:\n{tally.crashes[0]}"
    assert not tally.silent, f"{len(tally.silent)} silent acceptances; first: " \
                             f"{tally.silent[:5]}"
    assert tally.accepted and tally.refused  # the fuzz reaches both sides


def test_fuzz_small_run() -> None:
    tally = _run(200, 150, 150, 60, rng_seed=1)
    _judge(tally)
    assert tally.inputs >= 500


@pytest.mark.slow
def test_fuzz_ten_thousand_inputs() -> None:
    rng_seed = int(os.environ.get("RFCTL_FUZZ_SEED", "14"))
    tally = _run(3500, 2500, 3000, 1500, rng_seed=rng_seed)
    print(f"seed {rng_seed}: ", end="")
    _judge(tally)
    assert tally.inputs >= 10_000


def test_the_oracle_and_crash_check_can_fail(monkeypatch) -> None:
    """The judge itself: an accepting parser is caught, and so is a stray exception."""
    import fuzz_inputs

    base = CONFIGS[0]
    doc = {**base, "seed": float("inf")}
    tally = Tally()
    monkeypatch.setattr(fuzz_inputs, "parse_config", lambda *a, **k: object())
    check_config(doc, [(("seed",), base.get("seed", 0), doc["seed"])], tally)
    assert len(tally.silent) == 1

    def boom(*a, **k):
        raise ZeroDivisionError

    monkeypatch.setattr(fuzz_inputs, "parse_config", boom)
    check_config(doc, [], tally)
    assert len(tally.crashes) == 1
