"""Layering (docs/architecture.md): nothing in rfctl imports a concrete driver or a
simulator; drivers never import simulators; optimizers never import the HAL.
(pyproject's import-linter contracts check the full layer order in CI; this test covers
what import-linter cannot see: the mapped rfctl.drivers and rfctl.sims folders.)"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "rfctl"


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
    return mods


def _offenders(folder: Path, prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    found = {str(p.relative_to(folder)): sorted(m for m in _imports(p)
                                                if m.startswith(prefixes))
             for p in folder.rglob("*.py")}
    return {k: v for k, v in found.items() if v}


def test_no_rfctl_module_imports_a_driver_or_a_simulator() -> None:
    assert _offenders(ROOT, ("rfctl.drivers", "rfctl.sims")) == {}


def test_drivers_never_import_simulators() -> None:
    # relative imports inside drivers/ cannot reach sims/ (another package), so the
    # absolute prefix is the whole check
    assert _offenders(REPO / "drivers", ("rfctl.sims",)) == {}


def test_the_layer_checks_see_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from rfctl.sims.simboard import SimBoardFirmware\nimport rfctl.drivers\n")
    assert _offenders(tmp_path, ("rfctl.drivers", "rfctl.sims")) == {
        "bad.py": ["rfctl.drivers", "rfctl.sims.simboard"]}


def test_optimizers_do_not_import_hal() -> None:
    for p in (ROOT / "optimize").rglob("*.py"):
        assert not any(m.startswith(("rfctl.hal", "rfctl.cli")) for m in _imports(p)), p


def test_library_never_prints() -> None:
    for p in ROOT.rglob("*.py"):
        if p.name == "__main__.py" or "cli" in p.relative_to(ROOT).parts:
            continue
        calls = [n for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        assert not calls, f"{p} calls print()"
