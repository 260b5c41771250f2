"""The grammar-constrained decoder, on made-up top-k lists and lattices."""
import itertools
import math

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from workers.pipeline.decoder import ANSWER_AGREES, EQUATION_AGREES, Edge, agreeing_reading, decode, greedy_reading, text_prior
from workers.pipeline.grammar import accepts, parse_line
from workers.pipeline.recognize import _lattice, _with_candidates, read_line
from workers.pipeline.segment import Group, Line, Piece
from workers.pipeline.symbols import CLASS_INDEX, NUM_CLASSES

ALPHABET = "0123456789+-*()="


def _chain(columns):
    return [Edge(i, i + 1, tuple(column)) for i, column in enumerate(columns)]


def _piece(x, width=10):
    return Piece((x, 0, width, 10), np.full((10, width), 255, np.uint8))


def _sure(symbol, p):
    """A classifier row: ``symbol`` at ``p``, the rest shared evenly."""
    row = np.full(NUM_CLASSES, (1 - p) / (NUM_CLASSES - 1))
    row[CLASS_INDEX[symbol]] = p
    return row


def test_grammar_overrides_a_confident_but_impossible_symbol():
    # The model thinks the last symbol is '+' (0.6) but '1' (0.4) makes the only valid line.
    columns = [[("7", 0.99)], [("*", 0.9), ("+", 0.1)], [("8", 0.95)], [("+", 0.6), ("1", 0.4)]]
    reading = decode(_chain(columns), 5)
    assert reading.text == "7*81"
    assert math.isclose(reading.probability, 0.99 * 0.9 * 0.95 * 0.4)
    assert greedy_reading(_chain(columns), 5).text == "7*8+"


def test_segmentation_alternatives_compete():
    # Components 1 and 2 may be one '4' (a merge edge) or two '1's.
    edges = _chain([[("3", 0.9)], [("1", 0.9)], [("1", 0.9)], [("+", 0.9)], [("2", 0.9)]])
    edges.append(Edge(1, 3, (("4", 0.95),), penalty=math.log(0.95)))  # 0.9025 > 0.9 * 0.9
    assert decode(edges, 6).text == "34+2"  # '311+2' is grammatical too, but less probable
    edges[-1] = Edge(1, 3, (("4", 0.3),), penalty=math.log(0.3))  # 0.09 < 0.9 * 0.9, even with 1s as later digits
    assert decode(edges, 6).text == "311+2"


def test_a_sign_after_an_operator_needs_strong_evidence():
    # '4-+2' parses (unary plus), but a stray bar read as '-' is likelier than that.
    edges = _chain([[("4", 0.99)], [("-", 0.9), ("1", 0.1)], [("+", 0.99)], [("2", 0.99)]])
    edges.append(Edge(1, 3, (("+", 0.9),), penalty=math.log(0.3)))
    assert decode(edges, 5).text == "4+2"
    assert decode(_chain([[("2", 0.9)], [("*", 0.9)], [("-", 0.9)], [("3", 0.9)]]), 5).text == "2*-3"


def test_a_plus_before_a_written_answer_needs_strong_evidence_but_a_minus_does_not():
    # '7+5=+12' parses, but a flagged 1 taken for a plus is likelier; a negative answer is common.
    plus_or_one = [("+", 0.8), ("1", 0.1)]
    line = [[("7", 0.99)], [("+", 0.99)], [("5", 0.99)], [("=", 0.99)], plus_or_one, [("2", 0.99)]]
    assert decode(_chain(line), 7).text == "7+5=12"
    line[4] = [("+", 0.95), ("1", 0.02)]
    assert decode(_chain(line), 7).text == "7+5=+2"  # overwhelming evidence still wins
    line[4] = [("-", 0.8), ("1", 0.1)]
    assert decode(_chain(line), 7).text == "7+5=-2"


