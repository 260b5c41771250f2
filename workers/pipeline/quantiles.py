"""Median and percentile of the small arrays that segmentation measures, as numpy computes them.

A canvas line asks for about ten of these, each over a dozen values (the heights of its
symbols, the gaps between its rows). ``np.median`` spends 7 µs on such an array and
``np.percentile`` 30 µs in generic machinery (axes, NaN checks, methods), together about a
twentieth of a canvas line's reading; one ``np.partition`` does it in 2 to 3 µs. The results
are numpy's own, to the bit: the middle pair is averaged in the array's dtype as
``np.median`` does, and a percentile is numpy's default linear interpolation with its own
``lerp`` formula (a test compares both with numpy on random arrays).
"""
from __future__ import annotations

import numpy as np


def median(values) -> float:
    """``float(np.median(values))`` for a non-empty 1-D array or sequence."""
    values = np.asarray(values).ravel()
    middle = values.size // 2
    if values.size % 2:
        return float(np.partition(values, middle)[middle])
    low, high = np.partition(values, (middle - 1, middle))[middle - 1 : middle + 1]
    # np.median takes the mean of the middle pair in the array's own float type (float64 for integers).
    if not np.issubdtype(values.dtype, np.floating):
        low, high = np.float64(low), np.float64(high)
    return float((low + high) / 2)


def percentile(values, q: float) -> float:
    """``float(np.percentile(values, q))`` (linear interpolation) for a non-empty 1-D array or sequence."""
    values = np.asarray(values).ravel()
    position = q / 100 * (values.size - 1)
    below = int(np.floor(position))
    above = min(below + 1, values.size - 1)
    low, high = np.partition(values, (below, above))[[below, above]]
    low, high, t = np.float64(low), np.float64(high), np.float64(position - below)
    # numpy's _lerp: from the nearer end, so that t = 1 gives ``high`` exactly.
    return float(high - (high - low) * (1 - t) if t >= 0.5 else low + (high - low) * t)
