"""Quality checks against two bars: the issue's target, and a regression floor.

A figure below its regression floor fails the run: something got worse. A figure
between the floor and the target is reported as an expected failure that names
the gap (pytest -ra prints it), so a target that is not met yet is never hidden
and never blocks unrelated work. Floors only ever move up.
"""
import pytest


def check(figures: list[tuple[str, float, float, float]]) -> None:
    """``figures``: (what, measured, target, floor) rows, all checked before any verdict."""
    regressions = [f"{what}: {measured:.4f} < floor {floor:.4f}" for what, measured, _, floor in figures if measured < floor]
    assert not regressions, "regression: " + "; ".join(regressions)
    gaps = [f"{what}: {measured:.4f} < target {target:.4f}" for what, measured, target, _ in figures if measured < target]
    if gaps:
        pytest.xfail("issue targets not met yet: " + "; ".join(gaps))