def test_an_answer_one_doubtful_symbol_from_agreeing_is_read_as_agreeing():
    # '7*8=54' as the classifier sees it, but its '4' could be a '6' (half as likely): most
    # written answers are right, so '7*8=56' is the likelier reading.
    line = [[("7", 0.99)], [("*", 0.99)], [("8", 0.99)], [("=", 0.99)], [("5", 0.99)], [("4", 0.6), ("6", 0.3)]]
    reading = decode(_chain(line), 7)
    assert reading.text == "7*8=54"
    agreeing = agreeing_reading(reading)
    assert agreeing.text == "7*8=56" and parse_line(agreeing.text).correct
    assert math.isclose(agreeing.probability, 0.99**5 * 0.3)  # the confidence is the symbols' own
    # The doubt is on the left side just as well: '7*3' read for '7*8'.
    line = [[("7", 0.99)], [("*", 0.99)], [("3", 0.7), ("8", 0.25)], [("=", 0.99)], [("5", 0.99)], [("6", 0.99)]]
    assert agreeing_reading(decode(_chain(line), 7)).text == "7*8=56"


def test_a_wrong_answer_written_clearly_stays_wrong():
    # A checker must not talk a pupil's mistake away: a '4' the classifier is sure of stays a '4'.
    line = [[("7", 0.99)], [("*", 0.99)], [("8", 0.99)], [("=", 0.99)], [("5", 0.99)], [("4", 0.9), ("6", 0.09)]]
    reading = agreeing_reading(decode(_chain(line), 7))
    assert (reading.text, parse_line(reading.text).correct) == ("7*8=54", False)
    # No answer, or no '=' and nothing that could be one: nothing to agree with.
    for line in ([[("7", 0.99)], [("*", 0.99)], [("8", 0.6), ("3", 0.4)]],
                 [[("7", 0.99)], [("*", 0.99)], [("8", 0.6), ("3", 0.4)], [("=", 0.99)]]):
        reading = decode(_chain(line), len(line) + 1)
        assert agreeing_reading(reading) == reading


def test_a_symbol_that_may_be_an_equals_sign_making_an_equation_that_agrees_is_read_as_one():
    # '2+3=5' with its '=' written as one slanted stroke: the classifier calls it '7' a little
    # more often than '=' (after the symbol prior), so the beam reads the number '375'. Read as
    # '=', the line is an equation that agrees, and that outweighs the small difference.
    line = [[("2", 0.99)], [("+", 0.99)], [("3", 0.99)], [("7", 0.5), ("=", 0.4)], [("5", 0.99)]]
    reading = decode(_chain(line), 6)
    assert reading.text == "2+375"
    agreeing = agreeing_reading(reading)
    assert agreeing.text == "2+3=5" and parse_line(agreeing.text).correct
    # A plus sign the classifier is sure of stays one, though '1=1' would agree.
    line = [[("1", 0.99)], [("+", 0.8), ("=", 0.15)], [("1", 0.99)]]
    assert agreeing_reading(decode(_chain(line), 4)).text == "1+1"
    # Nor does an '=' that would make an equation that disagrees win: '2+3=6' is no reason.
    line = [[("2", 0.99)], [("+", 0.99)], [("3", 0.99)], [("7", 0.5), ("=", 0.45)], [("6", 0.99)]]
    assert agreeing_reading(decode(_chain(line), 6)).text == "2+376"


def test_read_line_reads_a_line_without_equals_as_the_equation_that_agrees():
    # The same through read_line, as the pipeline calls it: a slanted '=' the classifier calls
    # a '7' a little more often is read as '=' when that makes an equation that agrees.
    def row(pairs):
        values = np.full(NUM_CLASSES, 0.001)
        for symbol, p in pairs:
            values[CLASS_INDEX[symbol]] = p
        return values

    line = Line((0, 0, 50, 10), [Group(_piece(x)) for x in range(0, 50, 10)])
    pieces = []
    edges, nodes = _lattice(line, pieces)
    probabilities = np.array([row([("2", 0.99)]), row([("+", 0.99)]), row([("3", 0.99)]), row([("7", 0.5), ("=", 0.4)]), row([("5", 0.99)])])
    batch = np.zeros((len(pieces), 28, 28, 1), np.float32)
    result = read_line(_with_candidates(edges, probabilities), nodes, pieces, probabilities, batch, line.box)
    assert (result.expression, result.answer, result.correct) == ("2+3", 5, True)


def test_no_grammatical_reading_gives_none():
    assert decode(_chain([[("+", 0.9), ("*", 0.1)]]), 2) is None


