"""Temperature scaling: make the classifier's probabilities mean what they say.

A model trained with label smoothing is right as often as before but less sure of itself:
its top class rarely passes 0.9, so a line of ten symbols that it read perfectly would
score 0.35 and every symbol would look doubtful. Dividing the logits by a temperature T
fitted on held-out data (Guo et al., 2017) restores honest confidences without changing
the order of any symbol's classes. The model ends in a softmax, so this works on its
probabilities: softmax(z / T) is p ** (1 / T), renormalised. A line's reading can still
change: the decoder weighs symbol probabilities against its grammar priors and drops
alternatives under 1%, so the figures of a calibrated version are measured calibrated.

Training fits T on the (generated) validation split and records it in the version's
``config.json``; inference applies it. A version without one is served as it is (T = 1).
For v0010 the fit transfers to real hands: T = 0.56 on the validation split, 0.57 fitted on
the CROHME tune half.
"""
from __future__ import annotations

import numpy as np

_FLOOR = float(np.finfo(np.float32).tiny)  # log(0) guard that stays ~0 after any scaling


def temperature_of(config: dict) -> float:
    """A version's fitted temperature from its ``config.json``; 1 for a version fitted none."""
    temperature = (config.get("calibration") or {}).get("temperature")
    if temperature is None:
        return 1.0
    if not float(temperature) > 0:
        raise ValueError(f"a calibration temperature must be positive, not {temperature!r}")
    return float(temperature)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities as if the logits had been divided by ``temperature``."""
    if not temperature > 0:
        raise ValueError(f"a temperature must be positive, not {temperature!r}")
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.maximum(probabilities, _FLOOR)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], _FLOOR))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature, on a fine grid, that minimises the negative log-likelihood."""
    grid = np.round(np.arange(0.05, 3.0001, 0.01), 2)
    losses = [negative_log_likelihood(apply_temperature(probabilities, float(t)), labels) for t in grid]
    return float(grid[int(np.argmin(losses))])
