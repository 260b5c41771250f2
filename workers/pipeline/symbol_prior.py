"""How often each symbol occurs in written arithmetic, and the posterior it gives.

The CNN is trained with class weights that give every class the same total weight
(training/train.py), so its outputs are probabilities under a *uniform* prior: a lone
stroke that is equally a ``1`` and a ``(`` is called 50/50. In written arithmetic they
are not equally likely. Bayes' rule corrects the outputs by the prior of each class
relative to the uniform one the model was trained with::

    p(c | crop) ∝ p_model(c | crop) · prior(c) / (1/16)

The prior is generic, not fitted to any data set:

- digits are two thirds of the symbols (``12+(3-1)*4`` has 5 of 10; worksheet lines
  such as ``7*8=56`` have 4 of 6), the six other classes share the last third equally;
- among digits, numbers start with a 1 far more often than with a 9 (Benford's law,
  P(d) = log10(1 + 1/d)), and later digits are about uniform; with numbers of about
  two digits, half the digits are leading ones and half are not.

It is applied once to the page's probabilities, before the decoder reads them, so the
top-3 shown and each symbol's confidence are this posterior. On the tune half of the
CROHME validation writers it lifts exact match on whole expressions from 88.5% to 91.7%
(tablet) and from 89.6% to 91.7% (canvas), mostly ``1`` no longer read as ``(``, ``7``
or ``4``. The classifier alone, as measured on isolated symbols, is unchanged.

Where a digit stands in its number is known only to the decoder, which corrects the
posterior for digits after the first (:func:`later_digit_cost`): on the tune half, 179 of
192 expressions -> 180, and 2 more of the 360 rendered lines, whose digits are uniform.
"""
from __future__ import annotations

import math

import numpy as np

from workers.pipeline.symbols import CLASSES, DIGITS

DIGIT_SHARE = 2 / 3
LEADING_SHARE = 0.5  # of digits, the first digit of a number


def _digit_prior(digit: int) -> float:
    leading = math.log10(1 + 1 / digit) if digit else 0.0  # Benford: no number starts with 0
    return LEADING_SHARE * leading + (1 - LEADING_SHARE) / 10


def class_prior() -> np.ndarray:
    """The prior of each class of CLASSES (sums to 1)."""
    others = len(CLASSES) - len(DIGITS)
    prior = np.array([DIGIT_SHARE * _digit_prior(int(c)) if c in DIGITS else (1 - DIGIT_SHARE) / others for c in CLASSES])
    return prior / prior.sum()


_DIGIT_TOTAL = sum(_digit_prior(digit) for digit in range(10))
_WEIGHTS = (class_prior() * len(CLASSES)).astype(np.float32)  # prior relative to the model's uniform one


def _second_digit(digit: int) -> float:
    """Benford's law for the second digit of a number: 12% for a 0 down to 8.5% for a 9."""
    return sum(math.log10(1 + 1 / (10 * first + digit)) for first in range(1, 10))


def later_digit_cost(before_previous: str, previous: str, symbol: str) -> float:
    """Log-ratio that corrects the posterior's digit prior for a digit that is not a number's first.

    :func:`posterior` cannot know where a crop stands in its number, so it weighs every digit
    as if it led half the time (a 1 at 20% of digits, a 7 at 8%). The decoder knows: a digit
    after a digit is the number's second (Benford's second-digit law, almost uniform: a 1 at
    11%, a 7 at 9%) or a later one (uniform). A first digit keeps the posterior's weight.
    Zero for anything that is not such a digit. ``before_previous`` and ``previous`` are the
    two symbols read before ``symbol`` ("" where there is none).
    """
    if symbol not in DIGITS or previous not in DIGITS:
        return 0.0
    return (_SECOND_DIGIT_COST if before_previous not in DIGITS else _LATER_DIGIT_COST)[symbol]


# The decoder asks for every candidate of every hypothesis: the costs are looked up, not recomputed.
_SECOND_DIGIT_COST = {d: math.log(_second_digit(int(d)) * _DIGIT_TOTAL / _digit_prior(int(d))) for d in DIGITS}
_LATER_DIGIT_COST = {d: math.log(0.1 * _DIGIT_TOTAL / _digit_prior(int(d))) for d in DIGITS}


def posterior(probabilities: np.ndarray) -> np.ndarray:
    """Rows of model probabilities (uniform prior) reweighted by the class prior.

    Each row keeps its sum: a model with a not-one-symbol output gives rows that sum to the
    chance that the crop is one symbol, and the prior only shares that out among the symbols.
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    weighted = probabilities * _WEIGHTS
    return weighted * (probabilities.sum(axis=-1, keepdims=True) / np.maximum(weighted.sum(axis=-1, keepdims=True), 1e-12))
