"""The wheel holds every package folder and every config file (docs/architecture.md, Packaging:
with a package-dir mapping a forgotten subpackage is silently left out)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAPPING = {"rfctl": "rfctl", "drivers": "rfctl/drivers", "sims": "rfctl/sims",
           "configs": "rfctl/configs"}


def _expected() -> tuple[set[str], set[str]]:
    pkgs, data = set(), set()
    for src, dst in MAPPING.items():
        for init in (REPO / src).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / src)
            pkgs.add(str(Path(dst) / rel).replace("\\", "/").rstrip("/."))
    for f in (REPO / "configs").iterdir():
        if f.suffix in (".toml", ".csv"):
            data.add(f"rfctl/configs/{f.name}")
    return pkgs, data


def test_wheel_contains_every_package_and_config(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", ".ruff_cache", "out"))
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
         str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (whl,) = (tmp_path / "dist").glob("rfctl-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    pkgs, data = _expected()
    missing_pkgs = {p for p in pkgs if f"{p}/__init__.py" not in names}
    assert not missing_pkgs, f"package folders missing from the wheel: {missing_pkgs}"
    assert not data - names, f"config files missing from the wheel: {data - names}"
    eps = [n for n in names if n.endswith("entry_points.txt")]
    assert eps
    text = zipfile.ZipFile(whl).read(eps[0]).decode()
    for group in ("[rfctl.drivers]", "[rfctl.instruments]", "[rfctl.sims]"):
        assert group in text, group
    # figures/ and benchmarks/ are scripts for the repository, not part of the wheel
    assert not any(n.startswith(("figures/", "benchmarks/")) for n in names)
