"""The README runs as written: every fenced ``python`` and ``bash`` block, in order, in a
fresh folder, against the installed rfctl (issue: "a README that runs").

A block preceded by ``<!-- readme: skip (reason) -->`` is not run (the install line,
which .ci/run itself executes). Bash blocks run under ``bash -euo pipefail``; python
blocks run in one shared namespace, like a reader pasting them into one session. Any
background process a block starts is killed when the test ends.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"(<!-- readme: skip[^>]*-->\s*\n)?```(python|bash)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str, bool]]:
    return [(m.group(2), m.group(3), m.group(1) is not None)
            for m in FENCE.finditer(README.read_text(encoding="utf-8"))]


def test_readme_has_runnable_blocks() -> None:
    runnable = [b for b in blocks() if not b[2]]
    assert len(runnable) >= 5


def test_readme_blocks_run_in_order(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    ns: dict = {"__name__": "__readme__"}
    procs = []
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for i, (lang, code, skip) in enumerate(blocks()):
            if skip:
                continue
            if lang == "python":
                exec(compile(code, f"README block {i}", "exec"), ns)
            else:
                log = tmp_path / f"block{i}.log"
                with log.open("w") as fh:  # a file, not a pipe: background jobs keep it open
                    p = subprocess.Popen(["bash", "-euo", "pipefail", "-c", code],
                                         cwd=tmp_path, env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, start_new_session=True)
                    procs.append(p)
                    p.wait(timeout=600)
                out = log.read_text(errors="replace")
                assert p.returncode == 0, f"README block {i} failed:\n{code}\n{out[-3000:]}"
    finally:
        os.chdir(cwd)
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
