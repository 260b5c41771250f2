"""The arithmetic grammar: a recursive-descent parser and an exact evaluator.

Expressions are written with the ASCII symbols of the model's classes
(``0-9 + - * ( ) =``). ``eval`` is never used: this parser is the only thing
that gives a string a meaning.

Grammar (``*`` may also be implied by juxtaposition, as in ``2(3+4)``)::

    line     := expr [ "=" [ expr ] ]                 # 7*8=56, 252=28*9, or 7*8= (unanswered)
    expr     := term { ("+" | "-") term }
    term     := unary { "*" unary | primary }        # juxtaposition: 2(3) or (1)(2)
    unary    := ("+" | "-") unary | primary
    primary  := integer | "(" expr ")"

Juxtaposition only multiplies when the right side starts with ``(`` or the left
side ends with ``)``: ``12`` is twelve, never one times two.

The right-hand side is usually a (signed) integer, but worksheets also check
equalities such as ``6*6=4*9``; its value is the line's ``answer``.

Arithmetic is exact on Python integers, bounded by MAX_SYMBOLS and MAX_MAGNITUDE.
"""
from __future__ import annotations

from dataclasses import dataclass

from workers.pipeline.errors import RecognitionError

MAX_SYMBOLS = 200
MAX_MAGNITUDE = 10**100
ALPHABET = frozenset("0123456789+-*()=")


class ParseError(RecognitionError):
    """The text is not a well-formed line; ``position`` is where it went wrong."""

    def __init__(self, message: str, position: int, text: str):
        super().__init__("unparsable_expression", message, position=position, best_reading=text)


@dataclass(frozen=True)
class Line:
    """A parsed line: the left-hand side, its exact value and the written answer."""

    expression: str
    value: int
    has_equals: bool
    answer: int | None  # the value of the right-hand side
    answer_expression: str | None = None  # the right-hand side as written: '56', '-3', '28*9'

    @property
    def correct(self) -> bool | None:
        """True/False when an answer is written; None for no ``=`` or an empty answer."""
        if self.answer is None:
            return None
        return self.answer == self.value


def _check_magnitude(value: int, position: int, text: str) -> int:
    if abs(value) > MAX_MAGNITUDE:
        raise RecognitionError(
            "value_too_large", f"an intermediate result exceeds 10^100 at symbol {position + 1}",
            position=position, best_reading=text,
        )
    return value


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, message: str) -> ParseError:
        return ParseError(message, self.pos, self.text)

    def take(self, symbol: str) -> None:
        if self.peek() != symbol:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected {symbol!r} at symbol {self.pos + 1}, found {found}")
        self.pos += 1

    def integer(self) -> int:
        start = self.pos
        while self.peek().isdigit():
            self.pos += 1
        if start == self.pos:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected a number or '(' at symbol {self.pos + 1}, found {found}")
        value = int(self.text[start : self.pos])
        if value > MAX_MAGNITUDE:  # as written: a result (10^101 × 0, say) may not show it
            raise RecognitionError(
                "value_too_large", f"the number at symbol {start + 1} exceeds 10^100", position=start, best_reading=self.text,
            )
        return value

    def primary(self) -> int:
        if self.peek() == "(":
            self.take("(")
            value = self.expr()
            self.take(")")
            return value
        return self.integer()

    def unary(self) -> int:
        if self.peek() in ("+", "-"):
            sign = self.peek()
            self.pos += 1
            value = self.unary()
            return -value if sign == "-" else value
        return self.primary()

    def term(self) -> int:
        value = self.unary()
        while True:
            if self.peek() == "*":
                self.pos += 1
                position = self.pos
                value = _check_magnitude(value * self.unary(), position, self.text)
            elif self.peek() == "(" or (self.peek().isdigit() and self.text[self.pos - 1] == ")"):
                position = self.pos
                value = _check_magnitude(value * self.primary(), position, self.text)
            else:
                return value

    def expr(self) -> int:
        value = self.term()
        while self.peek() in ("+", "-"):
            sign = self.peek()
            self.pos += 1
            position = self.pos
            right = self.term()
            value = _check_magnitude(value + right if sign == "+" else value - right, position, self.text)
        return value


def parse_line(text: str) -> Line:
    """Parse and evaluate one line such as ``12+(3-1)*4`` or ``7*8=56``."""
    if not text:
        raise ParseError("the line is empty", 0, text)
    if len(text) > MAX_SYMBOLS:
        raise RecognitionError("too_many_symbols", f"a line has at most {MAX_SYMBOLS} symbols, this one {len(text)}")
    for index, char in enumerate(text):
        if char not in ALPHABET:
            raise ParseError(f"unknown symbol {char!r} at {index + 1}", index, text)
    parser = _Parser(text)
    value = _check_magnitude(parser.expr(), 0, text)
    expression = text[: parser.pos]
    if parser.peek() == "":
        return Line(expression, value, False, None)
    if parser.peek() != "=":
        raise parser.fail(f"unexpected {parser.peek()!r} at symbol {parser.pos + 1}")
    parser.take("=")
    if parser.peek() == "":
        return Line(expression, value, True, None)
    start = parser.pos
    answer = _check_magnitude(parser.expr(), start, text)
    if parser.peek() != "":
        raise parser.fail(f"unexpected {parser.peek()!r} at symbol {parser.pos + 1} after the answer")
    return Line(expression, value, True, answer, text[start:])


# --- prefix automaton, for the decoder ----------------------------------------------------
# The decoder grows readings symbol by symbol and prunes those that can no
# longer become a valid line. These states mirror the grammar above.
OPERAND = "operand"  # at the start, after '(' or an operator: a number, '(' or a sign
NUMBER = "number"  # after a digit
CLOSED = "closed"  # after ')'
EQUALS = "equals"  # right after '=': an operand may follow, or nothing (unanswered)

State = tuple[str, int, bool]
START: State = (OPERAND, 0, False)
"""(mode, parenthesis depth, right of '=') before the first symbol."""


def advance(state: State, char: str) -> State | None:
    """The state after ``char``, or None when no valid line can continue this way."""
    mode, depth, right = state
    if char.isdigit():
        return (NUMBER, depth, right)
    if char == "(":
        return (OPERAND, depth + 1, right)
    if char in "+-":
        return (OPERAND, depth, right)
    if mode in (OPERAND, EQUALS):
        return None  # '*', ')' and '=' need a left operand
    if char == "*":
        return (OPERAND, depth, right)
    if char == ")":
        return (CLOSED, depth - 1, right) if depth > 0 else None
    if char == "=":
        return (EQUALS, 0, True) if depth == 0 and not right else None
    return None


def is_complete(state: State) -> bool:
    """Whether a reading that ends in ``state`` is a whole line."""
    mode, depth, _ = state
    return mode == EQUALS or (mode in (NUMBER, CLOSED) and depth == 0)


def is_right_side(state: State) -> bool:
    """Whether the reading is past its '=' (in the written answer)."""
    return state[2]


def accepts(text: str) -> bool:
    """Whether the automaton accepts ``text`` as a whole line."""
    state: State | None = START
    for char in text:
        state = advance(state, char)
        if state is None:
            return False
    return is_complete(state)