columns_strategy = st.lists(
    st.lists(st.tuples(st.sampled_from(ALPHABET), st.floats(0.001, 1.0)), min_size=1, max_size=3, unique_by=lambda t: t[0]),
    min_size=1,
    max_size=6,
)


@given(columns_strategy)
def test_decoder_finds_the_most_probable_grammatical_reading(columns):
    columns = [sorted(c, key=lambda t: -t[1]) for c in columns]
    best_text, best_score = None, -math.inf
    for combo in itertools.product(*columns):
        text = "".join(symbol for symbol, _ in combo)
        score = sum(math.log(p) for _, p in combo)
        score += text_prior(text)
        if accepts(text) and score > best_score + 1e-12:
            best_text, best_score = text, score
    reading = decode(_chain(columns), len(columns) + 1, beam_width=1000)
    if best_text is None:
        assert reading is None
    else:
        assert accepts(reading.text)
        assert math.isclose(reading.score, best_score, rel_tol=1e-9, abs_tol=1e-9)
        # The reported probability is the symbols' alone (the prior only ranks readings).
        assert math.isclose(reading.log_probability, sum(math.log(p) for p in reading.probabilities), rel_tol=1e-9, abs_tol=1e-9)


@given(columns_strategy)
def test_default_beam_always_returns_grammatical_text(columns):
    reading = decode(_chain(columns), len(columns) + 1)
    if reading is not None:
        assert accepts(reading.text)
        assert len(reading.edges) == len(reading.probabilities) == len(reading.text)


@st.composite
def equation_columns(draw):
    """Top-k lists of a written equation, its answer right or a little off, each symbol with
    one other candidate: the case :func:`agreeing_reading` is for (random columns seldom are)."""
    left = f"{draw(st.integers(0, 99))}{draw(st.sampled_from('+-*'))}{draw(st.integers(0, 99))}"
    text = f"{left}={parse_line(left).value + draw(st.sampled_from([0, 0, 1, -1, 2, 10]))}"
    columns = []
    for symbol in text:
        column = [(symbol, draw(st.floats(0.05, 1.0)))]
        other = draw(st.sampled_from(ALPHABET))
        if other != symbol:
            column.append((other, draw(st.floats(0.001, 1.0))))
        columns.append(sorted(column, key=lambda t: -t[1]))
    return columns


@given(st.one_of(columns_strategy, equation_columns()))
# Both ways a reading changes, pinned: random columns reach them seldom (a few in a thousand).
@example([[("7", 0.99)], [("*", 0.99)], [("8", 0.99)], [("=", 0.99)], [("5", 0.99)], [("4", 0.6), ("6", 0.3)]])
@example([[("2", 0.99)], [("+", 0.99)], [("3", 0.99)], [("7", 0.5), ("=", 0.4)], [("5", 0.99)]])
@example([[("2", 0.99)], [("+", 0.9), ("=", 0.3)], [("3", 0.99)], [("-", 0.6), ("=", 0.35)], [("5", 0.99)]])
def test_an_agreeing_reading_is_the_best_one_symbol_away(columns):
    reading = decode(_chain(columns), len(columns) + 1)
    if reading is None:
        return
    agreeing = agreeing_reading(reading)
    parsed = parse_line(reading.text)
    if parsed.correct is False:
        weight, symbols = ANSWER_AGREES, None  # a disagreeing answer: any other candidate
    elif not parsed.has_equals:
        weight, symbols = EQUATION_AGREES, "="  # no '=' read: a candidate '=' only
    else:
        assert agreeing is reading  # an answer that agrees, or none: nothing to weigh
        return
    # Every reading one symbol away that agrees, with its score.
    rivals = {}
    for index, column in enumerate(columns):
        for symbol, probability in column:
            text = reading.text[:index] + symbol + reading.text[index + 1 :]
            if (symbols is not None and symbol not in symbols) or text == reading.text:
                continue
            if accepts(text) and parse_line(text).correct:
                score = reading.score - math.log(reading.probabilities[index]) + math.log(probability)
                rivals[text] = max(rivals.get(text, -math.inf), score + text_prior(text) - text_prior(reading.text))
    if agreeing is reading:  # kept: no rival outweighs it
        assert all(score + weight <= reading.score + 1e-9 for score in rivals.values())
        return
    assert parse_line(agreeing.text).correct is True and agreeing.text in rivals
    changed = [(a, b) for a, b in zip(reading.text, agreeing.text) if a != b]
    assert len(changed) == 1 and len(agreeing.text) == len(reading.text)
    assert symbols is None or changed[0][1] == "="
    assert agreeing.score + weight > reading.score
    assert math.isclose(agreeing.score, rivals[agreeing.text], rel_tol=1e-9, abs_tol=1e-9)
    assert agreeing.score >= max(rivals.values()) - 1e-9  # the best of them
    assert math.isclose(agreeing.log_probability, sum(math.log(p) for p in agreeing.probabilities), rel_tol=1e-9, abs_tol=1e-9)


