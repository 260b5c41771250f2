"""The symbol classes the recogniser knows, in the model's output order.

Division is left out on purpose: a handwritten ``/`` is too close to ``1``.
The ``×`` class covers both an × cross and a ``*`` star; expressions use the
ASCII ``*`` for it.
"""
from __future__ import annotations

CLASSES: tuple[str, ...] = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "*", "(", ")", "=")
"""Model output index -> symbol as it appears in an expression string."""

DISPLAY = {"*": "×"}
"""How a symbol is shown to a person, where it differs from the expression text."""

DIGITS = CLASSES[:10]
OPERATORS = ("+", "-", "*", "(", ")", "=")
CLASS_INDEX = {symbol: index for index, symbol in enumerate(CLASSES)}
NUM_CLASSES = len(CLASSES)

# Folder names used by the CROHME validation set and by our generated-data cache.
FOLDER_NAMES = {"plus": "+", "minus": "-", "times": "*", "lparen": "(", "rparen": ")", "equals": "="}
FOLDER_NAMES.update({digit: digit for digit in DIGITS})
