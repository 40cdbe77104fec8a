"""Shared fixtures: every test gets its own seeded Generator (never global state)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "rfctl", deadline=None, max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("ci", deadline=None, max_examples=300, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
# CI: more examples, derandomized so a red run is reproducible
settings.load_profile("ci" if os.environ.get("CI") else "rfctl")


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A Generator seeded from the test's node id: reproducible and distinct per test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def figure_script(monkeypatch: pytest.MonkeyPatch):
    """Load a script of ``figures/`` as a module (``figure_script("mmwave_figures")``),
    with ``figures/`` on ``sys.path`` for its shared ``_plot`` helper."""
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "figures"
    monkeypatch.syspath_prepend(str(folder))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"figures_{name}", folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def figure_cli(tmp_path):
    """Run ``figures/<name>.py all --quick`` into ``tmp_path``; check that it succeeds and
    that every figure in ``figures`` has a drawn PNG and error-free JSON records."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    def run(name: str, figures: list[str]) -> Path:
        script = Path(__file__).resolve().parents[1] / "figures" / f"{name}.py"
        proc = subprocess.run([sys.executable, str(script), "all", "--quick", "--out",
                               str(tmp_path)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        for fig in figures:
            assert (tmp_path / f"{fig}.png").stat().st_size > 10_000
            data = json.loads((tmp_path / f"{fig}.json").read_text())
            assert all("error" not in r for r in data.get("records", []))
        return tmp_path

    return run