def test_near_ties_that_die_at_the_end_of_a_long_line_do_not_crowd_out_the_reading():
    # Each '-' after '*' also looks like '(' (0.45 against 0.5), and a sign after an operator
    # costs a prior, so every unclosed-'(' variant outscores the one reading that parses. There
    # are 2^15 of them; the beam keeps the best hypothesis per grammar state and last symbol.
    columns = [[("1", 0.99)], [("*", 0.99)], [("-", 0.5), ("(", 0.45)]] * 15 + [[("1", 0.99)]]
    reading = decode(_chain(columns), len(columns) + 1)
    assert reading is not None and reading.text == "1*-" * 15 + "1"


def test_each_split_proposal_carries_the_whole_split_prior():
    # A wide group ('4' touching '=' in '2+4=6') whose whole the model reads as a '4' at 0.97,
    # with two ways to cut it: at the join (a '4' and an '=', both sure) and through the '4'.
    # Proposing a second, wrong cut must not make the right one less likely: each cut is a
    # hypothesis of its own, weighed by the group's shape (split_prior), and the pieces' own
    # probabilities say which cut it is. (Sharing the prior between the proposals read '2+46'.)
    wide = Group(_piece(20), splits=[[_piece(20), _piece(30)], [_piece(20), _piece(25), _piece(30)]], split_prior=0.6)
    line = Line((0, 0, 50, 10), [Group(_piece(0)), Group(_piece(10)), wide, Group(_piece(40))])
    pieces = []
    edges, nodes = _lattice(line, pieces)
    # Crops in lattice order: '2', '+', the whole, cut one (two pieces), cut two (three pieces), '6'.
    probabilities = np.array([_sure("2", 0.99), _sure("+", 0.99), _sure("4", 0.974), _sure("4", 0.999), _sure("=", 0.998),
                              _sure("1", 0.5), _sure("*", 0.5), _sure("=", 0.998), _sure("6", 0.99)])
    batch = np.zeros((len(pieces), 28, 28, 1), np.float32)
    reading = read_line(_with_candidates(edges, probabilities), nodes, pieces, probabilities, batch, line.box)
    assert (reading.expression, reading.answer, reading.correct) == ("2+4", 6, True)


def test_two_neighbours_offered_joined_are_read_as_one_symbol_when_the_whole_is_surer():
    # A '0' broken where the pen thinned: its halves alone read as '(' and ')' (or '6' and '7'),
    # the two together as a sure '0'. The join is one more edge over both groups; the decoder
    # weighs it against its parts. A neighbour pair that is two symbols keeps both.
    groups = [Group(_piece(0)), Group(_piece(10)), Group(_piece(20)), Group(_piece(26))]
    line = Line((0, 0, 36, 10), groups, joins={0: _piece(0, 20), 2: _piece(20, 16)})
    pieces = []
    edges, nodes = _lattice(line, pieces)
    assert [(e.start, e.end, e.default) for e in edges[-2:]] == [(0, 2, False), (2, 4, False)]
    # Crops in lattice order: '8', '+', the broken 0's halves, then the joins ('8+' and the 0).
    probabilities = np.array([_sure("8", 0.99), _sure("+", 0.99), _sure("6", 0.6), _sure("7", 0.5),
                              _sure("8", 0.02), _sure("0", 0.99)])
    batch = np.zeros((len(pieces), 28, 28, 1), np.float32)
    reading = read_line(_with_candidates(edges, probabilities), nodes, pieces, probabilities, batch, line.box)
    assert reading.expression == "8+0" and reading.value == 8
    assert [symbol.box for symbol in reading.symbols][2] == (20, 0, 16, 10)  # the joined box is shown
