"""What every subcommand prints: its command line, the host and its settings, markdown tables."""

from __future__ import annotations

import os
import platform
import shlex
from collections.abc import Sequence

import numpy as np

MIB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(text: str = "") -> None:
    print(text, flush=True)


def preamble(title: str, argv: Sequence[str], settings: dict[str, object]) -> None:
    emit(f"## {title}\n")
    emit(f"`python -m benchmarks.perf {shlex.join(argv)}`\n")
    host = {"python": platform.python_version(), "numpy": np.__version__,
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "load average (1/5 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()[:2])}
    for key, value in {**host, **settings}.items():
        emit(f"- {key}: {value}")
    emit()


def ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]
