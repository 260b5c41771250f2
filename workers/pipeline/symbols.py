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

NOT_ONE_SYMBOL = "not-one-symbol"
"""A model's extra output for a crop that holds no single symbol: two touching symbols read
as one group. Segmentation proposes such wholes beside their cuts; this is how the decoder
learns that a whole is not one symbol. It is never a reading: the pipeline keeps the
symbol columns only, whose sum is then the chance that the crop is one symbol."""
MODEL_CLASSES = CLASSES + (NOT_ONE_SYMBOL,)
"""What a model trained now outputs, in order; a model may also output CLASSES alone."""
NOT_ONE_SYMBOL_INDEX = MODEL_CLASSES.index(NOT_ONE_SYMBOL)


def symbol_columns(probabilities):
    """The symbol classes' columns of a model's output (rows of CLASSES or MODEL_CLASSES)."""
    return probabilities[..., :NUM_CLASSES]

# Folder names used by the CROHME validation set and by our generated-data cache.
FOLDER_NAMES = {"plus": "+", "minus": "-", "times": "*", "lparen": "(", "rparen": ")", "equals": "="}
FOLDER_NAMES.update({digit: digit for digit in DIGITS})
