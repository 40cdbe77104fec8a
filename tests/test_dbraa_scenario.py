"""One band of a DBRAA scenario as arrays: the helper behind both task builders."""

from __future__ import annotations

import numpy as np
import pytest

from rfctl.channels import dbraa_channels
from rfctl.config import load_config, parse_config
from rfctl.errors import ConfigError, InfeasibleError
from rfctl.geometry import sub6_steering, upa_steering
from rfctl.optimize import mmwave, sub6g
from rfctl.optimize.dbraa_scenario import band_problem, check_parseval, target_steering


def test_both_bands_read_the_scenario_as_the_channel_model_draws_it() -> None:
    sc = load_config("dbraa-14x14")
    spec = sc.dbraa
    ch6, chm = dbraa_channels(spec, seed=sc.seed, realisation=3, sub6_users=sc.sub6g.users,
                              sub6_paths=sc.sub6g.paths, mmwave_users=sc.mmwave.users,
                              mmwave_paths=sc.mmwave.paths)
    s6, mm = band_problem(sc, "sub6g", 3), band_problem(sc, "mmwave", 3)
    assert np.array_equal(s6.channel.H, ch6.H) and np.array_equal(mm.channel.H, chm.H)
    t = sc.sub6g.targets[1]
    assert np.array_equal(s6.A[:, 1], sub6_steering(spec.rows, spec.cols, [t.phi], [t.theta],
                                                    spec.wavelength_ratio).ravel())
    t = sc.mmwave.targets[0]
    assert np.array_equal(mm.A[:, 0], upa_steering(spec.rows, spec.cols, [t.phi],
                                                   [t.theta]).ravel())
    # the task builders are this helper plus the band's thresholds
    assert np.array_equal(sub6g.task_from_scenario(sc, 3).H, s6.channel.H)
    assert np.array_equal(mmwave.task_from_scenario(sc, 3).A, mm.A)


def test_no_targets_and_missing_tables() -> None:
    spec = load_config("dbraa-14x14").dbraa
    assert target_steering(spec, [], "mmwave").shape == (196, 0)
    assert target_steering(spec, [], "sub6g").shape == (169, 0)
    sc = parse_config({"kind": "scenario", "name": "only-sub6", "seed": 1,
                       "dbraa": spec.model_dump(), "sub6g": {"users": 2}})
    with pytest.raises(ConfigError, match=r"\[mmwave\]") as ei:
        band_problem(sc, "mmwave")
    assert ei.value.field == "mmwave"
    with pytest.raises(ConfigError, match=r"\[mmwave\]"):
        mmwave.task_from_scenario(sc)


def test_parseval_bound_names_the_first_threshold_above_it() -> None:
    check_parseval(np.array([4.0, 8.0]), 2.0, 4, "P N")  # P N = 8: on the bound is fine
    with pytest.raises(InfeasibleError, match=r"Υ_1 = 9 exceeds the Parseval bound P N = 8"
                       ) as ei:
        check_parseval(np.array([4.0, 9.0, 10.0]), 2.0, 4, "P N")
    assert ei.value.bound == "Parseval sensing gain" and ei.value.value == 8.0
