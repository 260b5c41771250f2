"""What the benchmarks ran on, with a yardstick for comparing hosts.

The sessions' machines differ (the same "AMD EPYC" name has measured a 1.6-1.8× different baseline),
so each result records how long this host takes for a fixed pure-Python loop: a figure from
another day is comparable only next to its own yardstick.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

YARDSTICK_LOOPS = 10**7


def _cpuinfo(field: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def python_loop_ms(rounds: int = 5) -> float:
    """The best of ``rounds`` timings of an empty 10**7-iteration Python loop, in ms."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(YARDSTICK_LOOPS):
            pass
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def describe() -> dict:
    mhz = _cpuinfo("cpu MHz")
    return {
        "cpu": _cpuinfo("model name") or platform.processor(),
        "cpu_mhz": round(float(mhz)) if mhz else None,
        "python_loop_ms": python_loop_ms(),
    }


def summary(data: dict) -> str:
    """'AMD EPYC, 2596 MHz, 10^7-iteration Python loop 93 ms' (older results: the name only).
    The load benchmark times its loop with the stack idle but running, the pipeline benchmark
    pinned to core 0: each compares with its own kind."""
    parts = [data["cpu"]]
    if data.get("cpu_mhz"):
        parts.append(f"{data['cpu_mhz']} MHz")
    if data.get("python_loop_ms"):
        parts.append(f"10^7-iteration Python loop {data['python_loop_ms']:.0f} ms")
    return ", ".join(parts)
