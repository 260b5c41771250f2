"""Choose the most probable reading of a line that the grammar accepts.

The segmenter gives a *lattice*: nodes are cut positions along the line, and
each edge is one candidate symbol covering the ink between two cuts, with the
classifier's top-k classes and probabilities. The plain reading is one edge per
component; alternatives add edges that merge neighbours or split a component
that may hold two touching symbols.

A beam search walks the nodes left to right, extends every hypothesis by the
candidates of each outgoing edge, and drops extensions the grammar's prefix
automaton rejects. The best hypothesis that reaches the last node in an
accepting state wins. Its score is the product of its symbols' probabilities,
the segmentation priors of its edges, and a small language prior (see
:func:`transition_cost`, and :func:`symbol_prior.later_digit_cost` for where a digit stands
in its number). The prior only ranks readings: the probability reported for
the winner leaves it out, so a well-read equality is not shown as doubtful.

A line whose written answer disagrees with its value is then weighed against the readings one
symbol away that agree (:func:`agreeing_reading`): most written answers are right. A line
read without '=' is weighed, less, against the equation that agrees with one symbol read as '='.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from workers.pipeline import grammar, symbol_prior
from workers.pipeline.errors import RecognitionError

_FLOOR = 1e-12  # a class the model gave no mass still has a finite cost
SIGN_AFTER_OPERATOR = math.log(0.05)
"""Prior cost of a sign right after a binary operator (``4-+2``, ``3*-1``): valid, but
rare in written arithmetic, and the usual trace of a stray stroke read as a minus."""


OPERATOR_IN_ANSWER = math.log(0.5)
"""Prior cost of each operator or parenthesis right of '=': most written answers are
numbers, but a worksheet may check an equality such as ``6*6=4*9``."""


ANSWER_AGREES = math.log(8)
"""Prior weight of a written answer that equals its line's value (see :func:`agreeing_reading`).
Most answers on a worksheet are right, so where one misread symbol is all that stands between
the line and its answer, the reading that agrees is the likelier one, up to a point: it must be
at least 1/8 as probable by the classifier and the other priors. Chosen on the CROHME tune half
(whole expressions, tablet / canvas, of 96: 91 / 89 without; 92 / 90 at 4; 93 / 90 at 8, 16 and
32; 93 / 89 at 64, where a written ``2=3`` was read ``3=3``), the smallest weight of the best
figures, because an answer read right that is wrong is the worse error for a checker. Rendered
equations with one digit of the answer wrong: 1 of 300 read as right without it, 2 with it;
the same equations answered right: 257 of 300 confirmed without it, 274 with it."""


EQUATION_AGREES = math.log(2)
"""Prior weight of a line read without '=' that becomes an equation that agrees when one of its
symbols is read as '=' instead (see :func:`agreeing_reading`): an '=' written fast as one
slanted stroke reads as a ``7`` or a ``-`` (``2+3=5`` was read ``2+375``, its '=' at 0.52 and
its ``7`` at 0.47 before the symbol prior). Smaller than :data:`ANSWER_AGREES`: on the CROHME
tune half's truths 3 of the 15 expressions with a minus are worth nothing (``200-200``), so
an expression that turns into an equality by chance is not rare. Chosen on the tune half
(tablet / canvas, of 96): 93 / 90 off, 93 / 91 at 2, 4, 8 and 16, the smallest taken; the
rendered tune set (seed 777) 326 -> 327 of 360 at each."""


PLUS_BEFORE_ANSWER = math.log(0.05)
"""Prior cost of a '+' right after '=' (``7+5=+12``): valid, but written answers are bare
or negative, and a ``1`` with a long flag is easily taken for a quick plus."""


def transition_cost(previous: str, symbol: str, right_side: bool = False) -> float:
    """A small language prior over neighbouring symbols (log-probability, <= 0).

    ``right_side``: the symbol comes after the line's '='.
    """
    cost = 0.0
    if previous and previous in "+-*" and symbol in "+-":
        cost += SIGN_AFTER_OPERATOR
    # ')' costs nothing: after a '(' it is forced, and the '(' has paid.
    if right_side and symbol in "+-*(" and not (previous == "=" and symbol in "+-"):
        cost += OPERATOR_IN_ANSWER
    if previous == "=" and symbol == "+":
        cost += PLUS_BEFORE_ANSWER
    return cost


def text_prior(text: str) -> float:
    """The language prior of a whole reading: the sum of its transition costs."""
    total = 0.0
    for index, symbol in enumerate(text):
        total += transition_cost(text[index - 1 : index], symbol, "=" in text[:index])
        total += symbol_prior.later_digit_cost(text[max(index - 2, 0) : max(index - 1, 0)], text[index - 1 : index], symbol)
    return total


@dataclass(frozen=True)
class Edge:
    """One candidate symbol between two cut positions of the line."""

    start: int
    end: int
    candidates: tuple[tuple[str, float], ...]  # (symbol, probability), best first
    penalty: float = 0.0  # log-probability cost of this segmentation choice (<= 0)
    segment: object = None  # what the caller needs to map a chosen edge back to ink
    default: bool = True  # part of the plain one-symbol-per-group reading


@dataclass(frozen=True)
class Reading:
    text: str
    log_probability: float  # symbols and segmentation only: what the reported confidence is
    edges: tuple[Edge, ...]
    probabilities: tuple[float, ...]
    score: float | None = None  # log_probability plus the language prior: what ranked it

    @property
    def probability(self) -> float:
        return math.exp(self.log_probability)


@dataclass(order=True)
class _Hypothesis:
    """A partial reading, as its last step and a pointer to the rest: copying the whole text
    and edge list into every extension made a long line's decoding quadratic."""

    score: float
    symbol: str = field(compare=False)  # the last symbol read ("" at the start)
    state: tuple = field(compare=False)
    parent: _Hypothesis | None = field(compare=False, default=None)
    edge: Edge | None = field(compare=False, default=None)
    probability: float = field(compare=False, default=1.0)

    def steps(self) -> list[_Hypothesis]:
        """The hypotheses from the first symbol to this one."""
        steps, step = [], self
        while step.parent is not None:
            steps.append(step)
            step = step.parent
        return steps[::-1]


