"""Layering (DESIGN.md): nothing in rfctl imports a concrete driver; optimizers never
import the HAL. (pyproject's import-linter contracts check the full layer order in CI;
this test covers what import-linter cannot see: the mapped rfctl.drivers folder.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rfctl"


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
    return mods


def test_no_rfctl_module_imports_a_driver() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p)
                                                  if m.startswith("rfctl.drivers"))
                 for p in ROOT.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_optimizers_do_not_import_hal() -> None:
    for p in (ROOT / "optimize").rglob("*.py"):
        assert not any(m.startswith(("rfctl.hal", "rfctl.cli")) for m in _imports(p)), p


def test_library_never_prints() -> None:
    for p in ROOT.rglob("*.py"):
        if p.name in ("cli.py", "__main__.py"):
            continue
        calls = [n for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        assert not calls, f"{p} calls print()"
