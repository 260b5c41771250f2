"""The grammar and exact evaluator; Hypothesis checks the parser against the prefix automaton."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.pipeline.errors import RecognitionError
from workers.pipeline.grammar import MAX_MAGNITUDE, ParseError, accepts, parse_line


@pytest.mark.parametrize(
    "text, value",
    [
        ("12+(3-1)*4", 20),
        ("2+3*4", 14),
        ("2-3-4", -5),
        ("-3+5", 2),
        ("+7", 7),
        ("--3", 3),
        ("2*-3", -6),
        ("2(3+4)", 14),
        ("(1+2)(3+4)", 21),
        ("(2)3", 6),
        ("((128*82)*96)*17", 17129472),
        ("007", 7),
    ],
)
def test_values_follow_precedence_and_juxtaposition(text, value):
    line = parse_line(text)
    assert line.value == value and line.expression == text and line.answer is None and line.correct is None


@pytest.mark.parametrize(
    "text, expression, answer, correct",
    [
        ("7*8=56", "7*8", 56, True),
        ("7*8=54", "7*8", 54, False),
        ("24-151=-127", "24-151", -127, True),
        ("1+1=", "1+1", None, None),
        ("3=+3", "3", 3, True),
        ("6*6=4*9", "6*6", 36, True),
        ("252=28*9", "252", 252, True),
        ("2*2-2=(1+1)*2", "2*2-2", 4, False),
    ],
)
def test_answers_are_checked(text, expression, answer, correct):
    line = parse_line(text)
    assert (line.expression, line.answer, line.correct) == (expression, answer, correct)
    assert line.has_equals
    assert line.answer_expression == (text.split("=")[1] or None)


@pytest.mark.parametrize(
    "text, position",
    [("2+", 2), ("(2+3", 4), ("2+3)", 3), ("*2", 0), ("2==3", 2), ("=3", 0), ("1+1=2+2=4", 7), ("1=2*", 4), ("", 0), ("2/3", 1)],
)
def test_bad_lines_say_where(text, position):
    with pytest.raises(ParseError) as caught:
        parse_line(text)
    assert caught.value.code == "unparsable_expression"
    assert caught.value.position == position and caught.value.best_reading == text


def test_limits_are_typed_errors():
    with pytest.raises(RecognitionError) as caught:
        parse_line("9" * 60 + "*" + "9" * 60)
    assert caught.value.code == "value_too_large"
    assert parse_line("1" + "0" * 100).value == MAX_MAGNITUDE
    for written, position in (("1" + "0" * 101 + "*0", 0), ("2=" + "9" * 101, 2)):  # too large as written, whatever the result
        with pytest.raises(RecognitionError) as caught:
            parse_line(written)
        assert caught.value.code == "value_too_large" and caught.value.position == position
    with pytest.raises(RecognitionError) as caught:
        parse_line("1+" * 100 + "1")
    assert caught.value.code == "too_many_symbols"


SYMBOLS = st.text(alphabet="0123456789+-*()=", max_size=25)


@given(SYMBOLS)
def test_automaton_and_parser_agree(text):
    """The decoder's automaton accepts exactly the lines the parser accepts."""
    try:
        parse_line(text)
        parsed = True
    except ParseError:
        parsed = False
    except RecognitionError as error:
        assert error.code == "value_too_large"
        parsed = True
    assert accepts(text) == parsed, text


def _expressions(depth=3):
    number = st.integers(0, 10**6).map(str)
    if depth == 0:
        return number
    inner = _expressions(depth - 1)
    return st.one_of(
        number,
        st.tuples(inner, st.sampled_from("+-*"), inner).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"-{e}"),
    )


def _reference(text: str) -> int:
    """An independent evaluator: Python's ast on the same text, walked by hand (no eval)."""
    import ast

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand) if isinstance(node.op, ast.USub) else walk(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]
        raise AssertionError(node)

    return walk(ast.parse(text, mode="eval"))


@given(_expressions())
def test_values_match_an_independent_evaluator(text):
    # The generated numbers have no leading zeros, which Python would reject.
    try:
        line = parse_line(text)
    except RecognitionError as error:
        assert error.code == "value_too_large"
        return
    assert line.value == _reference(text)


@given(_expressions(), st.integers(-10**6, 10**6))
def test_a_written_answer_is_compared_exactly(text, answer):
    try:
        line = parse_line(f"{text}={answer}")
    except RecognitionError:
        return
    assert line.answer == answer and line.correct == (line.value == answer)


@given(_expressions(), _expressions())
def test_an_equality_compares_both_sides_exactly(left, right):
    try:
        line = parse_line(f"{left}={right}")
    except RecognitionError as error:
        assert error.code == "value_too_large"
        return
    assert (line.expression, line.answer_expression) == (left, right)
    assert line.correct == (_reference(left) == _reference(right))