def agreeing_reading(reading: Reading, weight: float = ANSWER_AGREES, equation_weight: float = EQUATION_AGREES,
                     parsed: grammar.Line | None = None) -> Reading:
    """``reading``, or, when its written answer disagrees with its value, the reading one symbol
    away (another of that symbol's candidates) that agrees, if the agreement's ``weight`` makes
    it the more probable; or, when it has no '=', the reading with one symbol read as '=' that
    makes an equation that agrees, weighed by ``equation_weight``. The beam cannot weigh this
    itself: a line's value is known only at its end, and the beam keeps one hypothesis per
    grammar state, not per value. ``parsed``: the reading's parse, if the caller has it."""
    if reading.score is None:
        return reading
    if parsed is None:
        try:
            parsed = grammar.parse_line(reading.text)
        except RecognitionError:
            return reading
    if parsed.correct is False:
        only = None  # any symbol may be another of its candidates
    elif not parsed.has_equals:
        only, weight = "=", equation_weight
    else:
        return reading
    best, best_score = reading, reading.score
    penalties = sum(edge.penalty for edge in reading.edges)
    for index, edge in enumerate(reading.edges):
        for symbol, probability in edge.candidates:
            if symbol == reading.text[index] or (only is not None and symbol != only):
                continue
            text = reading.text[:index] + symbol + reading.text[index + 1 :]
            probabilities = reading.probabilities[:index] + (probability,) + reading.probabilities[index + 1 :]
            log_p = _log_sum(probabilities) + penalties
            score = log_p + text_prior(text)
            if score + weight <= best_score:
                continue
            try:
                agrees = grammar.parse_line(text).correct
            except RecognitionError:
                continue
            if agrees:
                best, best_score = Reading(text, log_p, reading.edges, probabilities, score), score + weight
    return best


def _log_sum(probabilities) -> float:
    return sum(math.log(max(p, _FLOOR)) for p in probabilities)


def greedy_reading(edges: list[Edge], node_count: int) -> Reading:
    """The top-1 symbol of each default edge, grammar or not: what the model saw first."""
    by_start = {edge.start: edge for edge in edges if edge.default}
    chosen = []
    node = 0
    while node in by_start and node < node_count - 1:
        chosen.append(by_start[node])
        node = by_start[node].end
    text = "".join(edge.candidates[0][0] for edge in chosen)
    probabilities = tuple(edge.candidates[0][1] for edge in chosen)
    return Reading(text, _log_sum(probabilities), tuple(chosen), probabilities)


def decode(edges: list[Edge], node_count: int, beam_width: int = 64, top_k: int = 4) -> Reading | None:
    """The most probable grammatical reading from node 0 to node ``node_count - 1``, or None."""
    outgoing: dict[int, list[Edge]] = {}
    for edge in edges:
        outgoing.setdefault(edge.start, []).append(edge)
    beams: dict[int, dict[tuple, _Hypothesis]] = {0: {("", grammar.START): _Hypothesis(0.0, "", grammar.START)}}
    for node in range(node_count - 1):
        current = sorted(beams.pop(node, {}).values(), reverse=True)[:beam_width]
        for hypothesis in current:
            for edge in outgoing.get(node, ()):
                for symbol, probability in edge.candidates[:top_k]:
                    state = grammar.advance(hypothesis.state, symbol)
                    if state is None:
                        continue
                    score = (
                        hypothesis.score
                        + math.log(max(probability, _FLOOR))
                        + edge.penalty
                        + transition_cost(hypothesis.symbol, symbol, grammar.is_right_side(hypothesis.state))
                        + symbol_prior.later_digit_cost(hypothesis.parent.symbol if hypothesis.parent else "", hypothesis.symbol, symbol)
                    )
                    # What a hypothesis can still become, and at what cost, depends only on its
                    # grammar state, its last symbol and whether the one before was a digit (the
                    # priors look two symbols back at most): of those that share all three, only the
                    # best can win, so it alone is kept (Viterbi). Without
                    # this, near-ties that die at the end of the line (a run of '-' that also look
                    # like '(') filled the beam and lost the only readings that parse.
                    key = (symbol, state, hypothesis.symbol.isdigit())
                    bucket = beams.setdefault(edge.end, {})
                    if key not in bucket or bucket[key].score < score:
                        bucket[key] = _Hypothesis(score, symbol, state, hypothesis, edge, probability)
    finals = [h for h in beams.get(node_count - 1, {}).values() if grammar.is_complete(h.state)]
    if not finals:
        return None
    best = max(finals)
    steps = best.steps()
    edges, probabilities = tuple(step.edge for step in steps), tuple(step.probability for step in steps)
    log_p = _log_sum(probabilities) + sum(edge.penalty for edge in edges)
    return Reading("".join(step.symbol for step in steps), log_p, edges, probabilities, best.score)
