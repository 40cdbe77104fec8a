"""What the optimizer benchmarks share: the machine line and timing of one call."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["machine", "timed"]


def machine() -> str:
    """Python, numpy and core count, and the reminder that the machine was shared."""
    return (f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"{os.cpu_count()} cores (machine shared with other jobs)")


def timed(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[float, float, Any]:
    """Call ``fn(*args, **kw)``: wall time (s), process CPU time (s; less sensitive to
    other jobs on a shared machine) and the result."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn(*args, **kw)
    return time.perf_counter() - t0, time.process_time() - c0, result
